"""A deliberation with people seated in its rooms: made over the HTTP API as an organiser would (``seated``, for API
tests), or straight in the database (``seated_in_store``, for tests of what happens in the rooms)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from server.lobby.notice import NOTICE_VERSION
from server.lobby.store import LobbyEntry
from tests.test_deliberations_api import SPEC


@dataclass
class Seated:
    deliberation: str
    people: list[dict[str, Any]]  # each arrival's answer (participant_id, credential, ...), in arrival order
    rooms: dict[str, list[str]]  # room id -> participant ids seated there


def seated(client: TestClient, organiser: dict[str, str], names: tuple[str, ...], group: int = 2) -> Seated:
    """An open deliberation (rooms of ``group``, no sign-up questions) where ``names`` arrived and a round seated
    them."""
    spec = {**SPEC, "group_min": group, "group_max": group, "signup_questions": [], "mix_question": None}
    deliberation = client.post("/api/deliberations", json=spec, headers=organiser).json()["id"]
    assert client.post(f"/api/deliberations/{deliberation}/open", headers=organiser).status_code == 200
    people = []
    for name in names:
        answer = client.post(f"/api/lobby/{deliberation}/arrive", json={
            "name": name, "consent": True, "notice_version": NOTICE_VERSION, "answers": {}})
        assert answer.status_code == 201, answer.text
        people.append(answer.json())
    rooms = client.post(f"/api/deliberations/{deliberation}/rounds", headers=organiser).json()["rooms"]
    return Seated(deliberation, people, rooms)


def seated_in_store(sessions: Any, names: list[str], organiser_id: str | None = None,
                    **spec: Any) -> tuple[str, dict[str, LobbyEntry]]:
    """An open deliberation (rooms of two unless ``spec`` says otherwise; a new organiser unless one is given) whose
    round seated ``names``, dealt to the rooms in turn: its id, and each name's lobby entry."""
    from server.accounts.store import AccountStore
    from server.core.ids import new_id
    from server.deliberations.spec import DeliberationSpec
    from server.deliberations.store import DeliberationStore
    from server.lobby.store import LobbyStore

    if organiser_id is None:
        organiser_id = AccountStore(sessions).add_user(f"o-{new_id(8)}@example.org", "x" * 40, "organiser", 1.0).id
    deliberations = DeliberationStore(sessions)
    made = DeliberationSpec(**{"title": "Sundays", "question": "Open the library on Sundays?", "group_min": 2,
                               "group_max": 2, **spec})
    record = deliberations.transition(deliberations.create(organiser_id, made, 1.0).id, "open", 2.0)
    lobby = LobbyStore(sessions)
    entries = [lobby.arrive(record, name, {}, NOTICE_VERSION, 3.0 + i) for i, name in enumerate(names)]
    lobby.start_round(record, 10.0)
    seated = {e.name: lobby.entry(e.id) for e in entries}
    assert all(entry is not None for entry in seated.values())
    return record.id, seated  # type: ignore[return-value]
