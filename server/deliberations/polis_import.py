"""``moot import polis DIR``: a Polis export loaded as a (closed) deliberation, so that Moot's exports and analysis
run on an existing Polis conversation.

Read: ``comments.csv`` with ``votes.csv`` (Polis' raw export), or ``participants-votes.csv`` (the vote matrix; texts
from ``comments.csv`` when it is there); ``summary.csv`` for the topic and description when present. Vote signs as
Polis writes them: +1 agree, -1 disagree, 0 pass. Comments moderated out in Polis (``moderated`` -1) are left out with
their votes; of several votes by one participant on one comment, the latest counts (as Polis does).

Loaded: a deliberation owned by the given organiser, closed at once (nobody joins an imported conversation), one room
holding the statements and votes, and each Polis participant as a lobby participant named "Polis participant N" who
arrived in the order of their Polis number, so that exporting it again numbers everyone as Polis did.

``parse`` is pure (files in, records out); ``load`` writes the records in one transaction.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIGNS = {1: "agree", -1: "disagree", 0: "pass"}
ORDER_STEP_S = 1e-6  # keeps Polis' order among comments (and arrivals) that share a second


class PolisImportError(ValueError):
    """The directory does not hold a readable Polis export; the message says what is wrong."""


@dataclass
class PolisConversation:
    topic: str
    description: str
    comments: dict[int, tuple[int | None, str, float]] = field(default_factory=dict)  # id -> (author, text, time)
    votes: dict[tuple[int, int], tuple[int, float]] = field(default_factory=dict)  # (voter, comment) -> (sign, time)
    skipped_comments: int = 0

    @property
    def participants(self) -> list[int]:
        authors = {author for author, _, _ in self.comments.values() if author is not None}
        return sorted(authors | {voter for voter, _ in self.votes})


def _rows(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            return list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise PolisImportError(f"{path.name}: cannot be read ({exc})") from None


def _int(value: str | None, where: str) -> int:
    try:
        return int(float(value or ""))
    except ValueError:
        raise PolisImportError(f"{where}: {value!r} is not a number") from None


def _need(rows: list[dict[str, str]], columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        raise PolisImportError(f"{name}: missing column(s) {', '.join(missing)}")


def parse(directory: Path) -> PolisConversation:
    """The conversation in ``directory`` (raises ``PolisImportError`` naming the file and what is wrong)."""
    if not directory.is_dir():
        raise PolisImportError(f"{directory}: not a directory")
    summary: dict[str, str] = {}
    if (directory / "summary.csv").exists():
        with (directory / "summary.csv").open(newline="", encoding="utf-8-sig") as f:
            summary = {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2}
    conversation = PolisConversation(summary.get("topic", "").strip() or directory.name,
                                     summary.get("conversation-description", "").replace("\\n", "\n").strip())
    comments_file, votes_file = directory / "comments.csv", directory / "votes.csv"
    matrix_file = directory / "participants-votes.csv"
    rejected: set[int] = set()
    if comments_file.exists():
        rows = _rows(comments_file)
        _need(rows, ("comment-id", "comment-body"), "comments.csv")
        for n, row in enumerate(rows, start=2):
            cid = _int(row["comment-id"], f"comments.csv line {n}")
            if row.get("moderated", "").strip() == "-1":
                rejected.add(cid)
                conversation.skipped_comments += 1
                continue
            author = row.get("author-id", "").strip()
            at = float(_int(row.get("timestamp") or "0", f"comments.csv line {n}"))
            conversation.comments[cid] = (_int(author, f"comments.csv line {n}") if author else None,
                                          row["comment-body"], at + cid * ORDER_STEP_S)
    if votes_file.exists() and comments_file.exists():
        rows = _rows(votes_file)
        _need(rows, ("comment-id", "voter-id", "vote"), "votes.csv")
        for n, row in enumerate(rows, start=2):
            where = f"votes.csv line {n}"
            cid, voter, sign = _int(row["comment-id"], where), _int(row["voter-id"], where), _int(row["vote"], where)
            if sign not in SIGNS:
                raise PolisImportError(f"{where}: a vote is 1, -1 or 0, not {sign}")
            if cid in rejected:
                continue
            if cid not in conversation.comments:
                raise PolisImportError(f"{where}: comment {cid} is not in comments.csv")
            at = float(_int(row.get("timestamp") or "0", where))
            if (voter, cid) not in conversation.votes or conversation.votes[(voter, cid)][1] <= at:
                conversation.votes[(voter, cid)] = (sign, at)
    elif matrix_file.exists():
        rows = _rows(matrix_file)
        _need(rows, ("participant",), "participants-votes.csv")
        columns = [c for c in (rows[0] if rows else {}) if c.strip().lstrip("-").isdigit()]
        now = time.time()
        for column in columns:
            cid = int(column)
            if cid not in conversation.comments and cid not in rejected:
                conversation.comments[cid] = (None, f"Comment {cid}", now + cid * ORDER_STEP_S)
        for n, row in enumerate(rows, start=2):
            voter = _int(row["participant"], f"participants-votes.csv line {n}")
            for column in columns:
                value = (row.get(column) or "").strip()
                if value and int(column) not in rejected:
                    sign = _int(value, f"participants-votes.csv line {n}")
                    if sign not in SIGNS:
                        raise PolisImportError(f"participants-votes.csv line {n}: a vote is 1, -1 or 0, not {sign}")
                    conversation.votes[(voter, int(column))] = (sign, now)
    else:
        raise PolisImportError(f"{directory}: no Polis export here (comments.csv with votes.csv, or "
                               "participants-votes.csv)")
    if not conversation.comments:
        raise PolisImportError(f"{directory}: the export has no comments")
    return conversation


def load(sessions: Any, organiser_id: str, conversation: PolisConversation) -> str:
    """Write the conversation as a closed deliberation of ``organiser_id``; returns its id."""
    from server.core.ids import new_id
    from server.deliberations.spec import DeliberationSpec
    from server.deliberations.store import ID_LENGTH, spec_columns
    from server.storage.tables import DeliberationRow, LobbyParticipantRow, RoomRow, StatementRow, VoteRow

    now = time.time()
    title = (conversation.topic or "Polis conversation")[:200]
    question = (conversation.description or title)[:2000]
    if len(title.strip()) < 3:
        title = f"Polis conversation {title}".strip()
    if len(question.strip()) < 3:
        question = title
    spec = DeliberationSpec(title=title, question=question)
    deliberation_id = new_id(ID_LENGTH)
    room_id = new_id(12)
    people = {pid: new_id(12) for pid in conversation.participants}
    statements = {cid: new_id(16) for cid in conversation.comments}
    first = min([at for _, _, at in conversation.comments.values()] + [now])
    with sessions() as s, s.begin():
        s.add(DeliberationRow(id=deliberation_id, organiser_id=organiser_id, status="closed", created_at=now,
                              updated_at=now, **spec_columns(spec)))
        s.flush()
        s.add(RoomRow(id=room_id, title="Imported from Polis", created_at=first, max_participants=max(1, len(people)),
                      deliberation_id=deliberation_id))
        s.flush()
        for rank, (pid, participant) in enumerate(sorted(people.items())):
            s.add(LobbyParticipantRow(id=participant, deliberation_id=deliberation_id,
                                      name=f"Polis participant {pid}", answers={}, consented_at=first,
                                      notice_version="polis-import", arrived_at=first + rank * ORDER_STEP_S,
                                      status="left", room_id=room_id, room_name=f"Polis participant {pid}"))
        for cid, (author, text, at) in sorted(conversation.comments.items()):
            s.add(StatementRow(statement_id=statements[cid], room_id=room_id, text=text,
                               author_id=people.get(author) if author is not None else None,
                               author_name=f"Polis participant {author}" if author is not None else "Polis",
                               ai_generated=False, sources=[], created_at=at, revision=0))
        s.flush()
        for (voter, cid), (sign, at) in conversation.votes.items():
            s.add(VoteRow(statement_id=statements[cid], participant_id=people[voter], choice=SIGNS[sign], ts=at,
                          revision=0))
    return deliberation_id

