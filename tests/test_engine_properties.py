"""Properties of the stage engine over random event sequences, and the cost of an empty room.

The service wakes an engine at ``next_wakeup()`` and calls ``tick``; if a wake-up could be due at or before the time
it was computed at, the service would spin (an emptied room once busy-looped at 100% of a core). So after every
``handle``/``tick`` at time ``now``, the next wake-up must be ``None`` or strictly later than ``now``.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from facilitator.engine import EngineSettings, RoomFacilitator
from facilitator.template import Template, builtin_templates
from server.core.events import (
    BusEvent,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    StageChanged,
    StatementAdded,
    VoiceActivity,
    VoteCast,
)

ROOM = "room1"
PEOPLE = ["a", "b", "c"]


def short_template() -> Template:
    """Every stage kind, each a minute or two, with summaries and warnings: many transitions per sequence."""
    return Template.model_validate({
        "id": "short", "title": "Short", "question": "Should the park open late?", "stages": [
            {"id": "welcome", "kind": "welcome", "title": "Welcome", "minutes": 1, "intro": "Hello."},
            {"id": "discussion", "kind": "discussion", "title": "Talk", "minutes": 3, "intro": "Talk.",
             "questions": ["Why?", "Why not?"], "summarise_every_minutes": 1, "time_warnings": [2, 0.5]},
            {"id": "drafting", "kind": "drafting", "title": "Draft", "minutes": 1.5, "intro": "Draft."},
            {"id": "voting", "kind": "voting", "title": "Vote", "minutes": 1, "intro": "Vote."},
            {"id": "closing", "kind": "closing", "title": "Close", "minutes": 0.5, "intro": "Bye."},
        ]})


TEMPLATES = [short_template(), builtin_templates()["quick-20"], builtin_templates()["policy-40"]]

action = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("leave"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("speak"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("quiet"), st.sampled_from(PEOPLE)),
    st.tuples(st.just("statement"), st.sampled_from(["s1", "s2"])),
    st.tuples(st.just("vote"), st.tuples(st.sampled_from(["s1", "s2"]), st.sampled_from(PEOPLE),
                                         st.sampled_from(["agree", "disagree", "pass"]))),
    st.tuples(st.just("pause"), st.none()),
    st.tuples(st.just("resume"), st.none()),
    st.tuples(st.just("flag"), st.sampled_from(["abuse", "off_topic"])),
    st.tuples(st.just("tick"), st.none()),
    st.tuples(st.just("wake"), st.none()),  # what the service does: tick exactly at next_wakeup()
)
step = st.tuples(st.floats(min_value=0, max_value=400, allow_nan=False), action)


def event_for(kind: str, arg: object, now: float) -> BusEvent | None:
    if kind == "join":
        return ParticipantJoined(room_id=ROOM, participant=ParticipantInfo(participant_id=str(arg), name=str(arg)))
    if kind == "leave":
        return ParticipantLeft(room_id=ROOM, participant_id=str(arg), name=str(arg))
    if kind in ("speak", "quiet"):
        return VoiceActivity(room_id=ROOM, participant_id=str(arg), speaking=kind == "speak", t=now)
    if kind == "statement":
        return StatementAdded(room_id=ROOM, statement_id=str(arg), text="Parks should open late", author_id="a",
                              author_name="a")
    if kind == "vote":
        assert isinstance(arg, tuple)
        sid, pid, choice = arg
        return VoteCast(room_id=ROOM, statement_id=str(sid), participant_id=str(pid), choice=choice)
    return None


def check_next_wakeup(engine: RoomFacilitator, now: float) -> None:
    wake = engine.next_wakeup()
    assert wake is None or wake > now, f"next_wakeup {wake} is not after now {now}: the service would spin"


@settings(max_examples=1000, deadline=None)
@given(template=st.sampled_from(TEMPLATES), steps=st.lists(step, max_size=80))
@example(template=TEMPLATES[0], steps=[(0.0, ("join", "a")), (20.0, ("leave", "a"))])  # the busy loop of old
@example(template=TEMPLATES[0], steps=[(92.9477852914876, ("leave", "a")), (399.5393857369264, ("join", "a")),
                                       (20.0, ("join", "a"))])  # now - a < d while a + d == now in floating point
def test_next_wakeup_is_always_in_the_future(template: Template, steps: list[tuple[float, tuple[str, object]]]) -> None:
    engine = RoomFacilitator(ROOM, template, EngineSettings(silence_prompt_s=20))
    now = 0.0
    for dt, (kind, arg) in steps:
        now += dt
        if kind == "wake":
            wake = engine.next_wakeup()
            if wake is None:
                continue
            now = max(now - dt, wake)
            engine.tick(now)
        elif kind == "tick":
            engine.tick(now)
        elif kind == "pause":
            engine.pause(now)
            assert engine.next_wakeup() is None, "a paused engine never wakes"
            continue
        elif kind == "resume":
            engine.resume(now)
            engine.current_stage(now)
            engine.tick(now)  # as the service does after a resume
        elif kind == "flag":
            engine.respond_to_flag(str(arg), now)
            engine.tick(now)
        else:
            event = event_for(kind, arg, now)
            assert event is not None
            engine.handle(event, now)
        check_next_wakeup(engine, now)
        if engine.empty_since is not None:
            assert engine.next_wakeup() is None, "an empty room never wakes"


def test_an_emptied_room_stops_the_clock_and_resumes_where_it_was() -> None:
    engine = RoomFacilitator(ROOM, builtin_templates()["quick-20"])
    engine.handle(event_for("join", "a", 0.0), 0.0)  # type: ignore[arg-type]
    engine.tick(100.0)
    assert engine.stage is not None and engine.stage.id == "welcome"
    engine.handle(ParticipantLeft(room_id=ROOM, participant_id="a", name="a"), 100.0)
    assert engine.empty_since == 100.0 and engine.next_wakeup() is None
    assert engine.tick(5000.0) == [], "nothing happens in an empty room"
    out = engine.handle(event_for("join", "a", 700.0), 700.0)  # type: ignore[arg-type]
    stage = [e for e in out if isinstance(e, StageChanged)]
    assert [s.stage_id for s in stage] == ["welcome"], "the stage continues, with the time it had left"
    assert stage[0].ends_at == 120.0 + 600.0
    assert engine.empty_since is None and engine.next_wakeup() is not None
