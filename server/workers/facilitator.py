"""Running the facilitator, inside ``moot serve`` or as its own process (``moot worker facilitator``).

``start_facilitator(settings, bus, storage)`` builds the configured language model and the ``FacilitatorService``;
``moot serve`` calls it in its lifespan, and ``assemble`` (``moot worker facilitator``) calls the same function in a
process that shares only the Redis bus and the database with the server nodes. The service talks to rooms only through
bus events, so nothing else differs. Any number of facilitator workers may run: each room is facilitated by the one
holding its lease (``server.core.directory``), and another takes a room over when that one dies. Server nodes then set
``MOOT_FACILITATOR_ENABLED=false``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from facilitator.backends import create_llm
from facilitator.llm import LLMBackend
from facilitator.service import FacilitatorService
from facilitator.template import Template, builtin_templates
from server.core.bus import Bus
from server.core.directory import RoomDirectory
from server.core.settings import Settings
from server.runtime import Runtime
from server.storage import Storage

logger = logging.getLogger(__name__)


def template_lookup(storage: Storage) -> Callable[[str], Awaitable[Template | None]]:
    """The template a room runs, with the room's question and approval setting, or None for no facilitator."""

    async def lookup(room_id: str) -> Template | None:
        deliberation = await asyncio.to_thread(storage.room_plan, room_id)
        if deliberation is None:
            return None
        template = builtin_templates().get(deliberation.template_id)
        if template is None:
            logger.warning("room %s names unknown template %s: no facilitator", room_id, deliberation.template_id)
            return None
        if deliberation.question:
            template = template.with_question(deliberation.question)
        return template.model_copy(update={"ai_messages": deliberation.ai_messages})

    return lookup


@dataclass
class RunningFacilitator:
    service: FacilitatorService
    llm: LLMBackend | None

    def health(self) -> dict[str, object]:
        return self.service.health()

    async def close(self) -> None:
        await self.service.close()
        if self.llm is not None:
            await self.llm.aclose()


async def start_facilitator(settings: Settings, bus: Bus, storage: Storage,
                            directory: RoomDirectory | None = None) -> RunningFacilitator:
    """The facilitator service on ``bus``, with the configured model. A local model is loaded when the first room
    with a deliberation becomes active (in the background), so a server whose rooms have no facilitator never pays
    its memory and start-up CPU."""
    api_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    llm = create_llm(settings.llm_backend, settings.llm_url, settings.llm_model, api_key, settings.llm_timeout_s,
                     settings.llm_model_path, settings.llm_device)

    review = settings.safety_llm_review == "on" or (
        settings.safety_llm_review == "auto" and settings.llm_backend == "openai")
    use_quotes = settings.summaries == "quotes" or (settings.summaries == "auto" and settings.llm_backend != "openai")
    quotes = None
    if use_quotes and settings.embeddings_backend == "minilm":
        from server.core.embeddings import default_embedder

        quotes = default_embedder()
    service = FacilitatorService(bus, template_lookup(storage), llm=llm, llm_safety_review=review,
                                 empty_room_end_s=settings.facilitator_empty_room_end_s, directory=directory,
                                 quotes=quotes)
    await service.start()
    logger.info("facilitator running (model: %s, safety review by model: %s, key points: %s)",
                f"{llm.name}:{llm.model}" if llm else "none", "on" if review else "off",
                "selected quotes" if quotes else ("model summaries" if llm else "none"))
    return RunningFacilitator(service, llm)


async def assemble(runtime: Runtime) -> None:
    """``moot worker facilitator``: the facilitator alone on the shared bus and database. Any number of these may
    run: each facilitates the rooms whose lease it holds."""
    resources = runtime.resources
    directory = await resources.directory(runtime.settings.facilitator_lease_ttl_s)
    running = await start_facilitator(runtime.settings, await resources.bus(), await resources.storage(), directory)
    runtime.add("facilitator", running)
