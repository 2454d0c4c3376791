"""Themes across a deliberation's rooms: what was said (utterances of at least a few words) and the statements written
are embedded (``server/core/embeddings.py``, all-MiniLM-L6-v2) and clustered with scikit-learn's k-means, the number
of themes chosen by silhouette score. Each theme is named by its most central utterance (the one nearest the theme's
centre: a real quote, not a model's words) unless a language model names it later, and links to every source (room,
utterance or statement) it draws on, so a reader can check it.

Blocking and CPU-bound: run it off the event loop.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

from server.core.embeddings import Embedder

MIN_WORDS = 4  # shorter lines ("yes", "I agree") say nothing a theme could be about
MAX_THEMES = 8


@dataclass(frozen=True)
class Said:
    """One thing said or written: a caption (``kind`` utterance) or a statement."""

    kind: str  # utterance | statement
    source_id: str  # the utterance's or statement's id
    room_id: str
    speaker: str  # an alias, never a name
    text: str


class ThemeSource(BaseModel):
    kind: str
    source_id: str
    room_id: str
    speaker: str
    text: str


class Theme(BaseModel):
    label: str = Field(description="The most central utterance (a quote), or a name a language model gave.")
    named_by: str = Field(description="'central quote', or 'llm:<model>'")
    size: int
    rooms: list[str] = Field(description="The rooms it came up in.")
    speakers: int = Field(description="How many different people it came from.")
    sources: list[ThemeSource] = Field(description="Everything in the theme, most central first.")


def themes(said: list[Said], embedder: Embedder, max_themes: int = MAX_THEMES, seed: int = 0) -> list[Theme]:
    """The themes of ``said``, largest first (none when there is too little to cluster)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    items = [s for s in said if len(s.text.split()) >= MIN_WORDS]
    if len(items) < 4:
        return []
    vectors = embedder.encode([s.text for s in items])
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(2, min(max_themes, len(items) - 1) + 1):
            model = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
            if len(set(model.labels_)) < 2:
                continue
            score = float(silhouette_score(vectors, model.labels_, metric="cosine"))
            if best is None or score > best[0]:
                best = (score, model.labels_, model.cluster_centers_)
    if best is None:
        return []
    _, labels, centres = best
    found = []
    for cluster in range(len(centres)):
        members = [i for i, label in enumerate(labels) if label == cluster]
        if not members:
            continue
        closeness = vectors[members] @ centres[cluster]
        ordered = [members[j] for j in np.argsort(-closeness)]
        central = next((items[i] for i in ordered if items[i].kind == "utterance"), items[ordered[0]])
        sources = [ThemeSource(kind=items[i].kind, source_id=items[i].source_id, room_id=items[i].room_id,
                               speaker=items[i].speaker, text=items[i].text) for i in ordered]
        found.append(Theme(label=central.text, named_by="central quote", size=len(members),
                           rooms=sorted({items[i].room_id for i in members}),
                           speakers=len({(items[i].room_id, items[i].speaker) for i in members}), sources=sources))
    return sorted(found, key=lambda t: (-t.size, t.label))
