"""``moot worker translation``: caption translation (the consumer group ``translation`` on the shared bus) with the
backend the settings choose (``server/translation/backends.py``). Any number may run, on GPU or CPU; each caption
is translated once per language its room reads. ``moot serve`` runs one in process when a backend is available."""

from __future__ import annotations

import logging

from server.runtime import Runtime
from server.translation.backends import create_translator
from server.translation.service import TranslationService

logger = logging.getLogger(__name__)


def render_rule_message(language: str, key: str, params: dict[str, object]) -> str | None:
    """The facilitator's rule message ``key`` in ``language``, or None when it has no table for that language."""
    from facilitator.messages import MESSAGES, has_language, say

    if not has_language(language) or key not in MESSAGES["en"]:
        return None
    return say(language, key, **params)


async def assemble(runtime: Runtime, required: bool = True) -> TranslationService | None:
    """Start the translation worker on ``runtime``. Without a text translator (``mt_backend`` none, or whisper):
    None, or ``TranslationUnavailable`` when ``required`` (a dedicated worker with nothing to do is a mistake)."""
    from server.translation.backends import TranslationUnavailable

    settings = runtime.settings
    translator = create_translator(settings)
    if translator is None:
        if required:
            raise TranslationUnavailable(f"MOOT_MT_BACKEND={settings.mt_backend} gives this worker no text translator: "
                                         f"register a model with `moot models import PATH`, or set MOOT_MT_URL")
        logger.info("caption translation: no text translation backend (MOOT_MT_BACKEND=%s)", settings.mt_backend)
        return None
    service = TranslationService(await runtime.resources.bus(), translator, name=runtime.resources.name,
                                 render=render_rule_message)
    await service.start()
    runtime.add("translation", service)
    return service
