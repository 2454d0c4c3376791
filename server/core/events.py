"""The one typed event model shared by the bus, the workers and the browser WebSocket.

Every message is a pydantic model with a literal ``type`` discriminator; times are float seconds since the Unix epoch.
``BusEvent`` travels between components (in-process or over Redis) and, where ``VISIBILITY`` allows, to browsers;
``ClientMessage`` is what a browser (or a test peer) may send on the signaling WebSocket; ``ServerMessage`` is
everything the server sends back. Decoding accepts only the known types and raises ``EventDecodeError`` on anything
else.

Events v2: every bus event carries an envelope stamped by the bus when it is published: ``event_id`` (unique),
``seq`` (the room's sequence number, from 1, gap-free per room), ``source`` (the publishing process) and ``v`` (the
event format's version, so stored JSON says how to read it). Between processes decoding is tolerant: fields a reader
does not know are ignored, so a newer writer does not break an older reader during a rolling upgrade. What a browser
sends stays strict: unknown fields are refused.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from server.core import plaintext
from server.core.errors import EventDecodeError


def now() -> float:
    return time.time()


EVENT_VERSION = 2


class _Message(BaseModel):
    """Signaling messages: strict (a browser's message with an unknown field is refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class _EventPart(BaseModel):
    """Bus events and their parts: tolerant of fields this version does not know (rolling upgrades)."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class _RoomEvent(_EventPart):
    room_id: str
    ts: float = Field(default_factory=now)
    # The envelope, stamped by the bus on publish (these defaults mean "not published yet").
    event_id: str = ""
    seq: int = Field(default=0, ge=0)  # the room's sequence number: 1, 2, 3... in publish order, no gaps
    source: str = ""  # the process that published it (e.g. "server:node-1", "facilitator:host-42")
    v: int = EVENT_VERSION


# ---------------------------------------------------------------------------------------------------------------------
# Bus events (also forwarded to the browsers in the room)


# A language as the browser and the speech models name it: ISO 639-1 or -3, optionally with a region or script
# ("en", "pt-BR", "zh-Hant"). Moot compares the base code ("pt") when it picks a translation model.
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$", max_length=12)]


def base_language(code: str) -> str:
    """``pt-BR`` -> ``pt``: what recognition, translation and the facilitator's messages go by."""
    return code.split("-", 1)[0].lower()


class ParticipantInfo(_EventPart):
    participant_id: str
    name: str
    audio: bool = True
    video: bool = True
    language: str | None = None  # the language they speak and read (None: not chosen; captions stay as spoken)


class ParticipantJoined(_RoomEvent):
    type: Literal["participant.joined"] = "participant.joined"
    participant: ParticipantInfo


class ParticipantLeft(_RoomEvent):
    type: Literal["participant.left"] = "participant.left"
    participant_id: str
    name: str
    reason: str = "left"


class ParticipantLanguage(_RoomEvent):
    """A participant changed the language they speak and read."""

    type: Literal["participant.language"] = "participant.language"
    participant_id: str
    language: str


class RoomLanguages(_RoomEvent):
    """The languages the room's participants read now (announced by the node hosting the room whenever the set
    changes): the translation workers translate each caption into each of them, once."""

    type: Literal["room.languages"] = "room.languages"
    languages: list[str]


class ObserversChanged(_RoomEvent):
    """How many moderators observe the room now (they see and hear it without being participants): the room shows "a
    moderator is observing" while it is more than zero."""

    type: Literal["room.observers"] = "room.observers"
    count: int = Field(ge=0)


class ParticipantMediaState(_RoomEvent):
    type: Literal["participant.media"] = "participant.media"
    participant_id: str
    audio: bool
    video: bool
    by: Literal["participant", "moderator"] = "participant"  # "moderator": a moderator muted them


class VoiceActivity(_RoomEvent):
    """A participant started (``speaking=True``) or stopped speaking, as seen by the voice-activity detector."""

    type: Literal["voice.activity"] = "voice.activity"
    participant_id: str
    speaking: bool
    t: float


class CaptionWord(_EventPart):
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


class AIMessageTranslated(_RoomEvent):
    """An AI message in another language than the one it was written in, for that language's readers: from the
    facilitator's own messages in that language (``machine`` False) or machine translated (its summary points too,
    in order)."""

    type: Literal["ai.translated"] = "ai.translated"
    message_id: str
    language: str
    text: str
    points: list[str] = Field(default_factory=list)
    machine: bool = True
    backend: str = ""


class CaptionTranslated(_RoomEvent):
    """A machine translation of a caption (``utterance_id``) into ``language``, made once for every listener who
    reads that language. ``partial``: of a provisional caption (a later one replaces it); the final caption's
    translation is stored with the utterance, beside its original text."""

    type: Literal["caption.translated"] = "caption.translated"
    utterance_id: str
    participant_id: str
    source_language: str
    language: str
    text: str
    partial: bool = False
    backend: str = ""  # what translated it (e.g. "ctranslate2:opus-mt-en-fr"): machine translation, labelled so


# ---------------------------------------------------------------------------------------------------------------------
# Facilitator events


class StageChanged(_RoomEvent):
    """The deliberation moved to another stage of its template."""

    type: Literal["stage.changed"] = "stage.changed"
    template_id: str
    stage_id: str
    index: int
    title: str  # in the room's language where the template has it
    kind: str
    started_at: float
    ends_at: float
    paused: bool = False  # a moderator paused the facilitator: the stage clock is stopped
    titles: dict[str, str] = Field(default_factory=dict)  # the title in each of the template's languages


# A rule message's parameter: a name or number, or a text (from the template) given in each of its languages.
MessageParam = str | int | float | dict[str, str]

AIMessageKind = Literal[
    "stage_intro", "question", "time", "greeting", "invite", "balance", "silence", "summary", "statements",
    "results", "closing", "safety",
]


# Bounds on the facilitator's words in the room (the model's output included): a summary of 8 points, or a rule-made
# message such as the vote results, fits; the builders shorten what does not (``facilitator.prompt.shorten``).
MAX_AI_MESSAGE_CHARS = 4000
MAX_AI_POINT_CHARS = 500
MAX_AI_POINTS = 20


class AIMessagePoint(_EventPart):
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
    # The language it is written in, and for a rule message its key and parameters (facilitator/messages.py), from
    # which readers of other languages get it in theirs; other messages are machine translated for them.
    language: str | None = None
    key: str | None = Field(default=None, max_length=40)
    params: dict[str, MessageParam] = Field(default_factory=dict)


class SpeakerTime(_EventPart):
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
    # Written in another room of the deliberation and shared into this room's vote (cross-pollination): voted on
    # here, never edited; who wrote it stays with that room.
    shared: bool = False


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


class AIMessageRejected(_RoomEvent):
    """A moderator discarded an AI message that waited for approval (the room never sees it): it leaves the
    dashboards' queues."""

    type: Literal["ai.rejected"] = "ai.rejected"
    message_id: str


class FacilitatorControl(_RoomEvent):
    """A moderator paused or resumed the AI facilitator in a room (the facilitator obeys it; the room is told)."""

    type: Literal["facilitator.control"] = "facilitator.control"
    action: Literal["pause", "resume"]
    by: str = "moderator"


class RoomControl(_RoomEvent):
    """A moderator acts on a live room: ``remove`` or ``mute`` a participant, ``move`` one to ``to_room`` (the same
    deliberation's), or ``end`` the room. Published on the named channel ``room-control``; the node hosting the room
    carries it out (``server/room_control.py``). Never sent to browsers."""

    type: Literal["room.control"] = "room.control"
    action: Literal["remove", "mute", "move", "end"]
    participant_id: str | None = None
    to_room: str | None = None


MAX_MODERATOR_MESSAGE_CHARS = 1000
MAX_HELP_NOTE_CHARS = 300


class HelpRequested(_RoomEvent):
    """A participant pressed "call a moderator" (with an optional note): an alert for the room's moderators until one
    takes it (not sent to the room)."""

    type: Literal["help.requested"] = "help.requested"
    request_id: str
    participant_id: str
    participant_name: str
    note: str = Field(default="", max_length=MAX_HELP_NOTE_CHARS)


class HelpTaken(_RoomEvent):
    """A moderator took a help request: the participant who asked is told a moderator is on the way."""

    type: Literal["help.taken"] = "help.taken"
    request_id: str
    participant_id: str


class ModeratorMessage(_RoomEvent):
    """A moderator's message to one room, or to every room of a deliberation (``broadcast``): shown as from a
    moderator (a badge chosen from this event's type), never as the AI's."""

    type: Literal["moderator.message"] = "moderator.message"
    message_id: str
    text: str = Field(min_length=1, max_length=MAX_MODERATOR_MESSAGE_CHARS)
    broadcast: bool = False


class ParticipantHealth(_EventPart):
    """One participant's connection as the server's own WebRTC statistics see it (``server/rtc/health.py``)."""

    participant_id: str
    name: str
    audio: bool  # what the participant's media state says (they may have muted themselves)
    video: bool
    connection: str  # the server peer's connection state: new, connecting, connected, disconnected, failed, closed
    loss: float | None = None  # fraction of the packets they sent that did not arrive, over the last interval
    rtt_ms: float | None = None  # round-trip time to them (from RTCP receiver reports), when known
    # Seconds since their last audio packet while their microphone is on (None: audio arrives, or it is off); the
    # dashboard shows "no audio" from 30 s.
    audio_silent_s: float | None = None


class RoomStatus(_RoomEvent):
    """The room as its server node sees it now, published every few seconds while it has participants: who is in it
    and their connection health. For moderators (the live dashboard); it also lets a dashboard opened mid-session
    see each room's people without replaying its history."""

    type: Literal["room.status"] = "room.status"
    node: str = ""
    participants: list[ParticipantHealth] = Field(default_factory=list)
    observers: int = 0  # moderators observing the room


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


class LLMCallRecorded(_RoomEvent):
    """One call to a language model, for the record (organisers review prompt, output, latency and outcome). Workers
    publish it; the recorder stores it (no worker writes to the database)."""

    type: Literal["llm.call"] = "llm.call"
    call_id: str  # unique: the recorder stores each call once however often it is delivered
    purpose: str
    model: str
    messages: list[dict[str, str]]
    output: str
    latency_s: float
    outcome: str  # "ok", "invalid" (schema failed, fallback used), "error" (backend failed, fallback used)
    error: str | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Speech tier (internal: server nodes and speech workers, on named channels ``speech*``; never stored, never shown)


class SpeakerOpened(_RoomEvent):
    """A server node sends one participant's audio to the speech tier (``speech_placement=remote``): a speech worker
    claims the speaker (``session``) and reads its audio from the channel ``speech.audio.<session>``."""

    type: Literal["speech.speaker"] = "speech.speaker"
    session: str  # the speaker's audio session: unique per open speaker; utterance ids derive from it
    participant_id: str
    speaker_name: str
    language: str | None = None  # the language the participant chose (recognition starts in it)


class SpeakerAudio(_RoomEvent):
    """A batch of one speaker's encoded audio (about 100 ms: a few 20 ms Opus packets) with the wall-clock time of
    each packet's first sample (the server's arrival clock, from RTP timestamps), so the worker rebuilds the same
    timeline. ``end``: the speaker left; no more audio follows. ``language``: the one the speaker chose, as of this
    batch (a change in the room reaches the worker serving the speaker in order with the audio)."""

    type: Literal["speech.audio"] = "speech.audio"
    session: str
    codec: Literal["opus"] = "opus"
    t: list[float] = Field(default_factory=list)
    packets: list[str] = Field(default_factory=list)  # base64 of each packet
    end: bool = False
    language: str | None = None


class SpeechCheckpoint(_RoomEvent):
    """Where another speech worker resumes a speaker (``speech.ckpt.<session>``): replay the audio from bus ``seq``
    ``resume_seq`` (its first sample is number ``index`` of the session); ``open_utterance`` (id) and
    ``open_utterance_start`` (sample index): the oldest utterance whose final caption is not out yet, reopened with the
    same id. ``done``: the session is over (the server node then stops announcing the speaker)."""

    type: Literal["speech.checkpoint"] = "speech.checkpoint"
    session: str
    resume_seq: int
    index: int
    open_utterance: str | None = None
    open_utterance_start: int | None = None
    language: str | None = None
    done: bool = False  # the speaker's session is over and every caption of it is out


# Bus events that a browser in the room may receive (the signaling protocol's schema). Who actually receives an
# event is decided by ``VISIBILITY`` below and nothing else; a test checks that the two agree.
RoomVisibleEvent = (
    ParticipantJoined
    | ParticipantLeft
    | ParticipantLanguage
    | RoomLanguages
    | ObserversChanged
    | ParticipantMediaState
    | VoiceActivity
    | CaptionPartial
    | CaptionFinal
    | CaptionTranslated
    | AIMessageTranslated
    | StageChanged
    | AIMessage
    | SpeakingBalance
    | StatementAdded
    | StatementEdited
    | VoteTally
    | FacilitatorControl
    | ModeratorMessage
    | HelpTaken
)

BusEvent = Annotated[
    RoomVisibleEvent | VoteCast | SummaryFlagged | AIMessageProposed | AIMessageRejected | SafetyFlagged
    | LLMCallRecorded | HelpRequested | RoomStatus | RoomControl | SpeakerOpened | SpeakerAudio | SpeechCheckpoint,
    Field(discriminator="type"),
]

# ---------------------------------------------------------------------------------------------------------------------
# Who may see an event: the one table consulted by the one fan-out function (``visible_to``)

Audience = Literal["room", "moderators", "internal"]
Viewer = Literal["participant", "moderator"]

VISIBILITY: dict[str, Audience] = {
    "participant.joined": "room",
    "participant.left": "room",
    "participant.language": "room",
    "room.languages": "room",
    "room.observers": "room",
    "participant.media": "room",
    "voice.activity": "room",
    "caption.partial": "room",
    "caption.final": "room",
    "caption.translated": "room",
    "ai.translated": "room",
    "stage.changed": "room",
    "ai.message": "room",
    "balance.update": "room",
    "statement.added": "room",
    "statement.edited": "room",
    "vote.tally": "room",
    "facilitator.control": "room",
    "moderator.message": "room",
    "help.taken": "room",  # the page of the participant who asked says a moderator is on the way
    "help.requested": "moderators",
    "room.control": "internal",  # a moderator's action on a live room, for the node hosting it
    "room.status": "moderators",  # participants' connection health, every few seconds: the live dashboard
    "vote.cast": "internal",  # who voted how: storage and the facilitator only; browsers get ``vote.tally``
    "summary.flagged": "moderators",  # "that's not what we said": for moderators, not the room
    "ai.proposed": "moderators",  # an AI message waiting for approval
    "ai.rejected": "moderators",  # ... discarded by a moderator
    "safety.flagged": "moderators",
    "llm.call": "internal",  # the AI call log: stored for review, never pushed live
    "speech.speaker": "internal",  # the speech tier's own traffic (server nodes and speech workers)
    "speech.audio": "internal",
    "speech.checkpoint": "internal",
}

_SEEN_BY: dict[Viewer, frozenset[Audience]] = {
    "participant": frozenset({"room"}),
    "moderator": frozenset({"room", "moderators"}),
}


def visible_to(event: BusEvent, viewer: Viewer) -> bool:
    """Whether ``viewer`` (a participant of the event's room, or a moderator of it) may receive ``event``. An event
    type missing from ``VISIBILITY`` is internal: nobody outside the server sees it."""
    return VISIBILITY.get(event.type, "internal") in _SEEN_BY[viewer]


# ---------------------------------------------------------------------------------------------------------------------
# Signaling: browser -> server


class Resume(_Message):
    """Rejoining after a lost connection: the ``resume_token`` of the earlier ``welcome`` and the ``seq`` of the last
    room event received (events after it are replayed, so no final caption is lost in the gap)."""

    token: str = Field(min_length=1, max_length=64)
    after_seq: int | None = Field(default=None, ge=0)


class Join(_Message):
    type: Literal["join"] = "join"
    name: str = Field(min_length=1, max_length=64)
    consent: bool
    audio: bool = True
    video: bool = True
    resume: Resume | None = None
    # A deliberation's rooms admit only the participants its lobby gave them: their participant credential (the
    # lobby's ``credential``), which also fixes their id and the name the room shows.
    credential: str | None = Field(default=None, max_length=2048)
    # A moderator opens the room as an observer (signed in, with the session cookie): sees and hears it, is not a
    # participant (takes no seat, sends no media); the room is told a moderator is observing.
    observe: bool = False
    # The language they speak and read (one of the deliberation's languages): it guides recognition of their speech
    # and the captions are translated into it. None: the captions stay as spoken.
    language: LanguageCode | None = None


class Answer(_Message):
    type: Literal["answer"] = "answer"
    sdp: str = Field(max_length=60_000)


class MediaState(_Message):
    type: Literal["media"] = "media"
    audio: bool
    video: bool


class Leave(_Message):
    type: Literal["leave"] = "leave"


class SetLanguage(_Message):
    """Change the language this participant speaks and reads."""

    type: Literal["language"] = "language"
    language: LanguageCode


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


class CallModerator(_Message):
    """The participant asks for a moderator (an optional note says why)."""

    type: Literal["help.request"] = "help.request"
    note: str = Field(default="", max_length=MAX_HELP_NOTE_CHARS)


class Vote(_Message):
    type: Literal["vote"] = "vote"
    statement_id: str = Field(max_length=80)
    choice: Choice
    revision: int = Field(ge=0)  # the statement revision the voter read: a vote on an edited text is refused


ClientMessage = Annotated[
    Join | Answer | MediaState | Leave | Ping | AddStatement | EditStatement | Vote | FlagSummary | CallModerator
    | SetLanguage,
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
    # Send it back in ``join.resume`` to rejoin after a lost connection (valid for ``resume_window_s``).
    resume_token: str = ""
    # A stand-alone room's participant credential: send it as ``X-Moot-Participant`` to read the room's history and
    # transcript (a deliberation's participants already hold theirs, from the lobby).
    credential: str | None = None
    observing: bool = False  # this connection observes (a moderator): it is not in ``participants``
    observers: int = 0  # moderators observing the room now


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
    "credential_required",  # a deliberation's room: join through its lobby link
    "not_your_room",  # the credential is valid, but its holder was given another room (or none yet)
    "deliberation_closed",
    "joined_elsewhere",  # the same participant joined again from another window or device
    "not_joined",
    "join_timeout",
    "rate_limited",
    "unknown_statement",
    "unknown_message",
    "not_allowed",
    "unsupported_language",  # not one of the deliberation's languages
    "statement_locked",
    "statement_changed",
    "already_joined",
    "bad_sdp",
    "negotiation_timeout",
    "media_failed",
    "reconnected",  # this participant joined again from a new connection; this one is closed
    "room_elsewhere",  # another server node hosts the room: ``location`` is its base URL (join there)
    "room_moved",  # this node lost the room (its lease expired and another node may host it now): join again
    "removed",  # a moderator removed this participant from the room
    "moved",  # a moderator moved this participant to another room: ``location`` is its room id (join it)
    "room_ended",  # a moderator ended the room, or its deliberation closed
    "internal",
]


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str  # in English; a client words the code (with reason and params) in its reader's language
    fatal: bool = False
    reason: str | None = Field(default=None, max_length=40)  # which refusal of that code (e.g. bad_name: too_long)
    params: dict[str, str | int] = Field(default_factory=dict)  # its particulars (e.g. {"max": 40, "length": 52})
    location: str | None = Field(
        default=None, description="room_elsewhere: base URL of the server node that hosts the room (connect to "
        "/ws/rooms/{room_id} there); moved: the id of the room to join instead.")


ServerMessage = Annotated[Welcome | Offer | Pong | Error | RoomVisibleEvent, Field(discriminator="type")]

# ---------------------------------------------------------------------------------------------------------------------
# Encoding and decoding


_bus_adapter: TypeAdapter[BusEvent] = TypeAdapter(BusEvent)
_client_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
_server_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)

T = TypeVar("T")


def _decode_error(exc: ValidationError) -> EventDecodeError:
    first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
    where = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first["msg"]).removeprefix("Value error, ")  # our validators' words, not pydantic's prefix
    return EventDecodeError(f"{where + ': ' if where else ''}{message}")


def _decode(adapter: TypeAdapter[T], data: str | bytes) -> T:
    try:
        return adapter.validate_json(data)
    except ValidationError as exc:
        raise _decode_error(exc) from None


def decode_bus_event(data: str | bytes) -> BusEvent:
    return _decode(_bus_adapter, data)


def bus_event_from_data(data: object) -> BusEvent:
    """A bus event from already parsed JSON (e.g. a stored event whose ``seq`` the reader filled in); raises
    ``EventDecodeError`` as ``decode_bus_event`` does."""
    try:
        return _bus_adapter.validate_python(data)
    except ValidationError as exc:
        raise _decode_error(exc) from None


def decode_client_message(data: str | bytes) -> ClientMessage:
    return _decode(_client_adapter, data)


def decode_server_message(data: str | bytes) -> ServerMessage:
    return _decode(_server_adapter, data)


def encode(message: BaseModel) -> str:
    return message.model_dump_json()


def protocol_schema() -> dict[str, Any]:
    """The JSON Schema of the browser-facing protocol: what a browser may send (``client``) and what it may receive
    (``server``: signaling replies and the room events ``VISIBILITY`` lets participants see). Exported for the client
    as ``client/schema/protocol.schema.json`` (``moot schema``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Moot signaling protocol",
        "description": "Messages on /ws/rooms/{room_id}, discriminated by 'type'. Times are float seconds.",
        "version": EVENT_VERSION,
        "client": _client_adapter.json_schema(mode="validation"),
        "server": _server_adapter.json_schema(mode="serialization"),
    }
