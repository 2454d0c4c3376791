"""``moot worker translation``: caption translation (the consumer group ``translation`` on the shared bus) with the
backend the settings choose (``server/translation/backends.py``). Any number may run, on GPU or CPU; each caption
is translated once per language its room reads. ``moot serve`` runs one in process when a backend is available."""

from __future__ import annotations

import logging

from server.core.settings import Settings
from server.runtime import Runtime
from server.translation.backends import (
    CTranslate2Translator,
    OpenAITranslator,
    ScriptedTranslator,
    TextTranslator,
    TranslationUnavailable,
)
from server.translation.service import TranslationService

logger = logging.getLogger(__name__)


def create_translator(settings: Settings) -> TextTranslator | None:
    """The configured text translator; None for ``none`` and for ``whisper`` (the speech tier's X->English task).
    ``auto``: CTranslate2 when a model is registered, else the OpenAI-compatible endpoint when one is set."""
    from models.translation import registered_models

    registry = settings.resolved_mt_models_dir()
    url = settings.mt_url or settings.llm_url
    has_models = settings.mt_backend == "auto" and bool(registered_models(registry))
    backend = settings.resolved_mt_backend(has_models)
    if backend == "ctranslate2":
        models = registered_models(registry)
        if not models:
            raise TranslationUnavailable(f"MOOT_MT_BACKEND=ctranslate2, but no translation model is registered in "
                                         f"{registry}: convert one with `moot models import PATH`")
        return CTranslate2Translator(models, device=settings.mt_device, compute_type=settings.mt_compute_type,
                                     cpu_threads=settings.mt_cpu_threads)
    if backend == "openai":
        if not url:
            raise TranslationUnavailable("MOOT_MT_BACKEND=openai needs an endpoint: set MOOT_MT_URL (or MOOT_LLM_URL)")
        from facilitator.llm import OpenAICompatibleLLM

        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        return OpenAITranslator(OpenAICompatibleLLM(url, settings.mt_model or settings.llm_model, api_key=key,
                                                    timeout_s=settings.llm_timeout_s))
    if backend == "fake":
        return ScriptedTranslator()
    return None


def render_rule_message(language: str, key: str, params: dict[str, object]) -> str | None:
    """The facilitator's rule message ``key`` in ``language``, or None (then it is machine translated) when there is
    no table for that language, or the template's words in it are missing (a template without that translation)."""
    from facilitator.messages import MESSAGES, complete, has_language, say

    if not has_language(language) or key not in MESSAGES["en"] or not complete(language, params):
        return None
    return say(language, key, **params)


async def assemble(runtime: Runtime, required: bool = True) -> TranslationService | None:
    """Start the translation worker on ``runtime``. Without a text translator (``mt_backend`` none, or whisper):
    None, or ``TranslationUnavailable`` when ``required`` (a dedicated worker with nothing to do is a mistake)."""
    settings = runtime.settings
    translator = create_translator(settings)
    if translator is None:
        if required:
            raise TranslationUnavailable(f"MOOT_MT_BACKEND={settings.mt_backend} gives this worker no text translator: "
                                         f"register a model with `moot models import PATH`, or set MOOT_MT_URL")
        logger.info("caption translation: no text translation backend (MOOT_MT_BACKEND=%s)", settings.mt_backend)
        return None
    service = TranslationService(await runtime.resources.bus(), translator, name=runtime.resources.name,
                                 render=render_rule_message, partials=settings.mt_partials)
    await service.start()
    runtime.add("translation", service)
    return service
