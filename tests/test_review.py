"""A room's review record for its organiser and moderators: everything recorded, every participant by alias
(including inside language-model prompts and AI messages), and only for the room's staff."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from server.core.events import AIMessage, CaptionFinal, CaptionTranslated, SafetyFlagged, StatementAdded
from tests.seating import seated
from tests.staff import bearer


def deliberation_room(client: TestClient, organiser: dict[str, str]) -> tuple[str, str, list[dict[str, Any]]]:
    made = seated(client, organiser, ("Annabel", "Bartholomew"))
    (room,) = made.rooms
    return made.deliberation, room, made.people


def test_review_is_complete_and_pseudonymised(client: TestClient) -> None:
    organiser = bearer(client, "ada@example.org", "organiser")
    _, room, people = deliberation_room(client, organiser)
    ann, bart = (p["participant_id"] for p in people)
    storage: Any = client.app.state.ctx.storage  # type: ignore[attr-defined]
    storage.add_caption(CaptionFinal(room_id=room, utterance_id="u1", participant_id=bart, speaker_name="Bartholomew",
                                     text="Homes near the station, please.", start=10.0, end=12.0))
    storage.add_caption(CaptionFinal(room_id=room, utterance_id="u2", participant_id=ann, speaker_name="Annabel",
                                     text="I agree with that.", start=13.0, end=14.0))
    storage.add_caption_translation(CaptionTranslated(room_id=room, utterance_id="u2", participant_id=ann,
                                                      source_language="en", language="fr",
                                                      text="Je suis d'accord.", backend="fake"))
    storage.add_statement(StatementAdded(room_id=room, statement_id="s1", text="Build homes near the station",
                                         author_id=bart, author_name="Bartholomew"))
    assert storage.cast_vote("s1", ann, "agree", 0) is not None
    storage.add_ai_message(AIMessage(room_id=room, message_id="m1", kind="invite",
                                     text="Annabel, would you like to add something?"))
    storage.add_safety_flag(SafetyFlagged(room_id=room, utterance_id="u2", participant_id=ann,
                                          speaker_name="Annabel", category="off_topic", reason="test",
                                          detected_by="rules"))
    prompt = "Bartholomew: Homes near the station, please.\nAnnabel: I agree"
    storage.add_llm_call(room, 20.0, "summary", "test-model", [{"role": "user", "content": prompt}],
                         "Bartholomew wants homes; Annabel agrees.", 0.5, "ok", None)

    answer = client.get(f"/api/rooms/{room}/review", headers=organiser)
    assert answer.status_code == 200
    review = answer.json()
    assert [(c["speaker_name"], c["text"]) for c in review["transcript"]] == [
        ("Participant 2", "Homes near the station, please."), ("Participant 1", "I agree with that.")], \
        "aliases in lobby arrival order"
    assert [c["translations"] for c in review["transcript"]] == [{}, {"fr": "Je suis d'accord."}]
    assert review["statements"] == [{"statement_id": "s1", "text": "Build homes near the station",
                                     "ai_generated": False, "author": "Participant 2", "sources": [],
                                     "tally": {"agree": 1, "disagree": 0, "pass": 0}}]
    assert review["ai_messages"][0]["text"] == "Participant 1, would you like to add something?"
    assert review["safety_flags"][0]["speaker_name"] == "Participant 1"
    call = review["llm_calls"][0]
    assert call["messages"][0]["content"] == "Participant 2: Homes near the station, please.\nParticipant 1: I agree"
    assert call["output"] == "Participant 2 wants homes; Participant 1 agrees."
    text = json.dumps(review)
    for secret in ("Annabel", "Bartholomew", ann, bart):
        assert secret not in text, secret

    moderator_elsewhere = bearer(client, "max@example.org", "moderator")
    assert client.get(f"/api/rooms/{room}/review", headers=moderator_elsewhere).status_code == 404
    assert client.get(f"/api/rooms/{room}/review",
                      headers={"X-Moot-Participant": people[0]["credential"]}).status_code == 401
