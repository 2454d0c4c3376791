"""A deliberation with people seated in its rooms, made over the HTTP API as an organiser would (for API tests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from server.lobby.notice import NOTICE_VERSION
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
