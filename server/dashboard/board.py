"""The moderators' live view of a deliberation's rooms, as a deterministic core: ``DashboardBoard`` folds bus events
into one card per room and says which cards changed; the WebSocket host (``server/dashboard/live.py``) seeds it from
storage, feeds it the bus and sends the changed cards. No I/O and no clock here (times come with the events), so it
is tested by replaying event sequences.

A card holds what a moderator scans for: who is in the room and how their connection is (from ``room.status``), the
stage and when it ends, whether the AI is paused, speaking-time balance, open calls for a moderator, AI messages
waiting for approval, the number of flags, and the latest captions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

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
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaState,
    RoomStatus,
    SafetyFlagged,
    SpeakingBalance,
    StageChanged,
    SummaryFlagged,
)

LATEST_CAPTIONS = 3
# The event types ``apply`` folds into a card: the host skips every other (partial captions, voice activity, the speech
# tier's traffic) before any lookup. Keep it in step with ``apply``.
SHOWN_TYPES = frozenset({
    "participant.joined", "participant.left", "participant.media", "room.status", "room.observers", "stage.changed",
    "facilitator.control", "balance.update", "caption.final", "help.requested", "help.taken", "ai.proposed",
    "ai.message", "ai.rejected", "safety.flagged", "summary.flagged",
})
NO_AUDIO_ALERT_S = 30.0  # "no audio for 30 s" (while the microphone is on)


class ConnectionAlert(BaseModel):
    """Something wrong with a participant's connection: ``no_audio`` (``value``: seconds), ``packet_loss`` (%),
    ``round_trip`` (ms), ``connection_failed``, ``connection_disconnected``."""

    code: Literal["connection_failed", "connection_disconnected", "no_audio", "packet_loss", "round_trip"]
    value: int | None = None


class PersonCard(BaseModel):
    participant_id: str
    name: str
    audio: bool = True
    video: bool = True
    connection: str = "connecting"
    loss: float | None = None
    rtt_ms: float | None = None
    audio_silent_s: float | None = None
    speaking_s: float = 0.0
    alerts: list[ConnectionAlert] = Field(default_factory=list)


class StageCard(BaseModel):
    title: str
    kind: str
    index: int
    ends_at: float
    paused: bool


class CaptionLine(BaseModel):
    utterance_id: str
    speaker: str
    text: str
    ts: float | None  # when it was published (None: read back from the transcript)


class HelpCall(BaseModel):
    request_id: str
    participant_id: str
    participant_name: str
    note: str
    ts: float


class RoomCard(BaseModel):
    room_id: str
    title: str
    participants: list[PersonCard]
    stage: StageCard | None
    ai_paused: bool
    help: list[HelpCall]
    queued_ai: int
    flags: int
    captions: list[CaptionLine]
    status_at: float | None  # when the hosting node last reported the room (None: not since the dashboard opened)
    observers: int  # moderators observing it
    alerts: int  # participants with a connection alert, plus open calls for a moderator


def connection_alerts(person: PersonCard) -> list[ConnectionAlert]:
    """What is wrong with a participant's connection (empty: nothing), as codes with their number: the dashboard
    says them in its reader's language."""
    alerts = []
    if person.connection == "failed":
        alerts.append(ConnectionAlert(code="connection_failed"))
    elif person.connection == "disconnected":
        alerts.append(ConnectionAlert(code="connection_disconnected"))
    if person.audio_silent_s is not None and person.audio_silent_s >= NO_AUDIO_ALERT_S:
        alerts.append(ConnectionAlert(code="no_audio", value=int(person.audio_silent_s)))
    if person.loss is not None and person.loss >= 0.05:
        alerts.append(ConnectionAlert(code="packet_loss", value=round(person.loss * 100)))
    if person.rtt_ms is not None and person.rtt_ms >= 500:
        alerts.append(ConnectionAlert(code="round_trip", value=round(person.rtt_ms)))
    return alerts


@dataclass
class _Room:
    room_id: str
    title: str
    people: dict[str, PersonCard] = field(default_factory=dict)
    speaking: dict[str, float] = field(default_factory=dict)
    stage: StageCard | None = None
    ai_paused: bool = False
    help: dict[str, HelpCall] = field(default_factory=dict)
    queued: set[str] = field(default_factory=set)
    flagged: set[str] = field(default_factory=set)  # flag keys seen (a redelivered flag is counted once)
    flags_stored: int = 0  # counted from storage at seeding
    captions: list[CaptionLine] = field(default_factory=list)
    status_at: float | None = None
    observers: int = 0


@dataclass
class RoomSeed:
    """What storage knows of a room when the dashboard opens."""

    title: str
    present: list[tuple[str, str]] = field(default_factory=list)  # (participant id, name) not marked as left
    help: list[HelpRequested] = field(default_factory=list)
    queued_ai: list[str] = field(default_factory=list)  # ids of AI messages waiting for approval
    flags: int = 0
    captions: list[CaptionLine] = field(default_factory=list)  # the latest, oldest first


class DashboardBoard:
    """The rooms of one deliberation. ``apply`` returns the id of the room whose card changed (None: not ours, or
    nothing a card shows)."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    def __contains__(self, room_id: object) -> bool:
        return room_id in self._rooms

    @property
    def room_ids(self) -> list[str]:
        return list(self._rooms)

    def add_room(self, room_id: str, seed: RoomSeed) -> None:
        room = _Room(room_id, seed.title)
        for participant_id, name in seed.present:
            room.people[participant_id] = PersonCard(participant_id=participant_id, name=name)
        room.help = {h.request_id: _help(h) for h in seed.help}
        room.queued = set(seed.queued_ai)
        room.flags_stored = seed.flags
        room.captions = list(seed.captions[-LATEST_CAPTIONS:])
        self._rooms[room_id] = room

    def apply(self, event: BusEvent) -> str | None:
        room = self._rooms.get(event.room_id)
        if room is None:
            return None
        changed = True
        if isinstance(event, ParticipantJoined):
            p = event.participant
            room.people[p.participant_id] = PersonCard(participant_id=p.participant_id, name=p.name, audio=p.audio,
                                                       video=p.video)
        elif isinstance(event, ParticipantLeft):
            changed = room.people.pop(event.participant_id, None) is not None
        elif isinstance(event, ParticipantMediaState):
            person = room.people.get(event.participant_id)
            changed = person is not None
            if person is not None:
                room.people[event.participant_id] = person.model_copy(update={"audio": event.audio,
                                                                              "video": event.video})
        elif isinstance(event, ObserversChanged):
            room.observers = event.count
        elif isinstance(event, RoomStatus):
            room.status_at = event.ts
            room.observers = event.observers
            room.people = {h.participant_id: PersonCard(**h.model_dump()) for h in event.participants}
        elif isinstance(event, StageChanged):
            room.stage = StageCard(title=event.title, kind=event.kind, index=event.index, ends_at=event.ends_at,
                                   paused=event.paused)
            room.ai_paused = event.paused
        elif isinstance(event, FacilitatorControl):
            room.ai_paused = event.action == "pause"
        elif isinstance(event, SpeakingBalance):
            room.speaking = {s.participant_id: s.seconds for s in event.speakers}
        elif isinstance(event, CaptionFinal):
            if any(line.utterance_id == event.utterance_id for line in room.captions):
                return None
            room.captions = [*room.captions, _line(event)][-LATEST_CAPTIONS:]
        elif isinstance(event, HelpRequested):
            room.help[event.request_id] = _help(event)
        elif isinstance(event, HelpTaken):
            changed = room.help.pop(event.request_id, None) is not None
        elif isinstance(event, AIMessageProposed):
            room.queued.add(event.message.message_id)
        elif isinstance(event, AIMessage):
            changed = event.message_id in room.queued
            room.queued.discard(event.message_id)
        elif isinstance(event, AIMessageRejected):
            changed = event.message_id in room.queued
            room.queued.discard(event.message_id)
        elif isinstance(event, SafetyFlagged):
            changed = _count_flag(room, f"s:{event.utterance_id}:{event.category}")
        elif isinstance(event, SummaryFlagged):
            changed = _count_flag(room, f"m:{event.message_id}:{event.point}:{event.participant_id}")
        else:
            changed = False
        return event.room_id if changed else None

    def card(self, room_id: str) -> RoomCard:
        room = self._rooms[room_id]
        people = []
        for person in room.people.values():
            person = person.model_copy(update={"speaking_s": round(room.speaking.get(person.participant_id, 0.0), 1)})
            people.append(person.model_copy(update={"alerts": connection_alerts(person)}))
        help_calls = sorted(room.help.values(), key=lambda h: h.ts)
        return RoomCard(
            room_id=room.room_id, title=room.title, participants=people, stage=room.stage, ai_paused=room.ai_paused,
            help=help_calls, queued_ai=len(room.queued), flags=room.flags_stored + len(room.flagged),
            captions=list(room.captions), status_at=room.status_at, observers=room.observers,
            alerts=sum(1 for p in people if p.alerts) + len(help_calls),
        )

    def cards(self) -> list[RoomCard]:
        return [self.card(room_id) for room_id in self._rooms]


def _count_flag(room: _Room, key: str) -> bool:
    if key in room.flagged:
        return False
    room.flagged.add(key)
    return True


def _help(request: HelpRequested) -> HelpCall:
    return HelpCall(request_id=request.request_id, participant_id=request.participant_id,
                    participant_name=request.participant_name, note=request.note, ts=request.ts)


def _line(caption: CaptionFinal) -> CaptionLine:
    return CaptionLine(utterance_id=caption.utterance_id, speaker=caption.speaker_name, text=caption.text,
                       ts=caption.ts)
