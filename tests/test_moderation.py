"""Moderator routes through the real app and in-process bus: who may use them, approving/editing/rejecting AI
messages, pausing and resuming the facilitator, the audit log and flags."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.core.events import (
    AIMessage,
    AIMessageProposed,
    CaptionFinal,
    ParticipantInfo,
    ParticipantJoined,
    StatementAdded,
)
from server.core.settings import Settings
from tests.staff import bearer, sign_in


@pytest.fixture
def app_client(settings: Settings) -> Iterator[TestClient]:
    """Signed in as the organiser who creates the rooms (so they may moderate and read them)."""
    with TestClient(create_app(settings)) as client:
        yield sign_in(client)


def auth(client: TestClient) -> dict[str, str]:
    return {}  # (the client already sends the organiser's token)


ANONYMOUS = {"Authorization": ""}


def publish(client: TestClient, event: Any) -> None:
    client.portal.call(client.app.state.ctx.bus.publish, event)  # type: ignore[union-attr,attr-defined]


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (events cross the bus and storage asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def make_room(client: TestClient, **body: Any) -> str:
    response = client.post("/api/rooms", json={"title": "T", **body})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def settle(client: TestClient) -> None:
    """Wait until what was published so far is stored (for checking that something was *not*): the recorder stores
    events in the order the bus delivers them, so a marker caption, in a room of its own without a facilitator, is
    stored after all of them."""
    room = make_room(client)
    publish(client, CaptionFinal(room_id=room, utterance_id=f"marker-{room}", participant_id="marker",
                                 speaker_name="Marker", text="marker", start=0.0, end=1.0))
    eventually(lambda: client.get(f"/api/rooms/{room}/transcript").json()["captions"])


def test_moderator_routes_are_for_the_rooms_staff_only(app_client: TestClient) -> None:
    room = make_room(app_client, template="quick-20")
    paths = [f"/api/rooms/{room}/llm-calls", f"/api/rooms/{room}/summary-flags", f"/api/rooms/{room}/safety-flags",
             f"/api/rooms/{room}/ai-messages/pending"]
    other_organiser = bearer(app_client, "other@example.org", "organiser")
    unassigned_moderator = bearer(app_client, "mod@example.org", "moderator")
    admin = bearer(app_client, "root@example.org", "admin")
    for path in paths:
        for headers in (ANONYMOUS, {"Authorization": "Bearer wrong.token.here"}, {"Authorization": "Basic abc"}):
            assert app_client.get(path, headers=headers).status_code == 401, (path, headers)
        for headers in (other_organiser, unassigned_moderator):  # as if the room did not exist
            answer = app_client.get(path, headers=headers)
            assert answer.status_code == 404 and answer.json()["detail"] == "unknown room", (path, headers)
        assert app_client.get(path).status_code == 200  # the room's creator
        assert app_client.get(path, headers=admin).status_code == 200
    assert app_client.post(f"/api/rooms/{room}/facilitator/pause", headers=ANONYMOUS).status_code == 401
    assert app_client.post(f"/api/rooms/{room}/facilitator/pause", headers=other_organiser).status_code == 404


def test_ai_messages_wait_for_a_moderator(app_client: TestClient) -> None:
    room = make_room(app_client, template="quick-20", ai_messages="approve")
    other = make_room(app_client, template="quick-20")  # posts directly
    assert app_client.get(f"/api/rooms/{room}").json()["ai_messages"] == "approve"
    assert app_client.get(f"/api/rooms/{other}").json()["ai_messages"] == "direct"
    for room_id in (room, other):
        publish(app_client, ParticipantJoined(room_id=room_id, participant=ParticipantInfo(participant_id="p",
                                                                                          name="Ada")))
    publish(app_client, CaptionFinal(room_id=room, utterance_id="u1", participant_id="p", speaker_name="Ada",
                                     text="Shut up, you idiot.", start=1.0, end=2.0))  # the calm reply waits too
    pending_url = f"/api/rooms/{room}/ai-messages/pending"
    pending = eventually(lambda: (lambda m: len(m) >= 2 and m)(app_client.get(pending_url, headers=auth(app_client))
                                                              .json()))
    eventually(lambda: app_client.get(f"/api/rooms/{other}/ai-messages").json())
    settle(app_client)
    assert app_client.get(f"/api/rooms/{room}/ai-messages").json() == [], "nothing reaches the room unapproved"
    assert all(m["room_id"] == room for m in pending)
    first = pending[0]
    assert first["kind"] == "stage_intro" and first["ai_generated"] is True and first["key"] == "stage_intro"

    url = f"/api/rooms/{room}/ai-messages"
    edited = app_client.post(f"{url}/{first['message_id']}/approve", headers=auth(app_client),
                             json={"text": "  Welcome!   I am the AI assistant.  "})
    assert edited.status_code == 200, edited.text
    assert edited.json()["review"] == "edited" and edited.json()["text"] == "Welcome! I am the AI assistant."
    assert edited.json()["key"] is None and edited.json()["params"] == {}  # (other readers: the edit, translated)
    posted = eventually(lambda: app_client.get(url).json())
    assert [(m["message_id"], m["review"], m["text"]) for m in posted] == \
        [(first["message_id"], "edited", "Welcome! I am the AI assistant.")]

    again = app_client.post(f"{url}/{first['message_id']}/approve", headers=auth(app_client))
    assert again.status_code == 409 and "already posted" in again.json()["detail"]
    second = pending[1]
    assert second["kind"] == "safety"
    rejected = app_client.post(f"{url}/{second['message_id']}/reject", headers=auth(app_client))
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert app_client.post(f"{url}/{second['message_id']}/approve", headers=auth(app_client)).status_code == 409
    assert app_client.post(f"{url}/{second['message_id']}/reject", headers=auth(app_client)).status_code == 409
    settle(app_client)
    assert [m["message_id"] for m in app_client.get(url).json()] == [first["message_id"]], "rejected: never posted"
    assert app_client.get(pending_url, headers=auth(app_client)).json() == []
    assert app_client.post(f"{url}/nope/approve", headers=auth(app_client)).status_code == 404
    other_message = app_client.get(f"/api/rooms/{other}/ai-messages").json()[0]["message_id"]
    cross = app_client.post(f"{url}/{other_message}/approve", headers=auth(app_client))
    assert cross.status_code == 404, "a message of another room is not found through this room"
    bad = app_client.post(f"{url}/{first['message_id']}/approve", headers=auth(app_client), json={"text": ""})
    assert bad.status_code == 422
    extra = app_client.post(f"{url}/{first['message_id']}/approve", headers=auth(app_client), json={"x": 1})
    assert extra.status_code == 422
    # Every action is logged, with who did it and what it acted on; refused attempts are not actions.
    log = app_client.get(f"/api/rooms/{room}/moderator-actions").json()
    assert [(a["who"], a["action"], a["detail"]) for a in log] == [
        ("organiser@example.org", "ai_message.edited", first["message_id"]),
        ("organiser@example.org", "ai_message.rejected", second["message_id"])]
    assert log[0]["at"] <= log[1]["at"] <= time.time()
    assert app_client.get(f"/api/rooms/{other}/moderator-actions").json() == []
    assert app_client.get(f"/api/rooms/{room}/moderator-actions", headers=ANONYMOUS).status_code == 401


def test_pause_and_resume_the_facilitator(app_client: TestClient) -> None:
    room = make_room(app_client, template="quick-20")
    plain = make_room(app_client)
    publish(app_client, ParticipantJoined(room_id=room, participant=ParticipantInfo(participant_id="p", name="Ada")))
    facilitator = app_client.app.state.facilitator  # type: ignore[attr-defined]
    engine = eventually(lambda: facilitator.engine(room))
    paused = app_client.post(f"/api/rooms/{room}/facilitator/pause", headers=auth(app_client))
    assert paused.status_code == 200 and paused.json()["facilitator"] == "paused"
    eventually(lambda: engine.paused_at is not None)
    resumed = app_client.post(f"/api/rooms/{room}/facilitator/resume", headers=auth(app_client))
    assert resumed.status_code == 200 and resumed.json()["facilitator"] == "running"
    eventually(lambda: engine.paused_at is None)
    assert app_client.post(f"/api/rooms/{plain}/facilitator/pause", headers=auth(app_client)).status_code == 409
    assert app_client.post(f"/api/rooms/{room}/facilitator/stop", headers=auth(app_client)).status_code == 422
    assert app_client.post("/api/rooms/unknown1/facilitator/pause", headers=auth(app_client)).status_code == 404
    log = app_client.get(f"/api/rooms/{room}/moderator-actions").json()
    assert [a["action"] for a in log] == ["facilitator.pause", "facilitator.resume"]


def test_abuse_is_flagged_to_moderators_only(app_client: TestClient) -> None:
    room = make_room(app_client, template="quick-20")
    other = make_room(app_client, template="quick-20")
    publish(app_client, ParticipantJoined(room_id=room, participant=ParticipantInfo(participant_id="bo", name="Bo")))
    publish(app_client, CaptionFinal(room_id=room, utterance_id="u1", participant_id="bo", speaker_name="Bo",
                                     text="Shut up, you idiot.", start=1.0, end=2.0))
    flags = eventually(lambda: app_client.get(f"/api/rooms/{room}/safety-flags", headers=auth(app_client)).json())
    assert [(f["utterance_id"], f["category"], f["speaker_name"], f["detected_by"]) for f in flags] == \
        [("u1", "abuse", "Bo", "rules")]
    text = eventually(lambda: app_client.get(f"/api/rooms/{room}/safety-flags", headers=auth(app_client)).json()[0]
                      ["text"])  # joined from the transcript once the caption is stored
    assert text == "Shut up, you idiot."
    settle(app_client)
    assert app_client.get(f"/api/rooms/{other}/safety-flags", headers=auth(app_client)).json() == []
    reply = eventually(lambda: [m for m in app_client.get(f"/api/rooms/{room}/ai-messages").json()
                                if m["kind"] == "safety"])
    assert "respectful" in reply[0]["text"]


def test_approving_an_announcement_posts_the_statements_it_announces(app_client: TestClient) -> None:
    room = make_room(app_client, template="quick-20", ai_messages="approve")
    statement = StatementAdded(room_id=room, statement_id="s-ai-1", text="The library should open on Sundays",
                               author_name="AI facilitator", ai_generated=True, sources=["u1"])
    message = AIMessage(room_id=room, message_id=f"{room}-proposals-s-ai-1", kind="statements",
                        text="I have proposed 1 statements based on what you said.", generated_by="llm:x")
    publish(app_client, AIMessageProposed(room_id=room, message=message, statements=[statement]))
    pending_url = f"/api/rooms/{room}/ai-messages/pending"
    (pending,) = eventually(lambda: app_client.get(pending_url, headers=auth(app_client)).json())
    assert [s["text"] for s in pending["statements"]] == ["The library should open on Sundays"]
    settle(app_client)
    assert app_client.get(f"/api/rooms/{room}/statements").json() == [], "statements wait with their message"
    approved = app_client.post(f"/api/rooms/{room}/ai-messages/{message.message_id}/approve", headers=auth(app_client))
    assert approved.status_code == 200 and approved.json()["review"] == "approved"
    statements = eventually(lambda: app_client.get(f"/api/rooms/{room}/statements").json())
    assert [(s["statement_id"], s["ai_generated"]) for s in statements] == [("s-ai-1", True)]
