"""The translation worker: the consumer group ``translation`` on the rooms channel. It follows which languages each
room reads (``book.LanguageBook``) and translates every final caption once into each of them other than its own,
publishing ``caption.translated`` into the room (every listener of that language shows it; the recorder stores it
beside the original). Any number of workers share the rooms' events; a worker that restarts, or sees a room for the
first time mid-way, reads the room's retained history to learn its languages.

AI messages are translated the same way for the languages other than the one they were written in: a rule message
(it has a ``key``) is rendered from the facilitator's own messages in each language (``render``, given by the
composition root), anything else (summaries, questions, drafts) is machine translated, its points too.

Translations run concurrently (up to ``concurrency`` captions at a time, across rooms), off the event loop in the
backend; the event is acknowledged once its translations are published, so a crash mid-way translates it again
(the recorder stores each utterance's translation into a language once).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from server.core.bus import Bus, Consumer, Delivery, room_channel
from server.core.events import (
    AIMessage,
    AIMessageTranslated,
    CaptionFinal,
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
_ROOM_STATE = (RoomLanguages, ParticipantJoined, ParticipantLeft, ParticipantLanguage)


class TranslationService:
    def __init__(self, bus: Bus, translator: TextTranslator, name: str = "translation", concurrency: int = 8,
                 render: Callable[[str, str, dict[str, object]], str | None] | None = None) -> None:
        """``render(language, key, params)``: a rule message in ``language`` (None: no table for it)."""
        self._bus = bus
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
        self.latencies: list[float] = []  # seconds from the caption's publication to its translation's (recent)
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
                "translated": self.translated, "failed": self.failed, "in_flight": len(self._inflight)}

    async def wait_translated(self, count: int, timeout: float) -> None:
        async with self._progress:
            await asyncio.wait_for(self._progress.wait_for(lambda: self.translated >= count), timeout)

    async def _run(self, consumer: Consumer) -> None:
        async for delivery in consumer:
            event = delivery.event
            if isinstance(event, _ROOM_STATE):
                if not self._book.knows(event.room_id) and not isinstance(event, RoomLanguages):
                    await self._learn(event.room_id)
                self._book.apply(event)
                await consumer.ack(delivery)
            elif isinstance(event, AIMessage) and event.language:
                if not self._book.knows(event.room_id):
                    await self._learn(event.room_id)
                written_in = event.language.split("-", 1)[0].lower()
                others = [t for t in self._book.languages(event.room_id) if t != written_in]
                if not others:
                    await consumer.ack(delivery)
                    continue
                await self._slots.acquire()
                task = asyncio.create_task(self._translate_ai(consumer, delivery, event, written_in, others))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            elif isinstance(event, CaptionFinal) and event.text.strip():
                if not self._book.knows(event.room_id):
                    await self._learn(event.room_id)
                source, targets = self._book.plan(event)
                if source is None or not targets:
                    await consumer.ack(delivery)
                    continue
                await self._slots.acquire()
                task = asyncio.create_task(self._translate(consumer, delivery, event, source, targets))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)
            else:
                await consumer.ack(delivery)

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

    async def _translate(self, consumer: Consumer, delivery: Delivery, caption: CaptionFinal, source: str,
                         targets: list[str]) -> None:
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
            if caption.ts:
                self.latencies = [*self.latencies[-999:], max(0.0, time.time() - caption.ts)]
            async with self._progress:
                self.translated += 1
                self._progress.notify_all()

        try:
            await asyncio.gather(*(into(target) for target in targets))
            await consumer.ack(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # left unacknowledged: delivered again (to this or another worker) after the reclaim time
            logger.exception("translating a caption of room %s failed", caption.room_id)
        finally:
            self._slots.release()

    async def _translate_ai(self, consumer: Consumer, delivery: Delivery, message: AIMessage, source: str,
                            targets: list[str]) -> None:
        try:
            for target in targets:
                rendered = self._render(target, message.key, dict(message.params)) \
                    if self._render is not None and message.key else None
                if rendered is not None:
                    out = AIMessageTranslated(room_id=message.room_id, message_id=message.message_id,
                                              language=target, text=rendered, machine=False, backend="facilitator")
                elif self.translator.supports(source, target):
                    try:
                        texts = await self.translator.translate([message.text, *[p.text for p in message.points]],
                                                                source, target)
                    except TranslationUnavailable as exc:
                        self.failed += 1
                        logger.warning("AI message translation %s -> %s failed in room %s: %s", source, target,
                                       message.room_id, exc)
                        continue
                    out = AIMessageTranslated(room_id=message.room_id, message_id=message.message_id,
                                              language=target, text=texts[0], points=texts[1:],
                                              backend=self.translator.label(source, target))
                else:
                    self._warn(source, target)
                    continue
                await self._bus.publish(out)
                async with self._progress:
                    self.translated += 1
                    self._progress.notify_all()
            await consumer.ack(delivery)
        except asyncio.CancelledError:
            raise
        except Exception:  # unacknowledged: delivered again after the reclaim time
            logger.exception("translating an AI message of room %s failed", message.room_id)
        finally:
            self._slots.release()

    def _warn(self, source: str, target: str) -> None:
        if (source, target) not in self._warned:
            self._warned.add((source, target))
            logger.warning("captions in %s are not translated into %s: the %s backend has no model for it",
                           source, target, self.translator.name)
