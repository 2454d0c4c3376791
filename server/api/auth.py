"""Signing in and out, for organisers, moderators and administrators.

- ``POST /api/auth/token``: the OAuth2 password flow (form fields ``username`` and ``password``) for API clients;
  answers ``{"access_token", "token_type": "bearer", "expires_in"}``; send it as ``Authorization: Bearer``.
- ``POST /api/auth/login`` (JSON ``{"email", "password"}``): for the browser; sets the session cookie (HttpOnly,
  SameSite=Strict, Secure over HTTPS) and a readable CSRF cookie whose value the page sends back in ``X-CSRF-Token``
  on every request that changes something.
- ``POST /api/auth/logout``: ends the session (the token stops working at once) and clears the cookies.
- ``GET /api/auth/me``: who is signed in.

Attempts are limited per client address and per account before any password is checked (429 with Retry-After). A
wrong email and a wrong password get the same answer.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel, ConfigDict, Field

from server.accounts.service import BadCredentials, Principal, SignedIn
from server.api.deps import CSRF_COOKIE, SESSION_COOKIE, Context, Staff

router = APIRouter(prefix="/api/auth", tags=["auth"])


class TokenAnswer(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class Me(BaseModel):
    email: str
    role: str
    expires_at: float


class SignedInAnswer(Me):
    csrf_token: str


async def _sign_in(request: Request, ctx: Context, email: str, password: str) -> SignedIn:
    accounts = ctx.accounts
    if accounts is None:  # pragma: no cover - every app has one
        raise HTTPException(status_code=503, detail="accounts are not available")
    address = request.client.host if request.client else "unknown"
    wait = ctx.sign_in_throttle.attempt(address, email)
    if wait > 0:
        raise HTTPException(status_code=429, headers={"Retry-After": str(max(1, round(wait)))},
                            detail=f"too many sign-in attempts: try again in {max(1, round(wait))} s")
    try:
        return await asyncio.to_thread(accounts.sign_in, email, password)
    except BadCredentials:
        raise HTTPException(status_code=401, detail="wrong email or password") from None


@router.post("/token")
async def token(request: Request, ctx: Context,
                form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenAnswer:
    signed = await _sign_in(request, ctx, form.username, form.password)
    return TokenAnswer(access_token=signed.token, expires_in=round(signed.principal.expires_at
                                                                   - ctx.clock()))


@router.post("/login")
async def login(request: Request, response: Response, ctx: Context, body: Credentials) -> SignedInAnswer:
    signed = await _sign_in(request, ctx, body.email, body.password)
    assert ctx.accounts is not None
    principal = signed.principal
    csrf = ctx.accounts.csrf_token(principal)
    secure = request.url.scheme == "https" or (ctx.settings.public_url or "").startswith("https://")
    max_age = round(principal.expires_at - ctx.clock())
    response.set_cookie(SESSION_COOKIE, signed.token, max_age=max_age, httponly=True, samesite="strict",
                        secure=secure, path="/")
    response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, httponly=False, samesite="strict", secure=secure,
                        path="/")
    return SignedInAnswer(email=principal.email, role=principal.role, expires_at=principal.expires_at,
                          csrf_token=csrf)


@router.post("/logout", status_code=204)
async def logout(response: Response, ctx: Context, principal: Staff) -> None:
    assert ctx.accounts is not None
    await asyncio.to_thread(ctx.accounts.sign_out, principal)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")


@router.get("/me")
async def me(principal: Staff) -> Me:
    return _me(principal)


def _me(principal: Principal) -> Me:
    return Me(email=principal.email, role=principal.role, expires_at=principal.expires_at)
