"""``moot import polis DIR``: a Polis export (raw files, or only the vote matrix) becomes a closed deliberation;
exporting it again gives back the same comments and votes (the Polis CSV round-trips); bad exports are refused with
the file and line named, and nothing is written."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.cli import main
from server.deliberations.polis_import import PolisImportError, load, parse
from server.deliberations.store import DeliberationStore
from tests.staff import bearer
from tests.test_polis_export import test_export_over_http_from_two_rooms as make_deliberation_with_votes

COMMENTS = """timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body
1700000000,x,0,0,1,1,1,"Open the library on Sundays, staffed by volunteers"
1700000000,x,1,2,0,0,-1,Something rude
1700000100,x,2,1,1,0,1,Keep Sunday hours short
"""
VOTES = """timestamp,datetime,comment-id,voter-id,vote
1700000200,x,0,0,1
1700000201,x,0,1,-1
1700000202,x,2,0,1
1700000203,x,2,1,1
1700000300,x,2,1,0
1700000204,x,1,0,1
"""


def write(directory: Path, **files: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name.replace("_", "-").replace("-csv", ".csv")).write_text(text)
    return directory


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_parse_keeps_the_latest_vote_and_leaves_moderated_out_comments_out(tmp_path: Path) -> None:
    conversation = parse(write(tmp_path / "x", comments_csv=COMMENTS, votes_csv=VOTES,
                               summary_csv='topic,"Libraries"\nconversation-description,"Sundays?\\nOr not."\n'))
    assert conversation.topic == "Libraries" and conversation.description == "Sundays?\nOr not."
    assert sorted(conversation.comments) == [0, 2] and conversation.skipped_comments == 1
    assert conversation.votes[(1, 2)][0] == 0, "the later vote counts"
    assert (0, 1) not in conversation.votes, "votes on a moderated-out comment are left out"
    assert conversation.participants == [0, 1]


@pytest.mark.parametrize(("files", "message"), [
    ({}, "no Polis export here"),
    ({"comments_csv": "comment-id,text\n0,a\n", "votes_csv": VOTES}, "missing column(s) comment-body"),
    ({"comments_csv": COMMENTS, "votes_csv": VOTES.replace("1700000201,x,0,1,-1", "1700000201,x,0,1,2")},
     "votes.csv line 3: a vote is 1, -1 or 0, not 2"),
    ({"comments_csv": COMMENTS, "votes_csv": VOTES + "1700000400,x,9,0,1\n"}, "comment 9 is not in comments.csv"),
    ({"comments_csv": COMMENTS.replace(",2,1,1,0,1,", ",two,1,1,0,1,"), "votes_csv": VOTES}, "'two' is not a number"),
])
def test_bad_exports_are_refused_with_the_place_named(tmp_path: Path, files: dict[str, str], message: str) -> None:
    with pytest.raises(PolisImportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(write(tmp_path / "bad", **files))


def test_the_vote_matrix_alone_is_enough(tmp_path: Path) -> None:
    matrix = "participant,group-id,n-comments,n-votes,n-agree,n-disagree,0,1\n0,,0,2,1,1,1,-1\n3,,0,1,0,0,,0\n"
    conversation = parse(write(tmp_path / "m", participants_votes_csv=matrix))
    assert sorted(conversation.comments) == [0, 1] and conversation.participants == [0, 3]
    assert {k: v[0] for k, v in conversation.votes.items()} == {(0, 0): 1, (0, 1): -1, (3, 1): 0}


def test_export_then_import_then_export_gives_the_same_comments_and_votes(client: TestClient, tmp_path: Path) -> None:
    make_deliberation_with_votes(client)
    organiser = bearer(client, "ada@example.org", "organiser")
    original = client.get("/api/deliberations", headers=organiser).json()[0]["id"]
    exported = {name: client.get(f"/api/deliberations/{original}/polis/{name}", headers=organiser).text
                for name in ("comments.csv", "votes.csv", "participants-votes.csv", "summary.csv")}
    directory = tmp_path / "polis"
    directory.mkdir()
    for name, text in exported.items():
        (directory / name).write_text(text)
    ctx: Any = client.app.state.ctx  # type: ignore[attr-defined]
    owner = ctx.accounts.store.user_by_email("ada@example.org")
    imported = load(ctx.storage.sessions, owner.id, parse(directory))
    record = DeliberationStore(ctx.storage.sessions).get(imported)
    assert record is not None and record.status == "closed" and record.spec.title == "Libraries on Sundays"
    again = {name: client.get(f"/api/deliberations/{imported}/polis/{name}", headers=organiser).text
             for name in exported}

    def votes(text: str) -> set[tuple[str, str, str, str]]:
        return {(v["timestamp"], v["comment-id"], v["voter-id"], v["vote"]) for v in rows(text)}

    def comments(text: str) -> list[tuple[str, ...]]:
        return [(c["timestamp"], c["comment-id"], c["author-id"], c["agrees"], c["disagrees"], c["comment-body"])
                for c in rows(text)]

    assert votes(again["votes.csv"]) == votes(exported["votes.csv"]) and len(votes(exported["votes.csv"])) == 4
    assert comments(again["comments.csv"]) == comments(exported["comments.csv"])
    assert rows(again["participants-votes.csv"]) == rows(exported["participants-votes.csv"])


def test_the_command_imports_and_says_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    export = write(tmp_path / "export", comments_csv=COMMENTS, votes_csv=VOTES)
    assert main(["import", "polis", str(export), "--owner", "nobody@example.org", "--data-dir", str(data)]) == 1
    assert "no such organiser" in capsys.readouterr().err
    assert main(["users", "--data-dir", str(data), "add", "org@example.org", "--role", "organiser"]) == 0
    assert main(["import", "polis", str(export), "--owner", "org@example.org", "--data-dir", str(data)]) == 0
    said = capsys.readouterr().out
    assert "2 statements, 4 votes, 2 participants; 1 comments moderated out in Polis left out" in said
    assert main(["import", "polis", str(tmp_path / "missing"), "--owner", "org@example.org",
                 "--data-dir", str(data)]) == 1
    assert "not a directory" in capsys.readouterr().err
