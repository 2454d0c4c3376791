"""Every route of the application has an explicit access rule (server/access_rules.py): a new route without one
fails here. Every guarded route against every role: tests/test_access_matrix.py; the rules are also exercised in the
API tests (tests/test_auth_api.py, tests/test_deliberations_api.py, tests/test_lobby_api.py,
tests/test_credential_join.py, tests/test_moderation*.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIWebSocketRoute
from starlette.routing import Mount

from server.access_rules import ROUTE_RULES
from server.app import create_app
from server.core.settings import Settings


def routes(items: list[Any]) -> Iterator[tuple[str, str]]:
    for route in items:
        original = getattr(route, "original_router", None)
        if original is not None:  # an included router: its routes carry their full paths
            yield from routes(original.routes)
        elif isinstance(route, APIWebSocketRoute):
            yield "WEBSOCKET", route.path
        elif isinstance(route, Mount):
            yield "GET", route.path
        else:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method != "HEAD":
                    yield method, route.path


def test_every_route_has_an_access_rule(tmp_path: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path, asr_backend="none"))
    found = set(routes(app.routes))
    assert len(found) > 40
    missing = sorted(found - set(ROUTE_RULES))
    assert not missing, f"routes without an access rule in server/access_rules.py: {missing}"
    stale = sorted(set(ROUTE_RULES) - found)
    assert not stale, f"rules for routes that no longer exist: {stale}"


def test_nobody_anonymous_gets_past_a_guarded_route(client: Any) -> None:
    """Table-driven: every route whose rule needs a sign-in, a participant credential or the moderator token refuses
    an anonymous request (401, 403 or 404: never an answer with data), whatever the ids."""
    guarded = {"staff", "organiser", "participant", "room-staff", "room-reader"}
    checked = 0
    for (method, path), rule in ROUTE_RULES.items():
        if rule not in guarded or method == "WEBSOCKET":
            continue
        concrete = (path.replace("{room_id}", "abcd2345efgh").replace("{deliberation_id}", "abcdefgh23456789")
                    .replace("{message_id}", "m1").replace("{user_id}", "u1").replace("{participant_id}", "p1")
                    .replace("{action}", "pause").replace("{token}", "t" * 43))
        answer = client.request(method, concrete, json={} if method in ("POST", "PUT") else None)
        assert answer.status_code in (401, 403, 404), (method, path, answer.status_code, answer.text[:200])
        checked += 1
    assert checked >= 25
