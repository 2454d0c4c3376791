"""Theme names from a capable language model (an OpenAI-compatible endpoint; the small bundled model is not asked):
each theme's most central contributions go to the model as fenced, encoded data, and it answers with a short name.
A name is labelled with the model that wrote it (``named_by: llm:<model>``) and keeps its sources, so a reader can
check it against what was said; when the model gives nothing usable the theme keeps its central quote."""

from __future__ import annotations

from pydantic import BaseModel, Field

from facilitator.llm import LLMBackend, LLMCallRecord, generate_structured
from facilitator.prompt import MAX_UTTERANCE_CHARS, encode_field, shorten
from server.report.themes import Theme

SHOWN = 12  # the most central contributions the model reads per theme
INSTRUCTIONS = (
    "These are contributions people made in a deliberation, grouped because they are about the same theme. Name the "
    "theme in at most 8 plain words, as a neutral topic (not a conclusion, not an opinion of your own), using only "
    "what the contributions say."
)


class ThemeName(BaseModel):
    name: str = Field(min_length=2, max_length=80)


async def name_themes(llm: LLMBackend, themes: list[Theme],
                      calls: list[LLMCallRecord] | None = None) -> list[Theme]:
    """The themes, each named by the model where it answered well (in order, one call per theme)."""
    named = []
    for theme in themes:
        data = "\n".join(f"[{n}] {encode_field(s.text, MAX_UTTERANCE_CHARS)}"
                         for n, s in enumerate(theme.sources[:SHOWN], start=1))
        answer, call = await generate_structured(llm, purpose="theme_name", instructions=INSTRUCTIONS, data=data,
                                                 schema=ThemeName, fallback=ThemeName(name="--"), max_tokens=60,
                                                 record=calls.append if calls is not None else None)
        if call.outcome == "ok" and answer.name.strip():
            theme = theme.model_copy(update={"label": shorten(" ".join(answer.name.split()), 80),
                                             "named_by": f"llm:{call.model}"})
        named.append(theme)
    return named
