"""The cross-room report as a background job over the API: a deliberation of two rooms whose participants fall into
two camps across both rooms, talking about three topics. Starting the job answers at once (202) while it runs; a
second start is refused while it runs; when done, the report has the two camps as opinion groups (by Polis number,
in arrival order), the shared statements first by consensus, each topic's utterances in a theme of their own named by
a quote, and each room's participation and speaking balance."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from server.app import create_app
from server.core.events import CaptionFinal, StatementAdded
from server.core.settings import Settings
from server.report.build import gini_balance
from tests.seating import seated
from tests.staff import bearer
from tests.test_report import CAMP_A, SHARED, TEXTS
from tests.test_report_themes import TOPICS


def test_the_report_job_builds_groups_themes_and_participation(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path, asr_backend="none", facilitator_enabled=False, llm_backend="none"))
    with TestClient(app) as client:
        organiser = bearer(client)
        names = tuple(f"Person {n}" for n in range(8))
        seating = seated(client, organiser, names, group=4)
        storage = app.state.ctx.storage
        ids = [p["participant_id"] for p in seating.people]
        room_of = {pid: room for room, members in seating.rooms.items() for pid in members}
        for n, text in enumerate(TEXTS):  # four statements written in each room
            author = ids[n % len(ids)]
            storage.add_statement(StatementAdded(room_id=room_of[author], statement_id=f"st{n}", text=text,
                                                 author_id=author, author_name="x", ts=1000.0 + n))
        for index, pid in enumerate(ids):  # camp A: even arrivals (both rooms hold both camps)
            camp_a = index % 2 == 0
            for n in range(len(TEXTS)):
                choice = "agree" if n in SHARED or (n in CAMP_A) == camp_a else "disagree"
                assert storage.cast_vote(f"st{n}", pid, choice, 0) is not None
        line = 0
        for topic, lines in TOPICS.items():
            for text in lines:
                speaker = ids[line % len(ids)]
                storage.add_caption(CaptionFinal(room_id=room_of[speaker], utterance_id=f"{topic}{line}",
                                                 participant_id=speaker, speaker_name="x", text=text,
                                                 start=float(line * 10), end=float(line * 10 + 4 + line % 3)))
                line += 1

        # One statement was shared into the other room's vote (cross-pollination): still one statement, counted
        # where it was written.
        other_room = next(room for room in seating.rooms if room != room_of[ids[0]])
        assert storage.share_once(other_room, seating.deliberation, lambda _: ["st0"], 1500.0) == ["st0"]

        url = f"/api/deliberations/{seating.deliberation}/report"
        assert client.get(url, headers=organiser).json()["status"] == "none"
        started = client.post(url, headers=organiser)
        assert started.status_code == 202, started.text
        assert started.json()["status"] in ("running", "done")
        again = client.post(url, headers=organiser)
        assert again.status_code in (202, 409)  # refused while the first still runs
        client.portal.call(app.state.ctx.reports.wait)  # type: ignore[union-attr]
        state = client.get(url, headers=organiser).json()
        assert state["status"] == "done", state["error"]
        report = state["report"]

    opinions = report["opinions"]
    camps = sorted(sorted(g["members"]) for g in opinions["groups"])
    assert camps == [[0, 2, 4, 6], [1, 3, 5, 7]], camps
    assert {s["statement_id"] for s in opinions["ranked_consensus"][:2]} == SHARED
    # Statements are material too (the bus-lane statements may form themes of their own), but each topic's
    # utterances stay together, apart from the other topics'.
    theme_of = {s["source_id"]: n for n, t in enumerate(report["themes"]) for s in t["sources"]}
    topic_themes = {topic: {theme_of[f"{topic}{n}"] for n in range(12) if f"{topic}{n}" in theme_of}
                    for topic in TOPICS}
    assert all(len(found) == 1 for found in topic_themes.values()), topic_themes
    assert len({next(iter(found)) for found in topic_themes.values()}) == 3
    for theme in report["themes"]:  # named by its most central utterance (a statement only when it has none)
        quotes = [x["text"] for x in theme["sources"] if x["kind"] == "utterance"] or [theme["sources"][0]["text"]]
        assert theme["named_by"] == "central quote" and theme["label"] == quotes[0]
    rooms = report["rooms"]
    assert len(rooms) == 2 and sum(r["utterances"] for r in rooms) == 12 and sum(r["statements"] for r in rooms) == 8
    assert sum(r["votes"] for r in rooms) == 8 * 8
    sources = [x["source_id"] for t in report["themes"] for x in t["sources"]]
    assert len(sources) == len(set(sources)) and sources.count("st0") == 1
    for room in rooms:
        assert room["participants"] == 4 and 0 < room["balance"] <= 1
        assert all(s["speaker"].startswith("Participant ") for s in room["speaking"])


def test_balance_is_one_when_even_and_low_when_one_talks() -> None:
    assert gini_balance([]) is None and gini_balance([0.0, 0.0]) is None
    assert gini_balance([10.0, 10.0, 10.0]) == 1.0
    lopsided = gini_balance([100.0, 0.0, 0.0, 0.0])
    assert lopsided is not None and lopsided < 0.3
