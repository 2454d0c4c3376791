"""A moderator's message to one room, and a broadcast to every room of a deliberation: they reach each room's
channel (and only those rooms) as ``moderator.message`` events that participants may see, and are logged."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from server.core.events import ModeratorMessage, visible_to
from tests.seating import seated
from tests.staff import bearer


def two_rooms(client: TestClient, organiser: dict[str, str]) -> tuple[str, list[str]]:
    made = seated(client, organiser, ("Ann", "Ben", "Cat", "Dan"))
    return made.deliberation, sorted(made.rooms)


def history(client: TestClient, room: str) -> list[Any]:
    bus = client.app.state.ctx.bus  # type: ignore[attr-defined]
    return [e for e in client.portal.call(bus.history, f"room:{room}")  # type: ignore[union-attr]
            if isinstance(e, ModeratorMessage)]


def test_message_one_room_and_broadcast_to_all(client: TestClient) -> None:
    organiser = bearer(client, "ada@example.org", "organiser")
    deliberation, (a, b) = two_rooms(client, organiser)
    stray = client.post("/api/rooms", json={"title": "Elsewhere"}, headers=organiser).json()["id"]

    sent = client.post(f"/api/rooms/{a}/messages", json={"text": "  Five   minutes left, please wrap up. "},
                       headers=organiser)
    assert sent.status_code == 201 and sent.json()["text"] == "Five minutes left, please wrap up."
    assert [m.text for m in history(client, a)] == ["Five minutes left, please wrap up."]
    assert history(client, b) == []
    assert visible_to(history(client, a)[0], "participant"), "participants see it"

    moderator = bearer(client, "mo@example.org", "moderator")
    token = client.post(f"/api/deliberations/{deliberation}/invites", headers=organiser).json()["url"].rsplit("/")[-1]
    assert client.post(f"/api/invites/{token}/accept", headers=moderator).status_code == 200
    answer = client.post(f"/api/deliberations/{deliberation}/broadcast", json={"text": "We resume at 3 pm."},
                         headers=moderator)
    assert answer.status_code == 200 and sorted(answer.json()["rooms"]) == [a, b]
    for room in (a, b):
        assert [(m.text, m.broadcast) for m in history(client, room)][-1] == ("We resume at 3 pm.", True)
    assert history(client, stray) == [], "only the deliberation's rooms"
    storage: Any = client.app.state.ctx.storage  # type: ignore[attr-defined]
    assert [(e.who, e.action, e.detail) for e in storage.audit_entries(a)] == [
        ("ada@example.org", "moderator.message", "Five minutes left, please wrap up."),
        ("mo@example.org", "moderator.broadcast", "We resume at 3 pm.")]

    for bad in ({"text": ""}, {"text": "   "}, {"text": "x" * 1001}, {"text": "hi", "from": "AI"}, {}):
        assert client.post(f"/api/rooms/{a}/messages", json=bad, headers=organiser).status_code == 422, bad
    outsider = bearer(client, "oona@example.org", "organiser")
    assert client.post(f"/api/rooms/{a}/messages", json={"text": "hi"}, headers=outsider).status_code == 404
    assert client.post(f"/api/deliberations/{deliberation}/broadcast", json={"text": "hi"},
                       headers=outsider).status_code == 404
    assert client.post(f"/api/deliberations/{deliberation}/close", headers=organiser).status_code == 200
    assert client.post(f"/api/deliberations/{deliberation}/broadcast", json={"text": "hi"},
                       headers=organiser).status_code == 409


def test_pause_and_resume_the_ai_in_every_room(client: TestClient) -> None:
    organiser = bearer(client, "ada@example.org", "organiser")
    deliberation, (a, b) = two_rooms(client, organiser)
    bus = client.app.state.ctx.bus  # type: ignore[attr-defined]

    def controls(room: str) -> list[str]:
        from server.core.events import FacilitatorControl

        return [e.action for e in client.portal.call(bus.history, f"room:{room}")  # type: ignore[union-attr]
                if isinstance(e, FacilitatorControl)]

    paused = client.post(f"/api/deliberations/{deliberation}/facilitator/pause", headers=organiser)
    assert paused.status_code == 200 and paused.json()["facilitator"] == "paused"
    assert sorted(paused.json()["rooms"]) == [a, b], "every room of the deliberation (each runs the template)"
    assert controls(a) == ["pause"] and controls(b) == ["pause"]
    assert client.post(f"/api/deliberations/{deliberation}/facilitator/resume", headers=organiser).status_code == 200
    assert controls(a) == ["pause", "resume"] and controls(b) == ["pause", "resume"]
    storage: Any = client.app.state.ctx.storage  # type: ignore[attr-defined]
    assert [(e.action, e.detail) for e in storage.audit_entries(b)] == [("facilitator.pause", "all rooms"),
                                                                       ("facilitator.resume", "all rooms")]
    assert client.post(f"/api/deliberations/{deliberation}/facilitator/stop", headers=organiser).status_code == 422
