"""Signing in over HTTP: the OAuth2 password flow for API clients, the browser's cookie with CSRF protection,
sign-out that ends the token at once, the same answer for a wrong email and a wrong password, and limits on
attempts (checked before any password is hashed)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from server.api.deps import CSRF_COOKIE, SESSION_COOKIE

PASSWORD = "correct horse battery"


def add_user(client: TestClient, email: str = "ada@example.org", role: str = "organiser") -> None:
    client.app.state.ctx.accounts.add_user(email, role, PASSWORD)  # type: ignore[attr-defined]


def test_password_flow_token_works_as_bearer_until_sign_out(client: TestClient) -> None:
    add_user(client)
    answer = client.post("/api/auth/token", data={"username": "ADA@example.org", "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 12 * 3600
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get("/api/auth/me", headers=bearer)
    assert me.status_code == 200 and me.json()["email"] == "ada@example.org" and me.json()["role"] == "organiser"
    assert client.post("/api/auth/logout", headers=bearer).status_code == 204  # a bearer needs no CSRF token
    gone = client.get("/api/auth/me", headers=bearer)
    assert gone.status_code == 401 and "sign in again" in gone.json()["detail"]


def test_wrong_email_and_wrong_password_get_the_same_answer(client: TestClient) -> None:
    add_user(client)
    answers = [client.post("/api/auth/login", json={"email": email, "password": password})
               for email, password in (("ada@example.org", "not the password"), ("bo@example.org", PASSWORD))]
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert SESSION_COOKIE not in client.cookies


def test_browser_cookie_needs_the_csrf_token_to_change_anything(client: TestClient) -> None:
    add_user(client, role="moderator")
    signed = client.post("/api/auth/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert signed.status_code == 200, signed.text
    csrf = signed.json()["csrf_token"]
    set_cookies = signed.headers.get_list("set-cookie")
    session_cookie = next(c for c in set_cookies if c.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie
    assert client.cookies[CSRF_COOKIE] == csrf
    assert client.get("/api/auth/me").json()["role"] == "moderator"  # reading needs no CSRF token
    assert client.post("/api/auth/logout").status_code == 403  # changing something does
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf + "x"}).status_code == 403
    assert client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert SESSION_COOKIE not in client.cookies
    assert client.get("/api/auth/me").status_code == 401


def test_anonymous_and_garbage_credentials_are_refused(client: TestClient) -> None:
    assert client.get("/api/auth/me").status_code == 401
    for headers in ({"Authorization": "Bearer a.b.c"}, {"Authorization": "Bearer "}, {"Authorization": "Basic x"}):
        assert client.get("/api/auth/me", headers=headers).status_code == 401, headers
    client.cookies.set(SESSION_COOKIE, "not-a-token")
    assert client.get("/api/auth/me").status_code == 401
    for body in ({}, {"email": "a@b.org"}, {"email": "a@b.org", "password": "x" * 2000},
                 {"email": "a@b.org", "password": "p", "role": "admin"}):
        assert client.post("/api/auth/login", json=body).status_code == 422, body


def test_attempts_are_limited_per_account_before_passwords_are_checked(client: TestClient) -> None:
    add_user(client)
    codes = [client.post("/api/auth/login", json={"email": "ada@example.org", "password": f"guess number {i}"})
             .status_code for i in range(7)]
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]
    refused = client.post("/api/auth/login", json={"email": "ada@example.org", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    # another account from the same address still may (the address allows more than one account's burst)
    add_user(client, "bo@example.org", "moderator")
    assert client.post("/api/auth/login", json={"email": "bo@example.org", "password": PASSWORD}).status_code == 200


def test_attempts_are_limited_per_address_across_accounts(client: TestClient) -> None:
    codes = [client.post("/api/auth/token", data={"username": f"user{i}@example.org", "password": "whatever it is"})
             .status_code for i in range(22)]
    assert codes[:20] == [401] * 20 and codes[20:] == [429, 429]
