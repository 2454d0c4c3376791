"""A deliberation's statements and votes in the layout of Polis' export, so that the tools of the Polis community
(red-dwarf, the Polis report, spreadsheets made for Polis data) read them as they are.

Four CSV files, as Polis writes them:

- ``comments.csv``: ``timestamp,datetime,comment-id,author-id,agrees,disagrees,moderated,comment-body``;
- ``votes.csv``: ``timestamp,datetime,comment-id,voter-id,vote`` with +1 agree, -1 disagree, 0 pass;
- ``participants-votes.csv``: ``participant,group-id,n-comments,n-votes,n-agree,n-disagree`` and one column per
  comment id holding the participant's vote (empty: no vote);
- ``summary.csv``: ``key,value`` rows (topic, url, voters, voters-in-conv, commenters, comments, groups,
  conversation-description).

Participants are numbered from 0 in the order they arrived in the deliberation's lobby (then anyone else in the order
they first wrote or voted), the same order as the aliases of the other exports: nobody's name or id leaves. Statements
are numbered from 0 in the order they were written, across all the deliberation's rooms. Statements the AI facilitator
proposed are authored by one extra participant, numbered after everyone else, who never votes. Times are whole seconds
(UTC), as in Polis.

``render`` is pure (records in, file texts out); ``gather`` reads the records from the database.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FILES = ("comments.csv", "votes.csv", "participants-votes.csv", "summary.csv")
VOTE_SIGNS = {"agree": 1, "disagree": -1, "pass": 0}
AI_AUTHOR = "ai"


@dataclass(frozen=True)
class Statement:
    statement_id: str
    author_id: str | None  # None: proposed by the AI facilitator
    text: str
    created_at: float


@dataclass(frozen=True)
class Vote:
    statement_id: str
    participant_id: str
    choice: str  # agree, disagree, pass
    at: float


@dataclass(frozen=True)
class Conversation:
    title: str
    question: str
    url: str
    arrival_order: Sequence[str]  # participant ids in the order they arrived
    statements: Sequence[Statement]
    votes: Sequence[Vote]


def polis_time(at: float) -> tuple[int, str]:
    """Whole epoch seconds and the date as Polis prints it (in UTC)."""
    moment = datetime.fromtimestamp(int(at), tz=UTC)
    return int(at), moment.strftime("%a %b %d %Y %H:%M:%S GMT+0000 (Coordinated Universal Time)")


def numbering(conversation: Conversation) -> tuple[dict[str, int], dict[str, int]]:
    """Polis participant numbers (by arrival, then by first activity; the AI last) and comment numbers (by time)."""
    statements = sorted(conversation.statements, key=lambda s: (s.created_at, s.statement_id))
    comment_ids = {s.statement_id: n for n, s in enumerate(statements)}
    people: dict[str, int] = {}
    for participant in conversation.arrival_order:
        people.setdefault(participant, len(people))
    activity = [(s.created_at, s.author_id) for s in statements if s.author_id is not None]
    activity += [(v.at, v.participant_id) for v in conversation.votes]
    for _, participant in sorted(activity):
        people.setdefault(participant, len(people))
    if any(s.author_id is None for s in statements):
        people[AI_AUTHOR] = len(people)
    return people, comment_ids


def _csv(rows: Sequence[Sequence[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def render(conversation: Conversation) -> dict[str, str]:
    """The four files' texts, by file name."""
    people, comment_ids = numbering(conversation)
    votes = [v for v in conversation.votes if v.statement_id in comment_ids and v.choice in VOTE_SIGNS]
    # Each participant's last word on each statement, indexed both ways once (not searched per row).
    by_statement: dict[str, dict[str, int]] = {}
    by_participant: dict[str, dict[int, int]] = {}
    for v in votes:
        by_statement.setdefault(v.statement_id, {})[v.participant_id] = VOTE_SIGNS[v.choice]
        by_participant.setdefault(v.participant_id, {})[comment_ids[v.statement_id]] = VOTE_SIGNS[v.choice]
    statements = sorted(conversation.statements, key=lambda s: comment_ids[s.statement_id])

    comments: list[list[Any]] = [["timestamp", "datetime", "comment-id", "author-id", "agrees", "disagrees",
                                  "moderated", "comment-body"]]
    for s in statements:
        on_it = list(by_statement.get(s.statement_id, {}).values())
        comments.append([*polis_time(s.created_at), comment_ids[s.statement_id],
                         people[s.author_id if s.author_id is not None else AI_AUTHOR],
                         on_it.count(1), on_it.count(-1), 1, s.text])

    vote_rows: list[list[Any]] = [["timestamp", "datetime", "comment-id", "voter-id", "vote"]]
    for v in sorted(votes, key=lambda v: (v.at, comment_ids[v.statement_id], people[v.participant_id])):
        vote_rows.append([*polis_time(v.at), comment_ids[v.statement_id], people[v.participant_id],
                          VOTE_SIGNS[v.choice]])

    authored: dict[str, int] = {}
    for s in statements:
        author = s.author_id if s.author_id is not None else AI_AUTHOR
        authored[author] = authored.get(author, 0) + 1
    ordered_comments = [comment_ids[s.statement_id] for s in statements]
    matrix: list[list[Any]] = [["participant", "group-id", "n-comments", "n-votes", "n-agree", "n-disagree",
               *map(str, ordered_comments)]]
    for participant, number in sorted(people.items(), key=lambda item: item[1]):
        mine = by_participant.get(participant, {})
        if not mine and not authored.get(participant):
            continue  # arrived but neither wrote nor voted: not a Polis participant
        matrix.append([number, "", authored.get(participant, 0), len(mine), list(mine.values()).count(1),
                       list(mine.values()).count(-1), *(mine.get(c, "") for c in ordered_comments)])

    voters = len({v.participant_id for v in votes})
    summary: list[list[Any]] = [["topic", conversation.title], ["url", conversation.url], ["voters", voters],
               ["voters-in-conv", voters], ["commenters", len(authored)], ["comments", len(statements)],
               ["groups", 0], ["conversation-description", conversation.question]]
    return {"comments.csv": _csv(comments), "votes.csv": _csv(vote_rows),
            "participants-votes.csv": _csv(matrix), "summary.csv": _csv(summary)}


def gather(sessions: Any, deliberation_id: str, title: str, question: str, url: str,
           arrival_order: Sequence[str]) -> Conversation:
    """The deliberation's statements and votes from the database (blocking: call off the event loop);
    ``arrival_order``: its participants in the order they arrived (the lobby's)."""
    from sqlalchemy import select

    from server.storage.tables import RoomRow, StatementRow, VoteRow

    with sessions() as s:
        rooms = select(RoomRow.id).where(RoomRow.deliberation_id == deliberation_id)
        statements = [Statement(r.statement_id, r.author_id, r.text, r.created_at)
                      for r in s.scalars(select(StatementRow).where(StatementRow.room_id.in_(rooms)))]
        rows = s.execute(select(VoteRow.statement_id, VoteRow.participant_id, VoteRow.choice, VoteRow.ts)
                         .join(StatementRow, StatementRow.statement_id == VoteRow.statement_id)
                         .where(StatementRow.room_id.in_(rooms)))
        votes = [Vote(statement, participant, choice, ts) for statement, participant, choice, ts in rows]
    return Conversation(title, question, url, arrival_order, statements, votes)
