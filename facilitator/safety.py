"""Safety screening of what is said in a room: abusive or far off-topic utterances are flagged to moderators.

Two detectors, both producing ``SafetyFlagged`` events (stored, shown to moderators, never sent to the room):

- ``screen_utterance``: rules, run on every final caption at once. It catches abuse aimed at people (threats, directed
  insults, "shut up"-style attacks) with word-boundary patterns. It deliberately does not flag strong words about
  ideas ("that policy is stupid"): disagreement is the point of a deliberation.
- ``review_lines``: a language model reviews recent lines against the question for abuse the rules miss and for talk
  far off the topic. Only lines that exist in what it was shown can be flagged, and the question and transcript are
  passed as fenced, encoded data (``facilitator.prompt``: an utterance saying "ignore your instructions" is just a line
  to review, and no utterance or name can add a line of its own). A weak model can flag wrongly, so this only ever
  informs moderators and prompts one calm reminder; it never removes anyone.

The facilitator's response is calm and addressed to the group (``RoomFacilitator.respond_to_flag``), never naming or
shaming the speaker.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from facilitator.llm import LLMBackend, LLMCallRecord, generate_structured
from facilitator.prompt import MAX_QUESTION_CHARS, encode_field, number_lines
from server.core.events import CaptionFinal, SafetyCategory, SafetyFlagged

_TARGET = r"(?:you|u|ya|him|her|them|everyone|y'all)"
_INSULT = (r"(?:idiot|moron|imbecile|cretin|scum|loser|bitch|bastard|asshole|arsehole|dickhead|prick|twat|cunt|"
           r"retard|pig|parasite|vermin|piece of (?:shit|crap|garbage))s?")
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b(?:i|we)(?:'ll| will| am going to| are going to| gonna)\s+(?:kill|hurt|beat|stab|shoot|find)\s+"
                rf"{_TARGET}\b"), "a threat of violence"),
    (re.compile(r"\b(?:kill yourself|kys|(?:you|they) should (?:die|be shot|be killed))\b"),
     "wishing harm on someone"),
    (re.compile(rf"\b(?:you(?:'re| are)?|you're such|what an?|shut up,?)\s+(?:(?:an?|such an?|a total|a complete|"
                rf"fucking|bloody|stupid|ignorant|pathetic)\s+){{0,2}}{_INSULT}\b"), "a personal insult"),
    (re.compile(rf"\b(?:fuck|screw|sod)\s+(?:you|off|yourself|{_TARGET})\b"), "a personal attack"),
    (re.compile(r"\bshut (?:the (?:fuck|hell) )?up\b(?!\s+(?:the|a|an|this|that|these|those|our|your|their|its|it|"
                r"shop)\b)|\bpiss off\b|\bnobody (?:asked|cares what) you\b"),
     "telling someone to be quiet"),
]


def screen_utterance(caption: CaptionFinal) -> SafetyFlagged | None:
    """A flag if the utterance contains abuse aimed at people (rules; cheap enough for every caption)."""
    text = " ".join(caption.text.casefold().replace("\u2019", "'").split())
    for pattern, reason in _RULES:
        if pattern.search(text):
            return _flag(caption, "abuse", reason, "rules")
    return None


def _flag(caption: CaptionFinal, category: SafetyCategory, reason: str, detected_by: str) -> SafetyFlagged:
    return SafetyFlagged(room_id=caption.room_id, ts=caption.end, utterance_id=caption.utterance_id,
                         participant_id=caption.participant_id, speaker_name=caption.speaker_name,
                         category=category, reason=reason[:500], detected_by=detected_by)


class Finding(BaseModel):
    line: int = Field(ge=1, description="the number of the line in the data")
    category: SafetyCategory
    reason: str = Field(min_length=1, max_length=300)


class Review(BaseModel):
    flags: list[Finding] = Field(default_factory=list, max_length=20)


REVIEW_INSTRUCTIONS = (
    "You help moderators of a small-group deliberation. The question under discussion is given before the numbered "
    "lines. Flag a line only if it is clearly abusive towards a person (insult, threat, harassment, slur) — category "
    "\"abuse\" — or clearly far off the topic of the question (not a side remark, joke or greeting, but a sustained "
    "change of subject) — category \"off_topic\". Disagreement, strong opinions and criticism of ideas are NOT abuse. "
    "Most conversations have nothing to flag: then answer {\"flags\": []}."
)


async def review_lines(
    llm: LLMBackend, question: str, lines: Sequence[CaptionFinal], record: Callable[[LLMCallRecord], None],
    timeout_s: float = 60.0,
) -> list[SafetyFlagged]:
    """Ask the model to review ``lines`` (numbered from 1); flags naming lines that do not exist are dropped."""
    if not lines:
        return []
    numbered, _ = number_lines(lines)
    data = f"Question: {encode_field(question, MAX_QUESTION_CHARS)}\n\n{numbered}"
    review, call = await generate_structured(
        llm, purpose="safety_review", instructions=REVIEW_INSTRUCTIONS, data=data, schema=Review,
        fallback=Review(), max_tokens=300, temperature=0.0, timeout_s=timeout_s, record=record)
    flags: dict[tuple[str, str], SafetyFlagged] = {}
    for finding in review.flags:
        if 1 <= finding.line <= len(lines):
            caption = lines[finding.line - 1]
            key = (caption.utterance_id, finding.category)
            flags.setdefault(key, _flag(caption, finding.category, finding.reason, f"llm:{call.model}"))
    return list(flags.values())
