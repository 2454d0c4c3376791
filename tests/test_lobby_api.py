"""The lobby over HTTP and in the database: people arrive on the link, consent and answer; the organiser's round
forms balanced, mixed rooms with the deliberation's facilitator plan; late arrivals take open seats; credentials
reach only their own deliberation; two rounds at once never seat anyone twice (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.deliberations.spec import DeliberationSpec
from server.deliberations.store import DeliberationStore
from server.lobby.notice import NOTICE_VERSION
from server.lobby.store import LobbyStore
from server.storage import Storage
from tests.staff import bearer
from tests.test_deliberations_api import SPEC


@pytest.fixture
def organiser(client: TestClient) -> dict[str, str]:
    return bearer(client, "ada@example.org", "organiser")


def opened(client: TestClient, organiser: dict[str, str], **changes: Any) -> str:
    made = client.post("/api/deliberations", json={**SPEC, **changes}, headers=organiser).json()
    assert client.post(f"/api/deliberations/{made['id']}/open", headers=organiser).status_code == 200
    return str(made["id"])


def arrive(client: TestClient, deliberation: str, name: str, region: str = "North") -> dict[str, Any]:
    answer = client.post(f"/api/lobby/{deliberation}/arrive", json={
        "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {"region": region}})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def me(client: TestClient, deliberation: str, person: dict[str, Any]) -> dict[str, Any]:
    answer = client.get(f"/api/lobby/{deliberation}/me", headers={"X-Moot-Participant": person["credential"]})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_arrivals_wait_then_a_round_forms_balanced_mixed_rooms(client: TestClient,
                                                               organiser: dict[str, str]) -> None:
    deliberation = opened(client, organiser)
    info = client.get(f"/api/lobby/{deliberation}").json()
    assert info["question"] == SPEC["question"] and info["notice"]["version"] == NOTICE_VERSION
    assert "90 days" in " ".join(info["notice"]["paragraphs"])
    people = [arrive(client, deliberation, f"Person {i}", "North" if i < 6 else "South") for i in range(10)]
    assert all(me(client, deliberation, p)["status"] == "waiting" for p in people)
    assert client.get(f"/api/deliberations/{deliberation}/lobby", headers=organiser).json() == {"waiting": 10,
                                                                                              "rooms": []}
    round_ = client.post(f"/api/deliberations/{deliberation}/rounds", headers=organiser)
    assert round_.status_code == 201 and round_.json()["waiting"] == 0
    rooms = round_.json()["rooms"]
    assert sorted(len(members) for members in rooms.values()) == [5, 5]  # never 6+4 or 4+4+2
    region = {p["participant_id"]: ("North" if int(p["name"].split()[1]) < 6 else "South") for p in people}
    for members in rooms.values():
        assert Counter(region[m] for m in members) == {"North": 3, "South": 2}
    places = [me(client, deliberation, p) for p in people]
    assert all(p["status"] == "assigned" and p["room_url"].endswith(f"/r/{p['room_id']}") for p in places)
    assert {p["room_id"] for p in places} == set(rooms)
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    for room_id in rooms:
        plan = storage.room_plan(room_id)
        assert plan is not None and (plan.template_id, plan.question, plan.ai_messages) == (
            "quick-20", SPEC["question"], "approve")
    again = client.post(f"/api/deliberations/{deliberation}/rounds", headers=organiser).json()
    assert again == {"rooms": {}, "waiting": 0}
    status = client.get(f"/api/deliberations/{deliberation}/lobby", headers=organiser).json()
    assert status["waiting"] == 0 and sorted(r["participants"] for r in status["rooms"]) == [5, 5]


def test_late_arrivals_take_open_seats_with_names_kept_apart(client: TestClient, organiser: dict[str, str]) -> None:
    deliberation = opened(client, organiser, group_min=2, group_max=3, signup_questions=[], mix_question=None)

    def arrive_plain(name: str) -> dict[str, Any]:
        answer = client.post(f"/api/lobby/{deliberation}/arrive", json={
            "name": name, "consent": True, "notice_version": NOTICE_VERSION})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    first = [arrive_plain(name) for name in ("Ada", "Bo", "Cy", "Dee")]
    rooms = client.post(f"/api/deliberations/{deliberation}/rounds", headers=organiser).json()["rooms"]
    assert sorted(len(m) for m in rooms.values()) == [2, 2]
    late = arrive_plain("ADA")  # looks like Ada: if seated with her, shown as "ADA 2"
    assert late["status"] == "assigned"
    ada_room = me(client, deliberation, first[0])["room_id"]
    assert late["name"] == ("ADA 2" if late["room_id"] == ada_room else "ADA")
    more = [arrive_plain(f"Late {i}") for i in range(3)]
    assert [p["status"] for p in more] == ["assigned", "waiting", "waiting"]  # two rooms of 3 are full


@pytest.mark.parametrize(("body", "status"), [
    ({"consent": False}, 422),
    ({"notice_version": "2020-01-01"}, 409),
    ({"name": "Moderator"}, 422),
    ({"name": "\u202eAda"}, 422),
    ({"answers": {}}, 422),
    ({"answers": {"region": "East"}}, 422),
    ({"answers": {"region": "North", "age": "30"}}, 422),
    ({"extra": 1}, 422),
])
def test_bad_arrivals_are_refused(client: TestClient, organiser: dict[str, str], body: dict[str, Any],
                                  status: int) -> None:
    deliberation = opened(client, organiser)
    good = {"name": "Ada", "consent": True, "notice_version": NOTICE_VERSION, "answers": {"region": "North"}}
    answer = client.post(f"/api/lobby/{deliberation}/arrive", json={**good, **body})
    assert answer.status_code == status, answer.text
    assert client.get(f"/api/deliberations/{deliberation}/lobby", headers=organiser).json()["waiting"] == 0


def test_the_lobby_is_closed_until_opened_and_credentials_stay_in_their_deliberation(
        client: TestClient, organiser: dict[str, str]) -> None:
    draft = client.post("/api/deliberations", json=SPEC, headers=organiser).json()["id"]
    assert client.get(f"/api/lobby/{draft}").status_code == 404
    assert client.post(f"/api/lobby/{draft}/arrive", json={
        "name": "Ada", "consent": True, "notice_version": NOTICE_VERSION, "answers": {"region": "North"}}
    ).status_code == 404
    assert client.get("/api/lobby/doesnotexist1234").status_code == 404
    one, two = opened(client, organiser), opened(client, organiser, title="Another")
    ada = arrive(client, one, "Ada")
    assert client.get(f"/api/lobby/{two}/me", headers={"X-Moot-Participant": ada["credential"]}).status_code == 404
    for credential in ("", "garbage", organiser["Authorization"].split()[1]):
        answer = client.get(f"/api/lobby/{one}/me", headers={"X-Moot-Participant": credential})
        assert answer.status_code == 401, credential
    assert client.post(f"/api/lobby/{one}/leave", headers={"X-Moot-Participant": ada["credential"]}).status_code \
        == 204
    assert me(client, one, ada)["status"] == "left"
    assert client.post(f"/api/deliberations/{one}/rounds", headers=organiser).json()["rooms"] == {}
    bo = bearer(client, "bo@example.org", "organiser")
    assert client.post(f"/api/deliberations/{one}/rounds", headers=bo).status_code == 404
    assert client.post(f"/api/deliberations/{one}/pause", headers=organiser).status_code == 200
    assert client.post(f"/api/deliberations/{one}/rounds", headers=organiser).status_code == 409


def test_two_rounds_at_once_never_seat_anyone_twice(migrated_storage: Storage) -> None:
    storage = migrated_storage
    deliberations = DeliberationStore(storage.sessions)
    from server.accounts.store import AccountStore

    organiser = AccountStore(storage.sessions).add_user("ada@example.org", "x" * 40, "organiser", 1.0)
    spec = DeliberationSpec.model_validate({**SPEC, "signup_questions": [], "mix_question": None})
    record = deliberations.create(organiser.id, spec, 1.0)
    record = deliberations.transition(record.id, "open", 2.0)
    lobby = LobbyStore(storage.sessions)
    arrivals = [lobby.arrive(record, f"Person {i}", {}, NOTICE_VERSION, 3.0 + i) for i in range(24)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: lobby.start_round(record, 100.0), range(4)))
    seated = [p for result in results for members in result.rooms.values() for p in members]
    assert sorted(seated) == sorted(a.id for a in arrivals)  # each exactly once
    assert sum(1 for result in results if result.rooms) == 1


def test_an_organiser_deletes_one_participants_data(client: TestClient, organiser: dict[str, str]) -> None:
    deliberation = opened(client, organiser)
    ada, bo = arrive(client, deliberation, "Ada"), arrive(client, deliberation, "Bo")
    moderator = bearer(client, "cy@example.org", "moderator")
    other = bearer(client, "dee@example.org", "organiser")
    path = f"/api/deliberations/{deliberation}/participants/{ada['participant_id']}"
    assert client.delete(path, headers=other).status_code == 404
    assert client.delete(path).status_code == 401
    assert client.delete(path, headers=moderator).status_code == 404  # not assigned: cannot even see it
    assert client.delete(path, headers=organiser).status_code == 204
    assert client.delete(path, headers=organiser).status_code == 404
    gone = client.get(f"/api/lobby/{deliberation}/me", headers={"X-Moot-Participant": ada["credential"]})
    assert gone.status_code == 404
    assert me(client, deliberation, bo)["status"] == "waiting"


def test_a_deliberations_rooms_are_moderated_by_its_moderators(client: TestClient,
                                                                organiser: dict[str, str]) -> None:
    deliberation = opened(client, organiser, group_min=2, group_max=2, signup_questions=[], mix_question=None)
    for name in ("Ada", "Bo"):
        client.post(f"/api/lobby/{deliberation}/arrive", json={"name": name, "consent": True,
                                                               "notice_version": NOTICE_VERSION})
    (room,) = client.post(f"/api/deliberations/{deliberation}/rounds", headers=organiser).json()["rooms"]
    invite = client.post(f"/api/deliberations/{deliberation}/invites", headers=organiser).json()["url"]
    cy = bearer(client, "cy@example.org", "moderator")
    assert client.post(f"/api/invites/{invite.rsplit('/', 1)[1]}/accept", headers=cy).status_code == 200
    dee = bearer(client, "dee@example.org", "moderator")
    for path in (f"/api/rooms/{room}/safety-flags", f"/api/rooms/{room}/transcript",
                 f"/api/rooms/{room}/transcript.json"):
        assert client.get(path, headers=organiser).status_code == 200, path
        assert client.get(path, headers=cy).status_code == 200, path
        assert client.get(path, headers=dee).status_code == 404, path
        assert client.get(path).status_code == 401, path
    assert client.get(f"/api/rooms/{room}/transcript.json?names=real", headers=cy).status_code == 403
    assert client.get(f"/api/rooms/{room}/transcript.json?names=real", headers=organiser).status_code == 200


def test_the_notice_is_read_in_the_participant_s_language(client: TestClient, organiser: dict[str, str]) -> None:
    """Five languages, each saying the same things (six paragraphs, the retention period, machine translation);
    another language gets English; the consent's version is the same in all."""
    deliberation = opened(client, organiser)
    notices = {lang: client.get(f"/api/lobby/{deliberation}", params={"lang": lang}).json()["notice"]
               for lang in ("en", "fr", "de", "es", "nl", "sw")}
    assert {n["version"] for n in notices.values()} == {NOTICE_VERSION}
    assert all(len(n["paragraphs"]) == 6 and "90" in n["paragraphs"][-1] for n in notices.values())
    assert notices["sw"] == notices["en"]
    assert len({n["paragraphs"][0] for n in notices.values()}) == 5
    assert "traduit automatiquement" in notices["fr"]["paragraphs"][3]
    assert client.get(f"/api/lobby/{deliberation}", params={"lang": "x" * 40}).status_code == 422
