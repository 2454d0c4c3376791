"""A deliberation's statements and votes in Polis' export layout: the pure rendering (numbering, vote signs, counts,
the participant matrix, the summary), and the export over HTTP from statements and votes cast in two rooms."""

from __future__ import annotations

import csv
import io
from typing import Any

from fastapi.testclient import TestClient

from server.core.events import StatementAdded
from server.deliberations.polis_export import Conversation, Statement, Vote, polis_time, render
from tests.seating import seated
from tests.staff import bearer

T0 = 1_800_000_000.0


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_render_numbers_people_by_arrival_and_signs_votes_as_polis_does() -> None:
    conversation = Conversation(
        title="Libraries", question="Open on Sundays?", url="https://moot.example/d/abc",
        arrival_order=["p-bo", "p-ada", "p-quiet"],  # Bo arrived first; the quiet one never wrote nor voted
        statements=[Statement("s2", None, "Open on Sundays, with volunteers", T0 + 20),  # the AI proposed it
                    Statement("s1", "p-ada", 'Keep it closed, "Sunday is rest"', T0 + 10)],
        votes=[Vote("s1", "p-bo", "agree", T0 + 30), Vote("s1", "p-ada", "agree", T0 + 31),
               Vote("s2", "p-bo", "disagree", T0 + 32), Vote("s2", "p-ada", "pass", T0 + 33),
               Vote("s2", "p-late", "agree", T0 + 40)])  # voted but never in the lobby: numbered after everyone
    files = render(conversation)

    comments = rows(files["comments.csv"])
    assert list(comments[0]) == ["timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees",
                                 "moderated", "comment-body"]
    assert [(c["comment-id"], c["author-id"], c["agrees"], c["disagrees"], c["comment-body"]) for c in comments] == [
        ("0", "1", "2", "0", 'Keep it closed, "Sunday is rest"'),  # oldest first; Ada is participant 1
        ("1", "4", "1", "1", "Open on Sundays, with volunteers"),  # the AI: after the 4 people
    ]
    assert comments[0]["timestamp"] == str(int(T0 + 10))
    assert comments[0]["datetime"] == polis_time(T0 + 10)[1] and "GMT+0000" in comments[0]["datetime"]

    votes = rows(files["votes.csv"])
    assert [(v["comment-id"], v["voter-id"], v["vote"]) for v in votes] == [
        ("0", "0", "1"), ("0", "1", "1"), ("1", "0", "-1"), ("1", "1", "0"), ("1", "3", "1")]

    matrix = rows(files["participants-votes.csv"])
    assert list(matrix[0])[:6] == ["participant", "group-id", "n-comments", "n-votes", "n-agree", "n-disagree"]
    assert [(m["participant"], m["n-comments"], m["n-votes"], m["n-agree"], m["n-disagree"], m["0"], m["1"])
            for m in matrix] == [("0", "0", "2", "1", "1", "1", "-1"), ("1", "1", "2", "1", "0", "1", "0"),
                                 ("3", "0", "1", "1", "0", "", "1"), ("4", "1", "0", "0", "0", "", "")]

    summary = dict(csv.reader(io.StringIO(files["summary.csv"])))
    assert summary == {"topic": "Libraries", "url": "https://moot.example/d/abc", "voters": "3",
                       "voters-in-conv": "3", "commenters": "2", "comments": "2", "groups": "0",
                       "conversation-description": "Open on Sundays?"}
    assert "p-ada" not in "".join(files.values()), "no participant id leaves"


def test_an_empty_deliberation_exports_headers_only() -> None:
    files = render(Conversation("T", "Q?", "u", [], [], []))
    assert rows(files["comments.csv"]) == [] and rows(files["votes.csv"]) == []
    assert rows(files["participants-votes.csv"]) == []


def test_export_over_http_from_two_rooms(client: TestClient) -> None:
    organiser = bearer(client, "ada@example.org", "organiser")
    made = seated(client, organiser, ("Ann", "Ben", "Cat", "Dan"))
    deliberation, people, rooms = made.deliberation, made.people, made.rooms
    storage: Any = client.app.state.ctx.storage  # type: ignore[attr-defined]
    statements = []
    for n, (room, members) in enumerate(sorted(rooms.items())):
        statement = StatementAdded(room_id=room, statement_id=f"st-{n}", text=f"Statement {n}",
                                   author_id=members[0], author_name="x")
        assert storage.add_statement(statement)
        statements.append(statement)
        for member, choice in zip(members, ("agree", "disagree"), strict=True):
            assert storage.cast_vote(statement.statement_id, member, choice, 0) is not None

    moderator = bearer(client, "mo@example.org", "moderator")
    token = client.post(f"/api/deliberations/{deliberation}/invites", headers=organiser).json()["url"].rsplit("/")[-1]
    assert client.post(f"/api/invites/{token}/accept", headers=moderator).status_code == 200
    for who in (organiser, moderator):
        answer = client.get(f"/api/deliberations/{deliberation}/polis/votes.csv", headers=who)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        assert 'filename="votes.csv"' in answer.headers["content-disposition"]
    votes = rows(client.get(f"/api/deliberations/{deliberation}/polis/votes.csv", headers=organiser).text)
    assert sorted(v["vote"] for v in votes) == ["-1", "-1", "1", "1"]
    arrival = {p["participant_id"]: n for n, p in enumerate(people)}
    expected = {(str(n), str(arrival[m]), sign) for n, (_, members) in enumerate(sorted(rooms.items()))
                for m, sign in zip(members, ("1", "-1"), strict=True)}
    assert {(v["comment-id"], v["voter-id"], v["vote"]) for v in votes} == expected
    comments = rows(client.get(f"/api/deliberations/{deliberation}/polis/comments.csv", headers=organiser).text)
    assert [c["comment-body"] for c in comments] == ["Statement 0", "Statement 1"]
    summary = dict(csv.reader(io.StringIO(
        client.get(f"/api/deliberations/{deliberation}/polis/summary.csv", headers=organiser).text)))
    assert summary["voters"] == "4" and summary["url"].endswith(f"/d/{deliberation}")
    matrix = client.get(f"/api/deliberations/{deliberation}/polis/participants-votes.csv", headers=organiser)
    assert len(rows(matrix.text)) == 4
    assert client.get(f"/api/deliberations/{deliberation}/polis/secrets.csv", headers=organiser).status_code == 404
    for name in ("Ann", "Ben", *(p["participant_id"] for p in people)):
        assert all(name not in client.get(f"/api/deliberations/{deliberation}/polis/{f}", headers=organiser).text
                   for f in ("comments.csv", "votes.csv", "participants-votes.csv"))
