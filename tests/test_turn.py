"""TURN for browsers: short-lived credentials coturn accepts (``use-auth-secret``), one per participant, in
``welcome`` (never from ``GET /api/config``, which needs no room); the shared secret and static TURN passwords never
reach a browser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from server.app import create_app
from server.core.settings import IceServer, Settings
from server.turn import browser_ice_servers, turn_credential

SECRET = "a-test-secret-shared-with-coturn"
TURN_URLS = ["turn:turn.example.org:3478?transport=udp", "turn:turn.example.org:3478?transport=tcp"]


def coturn_accepts(secret: str, username: str, password: str, now: float) -> bool:
    """coturn's check (userdb.c, get_user_key): the timestamp before ':' is not in the past, and the password is
    base64(HMAC-SHA1(secret, whole username))."""
    expiry = int(username.split(":", 1)[0])
    expected = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return expiry >= now and hmac.compare_digest(expected, password)


def turn_entries(servers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in servers if any(u.startswith(("turn:", "turns:")) for u in s["urls"])]


def test_known_vector() -> None:
    credential = turn_credential("north", "abc", 1_700_000_000)
    assert credential.username == "1700000000:abc"
    expected = base64.b64encode(hmac.new(b"north", b"1700000000:abc", hashlib.sha1).digest()).decode()
    # the same value from `printf %s 1700000000:abc | openssl dgst -sha1 -hmac north -binary | base64`
    assert credential.credential == expected == "g5HTmCBrPDhYXFpM/1dHUtfE+c4="
    assert credential.expires_at == 1_700_000_000


def test_browser_list_has_stun_then_turn_with_an_own_credential() -> None:
    settings = Settings.model_validate({"ice_servers": "stun:stun.example.org:3478", "turn_urls": ",".join(TURN_URLS),
                                        "turn_secret": SECRET, "turn_credential_ttl_s": 600})  # as the environment
    now = 1_700_000_000.7
    servers = browser_ice_servers(settings, "p4rt1c1pant", now=now)
    assert servers[0] == {"urls": ["stun:stun.example.org:3478"]}
    [turn] = turn_entries(servers)
    assert turn["urls"] == TURN_URLS
    assert turn["username"] == f"{1_700_000_000 + 600}:p4rt1c1pant", "expiry = now + ttl, then the participant id"
    assert coturn_accepts(SECRET, turn["username"], turn["credential"], now)
    assert not coturn_accepts(SECRET, turn["username"], turn["credential"], now + 601), "expired after the ttl"
    assert SECRET not in json.dumps(servers)


def test_every_browser_gets_its_own_credential() -> None:
    settings = Settings(turn_urls=TURN_URLS, turn_secret=SecretStr(SECRET))
    now = time.time()
    ada, bo = (turn_entries(browser_ice_servers(settings, pid, now=now))[0] for pid in ("ada1", "bo22"))
    assert ada["username"] != bo["username"] and ada["credential"] != bo["credential"]
    first, second = (turn_entries(browser_ice_servers(settings, now=now))[0] for _ in range(2))
    assert first["username"] != second["username"], "no participant id: a random one each time"
    with pytest.raises(ValueError, match="TURN user id"):
        browser_ice_servers(settings, "Ada Lovelace")  # coturn refuses spaces; a display name never goes there


def test_no_turn_configured_means_no_turn_entries() -> None:
    servers = browser_ice_servers(Settings.model_validate({"ice_servers": "stun:stun.example.org:3478"}), "p1")
    assert servers == [{"urls": ["stun:stun.example.org:3478"]}]
    assert browser_ice_servers(Settings(), "p1") == []


@pytest.mark.parametrize("ice_servers", [
    '[{"urls": ["turn:t.example.org:3478"], "username": "moot", "credential": "static-password-1"}]',
    '[{"urls": ["stun:s.example.org", "turns:t.example.org:5349"], "username": "u",'
    ' "credential": "static-password-1"}]',
    "stun:s.example.org:3478, turn:t.example.org:3478",  # a TURN URL without a credential breaks RTCPeerConnection
])
def test_turn_in_ice_servers_is_refused(monkeypatch: pytest.MonkeyPatch, ice_servers: str) -> None:
    monkeypatch.setenv("MOOT_ICE_SERVERS", ice_servers)
    with pytest.raises(ValidationError, match="MOOT_TURN_SECRET") as refused:
        Settings()
    assert "static-password-1" not in str(refused.value), "the error names the setting, not its value"


def test_turn_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOOT_TURN_URLS", " , ".join(TURN_URLS))
    monkeypatch.setenv("MOOT_TURN_SECRET", SECRET)
    settings = Settings()
    assert settings.turn_urls == TURN_URLS and settings.turn_secret is not None
    assert SECRET not in repr(settings)
    assert settings.turn_credential_ttl_s == 7200


@pytest.mark.parametrize("kwargs, message", [
    ({"turn_urls": TURN_URLS}, "needs MOOT_TURN_SECRET"),
    ({"turn_secret": SECRET}, "MOOT_TURN_URLS is empty"),
    ({"turn_urls": TURN_URLS, "turn_secret": "short-secret"}, "at least 16 characters"),
    ({"turn_urls": ["stun:s.example.org"], "turn_secret": SECRET}, "not a turn: or turns: URL"),
    ({"turn_urls": TURN_URLS, "turn_secret": SECRET, "turn_credential_ttl_s": 10}, "greater than or equal to 60"),
])
def test_bad_turn_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        Settings(**kwargs)
    assert "short-secret" not in str(refused.value)


@pytest.fixture
def turn_client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path / "data", asr_backend="none", rtc_loopback_candidates=True,
                        ice_servers=[IceServer(urls=["stun:stun.example.org:3478"])], turn_urls=TURN_URLS,
                        turn_secret=SecretStr(SECRET))
    with TestClient(create_app(settings)) as client:
        yield client


def test_config_hands_out_no_turn_credential(turn_client: TestClient) -> None:
    """``/api/config`` needs no room: TURN credentials from it would be standing relay access for anyone. Only
    ``welcome`` (a participant who joined) carries one."""
    response = turn_client.get("/api/config")
    assert SECRET not in response.text
    assert turn_entries(response.json()["ice_servers"]) == []


def test_welcome_carries_the_participants_own_credential(turn_client: TestClient) -> None:
    room_id = turn_client.post("/api/rooms", json={"title": "TURN"}).json()["id"]
    welcomes = []
    for name in ("Ada", "Bo"):
        with turn_client.websocket_connect(f"/ws/rooms/{room_id}") as ws:
            ws.send_json({"type": "join", "name": name, "consent": True, "audio": False, "video": False})
            raw = ws.receive_text()
            assert SECRET not in raw
            welcome = json.loads(raw)
            assert welcome["type"] == "welcome"
            welcomes.append(welcome)
    for welcome in welcomes:
        assert welcome["ice_servers"][0] == {"urls": ["stun:stun.example.org:3478"]}
        [turn] = turn_entries(welcome["ice_servers"])
        expiry, opaque_id = turn["username"].split(":")
        assert opaque_id == welcome["participant_id"]
        assert int(expiry) <= time.time() + 7200
        assert coturn_accepts(SECRET, turn["username"], turn["credential"], time.time())
