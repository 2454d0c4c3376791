"""Signing in as organiser, moderator or administrator in tests (accounts made directly, tokens over the API)."""

from __future__ import annotations

from typing import Any

PASSWORD = "correct horse battery"


def ensure_account(accounts: Any, email: str, role: str) -> None:
    if accounts.store.user_by_email(email) is None:
        accounts.add_user(email, role, PASSWORD)


def bearer(client: Any, email: str = "organiser@example.org", role: str = "organiser") -> dict[str, str]:
    """Authorization headers for ``email`` (created with ``role`` if new) on a TestClient."""
    ensure_account(client.app.state.ctx.accounts, email, role)
    answer = client.post("/api/auth/token", data={"username": email, "password": PASSWORD},
                         headers={"Authorization": ""})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def server_token(server: Any, email: str = "organiser@example.org", role: str = "organiser") -> str:
    """A session token for ``email`` (created with ``role`` if new) from a running server's token endpoint."""
    import httpx

    ensure_account(server.ctx.accounts, email, role)
    answer = httpx.post(f"{server.http}/api/auth/token", data={"username": email, "password": PASSWORD}, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def server_headers(server: Any, email: str = "organiser@example.org", role: str = "organiser") -> dict[str, str]:
    """Authorization headers for ``email`` on a running server (see ``server_token``)."""
    return {"Authorization": f"Bearer {server_token(server, email, role)}"}


def sign_in(client: Any, email: str = "organiser@example.org", role: str = "organiser") -> Any:
    """The TestClient, sending ``email``'s bearer token on every request from now on."""
    client.headers.update(bearer(client, email, role))
    return client
