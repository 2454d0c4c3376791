"""A room's SRT, CSV and Markdown exports: speakers (and statement authors) by alias, times from the first caption,
nothing people said can become a spreadsheet formula or Markdown markup, and real names only for the organiser."""

from __future__ import annotations

import csv
import io

from fastapi.testclient import TestClient

from server.core.events import StatementAdded
from tests.test_api import add_caption, create


def test_srt_csv_and_markdown_exports(client: TestClient) -> None:
    room = create(client)
    add_caption(client, room["id"], 1, "we should build more homes", 1000.0)
    add_caption(client, room["id"], 2, "=HYPERLINK(\"http://evil\") **loud** [x](http://evil) <script>", 1003.0)
    storage = client.app.state.ctx.storage  # type: ignore[attr-defined]
    storage.add_statement(StatementAdded(room_id=room["id"], statement_id="s1", text="Build homes near the *station*",
                                         author_id="p1", author_name="Ada <b>"))
    storage.add_statement(StatementAdded(room_id=room["id"], statement_id="s2", text="Protect the parks",
                                         author_name="AI facilitator", ai_generated=True))
    assert storage.cast_vote("s1", "p1", "agree", 0) is not None
    assert storage.cast_vote("s1", "p2", "disagree", 0) is not None

    srt = client.get(f"/api/rooms/{room['id']}/transcript.srt")
    assert srt.status_code == 200 and "attachment" in srt.headers["content-disposition"]
    assert srt.text.startswith("1\n00:00:00,000 --> 00:00:02,500\nParticipant 1: we should build more homes\n")
    assert "2\n00:00:03,000 --> 00:00:05,500\nParticipant 1: =HYPERLINK" in srt.text and "Ada" not in srt.text

    table = list(csv.DictReader(io.StringIO(client.get(f"/api/rooms/{room['id']}/transcript.csv").text)))
    assert [(r["start_s"], r["end_s"], r["speaker"], r["language"]) for r in table] == [
        ("0.000", "2.500", "Participant 1", "en"), ("3.000", "5.500", "Participant 1", "en")]
    assert table[1]["text"].startswith("'=HYPERLINK"), "a formula is defused"
    assert table[0]["utterance_id"] == "u1"

    report = client.get(f"/api/rooms/{room['id']}/report.md")
    assert report.headers["content-type"].startswith("text/markdown")
    text = report.text
    assert text.startswith("# Housing in our town\n")
    assert "- Participant 1: 5 s (100%)" in text
    assert "- Build homes near the \\*station\\* (Participant 1): 1 agree, 1 disagree, 0 pass" in text
    assert "- Protect the parks (AI facilitator): 0 agree, 0 disagree, 0 pass" in text
    assert "\\*\\*loud\\*\\* \\[x\\]\\(http://evil\\) \\<script\\>" in text, "no markup from what was said"
    assert "Ada" not in text and "p1" not in text

    real = client.get(f"/api/rooms/{room['id']}/report.md?names=real")  # the room's creator
    assert real.status_code == 200 and "(Ada \\<b\\>)" in real.text
    assert [a for _, _, a in storage.audit_log(room["id"])] == ["export_real_names"]
