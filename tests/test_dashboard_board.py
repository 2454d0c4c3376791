"""The dashboard's deterministic core: bus events folded into one card per room (who is in it and how their
connection is, stage, AI paused, balance, calls for a moderator, queued AI messages, flags, latest captions), and the
connection health a node reports from its peers' WebRTC statistics."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from server.core.events import (
    AIMessage,
    AIMessageProposed,
    AIMessageRejected,
    BusEvent,
    CaptionFinal,
    FacilitatorControl,
    HelpRequested,
    HelpTaken,
    ObserversChanged,
    ParticipantHealth,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaState,
    RoomStatus,
    SafetyFlagged,
    SpeakerTime,
    SpeakingBalance,
    StageChanged,
    SummaryFlagged,
)
from server.dashboard.board import DashboardBoard, PersonCard, RoomSeed, connection_alerts
from server.rtc.health import HealthSampler


def board(*rooms: str) -> DashboardBoard:
    made = DashboardBoard()
    for room in rooms:
        made.add_room(room, RoomSeed(title=f"Room {room}"))
    return made


def joined(room: str, pid: str, name: str) -> ParticipantJoined:
    return ParticipantJoined(room_id=room, participant=ParticipantInfo(participant_id=pid, name=name))


def ai(room: str, message_id: str) -> AIMessage:
    return AIMessage(room_id=room, message_id=message_id, kind="summary", text="So far...")


def test_people_come_and_go_and_the_node_s_status_replaces_what_was_guessed() -> None:
    b = board("r1", "r2")
    assert b.apply(joined("r1", "p1", "Ada")) == "r1"
    assert b.apply(joined("r1", "p2", "Bo")) == "r1"
    assert b.apply(ParticipantMediaState(room_id="r1", participant_id="p2", audio=False, video=True)) == "r1"
    assert [(p.name, p.audio) for p in b.card("r1").participants] == [("Ada", True), ("Bo", False)]
    assert b.apply(ParticipantLeft(room_id="r1", participant_id="p1", name="Ada")) == "r1"
    assert b.apply(ParticipantLeft(room_id="r1", participant_id="p1", name="Ada")) is None  # already gone
    status = RoomStatus(room_id="r1", ts=50.0, participants=[
        ParticipantHealth(participant_id="p2", name="Bo", audio=True, video=True, connection="connected", loss=0.2,
                          rtt_ms=80.0, audio_silent_s=45.0),
        ParticipantHealth(participant_id="p3", name="Cy", audio=True, video=False, connection="connected"),
    ])
    assert b.apply(status) == "r1"
    card = b.card("r1")
    assert card.status_at == 50.0
    assert [(p.name, [(a.code, a.value) for a in p.alerts]) for p in card.participants] == [
        ("Bo", [("no_audio", 45), ("packet_loss", 20)]), ("Cy", [])]
    assert card.alerts == 1 and card.observers == 0
    assert b.card("r2").participants == []
    assert b.apply(ObserversChanged(room_id="r1", count=2)) == "r1" and b.card("r1").observers == 2


def test_stage_pause_balance_and_captions() -> None:
    b = board("r1")
    b.apply(joined("r1", "p1", "Ada"))
    stage = StageChanged(room_id="r1", template_id="t", stage_id="s", index=1, title="Share views", kind="discuss",
                         started_at=10.0, ends_at=310.0)
    assert b.apply(stage) == "r1"
    assert b.apply(FacilitatorControl(room_id="r1", action="pause")) == "r1"
    card = b.card("r1")
    assert card.stage is not None and (card.stage.title, card.stage.ends_at) == ("Share views", 310.0)
    assert card.ai_paused
    b.apply(stage.model_copy(update={"paused": False}))
    assert not b.card("r1").ai_paused
    b.apply(SpeakingBalance(room_id="r1", speakers=[SpeakerTime(participant_id="p1", name="Ada", seconds=12.34)]))
    assert b.card("r1").participants[0].speaking_s == 12.3
    for n in range(5):
        b.apply(CaptionFinal(room_id="r1", utterance_id=f"u{n}", participant_id="p1", speaker_name="Ada",
                             text=f"line {n}", start=n, end=n + 0.5, ts=100.0 + n))
    assert b.apply(CaptionFinal(room_id="r1", utterance_id="u4", participant_id="p1", speaker_name="Ada",
                                text="line 4", start=4, end=4.5)) is None  # redelivered: nothing changes
    assert [line.text for line in b.card("r1").captions] == ["line 2", "line 3", "line 4"]


def test_calls_queued_messages_and_flags() -> None:
    b = board("r1")
    call = HelpRequested(room_id="r1", request_id="h1", participant_id="p1", participant_name="Ada", note="help")
    assert b.apply(call) == "r1"
    assert [(h.participant_name, h.note) for h in b.card("r1").help] == [("Ada", "help")]
    assert b.card("r1").alerts == 1
    assert b.apply(HelpTaken(room_id="r1", request_id="h1", participant_id="p1")) == "r1"
    assert b.card("r1").help == [] and b.card("r1").alerts == 0

    for message_id in ("m1", "m2", "m3"):
        b.apply(AIMessageProposed(room_id="r1", message=ai("r1", message_id)))
    assert b.card("r1").queued_ai == 3
    assert b.apply(ai("r1", "m1").model_copy(update={"review": "approved"})) == "r1"
    assert b.apply(AIMessageRejected(room_id="r1", message_id="m2")) == "r1"
    assert b.apply(ai("r1", "other")) is None  # a direct AI message changes no queue
    assert b.card("r1").queued_ai == 1

    flag = SafetyFlagged(room_id="r1", utterance_id="u1", participant_id="p1", speaker_name="Ada", category="abuse",
                         reason="insult", detected_by="rules")
    assert b.apply(flag) == "r1"
    assert b.apply(flag) is None  # delivered twice, counted once
    b.apply(SummaryFlagged(room_id="r1", message_id="m1", point=0, participant_id="p1"))
    assert b.card("r1").flags == 2


def test_events_of_other_rooms_and_types_change_nothing() -> None:
    b = board("r1")
    assert b.apply(joined("elsewhere", "p9", "Eve")) is None
    assert b.apply(ParticipantMediaState(room_id="r1", participant_id="nobody", audio=False, video=False)) is None
    assert "elsewhere" not in b and b.room_ids == ["r1"]


def test_a_seed_from_storage_starts_the_card() -> None:
    b = DashboardBoard()
    call = HelpRequested(room_id="r1", request_id="h1", participant_id="p1", participant_name="Ada")
    b.add_room("r1", RoomSeed(title="Sundays", present=[("p1", "Ada")], help=[call], queued_ai=["m1"], flags=2))
    card = b.card("r1")
    assert (card.title, [p.name for p in card.participants], card.queued_ai, card.flags, len(card.help)) == (
        "Sundays", ["Ada"], 1, 2, 1)
    b.apply(AIMessageRejected(room_id="r1", message_id="m1"))
    assert b.card("r1").queued_ai == 0


def test_connection_alerts_have_thresholds() -> None:
    fine = PersonCard(participant_id="p", name="Ada", connection="connected", loss=0.01, rtt_ms=120,
                      audio_silent_s=10)
    assert connection_alerts(fine) == []
    bad = fine.model_copy(update={"connection": "failed", "loss": 0.3, "rtt_ms": 900, "audio_silent_s": 31})
    assert [(a.code, a.value) for a in connection_alerts(bad)] == [
        ("connection_failed", None), ("no_audio", 31), ("packet_loss", 30), ("round_trip", 900)]
    gone = fine.model_copy(update={"connection": "disconnected"})
    assert [a.code for a in connection_alerts(gone)] == ["connection_disconnected"]


room_ids = st.sampled_from(["r1", "r2", "x"])
people = st.sampled_from(["p1", "p2", "p3"])
events = st.one_of(
    st.builds(lambda r, p: joined(r, p, p.upper()), room_ids, people),
    st.builds(lambda r, p: ParticipantLeft(room_id=r, participant_id=p, name=p), room_ids, people),
    st.builds(lambda r, p: HelpRequested(room_id=r, request_id=f"h{p}", participant_id=p, participant_name=p),
              room_ids, people),
    st.builds(lambda r, p: HelpTaken(room_id=r, request_id=f"h{p}", participant_id=p), room_ids, people),
    st.builds(lambda r, m: AIMessageProposed(room_id=r, message=ai(r, m)), room_ids, people),
    st.builds(lambda r, m: AIMessageRejected(room_id=r, message_id=m), room_ids, people),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(events, max_size=40))
def test_cards_equal_a_replay_of_their_own_room_s_events(sequence: list[BusEvent]) -> None:
    """Any interleaving: a room's card depends only on that room's events (no cross-room leak), people present are
    those joined and not left since, open calls those requested and not taken, queued messages those proposed and not
    rejected."""
    b = board("r1", "r2")
    for event in sequence:
        changed = b.apply(event)
        assert changed in (None, event.room_id)
    for room in ("r1", "r2"):
        alone = board(room)
        for event in sequence:
            if event.room_id == room:
                alone.apply(event)
        assert alone.card(room) == b.card(room)
        present: dict[str, None] = {}
        calls: set[str] = set()
        queued: set[str] = set()
        for event in sequence:
            if event.room_id != room:
                continue
            if isinstance(event, ParticipantJoined):
                present[event.participant.participant_id] = None
            elif isinstance(event, ParticipantLeft):
                present.pop(event.participant_id, None)
            elif isinstance(event, HelpRequested):
                calls.add(event.request_id)
            elif isinstance(event, HelpTaken):
                calls.discard(event.request_id)
            elif isinstance(event, AIMessageProposed):
                queued.add(event.message.message_id)
            elif isinstance(event, AIMessageRejected):
                queued.discard(event.message_id)
        card = b.card(room)
        assert {p.participant_id for p in card.participants} == set(present)
        assert {h.request_id for h in card.help} == calls
        assert card.queued_ai == len(queued)


class FakePC:
    def __init__(self, reports: list[dict[str, Any]]) -> None:
        self.reports = reports
        self.connectionState = "connected"

    async def getStats(self) -> dict[str, Any]:
        return self.reports.pop(0)


def stats(kind: str, **fields: Any) -> Any:
    return SimpleNamespace(type=kind, **fields)


def test_health_measures_loss_per_interval_and_rtt_from_receiver_reports() -> None:
    reports = [
        {"a": stats("inbound-rtp", packetsReceived=90, packetsLost=10),
         "b": stats("remote-inbound-rtp", roundTripTime=0.05)},
        {"a": stats("inbound-rtp", packetsReceived=190, packetsLost=10),  # no loss in this interval
         "b": stats("remote-inbound-rtp", roundTripTime=0.25), "c": stats("remote-inbound-rtp", roundTripTime=0.1)},
        {"a": stats("inbound-rtp", packetsReceived=190, packetsLost=10)},  # nothing arrived: loss unknown
    ]
    peer = SimpleNamespace(participant_id="p1", pc=FakePC(reports), published={})
    sampler = HealthSampler()

    async def run() -> list[ParticipantHealth]:
        return [await sampler.sample(peer, "Ada", audio=False, video=True) for _ in range(3)]  # type: ignore[arg-type]

    first, second, third = asyncio.run(run())
    assert (first.loss, first.rtt_ms, first.connection) == (0.1, 50.0, "connected")
    assert (second.loss, second.rtt_ms) == (0.0, 250.0)  # the worst of the links to them
    assert (third.loss, third.rtt_ms) == (None, None)


def test_no_audio_is_counted_from_the_last_packet_or_the_join() -> None:
    sampler = HealthSampler(joined_at=100.0)
    never = SimpleNamespace(published={})
    assert sampler.audio_silent_s(never, audio=True, now=131.0) == 31.0  # type: ignore[arg-type]
    assert sampler.audio_silent_s(never, audio=False, now=131.0) is None  # type: ignore[arg-type]
    sending = SimpleNamespace(published={"audio": SimpleNamespace(last_packet_at=130.5)})
    assert sampler.audio_silent_s(sending, audio=True, now=131.0) is None  # type: ignore[arg-type]
    stopped = SimpleNamespace(published={"audio": SimpleNamespace(last_packet_at=120.0)})
    assert sampler.audio_silent_s(stopped, audio=True, now=131.0) == 11.0  # type: ignore[arg-type]


def test_the_shown_types_are_event_types_the_board_handles() -> None:
    from server.core.events import VISIBILITY
    from server.dashboard.board import SHOWN_TYPES

    assert SHOWN_TYPES <= set(VISIBILITY), "a misspelt type would be skipped silently"
    assert {"room.status", "help.requested", "caption.final"} <= SHOWN_TYPES
    assert not SHOWN_TYPES & {"caption.partial", "voice.activity", "speech.audio"}
