"""Deliberation templates: the question, background material and timed stages a room runs through.

Templates are YAML files validated into typed models; every problem is reported with where it is in the file
(``stages.2.minutes: must be greater than 0``). ``builtin_templates()`` lists the templates shipped with Moot.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from server.core.events import base_language

BUILTIN_DIR = Path(__file__).parent / "templates"


PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


class TemplateError(ValueError):
    """A template file that cannot be used; the message lists every problem found."""


class StageKind(StrEnum):
    WELCOME = "welcome"  # greetings and an introductions round
    FRAMING = "framing"  # the question and background material
    DISCUSSION = "discussion"  # open discussion, with balance nudges and periodic summaries
    DRAFTING = "drafting"  # candidate statements proposed, edited and added
    VOTING = "voting"  # agree / disagree / pass on every statement
    CLOSING = "closing"  # closing summary and thanks


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    kind: StageKind
    title: str = Field(min_length=1, max_length=120)
    minutes: float = Field(gt=0, le=240)
    intro: str = Field(min_length=1, max_length=2000, description="What the facilitator says as the stage starts.")
    questions: list[str] = Field(default_factory=list, description="Questions to put to the group, in order.")
    time_warnings: list[float] | None = Field(
        default=None,
        description="Minutes before the end at which to say how long is left (default: 5 and 1, where they fit).",
    )
    summarise_every_minutes: float | None = Field(default=None, gt=0, le=60)

    @field_validator("questions")
    @classmethod
    def _questions_not_blank(cls, value: list[str]) -> list[str]:
        if any(not q.strip() for q in value):
            raise ValueError("questions must not be blank")
        return [q.strip() for q in value]

    @model_validator(mode="after")
    def _warnings_fit(self) -> Stage:
        if self.time_warnings is None:
            object.__setattr__(self, "time_warnings", [w for w in (5.0, 1.0) if w < self.minutes])
            return self
        too_late = [w for w in self.time_warnings if w <= 0 or w >= self.minutes]
        if too_late:
            raise ValueError(f"time_warnings {too_late} must be between 0 and the stage's {self.minutes:g} minutes")
        object.__setattr__(self, "time_warnings", sorted(self.time_warnings, reverse=True))
        return self

    @model_validator(mode="after")
    def _known_placeholders(self) -> Stage:
        unknown = sorted({name for text in (self.intro, *self.questions) for name in PLACEHOLDER.findall(text)}
                         - {"question"})
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}} (only {{question}} is replaced)")
        return self

    @property
    def warnings(self) -> list[float]:
        return list(self.time_warnings or [])


class StageText(BaseModel):
    """A stage's words in another language (what is not given stays in the template's language)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = Field(default=None, min_length=1, max_length=120)
    intro: str | None = Field(default=None, min_length=1, max_length=2000)
    questions: list[str] | None = None


class TemplateText(BaseModel):
    """A template's words in another language: the question and, by stage id, the stages' titles, intros and
    questions. The facilitator says them to a room in that language, and readers of it get its rule messages with
    them; a language without them gets the whole message machine translated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    question: str | None = Field(default=None, min_length=1, max_length=1000)
    stages: dict[str, StageText] = Field(default_factory=dict)


class Template(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    title: str = Field(min_length=1, max_length=200)
    language: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    question: str = Field(min_length=1, max_length=1000)
    background: str = Field(default="", max_length=8000)
    stages: list[Stage] = Field(min_length=1, max_length=20)
    ai_messages: Literal["direct", "approve"] = Field(
        default="direct",
        description="'approve': every AI message waits for a moderator to approve, edit or reject it.",
    )
    translations: dict[str, TemplateText] = Field(
        default_factory=dict, description="The template's words in other languages, by language code.")

    @model_validator(mode="after")
    def _consistent(self) -> Template:
        ids = [s.id for s in self.stages]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"stage ids must be unique; repeated: {', '.join(duplicates)}")
        kinds = [s.kind for s in self.stages]
        if StageKind.VOTING in kinds:
            first_vote = kinds.index(StageKind.VOTING)
            if StageKind.DRAFTING not in kinds[:first_vote]:
                raise ValueError("a voting stage needs a drafting stage before it (there is nothing to vote on)")
        for language, text in self.translations.items():
            if base_language(language) != language or base_language(language) == base_language(self.language):
                raise ValueError(f"translations.{language}: a base language code other than the template's "
                                 f"{self.language!r}")
            for stage_id, stage_text in text.stages.items():
                if stage_id not in ids:
                    raise ValueError(f"translations.{language}.stages.{stage_id}: no stage has this id")
                stage = self.stage(stage_id)
                if stage_text.questions is not None and len(stage_text.questions) != len(stage.questions):
                    raise ValueError(f"translations.{language}.stages.{stage_id}.questions: "
                                     f"{len(stage.questions)} questions, as in the stage")
                texts = [stage_text.intro or "", *(stage_text.questions or [])]
                unknown = sorted({n for t in texts for n in PLACEHOLDER.findall(t)} - {"question"})
                if unknown:
                    raise ValueError(f"translations.{language}.stages.{stage_id}: unknown placeholder "
                                     f"{{{unknown[0]}}} (only {{question}} is replaced)")
        return self

    @property
    def languages(self) -> list[str]:
        """The languages the template's words exist in: its own first."""
        return [base_language(self.language), *self.translations]

    def with_question(self, question: str) -> Template:
        """This template with a room's own question (in every language: the translations' questions are dropped)."""
        translations = {lang: text.model_copy(update={"question": None}) for lang, text in self.translations.items()}
        return self.model_copy(update={"question": question, "translations": translations})

    def localised(self, language: str | None) -> Template:
        """The template in ``language`` where its translation gives the words, else in its own (no translations)."""
        code = base_language(language or self.language)
        text = self.translations.get(code)
        if text is None:
            return self
        stages = []
        for stage in self.stages:
            words = text.stages.get(stage.id)
            if words is None:
                stages.append(stage)
                continue
            update = {k: v for k, v in words.model_dump().items() if v is not None}
            stages.append(stage.model_copy(update=update))
        update = {"title": text.title or self.title, "question": text.question or self.question, "stages": stages,
                  "language": code, "translations": {}}
        return self.model_copy(update=update)

    def texts(self, pick: Callable[[Template], str]) -> dict[str, str]:
        """One of the template's texts in each of its languages: ``{"en": ..., "fr": ...}`` (its own first)."""
        return {language: pick(self.localised(language)) for language in self.languages}

    def say(self, text: str) -> str:
        """A template text with ``{question}`` replaced by this deliberation's question (a room may override it)."""
        return text.replace("{question}", self.question)

    @property
    def total_minutes(self) -> float:
        return sum(s.minutes for s in self.stages)

    def stage(self, stage_id: str) -> Stage:
        for s in self.stages:
            if s.id == stage_id:
                return s
        raise KeyError(stage_id)


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_template(data: Any, source: str = "template") -> Template:
    if not isinstance(data, dict):
        raise TemplateError(f"{source}: a template is a mapping with id, title, question and stages")
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(f"{source} is not a valid deliberation template:\n{_describe(exc)}") from None


def load_template(path: Path) -> Template:
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise TemplateError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    return parse_template(data, str(path))


@functools.cache
def builtin_templates() -> dict[str, Template]:
    """The templates shipped with Moot, by id (read once per process)."""
    templates = [load_template(p) for p in sorted(BUILTIN_DIR.glob("*.yaml"))]
    return {t.id: t for t in templates}
