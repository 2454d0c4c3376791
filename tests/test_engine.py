"""The facilitator's stage engine in virtual time: a whole 40-minute deliberation runs in milliseconds."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from facilitator.engine import EngineSettings, RoomFacilitator
from facilitator.template import builtin_templates
from server.core.events import (
    AIMessage,
    BusEvent,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    SpeakingBalance,
    StageChanged,
    StatementAdded,
    StatementEdited,
    VoiceActivity,
    VoteCast,
)

ROOM = "room1"


def joined(pid: str, name: str) -> ParticipantJoined:
    return ParticipantJoined(room_id=ROOM, participant=ParticipantInfo(participant_id=pid, name=name))


def talk(pid: str, start: float, seconds: float) -> list[tuple[float, BusEvent]]:
    return [(start, VoiceActivity(room_id=ROOM, participant_id=pid, speaking=True, t=start)),
            (start + seconds, VoiceActivity(room_id=ROOM, participant_id=pid, speaking=False, t=start + seconds))]


def simulate(engine: RoomFacilitator, events: Iterable[tuple[float, BusEvent]], until: float) -> list[BusEvent]:
    """Feed timed events and wake the engine exactly when it asks, in time order (virtual time)."""
    queue = [(t, i, e) for i, (t, e) in enumerate(events)]
    heapq.heapify(queue)
    out: list[BusEvent] = []
    now = 0.0
    while True:
        wake = engine.next_wakeup()
        next_event_t = queue[0][0] if queue else None
        candidates = [t for t in (wake, next_event_t) if t is not None and t <= until]
        if not candidates:
            return out
        now = max(now, min(candidates))
        if queue and queue[0][0] <= now:
            _, _, event = heapq.heappop(queue)
            out += engine.handle(event, now)
        else:
            out += engine.tick(now)


def messages(out: list[BusEvent], kind: str | None = None) -> list[AIMessage]:
    return [e for e in out if isinstance(e, AIMessage) and (kind is None or e.kind == kind)]


def lively_room() -> list[tuple[float, BusEvent]]:
    """Ada talks a lot, Bo and Cy take turns, Dee never speaks; Eve arrives late. Nobody is silent for long."""
    events: list[tuple[float, BusEvent]] = [(0.0, joined("a", "Ada")), (1.0, joined("b", "Bo")),
                                            (2.0, joined("c", "Cy")), (3.0, joined("d", "Dee")),
                                            (700.0, joined("e", "Eve"))]
    t, turn = 10.0, 0
    while t < 2400:
        events += talk("a", t, 30)
        events += talk("bc"[turn % 2], t + 32, 8)
        t, turn = t + 50, turn + 1
    return events


def test_forty_minute_deliberation_follows_the_template() -> None:
    template = builtin_templates()["policy-40"]
    engine = RoomFacilitator(ROOM, template)
    out = simulate(engine, lively_room(), until=2500)

    # Stage transitions (not the re-announcements made when someone joins).
    stages = [e for e in out if isinstance(e, StageChanged) and e.ts == e.started_at]
    assert [s.stage_id for s in stages] == [s.id for s in template.stages]
    rejoin_announcement = [e for e in out if isinstance(e, StageChanged) and e.ts == 700.0]
    assert [e.stage_id for e in rejoin_announcement] == ["discussion"], "a newcomer is told the stage and time left"
    starts = [s.started_at for s in stages]
    expected, t = [], 0.0
    for stage in template.stages:
        expected.append(t)
        t += stage.minutes * 60
    assert starts == expected, "each stage starts exactly when the previous one's time is up"
    assert engine.finished and messages(out, "closing")[-1].ts == 2400

    # Every stage is introduced, with its first question.
    intros = messages(out, "stage_intro")
    assert len(intros) == len(template.stages) and "AI assistant" in intros[0].text
    # "5 minutes left" in the 15-minute discussion (10 to 25 minutes into the session), then "one minute".
    warnings = [(m.ts, m.text) for m in messages(out, "time")]
    assert (1200.0, '5 minutes left for "Open discussion". Then we move on to "Drafting statements".') in warnings
    assert (1440.0, 'One minute left for "Open discussion". Then we move on to "Drafting statements".') in warnings
    # The late joiner is greeted by name; the silent participant is invited; the dominant one asked to make room.
    greeting = messages(out, "greeting")
    assert len(greeting) == 1 and "Eve" in greeting[0].text and greeting[0].addressed_to == ["e"]
    invites = messages(out, "invite")
    invited = [m.addressed_to[0] for m in invites]
    assert "d" in invited and set(invited) <= {"c", "d", "e"}, "only people who spoke little are invited"
    for pid in set(invited):
        times = [m.ts for m in invites if m.addressed_to == [pid]]
        assert all(b - a >= 300 for a, b in itertools.pairwise(times)), "per-person cooldown"
    all_nudges = sorted(m.ts for m in messages(out) if m.kind in ("invite", "balance"))
    assert all(b - a >= 120 for a, b in itertools.pairwise(all_nudges)), "room-wide cooldown"
    assert any(m.addressed_to == ["a"] for m in messages(out, "balance"))
    # Speaking-time balance is published for the room view.
    balance = [e for e in out if isinstance(e, SpeakingBalance)][-1]
    seconds = {s.name: s.seconds for s in balance.speakers}
    assert seconds["Ada"] > seconds["Bo"] > 0 and seconds["Dee"] == 0
    assert all(m.ai_generated and m.generated_by == "rules" for m in messages(out))


def test_silence_brings_the_next_question_then_an_open_prompt() -> None:
    template = builtin_templates()["policy-40"]
    engine = RoomFacilitator(ROOM, template, EngineSettings(silence_prompt_s=20))
    framing_start = 300.0
    events = [(0.0, joined("a", "Ada")), (1.0, joined("b", "Bo")), *talk("a", 5, 280)]
    out = simulate(engine, events, until=framing_start + 70)
    framing = [m for m in messages(out) if m.stage_id == "framing"]
    assert [m.kind for m in framing][:2] == ["stage_intro", "question"]
    followups = [m for m in framing if m.ts > framing_start]
    assert followups[0].kind == "question" and followups[0].ts == framing_start + 20
    assert followups[0].text == template.stage("framing").questions[1]
    assert followups[1].kind == "silence" and followups[1].ts == framing_start + 40


def test_pause_stops_the_clock() -> None:
    template = builtin_templates()["quick-20"]
    engine = RoomFacilitator(ROOM, template, EngineSettings(silence_prompt_s=1e9))
    simulate(engine, [(0.0, joined("a", "Ada"))], until=60)
    engine.pause(60)
    assert engine.next_wakeup() is None and engine.tick(500) == []
    engine.resume(600)  # paused for 9 minutes
    out = simulate(engine, [], until=2000)
    discussion = next(e for e in out if isinstance(e, StageChanged) and e.stage_id == "discussion")
    assert discussion.started_at == 120 + 540


def test_leaving_and_rejoining_is_not_greeted_twice() -> None:
    engine = RoomFacilitator(ROOM, builtin_templates()["quick-20"])
    events: list[tuple[float, BusEvent]] = [
              (0.0, joined("a", "Ada")), (100.0, joined("b", "Bo")),
              (110.0, ParticipantLeft(room_id=ROOM, participant_id="b", name="Bo")), (120.0, joined("b", "Bo"))]
    out = simulate(engine, events, until=130)
    assert len(messages(out, "greeting")) == 1


def test_voting_ends_when_everyone_has_voted_and_results_name_agreement_and_division() -> None:
    template = builtin_templates()["quick-20"]
    engine = RoomFacilitator(ROOM, template, EngineSettings(silence_prompt_s=1e9))
    voting_start = 60.0 * (2 + 9 + 4)
    events: list[tuple[float, BusEvent]] = [(0.0, joined("a", "Ada")), (1.0, joined("b", "Bo")),
                                            (2.0, joined("c", "Cy"))]
    events += [(700.0, StatementAdded(room_id=ROOM, statement_id="s1", text="Decisions need a human check",
                                      author_id="a", author_name="Ada")),
               (710.0, StatementAdded(room_id=ROOM, statement_id="s2", text="Ban AI in benefits decisions",
                                      author_id="b", author_name="Bo"))]
    choices = {("s1", "a"): "agree", ("s1", "b"): "agree", ("s1", "c"): "agree",
               ("s2", "a"): "agree", ("s2", "b"): "disagree", ("s2", "c"): "pass"}
    for i, ((sid, pid), choice) in enumerate(sorted(choices.items())):
        events.append((voting_start + 10 + i, VoteCast(room_id=ROOM, statement_id=sid, participant_id=pid,
                                                        choice=choice)))  # type: ignore[arg-type]
    out = simulate(engine, events, until=voting_start + 60)
    closing = next(e for e in out if isinstance(e, StageChanged) and e.stage_id == "closing" and e.ts == e.started_at)
    assert closing.started_at == voting_start + 15, "the vote ended as soon as the last vote came in"
    results = messages(out, "results")[-1].text
    assert "Broad agreement: \u201cDecisions need a human check\u201d (3 agree, 0 disagree, 0 pass)" in results
    assert "divide the group" in results and "Ban AI in benefits decisions" in results


def test_votes_on_a_statement_s_earlier_text_never_count_for_its_edited_text() -> None:
    """The server refuses edits once votes exist; even so the engine counts only votes cast on the current text (a
    vote on the new text may reach it before the edit does)."""
    engine = RoomFacilitator(ROOM, builtin_templates()["quick-20"], EngineSettings(silence_prompt_s=1e9))
    voting_start = 60.0 * (2 + 9 + 4)
    events: list[tuple[float, BusEvent]] = [
        (0.0, joined("a", "Ada")), (1.0, joined("b", "Bo")),
        (700.0, StatementAdded(room_id=ROOM, statement_id="s1", text="The council should build homes",
                               author_id="a", author_name="Ada")),
        (voting_start + 10, VoteCast(room_id=ROOM, statement_id="s1", participant_id="a", choice="agree")),
        (voting_start + 11, VoteCast(room_id=ROOM, statement_id="s1", participant_id="b", choice="agree",
                                     revision=1)),
        (voting_start + 12, StatementEdited(room_id=ROOM, statement_id="s1", text="The council should NOT build homes",
                                           editor_id="a", revision=1)),
        (voting_start + 13, VoteCast(room_id=ROOM, statement_id="s1", participant_id="a", choice="disagree",
                                     revision=1)),
    ]
    out = simulate(engine, events, until=voting_start + 60)
    closing = next(e for e in out if isinstance(e, StageChanged) and e.stage_id == "closing" and e.ts == e.started_at)
    assert closing.started_at == voting_start + 13, "Ada's vote on the earlier text did not count as a vote"
    results = messages(out, "results")[-1].text
    assert "\u201cThe council should NOT build homes\u201d (1 agree, 1 disagree, 0 pass)" in results
