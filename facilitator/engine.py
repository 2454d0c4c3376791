"""The stage engine for one room: a deterministic core fed with room events and the time, returning events to publish.

It never reads a clock or the bus itself: ``handle(event, now)`` and ``tick(now)`` return the facilitator's events, and
``next_wakeup()`` says when ``tick`` is next needed. That makes a 40-minute session testable in milliseconds (virtual
time) and lets the same core run inside ``moot serve`` or in a separate worker. Everything here is rule-driven (timing,
questions, balance, greetings), so the group is well served even by a weak language model or none.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from facilitator.balance import SpeakingBalanceTracker
from facilitator.messages import has_language, say
from facilitator.prompt import shorten
from facilitator.template import Stage, StageKind, Template
from server.core.events import (
    MAX_AI_MESSAGE_CHARS,
    AIMessage,
    AIMessageKind,
    BusEvent,
    MessageParam,
    ParticipantJoined,
    ParticipantLanguage,
    ParticipantLeft,
    SpeakerTime,
    SpeakingBalance,
    StageChanged,
    StatementAdded,
    StatementEdited,
    VoiceActivity,
    VoteCast,
    base_language,
)

TALK_STAGES = {StageKind.WELCOME, StageKind.FRAMING, StageKind.DISCUSSION, StageKind.DRAFTING}
BALANCE_STAGES = {StageKind.FRAMING, StageKind.DISCUSSION}
RESULTS_QUOTE_CHARS: tuple[int | None, ...] = (None, 240, 120, 60)  # statements quoted whole, else shorter and shorter


@dataclass
class EngineSettings:
    silence_prompt_s: float = 25.0  # ask the next question after this much silence
    balance_check_s: float = 30.0
    balance_settle_s: float = 60.0  # no balance nudges in a stage's first minute
    balance_publish_s: float = 10.0
    greet_late_joiners: bool = True
    late_after_s: float = 60.0  # people joining within this of the start are welcomed by the opening itself
    safety_cooldown_s: float = 120.0  # at most one calm reminder per kind of problem in this time


def _results_text(language: str, agreed: list[tuple[str, str]], divided: list[tuple[str, str]],
                  quote_chars: int | None) -> str:
    def quoted(items: list[tuple[str, str]]) -> str:
        return "; ".join(f"\u201c{text if quote_chars is None else shorten(text, quote_chars)}\u201d {tally}"
                         for text, tally in items)

    parts = [say(language, "results.agreed", quotes=quoted(agreed)) if agreed else say(language, "results.none")]
    if divided:
        parts.append(say(language, "results.divided", quotes=quoted(divided)))
    return " ".join(parts)


@dataclass
class RoomFacilitator:
    room_id: str
    template: Template
    settings: EngineSettings = field(default_factory=EngineSettings)
    balance: SpeakingBalanceTracker = field(default_factory=SpeakingBalanceTracker)
    started_at: float | None = None
    stage_index: int = -1
    stage_started_at: float = 0.0
    finished: bool = False
    paused_at: float | None = None  # a moderator paused the facilitator
    halted_at: float | None = None  # the stage clock stopped: paused, or nobody present
    _warnings_given: set[float] = field(default_factory=set)
    _questions_asked: int = 0
    _speaking: set[str] = field(default_factory=set)
    _last_voice_at: float = 0.0
    _last_prompt_at: float = float("-inf")
    _last_balance_check: float = float("-inf")
    _last_balance_publish: float = float("-inf")
    _balance_dirty: bool = False
    _ids: itertools.count[int] = field(default_factory=itertools.count)
    summary_requests: list[tuple[str, float]] = field(default_factory=list)  # (stage id, since) for the LLM
    statement_requests: list[str] = field(default_factory=list)  # drafting stages that want AI proposals
    _last_summary_at: float = float("-inf")
    statements: dict[str, str] = field(default_factory=dict)  # statement id -> text, in order of proposal
    statement_revisions: dict[str, int] = field(default_factory=dict)  # statement id -> revision of that text
    # statement id -> participant id -> (revision voted on, choice); only votes on the current revision count.
    votes: dict[str, dict[str, tuple[int, str]]] = field(default_factory=dict)
    _last_safety_reply: dict[str, float] = field(default_factory=dict)  # category -> when the group was reminded
    _languages: dict[str, str] = field(default_factory=dict)  # participant id -> the language they read

    # State ------------------------------------------------------------------------------------------------------
    @property
    def language(self) -> str:
        """The room's language, which the facilitator speaks: the one most present participants read (of those it
        has messages for); on a tie, the template's if it is among them, else the first by code; with nobody's
        language known, the template's. Readers of the others get each message in theirs from the translation
        worker."""
        present = set(self._present())
        counts: dict[str, int] = {}
        for pid, language in self._languages.items():
            base = base_language(language)
            if pid in present and has_language(base):
                counts[base] = counts.get(base, 0) + 1
        template = base_language(self.template.language)
        if not counts:
            return template
        best = max(counts.values())
        tied = sorted(code for code, n in counts.items() if n == best)
        return template if template in tied else tied[0]

    @property
    def stage(self) -> Stage | None:
        if 0 <= self.stage_index < len(self.template.stages):
            return self.template.stages[self.stage_index]
        return None

    @property
    def stage_ends_at(self) -> float:
        stage = self.stage
        return self.stage_started_at + (stage.minutes * 60 if stage else 0.0)

    def _present(self) -> list[str]:
        return [s.participant_id for s in self.balance.speakers.values() if s.present]

    @property
    def empty_since(self) -> float | None:
        """When the last participant left a running session (None: someone is present, or no session runs)."""
        if self.started_at is None or self.finished or self._present():
            return None
        return self.halted_at

    def _sync_clock(self, now: float) -> None:
        """Stop the stage clock while a moderator has paused the facilitator or nobody is present; restart it when
        neither holds, shifting every stage timer by the stopped time so that it does not count against the stage.
        A stopped engine has no wake-ups at all: an empty room costs nothing."""
        if self.started_at is None or self.finished:
            return
        runs = self.paused_at is None and bool(self._present())
        if not runs and self.halted_at is None:
            self.halted_at = now
        elif runs and self.halted_at is not None:
            stopped = max(0.0, now - self.halted_at)
            self.halted_at = None
            self.stage_started_at += stopped
            self._last_prompt_at += stopped
            self._last_balance_check += stopped
            self._last_summary_at += stopped
            self._last_voice_at = max(self._last_voice_at, now)  # quiet while stopped is not silence to break

    def _message(self, kind: AIMessageKind, text: str, now: float, addressed_to: list[str] | None = None,
                 language: str | None = None, key: str | None = None,
                 params: dict[str, MessageParam] | None = None) -> AIMessage:
        """A message of ``text`` (in ``language``: default the room's; template content is in the template's)."""
        return AIMessage(room_id=self.room_id, ts=now, message_id=f"{self.room_id}-ai-{next(self._ids)}", kind=kind,
                         text=shorten(text, MAX_AI_MESSAGE_CHARS), stage_id=self.stage.id if self.stage else None,
                         addressed_to=addressed_to or [], language=language or self.language, key=key,
                         params=params or {})

    def _said(self, kind: AIMessageKind, key: str, now: float, addressed_to: list[str] | None = None,
              language: str | None = None, **params: MessageParam) -> AIMessage:
        """A rule message: ``key`` of ``facilitator/messages.py`` in the room's language, kept with its parameters
        so that readers of other languages get it from their own table (template text in each of its languages)."""
        language = language or self.language
        return self._message(kind, say(language, key, **params), now, addressed_to, language, key, params)

    def _stage_text(self, stage_id: str, field: str) -> dict[str, str]:
        """A stage's title or intro in each of the template's languages (``{question}`` replaced)."""
        return self.template.texts(lambda t: t.say(getattr(t.stage(stage_id), field)))

    def _ask(self, stage: Stage, index: int, now: float) -> AIMessage:
        """The stage's question number ``index``: in the room's language where the template has it, else in the
        template's (machine translated for readers of other languages)."""
        texts = self.template.texts(lambda t: t.say(t.stage(stage.id).questions[index]))
        language = self.language if base_language(self.language) in texts else self.template.language
        return self._said("question", "ask", now, language=language, text=texts)

    # Inputs -----------------------------------------------------------------------------------------------------
    def handle(self, event: BusEvent, now: float) -> list[BusEvent]:
        out: list[BusEvent] = []
        if isinstance(event, ParticipantLanguage):
            self._languages[event.participant_id] = event.language
        elif isinstance(event, ParticipantJoined):
            p = event.participant
            if p.language:
                self._languages[p.participant_id] = p.language
            known = p.participant_id in self.balance.speakers
            self.balance.join(p.participant_id, p.name, now)
            self._balance_dirty = True
            self._sync_clock(now)
            if self.started_at is None and not self.finished:
                out += self._start(now)
            elif self.stage is not None and not self.finished:
                out.append(self._stage_changed(now))  # so the newcomer's view shows the stage and time left
            late = self.started_at is not None and now - self.started_at >= self.settings.late_after_s
            if late and not known and self.settings.greet_late_joiners and self.stage and not self.finished:
                out.append(self._said("greeting", "greeting", now, [p.participant_id], name=p.name,
                                      stage=self._stage_text(self.stage.id, "title"),
                                      question=self.template.texts(lambda t: t.question)))
        elif isinstance(event, ParticipantLeft):
            self.balance.leave(event.participant_id, now)
            self._speaking.discard(event.participant_id)
            self._balance_dirty = True
            self._sync_clock(now)
        elif isinstance(event, StatementAdded):
            self.statements[event.statement_id] = event.text
            self.statement_revisions[event.statement_id] = event.revision
        elif isinstance(event, StatementEdited):
            if event.revision > self.statement_revisions.get(event.statement_id, event.revision):
                # Votes on the old text never count for the new one (the server refuses edits once votes exist, so
                # there should be none); a vote on the new text that arrived before this event is kept.
                self.statements[event.statement_id] = event.text
                self.statement_revisions[event.statement_id] = event.revision
                self.votes[event.statement_id] = {pid: vote for pid, vote in self.votes.get(event.statement_id, {})
                                                  .items() if vote[0] >= event.revision}
                out += self._maybe_end_voting(now)
        elif isinstance(event, VoteCast):
            self.votes.setdefault(event.statement_id, {})[event.participant_id] = (event.revision, event.choice)
            out += self._maybe_end_voting(now)
        elif isinstance(event, VoiceActivity):
            if event.speaking and event.participant_id not in self._present():
                return out + self.tick(now)  # a late event for someone who has left: they are not speaking now
            self.balance.voice(event.participant_id, event.speaking, event.t)
            if event.speaking:
                self._speaking.add(event.participant_id)
            else:
                self._speaking.discard(event.participant_id)
            self._last_voice_at = max(self._last_voice_at, event.t)
            self._balance_dirty = True
        return out + self.tick(now)

    def pause(self, now: float) -> None:
        if self.paused_at is None:
            self.paused_at = now
            self._sync_clock(now)

    def resume(self, now: float) -> None:
        if self.paused_at is not None:
            self.paused_at = None
            self._sync_clock(now)  # paused time does not count against the stage

    def current_stage(self, now: float) -> list[BusEvent]:
        """The current stage and its end time (e.g. for the room after a pause moved the end)."""
        return [self._stage_changed(now)] if self.stage is not None and not self.finished else []

    def respond_to_flag(self, category: str, now: float) -> list[BusEvent]:
        """A calm reminder to the whole group after an utterance was flagged (never naming the speaker), at most once
        per ``safety_cooldown_s`` per kind of problem; nothing while paused or outside the session."""
        if self.finished or self.started_at is None or self.paused_at is not None:
            return []
        if now - self._last_safety_reply.get(category, float("-inf")) < self.settings.safety_cooldown_s:
            return []
        self._last_safety_reply[category] = now
        if category == "abuse":
            return [self._said("safety", "safety.abuse", now)]
        return [self._said("safety", "safety.off_topic", now, question=self.template.texts(lambda t: t.question))]

    # Time -------------------------------------------------------------------------------------------------------
    def next_wakeup(self) -> float | None:
        """The next time ``tick`` has something to do (None: only an event can change anything)."""
        if self.finished or self.started_at is None or self.halted_at is not None or self.stage is None:
            return None
        stage = self.stage
        times = [self.stage_ends_at]
        times += [self.stage_ends_at - w * 60 for w in stage.warnings if w not in self._warnings_given]
        if stage.kind in TALK_STAGES and not self._speaking:
            times.append(max(self._last_voice_at, self._last_prompt_at) + self.settings.silence_prompt_s)
        if stage.kind in BALANCE_STAGES:
            times.append(max(self._last_balance_check + self.settings.balance_check_s,
                             self.stage_started_at + self.settings.balance_settle_s))
        if self._balance_dirty:
            times.append(self._last_balance_publish + self.settings.balance_publish_s)
        if stage.summarise_every_minutes and self._summary_due_at(stage) < self.stage_ends_at - 60:
            times.append(self._summary_due_at(stage))
        return min(times)

    def _summary_due_at(self, stage: Stage) -> float:
        assert stage.summarise_every_minutes
        return max(self.stage_started_at, self._last_summary_at) + stage.summarise_every_minutes * 60

    def take_summary_requests(self) -> list[tuple[str, float]]:
        """Summaries the engine wants written (by the LLM, outside this deterministic core)."""
        requests, self.summary_requests = self.summary_requests, []
        return requests

    def take_statement_requests(self) -> list[str]:
        """Drafting stages that have just begun and want candidate statements from the LLM."""
        requests, self.statement_requests = self.statement_requests, []
        return requests

    def tick(self, now: float) -> list[BusEvent]:
        if self.finished or self.started_at is None or self.halted_at is not None or self.stage is None:
            return []
        out: list[BusEvent] = []
        while self.stage is not None and now >= self.stage_ends_at:
            out += self._advance(self.stage_ends_at)
        stage = self.stage
        if stage is None:
            return out
        for w in stage.warnings:
            if w not in self._warnings_given and now >= self.stage_ends_at - w * 60:
                self._warnings_given.add(w)
                if now < self.stage_ends_at - w * 60 + 30:  # stale warnings (e.g. after a pause) are not said late
                    title = self._stage_text(stage.id, "title")
                    if self.stage_index + 1 < len(self.template.stages):
                        nxt = self._stage_text(self.template.stages[self.stage_index + 1].id, "title")
                        out.append(self._said("time", "time.left_then", now, minutes=w, stage=title, next=nxt))
                    else:
                        out.append(self._said("time", "time.left", now, minutes=w, stage=title))
        if stage.kind in TALK_STAGES and not self._speaking and self._present():
            quiet_since = max(self._last_voice_at, self._last_prompt_at)
            if now >= quiet_since + self.settings.silence_prompt_s:  # the same sum as in next_wakeup (floats)
                out.append(self._silence_prompt(stage, now))
        if (stage.kind in BALANCE_STAGES and now >= self._last_balance_check + self.settings.balance_check_s
                and now >= self.stage_started_at + self.settings.balance_settle_s):
            self._last_balance_check = now
            nudge = self.balance.suggestion(now)
            if nudge is not None:
                kind, speaker = nudge
                nudge_kind: AIMessageKind = "invite" if kind == "invite" else "balance"
                out.append(self._said(nudge_kind, nudge_kind, now, [speaker.participant_id], name=speaker.name))
        if stage.summarise_every_minutes and now >= self._summary_due_at(stage):
            if now < self.stage_ends_at - 60:  # in the stage's last minute, its closing summary comes soon anyway
                self.summary_requests.append((stage.id, max(self.stage_started_at, self._last_summary_at)))
            self._last_summary_at = now
        if self._balance_dirty and now >= self._last_balance_publish + self.settings.balance_publish_s:
            self._balance_dirty = False
            self._last_balance_publish = now
            out.append(SpeakingBalance(room_id=self.room_id, ts=now, speakers=[
                SpeakerTime(participant_id=pid, name=name, seconds=seconds)
                for pid, name, seconds in self.balance.totals(now)]))
        return out

    # Stages -----------------------------------------------------------------------------------------------------
    def _start(self, now: float) -> list[BusEvent]:
        self.started_at = now
        self.stage_started_at = now
        out = self._enter(0, now)
        self._sync_clock(now)  # paused before anyone came: the clock waits for the moderator
        return out

    def _choices(self, statement_id: str) -> dict[str, str]:
        """Participant id -> choice, for the votes cast on the statement's current text."""
        revision = self.statement_revisions.get(statement_id, 0)
        return {pid: choice for pid, (voted_on, choice) in self.votes.get(statement_id, {}).items()
                if voted_on == revision}

    def _maybe_end_voting(self, now: float) -> list[BusEvent]:
        """The group is done when everyone present has voted on every statement: move on without waiting."""
        stage = self.stage
        present = set(self._present())
        if stage is None or stage.kind != StageKind.VOTING or not self.statements or not present:
            return []
        if all(present <= set(self._choices(sid)) for sid in self.statements):
            done = self._said("results", "voting.done", now)
            return [done, *self._advance(now)]
        return []

    def _results(self, now: float) -> AIMessage | None:
        """Which statements had broad agreement and which divide the group. Long statements are quoted shorter when
        all of them would not fit in one message (``MAX_AI_MESSAGE_CHARS``)."""
        if not self.statements:
            return None
        language = self.language
        agreed: list[tuple[str, str]] = []  # (statement, tally)
        divided: list[tuple[str, str]] = []
        for sid, text in self.statements.items():
            choices = list(self._choices(sid).values())
            agree, disagree = choices.count("agree"), choices.count("disagree")
            decided = agree + disagree
            if decided < 2:
                continue
            tally = say(language, "results.tally", agree=agree, disagree=disagree, passed=choices.count("pass"))
            if agree >= 2 * decided / 3:
                agreed.append((text, tally))
            elif min(agree, disagree) >= decided / 3:
                divided.append((text, tally))
        for quote_chars in RESULTS_QUOTE_CHARS:
            message = _results_text(language, agreed, divided, quote_chars)
            if len(message) <= MAX_AI_MESSAGE_CHARS:
                break
        return self._message("results", message, now, language=language)  # still too long: cut at the end

    def _advance(self, now: float) -> list[BusEvent]:
        out: list[BusEvent] = []
        stage = self.stage
        if stage is not None and stage.kind == StageKind.VOTING and (results := self._results(now)) is not None:
            out.append(results)
        if stage is not None and stage.kind in BALANCE_STAGES:  # each talking stage ends with a summary
            self.summary_requests.append((stage.id, max(self.stage_started_at, self._last_summary_at)))
            self._last_summary_at = now
        return out + self._advance_stage(now)

    def _advance_stage(self, now: float) -> list[BusEvent]:
        if self.stage_index + 1 >= len(self.template.stages):
            self.finished = True
            self.stage_index = len(self.template.stages)
            return [self._said("closing", "closing", now)]
        return self._enter(self.stage_index + 1, now)

    def _enter(self, index: int, now: float) -> list[BusEvent]:
        self.stage_index = index
        self.stage_started_at = now
        self._warnings_given = set()
        self._questions_asked = 0
        self._last_prompt_at = now
        stage = self.template.stages[index]
        if stage.kind == StageKind.DRAFTING:
            self.statement_requests.append(stage.id)
        out: list[BusEvent] = [
            self._stage_changed(now),
            self._said("stage_intro", "stage_intro", now, stage=self._stage_text(stage.id, "title"),
                       minutes=stage.minutes, intro=self._stage_text(stage.id, "intro")),
        ]
        if stage.questions:
            out.append(self._ask(stage, 0, now))
            self._questions_asked = 1
        return out

    def _stage_changed(self, now: float) -> StageChanged:
        stage = self.template.stages[self.stage_index]
        titles = self._stage_text(stage.id, "title")
        return StageChanged(room_id=self.room_id, ts=now, template_id=self.template.id, stage_id=stage.id,
                            index=self.stage_index, title=titles.get(base_language(self.language), stage.title),
                            titles=titles, kind=stage.kind.value,
                            started_at=self.stage_started_at, ends_at=self.stage_ends_at,
                            paused=self.paused_at is not None)

    def _silence_prompt(self, stage: Stage, now: float) -> AIMessage:
        self._last_prompt_at = now
        if self._questions_asked < len(stage.questions):
            self._questions_asked += 1
            return self._ask(stage, self._questions_asked - 1, now)
        return self._said("silence", "silence", now)
