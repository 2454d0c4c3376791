"""Every guarded HTTP route against every role (server/access_rules.py is the contract): anonymous, a participant of
room A, a participant of room B (same deliberation), a moderator and an organiser of another deliberation, the
deliberation's moderator, its organiser, and an administrator, all on deliberation D and its room A.

A role the rule refuses gets 401 (no sign-in or credential) or 403 (signed in, may view but not change), or 404 when
the resource is not theirs, and then exactly the answer an unknown id gets, so nobody learns whether it exists. A role
the rule admits gets past access control. Routes whose success would change the world for the next checks (delete,
close, sign out) are checked only for refusals here; their success is tested in the API tests. The WebSocket's rule is
tested in tests/test_credential_join.py. Then D closes and its participants reach nothing any more."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.access_rules import ROUTE_RULES
from server.api.deliberations import NOT_FOUND
from server.api.lobby import GONE
from server.lobby.notice import NOTICE_VERSION
from tests.staff import bearer
from tests.test_deliberations_api import SPEC

ROLES = ("anonymous", "participant_a", "participant_b", "moderator_other", "organiser_other", "moderator",
         "organiser", "admin")
STAFF = {"moderator_other", "organiser_other", "moderator", "organiser", "admin"}
PARTICIPANTS = {"participant_a", "participant_b"}
ACCESS_404 = {NOT_FOUND, GONE, "unknown room"}
# Success here would change what later checks see (or end the role's session).
DESTRUCTIVE = {
    ("POST", "/api/auth/logout"),
    ("DELETE", "/api/deliberations/{deliberation_id}"),
    ("POST", "/api/deliberations/{deliberation_id}/close"),
    ("POST", "/api/deliberations/{deliberation_id}/pause"),
    ("DELETE", "/api/deliberations/{deliberation_id}/moderators/{user_id}"),
    ("DELETE", "/api/deliberations/{deliberation_id}/participants/{participant_id}"),
    ("POST", "/api/lobby/{deliberation_id}/leave"),
    ("POST", "/api/rooms/{room_id}/facilitator/{action}"),
    ("POST", "/api/rooms/{room_id}/participants/{participant_id}/remove"),
    ("POST", "/api/rooms/{room_id}/participants/{participant_id}/move"),
    ("POST", "/api/rooms/{room_id}/end"),
    ("POST", "/api/deliberations/{deliberation_id}/report"),  # (starts a real job: tested in tests/test_report_job.py)
    ("POST", "/api/deliberations/{deliberation_id}/facilitator/{action}"),
}


@dataclass
class World:
    client: TestClient
    deliberation: str
    room_a: str
    room_b: str
    moderator_id: str
    participant_a_id: str
    headers: dict[str, dict[str, str]] = field(default_factory=dict)


def arrive(client: TestClient, deliberation: str, name: str, region: str) -> dict[str, Any]:
    answer = client.post(f"/api/lobby/{deliberation}/arrive", json={
        "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {"region": region}})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def invite(client: TestClient, deliberation: str, organiser: dict[str, str], moderator: dict[str, str]) -> None:
    token = client.post(f"/api/deliberations/{deliberation}/invites", headers=organiser).json()["url"].rsplit("/")[-1]
    assert client.post(f"/api/invites/{token}/accept", headers=moderator).status_code == 200


@pytest.fixture
def world(client: TestClient) -> World:
    staff = {"admin": bearer(client, "root@example.org", "admin"),
             "organiser": bearer(client, "ada@example.org", "organiser"),
             "organiser_other": bearer(client, "oona@example.org", "organiser"),
             "moderator": bearer(client, "mo@example.org", "moderator"),
             "moderator_other": bearer(client, "max@example.org", "moderator")}
    spec = {**SPEC, "group_min": 2, "group_max": 2}
    deliberation = client.post("/api/deliberations", json=spec, headers=staff["organiser"]).json()["id"]
    other = client.post("/api/deliberations", json=spec, headers=staff["organiser_other"]).json()["id"]
    invite(client, deliberation, staff["organiser"], staff["moderator"])
    invite(client, other, staff["organiser_other"], staff["moderator_other"])
    for d, who in ((deliberation, "organiser"), (other, "organiser_other")):
        assert client.post(f"/api/deliberations/{d}/open", headers=staff[who]).status_code == 200
    people = [arrive(client, deliberation, name, region)
              for name, region in (("Ada", "North"), ("Bo", "South"), ("Cy", "North"), ("Dee", "South"))]
    rooms = client.post(f"/api/deliberations/{deliberation}/rounds", headers=staff["organiser"]).json()["rooms"]
    assert len(rooms) == 2
    room_of = {member: room for room, members in rooms.items() for member in members}
    person_a = people[0]
    person_b = next(p for p in people if room_of[p["participant_id"]] != room_of[person_a["participant_id"]])
    moderators = client.get(f"/api/deliberations/{deliberation}/moderators", headers=staff["organiser"]).json()
    world = World(client, deliberation, room_of[person_a["participant_id"]], room_of[person_b["participant_id"]],
                  moderators[0]["user_id"], person_a["participant_id"])
    world.headers = {"anonymous": {}, **staff,
                     "participant_a": {"X-Moot-Participant": person_a["credential"]},
                     "participant_b": {"X-Moot-Participant": person_b["credential"]}}
    return world


def concrete(path: str, world: World, *, deliberation: str | None = None, room: str | None = None) -> str:
    return (path.replace("{deliberation_id}", deliberation or world.deliberation)
            .replace("{room_id}", room or world.room_a).replace("{message_id}", "m" * 12)
            .replace("{user_id}", world.moderator_id).replace("{participant_id}", world.participant_a_id)
            .replace("{action}", "pause").replace("{name}", "votes.csv")
            .replace("{request_id}", "r" * 16))


def expected(rule: str, method: str, path: str, role: str) -> str:
    """'ok', '401', '403' or '404' for ``role`` on deliberation D / room A."""
    on_deliberation = "{deliberation_id}" in path
    if rule == "participant":
        return "ok" if role in PARTICIPANTS else "401"
    if role == "anonymous" or (role in PARTICIPANTS and rule in ("staff", "organiser", "room-staff")):
        return "401"
    if rule == "room-reader" and role in PARTICIPANTS:
        return "ok" if role == "participant_a" else "404"
    if role in ("moderator_other", "organiser_other") and (on_deliberation or "{room_id}" in path):
        return "404"
    if rule in ("staff", "room-staff", "room-reader"):
        return "ok"
    assert rule == "organiser"
    if role in ("moderator", "moderator_other"):
        return "403"
    return "ok"


def body_for(method: str, path: str) -> Any:
    if (method, path) in (("POST", "/api/deliberations"), ("PUT", "/api/deliberations/{deliberation_id}")):
        return {**SPEC, "group_min": 2, "group_max": 2}
    return {} if method in ("POST", "PUT") else None


def test_every_role_against_every_guarded_route(world: World) -> None:
    client = world.client
    checked: dict[str, int] = {}
    for (method, path), rule in ROUTE_RULES.items():
        if rule in ("public", "link") or method == "WEBSOCKET":
            continue
        for role in ROLES:
            want = expected(rule, method, path, role)
            if want == "ok" and (method, path) in DESTRUCTIVE:
                continue
            url = concrete(path, world)
            answer = client.request(method, url, headers=world.headers[role], json=body_for(method, path))
            detail = answer.json().get("detail") if answer.headers.get("content-type", "").startswith(
                "application/json") and isinstance(answer.json(), dict) else None
            where = f"{role} {method} {path} ({rule}): {answer.status_code} {answer.text[:160]}"
            if want == "ok":
                assert answer.status_code not in (401, 403), where
                assert not (answer.status_code == 404 and detail in ACCESS_404), where
            else:
                assert answer.status_code == int(want), where
            if want == "404":
                # The same answer as for an id that does not exist at all.
                unknown = concrete(path, world, deliberation="zzzzzzzz23456789", room="zzzz2345zzzz")
                other = client.request(method, unknown, headers=world.headers[role], json=body_for(method, path))
                assert (other.status_code, other.json()) == (answer.status_code, answer.json()), where
            checked[want] = checked.get(want, 0) + 1
    assert min(checked.get(k, 0) for k in ("ok", "401", "403", "404")) > 5, checked
    assert sum(checked.values()) >= 200, checked


def test_ids_are_unguessable(world: World) -> None:
    for value in (world.deliberation, world.room_a, world.room_b, world.participant_a_id):
        assert re.fullmatch(r"[a-z0-9]{12,32}", value), value
        assert len(set(value)) >= 6


def test_a_closed_deliberation_is_out_of_its_participants_reach(world: World) -> None:
    client = world.client
    reads = [f"/api/rooms/{world.room_a}/transcript", f"/api/rooms/{world.room_a}/statements",
             f"/api/rooms/{world.room_a}/ai-messages", f"/api/rooms/{world.room_a}/transcript.vtt",
             f"/api/lobby/{world.deliberation}/me"]
    for url in reads:
        assert client.get(url, headers=world.headers["participant_a"]).status_code == 200, url
    assert client.post(f"/api/deliberations/{world.deliberation}/close",
                       headers=world.headers["organiser"]).status_code == 200
    for url in reads:
        answer = client.get(url, headers=world.headers["participant_a"])
        assert answer.status_code == 404, (url, answer.status_code)
    # Its organiser still reviews it.
    assert client.get(reads[0], headers=world.headers["organiser"]).status_code == 200
