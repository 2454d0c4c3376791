"""Every page and API answer carries the security headers; the pages load no inline script (the policy forbids it)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from server.security_headers import CONTENT_SECURITY_POLICY

CLIENT = Path(__file__).resolve().parents[1] / "client"


def test_every_answer_has_the_security_headers(client: TestClient) -> None:
    room = client.post("/api/rooms", json={"title": "Headers"}).json()["id"]
    for path in ("/", f"/r/{room}", f"/moderate/{room}", "/d/abcdefgh12345678", "/static/js/lobby.js",
                 "/static/js/room.js", "/api/rooms/" + room, "/healthz",
                 "/api/rooms/nope1234", "/no/such/page"):
        answer = client.get(path)
        headers = answer.headers
        assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer", path


def test_pages_have_no_inline_script_or_handlers() -> None:
    for page in CLIENT.glob("*.html"):
        html = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in tag, f"{page.name}: inline script {tag}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"{page.name}: inline event handler"
        assert "style=" not in html, f"{page.name}: inline style"
        assert "javascript:" not in html
