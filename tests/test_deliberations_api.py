"""Deliberations over HTTP: organisers set them up (strictly validated), see only their own, open, pause and close
them, invite moderators by single-use links; moderators see only what they are assigned to; an unknown id and a
foreign one are the same 404; deleting one deletes its rooms and what was said in them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.core.events import CaptionFinal
from server.deliberations.spec import DeliberationSpec
from server.deliberations.store import DeliberationStore
from server.storage.tables import RoomRow
from tests.staff import PASSWORD, bearer

SPEC: dict[str, Any] = {
    "title": "Libraries on Sundays", "question": "Should the town library open on Sundays?",
    "background": "The library opens Monday to Saturday.\n\nA Sunday costs 40,000 a year.",
    "template": "quick-20", "group_min": 4, "group_max": 6, "ai_messages": "approve",
    "signup_questions": [{"id": "region", "text": "Where do you live?", "choices": ["North", "South"]}],
    "mix_question": "region", "languages": ["en", "fr"], "retention_days": 90,
}


@pytest.fixture
def people(client: TestClient) -> dict[str, dict[str, str]]:
    return {name: bearer(client, f"{name}@example.org", role) for name, role in
            (("ada", "organiser"), ("bo", "organiser"), ("cy", "moderator"), ("root", "admin"))}


def create(client: TestClient, who: dict[str, str], **changes: Any) -> dict[str, Any]:
    answer = client.post("/api/deliberations", json={**SPEC, **changes}, headers=who)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_organiser_sets_up_a_deliberation(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])
    assert made["status"] == "draft" and made["can_manage"] and len(made["id"]) == 16
    assert made["participant_url"].endswith(f"/d/{made['id']}")
    assert made["background"] == SPEC["background"] and made["signup_questions"][0]["choices"] == ["North", "South"]
    read = client.get(f"/api/deliberations/{made['id']}", headers=people["ada"]).json()
    assert read == made
    changed = client.put(f"/api/deliberations/{made['id']}", json={**SPEC, "group_max": 8}, headers=people["ada"])
    assert changed.status_code == 200 and changed.json()["group_max"] == 8


@pytest.mark.parametrize(("changes", "field"), [
    ({"group_min": 7, "group_max": 5}, "group_min"),
    ({"mix_question": "age"}, "mix_question"),
    ({"title": "  \u200b\u200b  "}, "title"),
    ({"template": "nope"}, "template"),
    ({"languages": ["english"]}, "languages"),
    ({"languages": ["en", "en"]}, "languages"),
    ({"signup_questions": [{"id": "r", "text": "Where?", "choices": ["A", "a"]}]}, "choices"),
    ({"group_max": 40}, "group_max"),
    ({"surprise": 1}, "surprise"),
])
def test_bad_settings_are_refused_naming_the_field(client: TestClient, people: dict[str, dict[str, str]],
                                                   changes: dict[str, Any], field: str) -> None:
    answer = client.post("/api/deliberations", json={**SPEC, **changes}, headers=people["ada"])
    assert answer.status_code == 422 and field in answer.text, answer.text


def test_each_sees_only_their_own(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    ada = create(client, people["ada"])
    bo = create(client, people["bo"], title="Bo's question")
    assert [d["id"] for d in client.get("/api/deliberations", headers=people["ada"]).json()] == [ada["id"]]
    assert [d["id"] for d in client.get("/api/deliberations", headers=people["cy"]).json()] == []
    assert {d["id"] for d in client.get("/api/deliberations", headers=people["root"]).json()} == {ada["id"], bo["id"]}
    unknown = client.get("/api/deliberations/abcdefgh23456789", headers=people["bo"])
    for method, path in (("GET", ""), ("PUT", ""), ("DELETE", ""), ("POST", "/open"), ("GET", "/moderators"),
                         ("POST", "/invites")):
        for who in ("bo", "cy"):
            answer = client.request(method, f"/api/deliberations/{ada['id']}{path}", headers=people[who],
                                    json=SPEC if method == "PUT" else None)
            assert answer.status_code == 404 and answer.json() == unknown.json(), (method, path, who)
    assert client.get(f"/api/deliberations/{ada['id']}").status_code == 401
    assert client.post("/api/deliberations", json=SPEC, headers=people["cy"]).status_code == 403
    assert client.post(f"/api/deliberations/{ada['id']}/close", headers=people["root"]).status_code == 200


def test_status_follows_its_life(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])
    path = f"/api/deliberations/{made['id']}"
    steps = [("pause", 409), ("open", 200), ("open", 409), ("pause", 200), ("open", 200), ("close", 200),
             ("open", 409), ("unknown", 404)]
    for action, status in steps:
        assert client.post(f"{path}/{action}", headers=people["ada"]).status_code == status, action
    assert client.get(path, headers=people["ada"]).json()["status"] == "closed"
    assert client.put(path, json=SPEC, headers=people["ada"]).status_code == 409


def test_moderator_invites_work_once_and_give_view_only_access(client: TestClient,
                                                               people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])
    invite = client.post(f"/api/deliberations/{made['id']}/invites", headers=people["ada"])
    assert invite.status_code == 201
    token = invite.json()["url"].rsplit("/invite/", 1)[1]
    assert client.get(f"/api/invites/{token}").json() == {"deliberation_id": made["id"], "title": SPEC["title"]}
    accepted = client.post(f"/api/invites/{token}/accept", headers=people["cy"])
    assert accepted.status_code == 200 and accepted.json()["can_manage"] is False
    assert client.post(f"/api/invites/{token}/accept", headers=people["bo"]).status_code == 404  # used
    assert client.get(f"/api/invites/{token}").status_code == 404
    seen = client.get(f"/api/deliberations/{made['id']}", headers=people["cy"])
    assert seen.status_code == 200 and seen.json()["can_manage"] is False
    assert [d["id"] for d in client.get("/api/deliberations", headers=people["cy"]).json()] == [made["id"]]
    for method, path in (("PUT", ""), ("POST", "/open"), ("DELETE", ""), ("POST", "/invites"),
                         ("GET", "/moderators")):
        answer = client.request(method, f"/api/deliberations/{made['id']}{path}", headers=people["cy"],
                                json=SPEC if method == "PUT" else None)
        assert answer.status_code == 403, (method, path)
    moderators = client.get(f"/api/deliberations/{made['id']}/moderators", headers=people["ada"]).json()
    assert [m["email"] for m in moderators] == ["cy@example.org"]
    removed = client.delete(f"/api/deliberations/{made['id']}/moderators/{moderators[0]['user_id']}",
                            headers=people["ada"])
    assert removed.status_code == 204
    assert client.get(f"/api/deliberations/{made['id']}", headers=people["cy"]).status_code == 404


def test_an_invite_can_create_the_moderator_account_and_expires(client: TestClient,
                                                                people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])

    def invite() -> str:
        url = client.post(f"/api/deliberations/{made['id']}/invites", headers=people["ada"]).json()["url"]
        return str(url).rsplit("/invite/", 1)[1]

    token = invite()
    assert client.post(f"/api/invites/{token}/accept").status_code == 401
    taken = client.post(f"/api/invites/{token}/accept", json={"email": "cy@example.org", "password": PASSWORD})
    assert taken.status_code == 409  # an existing account signs in first
    weak = client.post(f"/api/invites/{token}/accept", json={"email": "dee@example.org", "password": "short"})
    assert weak.status_code == 422
    new = client.post(f"/api/invites/{token}/accept", json={"email": "dee@example.org", "password": PASSWORD})
    assert new.status_code == 200
    dee = bearer(client, "dee@example.org", "moderator")
    assert client.get("/api/auth/me", headers=dee).json()["role"] == "moderator"
    assert client.get(f"/api/deliberations/{made['id']}", headers=dee).status_code == 200

    late = invite()
    ctx = client.app.state.ctx  # type: ignore[attr-defined]
    real_clock = ctx.clock
    ctx.clock = lambda: real_clock() + ctx.settings.invite_ttl_s + 1
    try:
        assert client.get(f"/api/invites/{late}").status_code == 404
        assert client.post(f"/api/invites/{late}/accept", headers=people["cy"]).status_code == 404
    finally:
        ctx.clock = real_clock
    for garbage in ("x", "a" * 300, "../../etc/passwd"):
        assert client.get(f"/api/invites/{garbage}").status_code == 404


def test_deleting_a_deliberation_deletes_its_rooms_and_transcripts(client: TestClient,
                                                                   people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])
    other = create(client, people["ada"], title="Another question")
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    with storage.sessions() as s, s.begin():
        s.add(RoomRow(id="roomofdelib1", title="Room 1", created_at=1.0, max_participants=6,
                      deliberation_id=made["id"]))
        s.add(RoomRow(id="roomofother1", title="Room 1", created_at=1.0, max_participants=6,
                      deliberation_id=other["id"]))
    for room in ("roomofdelib1", "roomofother1"):
        storage.add_caption(CaptionFinal(room_id=room, utterance_id="u1", participant_id="p", speaker_name="Ada",
                                         text="we said this", start=1.0, end=2.0))
    assert client.delete(f"/api/deliberations/{made['id']}", headers=people["ada"]).status_code == 204
    assert storage.get_room("roomofdelib1") is None and storage.transcript("roomofdelib1") == []
    assert [c.text for c in storage.transcript("roomofother1")] == ["we said this"]
    assert DeliberationStore(storage.sessions).get(made["id"]) is None
    assert client.get(f"/api/deliberations/{made['id']}", headers=people["ada"]).status_code == 404


def test_spec_round_trips_through_storage(client: TestClient, people: dict[str, dict[str, str]]) -> None:
    made = create(client, people["ada"])
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    record = DeliberationStore(storage.sessions).get(made["id"])
    assert record is not None and record.spec == DeliberationSpec.model_validate(SPEC)
