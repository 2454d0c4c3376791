"""Themes across rooms with the shipped all-MiniLM-L6-v2 model (real weights, offline): utterances about three
different topics from three rooms fall into three themes, each named by one of its own quotes, linking to every
source; short lines are left out; too little text gives no themes."""

from __future__ import annotations

from server.core.embeddings import default_embedder
from server.report.themes import Said, themes

TOPICS = {
    "buses": ["The buses are always late in the morning rush hour",
              "We need more frequent bus services to the hospital",
              "A dedicated bus lane would make the buses faster",
              "Bus fares have become too expensive for families"],
    "trees": ["The park needs more trees to give shade in summer",
              "Planting trees along the streets would cool the town",
              "Old oak trees in the park should be protected",
              "Children love climbing the trees in the park"],
    "housing": ["Rents in the town centre are far too high now",
                "Young people cannot afford to buy a house here",
                "We should build more affordable homes near the station",
                "Empty flats above shops could become homes"],
}


def said() -> list[Said]:
    out = []
    for topic, lines in TOPICS.items():
        for n, text in enumerate(lines):
            room = f"room{n % 3}"  # every topic comes up in several rooms
            out.append(Said("utterance", f"{topic}{n}", room, f"Participant {n + 1}", text))
    out.append(Said("utterance", "short", "room0", "Participant 9", "Yes indeed"))
    return out


def test_three_topics_make_three_themes_named_by_their_own_quotes() -> None:
    found = themes(said(), default_embedder())
    assert len(found) == 3
    for theme in found:
        ids = {s.source_id for s in theme.sources}
        topic = next(t for t in TOPICS if any(i.startswith(t) for i in ids))
        assert ids == {f"{topic}{n}" for n in range(4)}, (theme.label, ids)
        assert theme.label in TOPICS[topic] and theme.named_by == "central quote"
        assert theme.label == theme.sources[0].text  # the most central comes first
        assert theme.size == 4 and len(theme.rooms) >= 2
    assert all(s.source_id != "short" for t in found for s in t.sources)


def test_too_little_to_cluster_gives_no_themes() -> None:
    assert themes(said()[:3], default_embedder()) == []
