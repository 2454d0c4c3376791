"""What an organiser sets up: validated strictly (unknown fields, blank or invisible text, impossible group sizes,
unknown templates and languages, a mixing question that is not one of the sign-up questions are all refused with a
message naming the field)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from server.core.plaintext import normalise, visible_length

MAX_GROUP = 12
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")  # BCP 47 language with an optional region/script
QUESTION_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
STATUSES = ("draft", "open", "paused", "closed")
RUNNING = ("open", "paused")  # while its participants reach its lobby and rooms
# Which status an action leads to, from which statuses.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "open": (("draft", "paused"), "open"),
    "pause": (("open",), "paused"),
    "close": (("draft", "open", "paused"), "closed"),
}


def _text(value: str, minimum: int = 1) -> str:
    value = normalise(value)
    if visible_length(value) < minimum:
        raise ValueError(f"needs at least {minimum} visible character{'s' if minimum > 1 else ''}")
    return value


class SignupQuestion(BaseModel):
    """A question people answer in the lobby (for example an age band or a region), with its choices."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=QUESTION_ID.pattern, description="Short id, e.g. 'region'.")
    text: str = Field(min_length=1, max_length=300)
    choices: list[str] = Field(min_length=2, max_length=20)

    @field_validator("text")
    @classmethod
    def _visible(cls, value: str) -> str:
        return _text(value)

    @field_validator("choices")
    @classmethod
    def _choices(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            if len(value) > 100:
                raise ValueError("a choice has at most 100 characters")
            cleaned.append(_text(value))
        if len({c.casefold() for c in cleaned}) != len(cleaned):
            raise ValueError("choices must differ")
        return cleaned


class DeliberationSpec(BaseModel):
    """A deliberation's settings, as the organiser gives them."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    question: str = Field(min_length=1, max_length=2000)
    background: str = Field(default="", max_length=20_000, description="Material participants read first.")
    template: str = Field(default="quick-20", description="The facilitator's template id.")
    group_min: int = Field(default=4, ge=2, le=MAX_GROUP)
    group_max: int = Field(default=6, ge=2, le=MAX_GROUP)
    ai_messages: Literal["direct", "approve"] = "direct"
    cross_pollination: int = Field(default=3, ge=0, le=10, description="In its voting stage each room also votes on "
                                   "this many statements written in the other rooms (0: none).")
    signup_questions: list[SignupQuestion] = Field(default_factory=list, max_length=10)
    mix_question: str | None = Field(default=None, description="Spread the answers to this sign-up question "
                                     "evenly across rooms.")
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1, max_length=10)
    starts_at: float | None = Field(default=None, ge=0, description="When the first round starts (epoch s).")
    retention_days: int | None = Field(default=None, ge=1, le=3650,
                                       description="Transcripts are deleted this many days after closing.")

    @field_validator("title", "question")
    @classmethod
    def _visible(cls, value: str) -> str:
        return _text(value, 3)

    @field_validator("background")
    @classmethod
    def _background(cls, value: str) -> str:
        # Paragraphs are kept (only trailing space is trimmed); control characters other than newlines dropped.
        lines = [normalise(line) for line in value.replace("\r\n", "\n").split("\n")]
        return "\n".join(lines).strip()

    @field_validator("languages")
    @classmethod
    def _languages(cls, values: list[str]) -> list[str]:
        for value in values:
            if not LANGUAGE.match(value):
                raise ValueError(f"{value!r} is not a language code (e.g. en, fr, pt-BR)")
        if len(set(values)) != len(values):
            raise ValueError("each language once")
        return values

    @model_validator(mode="after")
    def _consistent(self) -> DeliberationSpec:
        if self.group_min > self.group_max:
            raise ValueError("group_min must not exceed group_max")
        ids = [q.id for q in self.signup_questions]
        if len(set(ids)) != len(ids):
            raise ValueError("sign-up question ids must differ")
        if self.mix_question is not None and self.mix_question not in ids:
            raise ValueError("mix_question must be the id of one of the sign-up questions")
        return self
