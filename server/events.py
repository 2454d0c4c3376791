"""The one typed event model shared by the bus, the workers and the browser WebSocket.

Every message is a pydantic model with a literal ``type`` discriminator; times are float seconds since the Unix epoch.
``BusEvent`` travels between components (in-process or over Redis) and is also forwarded to browsers; ``ClientMessage``
is what a browser (or a test peer) may send on the signaling WebSocket; ``ServerMessage`` is everything the server
sends back. Decoding accepts only the known types and raises ``EventDecodeError`` on anything else.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from server import plaintext


def now() -> float:
    return time.time()


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RoomEvent(_Message):
    room_id: str
    ts: float = Field(default_factory=now)


# ---------------------------------------------------------------------------------------------------------------------
# Bus events (also forwarded to the browsers in the room)


class ParticipantInfo(_Message):
    participant_id: str
    name: str
    audio: bool = True
    video: bool = True


class ParticipantJoined(_RoomEvent):
    type: Literal["participant.joined"] = "participant.joined"
    participant: ParticipantInfo


class ParticipantLeft(_RoomEvent):
    type: Literal["participant.left"] = "participant.left"
    participant_id: str
    name: str
    reason: str = "left"


class ParticipantMediaState(_RoomEvent):
    type: Literal["participant.media"] = "participant.media"
    participant_id: str
    audio: bool
    video: bool


class VoiceActivity(_RoomEvent):
    """A participant started (``speaking=True``) or stopped speaking, as seen by the voice-activity detector."""

    type: Literal["voice.activity"] = "voice.activity"
    participant_id: str
    speaking: bool
    t: float


class CaptionWord(_Message):
    word: str
    start: float
    end: float
    probability: float = 1.0


class CaptionPartial(_RoomEvent):
    """A provisional caption while someone is speaking. ``committed`` never changes once sent for an utterance
    (later partials only extend it); ``tentative`` may still change."""

    type: Literal["caption.partial"] = "caption.partial"
    utterance_id: str
    participant_id: str
    speaker_name: str
    committed: str
    tentative: str
    start: float
    language: str | None = None


class CaptionFinal(_RoomEvent):
    """The one final caption of an utterance."""

    type: Literal["caption.final"] = "caption.final"
    utterance_id: str
    participant_id: str
    speaker_name: str
    text: str
    start: float
    end: float
    language: str | None = None
    words: list[CaptionWord] = Field(default_factory=list)


# ---------------------------------------------------------------------------------------------------------------------
# Facilitator events


class StageChanged(_RoomEvent):
    """The deliberation moved to another stage of its template."""

    type: Literal["stage.changed"] = "stage.changed"
    template_id: str
    stage_id: str
    index: int
    title: str
    kind: str
    started_at: float
    ends_at: float
    paused: bool = False  # a moderator paused the facilitator: the stage clock is stopped


AIMessageKind = Literal[
    "stage_intro", "question", "time", "greeting", "invite", "balance", "silence", "summary", "statements",
    "results", "closing", "safety",
]


# Bounds on the facilitator's words in the room (the model's output included): a summary of 8 points, or a rule-made
# message such as the vote results, fits; the builders shorten what does not (``facilitator.prompt.shorten``).
MAX_AI_MESSAGE_CHARS = 4000
MAX_AI_POINT_CHARS = 500
MAX_AI_POINTS = 20


class AIMessagePoint(_Message):
    """One point of a summary, with the transcript utterances it draws on."""

    label: str = Field(max_length=40)
    text: str = Field(max_length=MAX_AI_POINT_CHARS)
    sources: list[str] = Field(default_factory=list)


class AIMessage(_RoomEvent):
    """A message from the AI facilitator. Always shown labelled as AI-generated; ``sources`` lists the utterances it
    draws on; ``generated_by`` is ``rules`` or ``llm:<model>``."""

    type: Literal["ai.message"] = "ai.message"
    message_id: str
    kind: AIMessageKind
    text: str = Field(max_length=MAX_AI_MESSAGE_CHARS)
    stage_id: str | None = None
    addressed_to: list[str] = Field(default_factory=list)  # participant ids named in the message
    sources: list[str] = Field(default_factory=list)
    points: list[AIMessagePoint] = Field(default_factory=list, max_length=MAX_AI_POINTS)
    generated_by: str = "rules"
    ai_generated: Literal[True] = True
    # How it reached the room: posted directly, or approved (possibly edited) by a moderator first.
    review: Literal["direct", "approved", "edited"] = "direct"


class SpeakerTime(_Message):
    participant_id: str
    name: str
    seconds: float


class SpeakingBalance(_RoomEvent):
    """Speaking time per participant so far in the session (from voice activity)."""

    type: Literal["balance.update"] = "balance.update"
    speakers: list[SpeakerTime]


class StatementAdded(_RoomEvent):
    """A candidate statement the group can vote on, proposed by a participant or by the AI facilitator."""

    type: Literal["statement.added"] = "statement.added"
    statement_id: str
    text: str
    author_id: str | None = None  # None: proposed by the AI facilitator
    author_name: str
    ai_generated: bool = False
    sources: list[str] = Field(default_factory=list)
    # 0 when added, +1 per edit (edits stop at the first vote); statement listings carry the current one.
    revision: int = Field(default=0, ge=0)


class StatementEdited(_RoomEvent):
    type: Literal["statement.edited"] = "statement.edited"
    statement_id: str
    text: str
    editor_id: str
    revision: int = Field(ge=1)  # the new revision: votes must name it


Choice = Literal["agree", "disagree", "pass"]


class VoteCast(_RoomEvent):
    """One participant's vote. Stays on the bus (storage, facilitator); browsers only get ``vote.tally``."""

    type: Literal["vote.cast"] = "vote.cast"
    statement_id: str
    participant_id: str
    choice: Choice
    revision: int = Field(default=0, ge=0)  # the statement revision voted on


class VoteTally(_RoomEvent):
    type: Literal["vote.tally"] = "vote.tally"
    statement_id: str
    agree: int
    disagree: int
    passed: int


class SummaryFlagged(_RoomEvent):
    """A participant marked a summary point "that's not what we said" (for moderators; not sent to the room)."""

    type: Literal["summary.flagged"] = "summary.flagged"
    message_id: str
    point: int
    participant_id: str
    note: str = ""


class AIMessageProposed(_RoomEvent):
    """An AI message waiting for a moderator (the deliberation's ``ai_messages: approve`` setting); not sent to the
    room until a moderator approves it, possibly edited, as an ``ai.message``."""

    type: Literal["ai.proposed"] = "ai.proposed"
    message: AIMessage
    statements: list[StatementAdded] = Field(default_factory=list)  # AI-proposed statements it announces: they wait too


class FacilitatorControl(_RoomEvent):
    """A moderator paused or resumed the AI facilitator in a room (the facilitator obeys it; the room is told)."""

    type: Literal["facilitator.control"] = "facilitator.control"
    action: Literal["pause", "resume"]
    by: str = "moderator"


SafetyCategory = Literal["abuse", "off_topic"]


class SafetyFlagged(_RoomEvent):
    """An utterance flagged as abusive or far off-topic, for moderators (not sent to the room)."""

    type: Literal["safety.flagged"] = "safety.flagged"
    utterance_id: str
    participant_id: str
    speaker_name: str
    category: SafetyCategory
    reason: str = Field(max_length=500)
    detected_by: str  # "rules" or "llm:<model>"


# Bus events that every browser in the room receives; the rest stay between server components.
RoomVisibleEvent = (
    ParticipantJoined
    | ParticipantLeft
    | ParticipantMediaState
    | VoiceActivity
    | CaptionPartial
    | CaptionFinal
    | StageChanged
    | AIMessage
    | SpeakingBalance
    | StatementAdded
    | StatementEdited
    | VoteTally
    | FacilitatorControl
)

BusEvent = Annotated[
    RoomVisibleEvent | VoteCast | SummaryFlagged | AIMessageProposed | SafetyFlagged, Field(discriminator="type")
]

# ---------------------------------------------------------------------------------------------------------------------
# Signaling: browser -> server


class Join(_Message):
    type: Literal["join"] = "join"
    name: str = Field(min_length=1, max_length=64)
    consent: bool
    audio: bool = True
    video: bool = True


class Answer(_Message):
    type: Literal["answer"] = "answer"
    sdp: str = Field(max_length=60_000)


class MediaState(_Message):
    type: Literal["media"] = "media"
    audio: bool
    video: bool


class Leave(_Message):
    type: Literal["leave"] = "leave"


class Ping(_Message):
    type: Literal["ping"] = "ping"


def _statement_text(value: str) -> str:
    text = plaintext.normalise(value)
    if plaintext.visible_length(text) < 3:
        raise ValueError("a statement needs at least 3 visible characters (spaces and invisible ones do not count)")
    return text


# Whitespace collapsed, invisible characters dropped, at least 3 visible characters left.
StatementText = Annotated[str, Field(max_length=500), AfterValidator(_statement_text)]


class AddStatement(_Message):
    type: Literal["statement.add"] = "statement.add"
    text: StatementText


class EditStatement(_Message):
    """Change a statement's text: allowed only until its first vote (then propose a revised statement instead)."""

    type: Literal["statement.edit"] = "statement.edit"
    statement_id: str = Field(max_length=80)
    text: StatementText
    revision: int | None = Field(default=None, ge=0)  # the revision the editor saw; given, a stale edit is refused


class FlagSummary(_Message):
    type: Literal["summary.flag"] = "summary.flag"
    message_id: str = Field(max_length=120)
    point: int = Field(ge=0, le=20)
    note: str = Field(default="", max_length=500)


class Vote(_Message):
    type: Literal["vote"] = "vote"
    statement_id: str = Field(max_length=80)
    choice: Choice
    revision: int = Field(ge=0)  # the statement revision the voter read: a vote on an edited text is refused


ClientMessage = Annotated[
    Join | Answer | MediaState | Leave | Ping | AddStatement | EditStatement | Vote | FlagSummary,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------------------------------------------------------------
# Signaling: server -> browser


class RoomInfo(_Message):
    room_id: str
    title: str
    max_participants: int


class Welcome(_Message):
    type: Literal["welcome"] = "welcome"
    participant_id: str
    room: RoomInfo
    participants: list[ParticipantInfo]
    ice_servers: list[dict[str, Any]] = Field(default_factory=list)


class TrackInfo(_Message):
    participant_id: str
    kind: Literal["audio", "video"]


class Offer(_Message):
    """A (re)negotiation offer from the server. ``tracks`` maps each m-line ``mid`` that carries another participant's
    media to whose it is; the first audio and video m-lines without an entry are the client's own publishing slots."""

    type: Literal["offer"] = "offer"
    sdp: str
    tracks: dict[str, TrackInfo] = Field(default_factory=dict)


class Pong(_Message):
    type: Literal["pong"] = "pong"


ErrorCode = Literal[
    "bad_message",
    "too_large",
    "unknown_room",
    "room_full",
    "name_taken",
    "bad_name",  # the display name cannot be used as typed (server/names.py says why)
    "name_reserved",  # the display name reads as the AI facilitator or a moderator
    "consent_required",
    "not_joined",
    "join_timeout",
    "rate_limited",
    "unknown_statement",
    "unknown_message",
    "not_allowed",
    "statement_locked",
    "statement_changed",
    "already_joined",
    "bad_sdp",
    "negotiation_timeout",
    "media_failed",
    "internal",
]


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    fatal: bool = False


ServerMessage = Annotated[Welcome | Offer | Pong | Error | RoomVisibleEvent, Field(discriminator="type")]

# ---------------------------------------------------------------------------------------------------------------------
# Encoding and decoding


class EventDecodeError(ValueError):
    """Raised for malformed JSON, unknown ``type`` values or fields that fail validation."""


_bus_adapter: TypeAdapter[BusEvent] = TypeAdapter(BusEvent)
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

T = TypeVar("T")


def _decode(adapter: TypeAdapter[T], data: str | bytes) -> T:
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = str(first["msg"]).removeprefix("Value error, ")  # our validators' words, not pydantic's prefix
        raise EventDecodeError(f"{where + ': ' if where else ''}{message}") from None


def decode_bus_event(data: str | bytes) -> BusEvent:
    return _decode(_bus_adapter, data)


def decode_client_message(data: str | bytes) -> ClientMessage:
    return _decode(_client_adapter, data)


def decode_server_message(data: str | bytes) -> ServerMessage:
    return _decode(_server_adapter, data)


def encode(message: BaseModel) -> str:
    return message.model_dump_json()
