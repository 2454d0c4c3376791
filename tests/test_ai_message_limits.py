"""The facilitator's messages to the room have length limits, and what builds them stays within them (long vote
results, long template texts, over-long model output)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from facilitator.engine import EngineSettings, RoomFacilitator
from facilitator.llm import LLMCallRecord, ScriptedLLM
from facilitator.summaries import write_summary
from facilitator.template import builtin_templates
from server.core.events import (
    MAX_AI_MESSAGE_CHARS,
    MAX_AI_POINT_CHARS,
    AIMessage,
    AIMessagePoint,
    BusEvent,
    CaptionFinal,
    ParticipantInfo,
    ParticipantJoined,
    StatementAdded,
    VoteCast,
)


def test_event_model_refuses_over_long_ai_text() -> None:
    AIMessage(room_id="r", message_id="m", kind="summary", text="x" * MAX_AI_MESSAGE_CHARS)
    with pytest.raises(ValidationError):
        AIMessage(room_id="r", message_id="m", kind="summary", text="x" * (MAX_AI_MESSAGE_CHARS + 1))
    with pytest.raises(ValidationError):
        AIMessagePoint(label="Key point", text="x" * (MAX_AI_POINT_CHARS + 1))


def _results_after_votes(statements: list[str]) -> AIMessage:
    """Three people vote on ``statements`` (first half: all agree, second half: split); the results message."""
    template = builtin_templates()["quick-20"]
    engine = RoomFacilitator("r", template, EngineSettings(silence_prompt_s=1e9))
    for pid in "abc":
        engine.handle(ParticipantJoined(room_id="r", participant=ParticipantInfo(participant_id=pid, name=pid)), 0.0)
    voting_start = 60.0 * (2 + 9 + 4)
    for i, text in enumerate(statements):
        engine.handle(StatementAdded(room_id="r", statement_id=f"s{i}", text=text, author_id="a", author_name="a"),
                      700.0)
    engine.tick(voting_start)
    out: list[BusEvent] = []
    half = len(statements) // 2
    for i in range(len(statements)):
        for pid, choice in zip("abc", ["agree", "agree", "agree"] if i < half else ["agree", "disagree", "pass"],
                               strict=True):
            out += engine.handle(VoteCast(room_id="r", statement_id=f"s{i}", participant_id=pid,
                                          choice=choice), voting_start + 10)  # type: ignore[arg-type]
    (results,) = [e for e in out if isinstance(e, AIMessage) and e.kind == "results" and "agreement" in e.text]
    return results


def test_results_of_many_long_statements_fit_in_one_message() -> None:
    statements = [f"Statement {i:02d} says " + "very long words " * 30 for i in range(16)]  # 16 x ~500 characters
    results = _results_after_votes(statements)
    assert len(results.text) <= MAX_AI_MESSAGE_CHARS
    assert all(f"Statement {i:02d} says" in results.text for i in range(16)), "every statement is still named"
    assert "\u2026\u201d (3 agree, 0 disagree, 0 pass)" in results.text and "divide the group" in results.text


def test_results_of_short_statements_are_quoted_whole() -> None:
    results = _results_after_votes(["Keep the library open", "Close the car park"])
    assert "\u201cKeep the library open\u201d (3 agree, 0 disagree, 0 pass)" in results.text
    assert "\u201cClose the car park\u201d (1 agree, 1 disagree, 1 pass)" in results.text
    assert "\u2026" not in results.text


def test_even_absurdly_many_statements_give_a_valid_message() -> None:
    results = _results_after_votes(["A statement that is quite long " * 16 for _ in range(200)])
    assert len(results.text) <= MAX_AI_MESSAGE_CHARS and results.text.endswith("\u2026")


def test_over_long_template_texts_are_shortened() -> None:
    template = builtin_templates()["quick-20"]
    stage = template.stages[0].model_copy(update={"intro": "{question} " * 200})
    long = template.model_copy(update={"question": "Q" * 1000, "stages": [stage, *template.stages[1:]]})
    engine = RoomFacilitator("r", long)
    out = engine.handle(ParticipantJoined(room_id="r", participant=ParticipantInfo(participant_id="a", name="a")), 0.0)
    intro = next(e for e in out if isinstance(e, AIMessage) and e.kind == "stage_intro")
    assert len(intro.text) <= MAX_AI_MESSAGE_CHARS and intro.text.endswith("\u2026")


async def test_over_long_model_output_cannot_make_an_over_long_summary() -> None:
    captions = [CaptionFinal(room_id="r", utterance_id="u1", participant_id="a", speaker_name="Ada",
                             text="More homes near the station.", start=0, end=1)]
    longest = json.dumps({"points": [{"kind": "question", "text": "w" * 300, "lines": [1]}] * 8})
    message = await write_summary(ScriptedLLM({"summary": longest}), "r", None, captions, 1.0, "m1")
    assert message is not None and len(message.points) == 8
    assert len(message.text) <= MAX_AI_MESSAGE_CHARS
    too_long = json.dumps({"points": [{"kind": "point", "text": "w" * 5000, "lines": [1]}] * 50})
    calls: list[LLMCallRecord] = []
    assert await write_summary(ScriptedLLM({"summary": too_long}), "r", None, captions, 1.0, "m2",
                               calls.append) is None
    assert calls[0].outcome == "invalid"
