"""Running the facilitator, inside ``moot serve`` or as its own process (``moot facilitator``).

``start_facilitator(settings, bus, storage)`` builds the configured language model and the ``FacilitatorService``;
``moot serve`` calls it in its lifespan, and ``run_worker`` calls the same function in a stand-alone process that
shares only the Redis bus and the database with the server nodes. The service talks to rooms only through bus
events, so nothing else differs. Exactly one process per deployment may run it: server nodes then set
``MOOT_FACILITATOR_ENABLED=false``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from facilitator.llm import LLMBackend, LLMCallRecord, create_llm
from facilitator.service import FacilitatorService
from facilitator.template import Template, builtin_templates
from server.bus import Bus, create_bus
from server.settings import Settings
from server.storage import Storage

logger = logging.getLogger(__name__)


def template_lookup(storage: Storage) -> Callable[[str], Awaitable[Template | None]]:
    """The template a room runs, with the room's question and approval setting, or None for no facilitator."""

    async def lookup(room_id: str) -> Template | None:
        deliberation = await asyncio.to_thread(storage.deliberation, room_id)
        if deliberation is None:
            return None
        template = builtin_templates().get(deliberation.template_id)
        if template is None:
            logger.warning("room %s names unknown template %s: no facilitator", room_id, deliberation.template_id)
            return None
        update: dict[str, str] = {"ai_messages": deliberation.ai_messages}
        if deliberation.question:
            update["question"] = deliberation.question
        return template.model_copy(update=update)

    return lookup


@dataclass
class RunningFacilitator:
    service: FacilitatorService
    llm: LLMBackend | None

    async def close(self) -> None:
        await self.service.close()
        if self.llm is not None:
            await self.llm.aclose()


async def start_facilitator(settings: Settings, bus: Bus, storage: Storage) -> RunningFacilitator:
    """The facilitator service on ``bus``, with the configured model. A local model is loaded when the first room
    with a deliberation becomes active (in the background), so a server whose rooms have no facilitator never pays
    its memory and start-up CPU."""
    llm = create_llm(settings.llm_backend, settings.llm_url, settings.llm_model, settings.llm_api_key,
                     settings.llm_timeout_s, settings.llm_model_path, settings.llm_device)

    async def record_llm_call(room_id: str, call: LLMCallRecord) -> None:
        await asyncio.to_thread(storage.add_llm_call, room_id, call.at, call.purpose, call.model, call.messages,
                                call.output, call.latency_s, call.outcome, call.error)

    review = settings.safety_llm_review == "on" or (
        settings.safety_llm_review == "auto" and settings.llm_backend == "openai")
    service = FacilitatorService(bus, template_lookup(storage), llm=llm, record_llm_call=record_llm_call,
                                 llm_safety_review=review, empty_room_end_s=settings.facilitator_empty_room_end_s)
    await service.start()
    logger.info("facilitator running (model: %s, safety review by model: %s)",
                f"{llm.name}:{llm.model}" if llm else "none", "on" if review else "off")
    return RunningFacilitator(service, llm)


async def run_worker(settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
    """``moot facilitator``: the facilitator alone, on the configured bus and database, until ``stop`` is set."""
    storage = Storage(settings.resolved_database_url())
    await asyncio.to_thread(storage.create_schema)
    bus = create_bus(settings.bus, settings.redis_url)
    await bus.start()
    try:
        running = await start_facilitator(settings, bus, storage)
        try:
            if ready is not None:
                ready.set()
            await stop.wait()
        finally:
            await running.close()
    finally:
        await bus.close()
        await asyncio.to_thread(storage.close)
