"""The translation worker: the consumer group ``translation`` on the rooms channel. It follows which languages each
room reads (``book.LanguageBook``) and translates every final caption once into each of them other than its own,
publishing ``caption.translated`` into the room (every listener of that language shows it; the recorder stores it
beside the original). Any number of workers share the rooms' events; a worker that restarts, or sees a room for the
first time mid-way, reads the room's retained history to learn its languages. When a language is added to a room
(someone came to read it), the room's latest captions and AI messages are translated into it too.

AI messages are translated the same way for the languages other than the one they were written in: a rule message
(it has a ``key``) is rendered from the facilitator's own messages in each language (``render``, given by the
composition root), anything else (summaries, questions, drafts) is machine translated, its points too.

Translations run concurrently (up to ``concurrency`` captions at a time, across rooms), off the event loop in the
backend; the event is acknowledged once its translations are published, so a crash mid-way translates it again
(the recorder stores each utterance's translation into a language once).

With ``partials``, provisional captions are translated too, where it costs the finals nothing: one at a time per
utterance (a newer partial that arrives meanwhile waits, replacing any older one waiting), never while a final caption
of the same room is being translated, and never after the utterance's final caption (then it is dropped). They go
out as ``caption.translated`` with ``partial: true``, which readers show until the final's translation comes and the
recorder does not store. Best effort: a lost partial is not retried (the next one says more).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from server.core.bus import Bus, Consumer, Delivery, room_channel
from server.core.events import (
    AIMessage,
    AIMessageTranslated,
    CaptionFinal,
    CaptionPartial,
    CaptionTranslated,
    ParticipantJoined,
    ParticipantLanguage,
    ParticipantLeft,
    RoomLanguages,
)
from server.translation.backends import TextTranslator, TranslationUnavailable
from server.translation.book import LanguageBook

logger = logging.getLogger(__name__)

GROUP = "translation"
BACKFILL_CAPTIONS = 20  # a new reader's language: the room's latest captions translated into it too
BACKFILL_AI_MESSAGES = 5
FINISHED_KEPT = 4096  # utterances whose final caption came (so their late partials are dropped), newest kept
_ROOM_STATE = (RoomLanguages, ParticipantJoined, ParticipantLeft, ParticipantLanguage)


class TranslationService:
    def __init__(self, bus: Bus, translator: TextTranslator, name: str = "translation", concurrency: int = 8,
                 render: Callable[[str, str, dict[str, object]], str | None] | None = None,
                 partials: bool = False) -> None:
        """``render(language, key, params)``: a rule message in ``language`` (None: no table for it);
        ``partials``: translate provisional captions too."""
        self._bus = bus
        self.partials = partials
        self._finals_busy: dict[str, int] = {}  # room -> final captions being translated
        self._finished: dict[str, None] = {}  # utterance ids whose final came (insertion-ordered, bounded)
        self._partial_busy: set[str] = set()  # utterances with a partial being translated
        self._partial_next: dict[str, CaptionPartial] = {}  # utterance -> the newest partial waiting its turn
        self.partials_translated = 0
        self.partials_skipped = 0  # not translated: its room's finals came first, or a newer one replaced it
        self._render = render
        self.translator = translator
        self._name = name
        self._book = LanguageBook()
        self._consumer: Consumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._warned: set[tuple[str, str]] = set()
        self.translated = 0  # translations published
        self.failed = 0
        self._progress = asyncio.Condition()

    async def start(self) -> None:
        self._consumer = await self._bus.consumer(GROUP, self._name)
        self._task = asyncio.create_task(self._run(self._consumer), name="translation")
        logger.info("translation worker %s: backend %s", self._name, self.translator.name)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.close()
        await self.translator.close()

    def health(self) -> dict[str, object]:
        return {"ok": self._task is not None and not self._task.done(), "backend": self.translator.name,
                "translated": self.translated, "failed": self.failed, "in_flight": len(self._inflight),
                "partials_translated": self.partials_translated, "partials_skipped": self.partials_skipped}

    async def wait_translated(self, count: int, timeout: float) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.translated >= count), timeout)

    async def _run(self, consumer: Consumer) -> None:
        async for delivery in consumer:
            event = delivery.event
            if isinstance(event, _ROOM_STATE):
                known = self._book.knows(event.room_id)
                if not known and not isinstance(event, RoomLanguages):
                    await self._learn(event.room_id)
                before = set(self._book.languages(event.room_id))
                self._book.apply(event)
                added = [x for x in self._book.languages(event.room_id) if x not in before]
                if known and added:  # a new reader's language: what was said just before, in it too
                    self._start(self._backfill(event.room_id, added))
                await consumer.ack(delivery)
            elif isinstance(event, CaptionPartial):
                await consumer.ack(delivery)  # (best effort: never redelivered)
                if self.partials and self._book.knows(event.room_id):
                    self._partial(event)
            elif isinstance(event, AIMessage) or (isinstance(event, CaptionFinal) and event.text.strip()):
                if isinstance(event, CaptionFinal):
                    self._finish(event.utterance_id)
                if not self._book.knows(event.room_id):
                    await self._learn(event.room_id)
                source, targets = self._book.plan(event)
                if source is None or not targets:
                    await consumer.ack(delivery)
                    continue
                await self._slots.acquire()
                work = self._ai_into(event, source, targets) if isinstance(event, AIMessage) \
                    else self._final_into(event, source, targets)
                self._start(self._handle(consumer, delivery, work))
            else:
                await consumer.ack(delivery)

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle(self, consumer: Consumer, delivery: Delivery, work: Coroutine[Any, Any, None]) -> None:
        """Do ``work`` (holding a slot), then acknowledge; on an unexpected failure leave it unacknowledged, so it is
        delivered again (to this or another worker) after the reclaim time."""
        try:
            await work
            await consumer.ack(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("translating %s of room %s failed", delivery.event.type, delivery.event.room_id)
        finally:
            self._slots.release()

    async def _learn(self, room_id: str) -> None:
        """A room first seen mid-way: its languages from the room's retained history."""
        try:
            history = await self._bus.history(room_channel(room_id))
        except Exception as exc:  # the live events teach it from now on
            logger.warning("could not read room %s's history (%s)", room_id, exc)
            return
        for past in history:
            if isinstance(past, _ROOM_STATE):
                self._book.apply(past)

    async def _backfill(self, room_id: str, languages: list[str]) -> None:
        """Someone came to read ``languages``: the room's latest captions and AI messages (``BACKFILL_*``) are
        translated into them too, so their transcript and the facilitator's recent words are not left untranslated.
        Best effort: nothing is retried."""
        try:
            history = await self._bus.history(room_channel(room_id))
            captions = [e for e in history if isinstance(e, CaptionFinal) and e.text.strip()][-BACKFILL_CAPTIONS:]
            messages = [e for e in history if isinstance(e, AIMessage) and e.language][-BACKFILL_AI_MESSAGES:]
            recent: list[CaptionFinal | AIMessage] = [*captions, *messages]
            for past in recent:
                source = self._book.source_of(past)
                if source is None:
                    continue
                targets = [x for x in languages if x != source]
                if isinstance(past, AIMessage):
                    await self._ai_into(past, source, targets)
                else:
                    await self._caption_into(past, source, targets)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("translating room %s's recent words into %s failed", room_id, ", ".join(languages))

    # Partial captions ----------------------------------------------------------------------------------------------
    def _finish(self, utterance_id: str) -> None:
        self._finished[utterance_id] = None
        self._partial_next.pop(utterance_id, None)
        while len(self._finished) > FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]

    def _partial(self, partial: CaptionPartial) -> None:
        """Translate this partial now, or keep it as the utterance's next (see the module's docstring)."""
        utterance = partial.utterance_id
        if utterance in self._finished or not f"{partial.committed} {partial.tentative}".strip():
            return
        if utterance in self._partial_busy:
            if utterance in self._partial_next:
                self.partials_skipped += 1
            self._partial_next[utterance] = partial
            return
        if self._finals_busy.get(partial.room_id):
            self.partials_skipped += 1
            return
        source, targets = self._book.plan(partial)
        targets = [t for t in targets if self.translator.supports(source, t)] if source is not None else []
        if source is None or not targets:
            return
        self._partial_busy.add(utterance)
        self._start(self._partial_into(partial, source, targets))

    async def _partial_into(self, partial: CaptionPartial, source: str, targets: list[str]) -> None:
        utterance = partial.utterance_id
        text = " ".join(f"{partial.committed} {partial.tentative}".split())
        try:
            async def into(target: str) -> None:
                try:
                    [translated] = await self.translator.translate([text], source, target)
                except TranslationUnavailable:
                    return
                if translated and utterance not in self._finished:
                    await self._bus.publish(CaptionTranslated(
                        room_id=partial.room_id, utterance_id=utterance, participant_id=partial.participant_id,
                        source_language=source, language=target, text=translated, partial=True,
                        backend=self.translator.label(source, target)))
                    self.partials_translated += 1

            await asyncio.gather(*(into(target) for target in targets))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.warning("translating a partial caption in room %s failed: %s", partial.room_id, exc)
        finally:
            self._partial_busy.discard(utterance)
            waiting = self._partial_next.pop(utterance, None)
            if waiting is not None:
                self._partial(waiting)

    # Final captions and AI messages -----------------------------------------------------------------------------------
    async def _final_into(self, caption: CaptionFinal, source: str, targets: list[str]) -> None:
        """A live final caption: its room's partials wait while it is translated."""
        room = caption.room_id
        self._finals_busy[room] = self._finals_busy.get(room, 0) + 1
        try:
            await self._caption_into(caption, source, targets)
        finally:
            left = self._finals_busy[room] - 1
            if left:
                self._finals_busy[room] = left
            else:
                del self._finals_busy[room]

    async def _caption_into(self, caption: CaptionFinal, source: str, targets: list[str]) -> None:
        """Into every target language at once (each language's translation goes out as soon as it is made)."""

        async def into(target: str) -> None:
            if not self.translator.supports(source, target):
                self._warn(source, target)
                return
            try:
                [text] = await self.translator.translate([caption.text], source, target)
            except TranslationUnavailable as exc:
                self.failed += 1
                logger.warning("translation %s -> %s failed in room %s: %s", source, target, caption.room_id, exc)
                return
            if not text:
                return
            await self._bus.publish(CaptionTranslated(
                room_id=caption.room_id, utterance_id=caption.utterance_id, participant_id=caption.participant_id,
                source_language=source, language=target, text=text, backend=self.translator.label(source, target)))
            await self._count()

        await asyncio.gather(*(into(target) for target in targets))

    async def _ai_into(self, message: AIMessage, source: str, targets: list[str]) -> None:
        """A rule message from each language's own table; anything else machine translated, points too."""
        for target in targets:
            rendered = self._render(target, message.key, dict(message.params)) \
                if self._render is not None and message.key else None
            if rendered is not None:
                out = AIMessageTranslated(room_id=message.room_id, message_id=message.message_id, language=target,
                                          text=rendered, machine=False, backend="facilitator")
            elif self.translator.supports(source, target):
                try:
                    texts = await self.translator.translate([message.text, *[p.text for p in message.points]],
                                                            source, target)
                except TranslationUnavailable as exc:
                    self.failed += 1
                    logger.warning("AI message translation %s -> %s failed in room %s: %s", source, target,
                                   message.room_id, exc)
                    continue
                out = AIMessageTranslated(room_id=message.room_id, message_id=message.message_id, language=target,
                                          text=texts[0], points=texts[1:],
                                          backend=self.translator.label(source, target))
            else:
                self._warn(source, target)
                continue
            await self._bus.publish(out)
            await self._count()

    async def _count(self) -> None:
        async with self._progress:
            self.translated += 1
            self._progress.notify_all()

    def _warn(self, source: str, target: str) -> None:
        if (source, target) not in self._warned:
            self._warned.add((source, target))
            logger.warning("captions in %s are not translated into %s: the %s backend has no model for it",
                           source, target, self.translator.name)
