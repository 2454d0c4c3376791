"""Key points without a capable model: quotes picked from the transcript with the embedding model, covering every
speaker (not just the loudest), each linked to its line, labelled as quotes (never as AI-written), in the order they
were said; the selection is property-tested, the message checked with the real all-MiniLM-L6-v2, and the facilitator
service posts it when a summary is due and no capable model is configured."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from facilitator.quotes import INTRO, key_points, select_quotes
from facilitator.service import FacilitatorService
from facilitator.template import Template, builtin_templates
from server.core.bus import InProcessBus
from server.core.clock import ManualClock
from server.core.embeddings import default_embedder
from server.core.events import AIMessage, CaptionFinal, ParticipantInfo, ParticipantJoined


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["ada", "bo", "cy", "dee"]), min_size=1, max_size=30), st.integers(0, 2**16),
       st.integers(1, 8))
def test_every_speaker_is_quoted_once_at_least_in_line_order(speakers: list[str], seed: int, most: int) -> None:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(speakers), 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chosen = select_quotes(speakers, vectors, max_quotes=most)
    assert chosen == sorted(set(chosen)) and all(0 <= i < len(speakers) for i in chosen)
    assert {speakers[i] for i in chosen} == set(speakers), "every speaker is quoted"
    assert len(chosen) == max(len(set(speakers)), min(most, len(speakers)))
    assert select_quotes(speakers, vectors, max_quotes=most) == chosen, "deterministic"


def line(n: int, who: str, text: str, start: float = 0.0) -> CaptionFinal:
    return CaptionFinal(room_id="r", utterance_id=f"u{n}", participant_id=who.lower(), speaker_name=who, text=text,
                        start=start + n, end=start + n + 1)


TALK = [
    line(0, "Ada", "I think the council should publish every AI system it uses"),
    line(1, "Ada", "People have a right to know when a computer decides about their benefits"),
    line(2, "Ada", "And there should always be a human who can overturn the decision"),
    line(3, "Ada", "Publishing the list of systems would cost almost nothing"),
    line(4, "Ada", "Other cities already publish registers of their algorithms"),
    line(5, "Bo", "Yes"),  # too short to quote
    line(6, "Bo", "I worry that human review would make every decision much slower"),
    line(7, "Cy", "Could we test it with one department before doing it everywhere"),
]


async def test_quotes_cover_every_speaker_and_link_their_lines() -> None:
    message = await key_points(default_embedder(), "r", "discuss", TALK, 100.0, "m1")
    assert message is not None and message.kind == "summary" and message.ai_generated
    assert message.generated_by == "quotes:all-MiniLM-L6-v2" and message.text.startswith(INTRO)
    assert {p.text.split(":")[0] for p in message.points} == {"Ada", "Bo", "Cy"}, "the quiet ones too"
    quoted = {p.sources[0] for p in message.points}
    assert "u5" not in quoted and {"u6", "u7"} <= quoted
    assert message.sources == [p.sources[0] for p in message.points] == sorted(quoted, key=lambda u: int(u[1:]))
    for point in message.points:
        said = next(c for c in TALK if c.utterance_id == point.sources[0])
        assert point.label == "Quote" and point.text == f"{said.speaker_name}: “{said.text}”"
    assert await key_points(default_embedder(), "r", None, [line(9, "Ada", "Yes, indeed")], 1.0, "m2") is None


class WordEmbedder:
    """A deterministic stand-in for the model in service tests: a bag of words hashed into 64 dimensions."""

    name = "words"

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i, sum(map(ord, word)) % 64] += 1.0
            out[i] /= max(float(np.linalg.norm(out[i])), 1e-9)
        return out


async def test_without_a_capable_model_the_facilitator_posts_quotes() -> None:
    bus = InProcessBus()
    clock = ManualClock(start=0.0)
    template = builtin_templates()["quick-20"]  # discussion 2-11 min, a summary every 4 min

    async def lookup(room_id: str) -> Template | None:
        return template

    service = FacilitatorService(bus, lookup, clock, quotes=WordEmbedder())  # no language model at all
    await service.start()
    seen = await bus.subscribe("room:*")
    await bus.publish(ParticipantJoined(room_id="r", participant=ParticipantInfo(participant_id="ada", name="Ada")))
    await clock.advance(150, step=10)
    for caption in TALK:
        await bus.publish(caption.model_copy(update={"start": clock.now() + caption.start,
                                                     "end": clock.now() + caption.end}))
    await clock.advance(240, step=10)
    summary = None
    while summary is None:
        event = await seen.get(timeout=5)
        if isinstance(event, AIMessage) and event.kind == "summary":
            summary = event
    assert summary.generated_by == "quotes:words" and summary.text.startswith(INTRO)
    assert {p.text.split(":")[0] for p in summary.points} == {"Ada", "Bo", "Cy"}
    await service.close()
    await bus.close()
