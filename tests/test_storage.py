"""Storage on SQLite (default) and PostgreSQL (real server): rooms, participants, captions, restart survival,
statements that keep their meaning once voted on, summary flags stored once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, create_engine, event, select, text

from server.core.events import CaptionFinal, CaptionWord, StatementAdded
from server.storage import Storage
from server.storage.tables import VoteRow
from tests.databases import postgres_database


def caption(room: str, n: int, start: float) -> CaptionFinal:
    return CaptionFinal(
        room_id=room, utterance_id=f"u{n}-{room}", participant_id="p1", speaker_name="Ada", text=f"line {n}",
        start=start, end=start + 1, language="en", words=[CaptionWord(word="line", start=start, end=start + 0.5)],
    )


@pytest.fixture
def storage_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_database()


def test_transcript_survives_restart_and_is_ordered(storage_url: str) -> None:
    store = Storage(storage_url)
    store.create_schema()
    room = store.create_room("Housing", 8)
    other = store.create_room("Other", 8)
    assert store.add_caption(caption(room.id, 2, 20.0))
    assert store.add_caption(caption(room.id, 1, 10.0))
    assert store.add_caption(caption(other.id, 9, 5.0))
    assert not store.add_caption(caption(room.id, 1, 10.0)), "the same utterance is stored once"
    store.close()

    reopened = Storage(storage_url)
    reopened.create_schema()
    lines = reopened.transcript(room.id)
    assert [c.text for c in lines] == ["line 1", "line 2"]
    assert lines[0].words[0].word == "line"
    assert reopened.get_room(room.id) == room
    assert reopened.get_room("nope") is None
    reopened.close()


def test_participants(storage_url: str) -> None:
    store = Storage(storage_url)
    store.create_schema()
    room = store.create_room("R", 8)
    p = store.add_participant(room.id, "Ada", consented_at=1.0)
    store.mark_left(p.id)
    store.mark_left("unknown")
    (listed,) = store.list_participants(room.id)
    assert listed.name == "Ada" and listed.left_at is not None
    store.close()


def test_older_database_gains_the_new_columns_and_keeps_its_rows(storage_url: str) -> None:
    """A database made before AI-message approval existed (no status, no ai_messages setting) is upgraded in place."""
    engine = create_engine(storage_url)
    with engine.begin() as conn:
        for statement in [
            "CREATE TABLE rooms (id VARCHAR(32) PRIMARY KEY, title VARCHAR(200), created_at FLOAT, "
            "max_participants INTEGER)",
            "CREATE TABLE deliberations (room_id VARCHAR(32) PRIMARY KEY REFERENCES rooms(id), "
            "template_id VARCHAR(40), question TEXT)",
            "CREATE TABLE ai_messages (message_id VARCHAR(80) PRIMARY KEY, room_id VARCHAR(32) REFERENCES rooms(id), "
            "ts FLOAT, event JSON)",
            "INSERT INTO rooms VALUES ('abcd2345', 'Old room', 1.0, 8)",
            "INSERT INTO deliberations VALUES ('abcd2345', 'quick-20', NULL)",
            "INSERT INTO ai_messages VALUES ('m1', 'abcd2345', 2.0, '{\"room_id\": \"abcd2345\", \"ts\": 2.0, "
            "\"type\": \"ai.message\", \"message_id\": \"m1\", \"kind\": \"question\", \"text\": \"Hi?\"}')",
        ]:
            conn.execute(text(statement))
    engine.dispose()
    store = Storage(storage_url)
    store.create_schema()
    store.create_schema()  # idempotent
    deliberation = store.room_plan("abcd2345")
    assert deliberation is not None and deliberation.ai_messages == "direct"
    assert [m.text for m in store.ai_messages("abcd2345")] == ["Hi?"]
    room = store.get_room("abcd2345")
    assert room is not None and room.title == "Old room"
    store.close()


def statement(room: str, sid: str, text: str = "The council should build homes") -> StatementAdded:
    return StatementAdded(room_id=room, statement_id=sid, text=text, author_id="p1", author_name="Ada")


def vote_revisions(store: Storage, sid: str) -> dict[str, int | None]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(VoteRow.participant_id, VoteRow.revision).where(VoteRow.statement_id == sid))
        return {pid: revision for pid, revision in rows}


def test_statements_can_be_edited_until_the_first_vote_and_votes_name_the_revision(storage_url: str) -> None:
    store = Storage(storage_url)
    store.create_schema()
    room = store.create_room("R", 8).id
    store.add_statement(statement(room, "s1"))
    assert store.edit_statement("s1", "The council should build more homes", 0) == "edited"
    assert store.edit_statement("s1", "Someone else's edit of the first text", 0) == "stale"
    edited = store.get_statement("s1")
    assert edited is not None and (edited.text, edited.revision) == ("The council should build more homes", 1)

    assert store.cast_vote("s1", "p2", "agree", 0) is None, "a vote on the text before the edit is refused"
    assert store.tally("s1") == {"agree": 0, "disagree": 0, "pass": 0}
    assert store.cast_vote("s1", "p2", "agree", 1) == {"agree": 1, "disagree": 0, "pass": 0}
    assert store.cast_vote("s1", "p2", "pass", 1) == {"agree": 0, "disagree": 0, "pass": 1}, "a vote can change"
    assert vote_revisions(store, "s1") == {"p2": 1}

    assert store.edit_statement("s1", "The council should NOT build more homes", 1) == "voted_on"
    kept = store.get_statement("s1")
    assert kept is not None and (kept.text, kept.revision) == ("The council should build more homes", 1)
    assert store.edit_statement("nope", "Anything at all", 0) == "missing"
    assert store.cast_vote("nope", "p2", "agree", 0) is None
    store.close()


def test_listing_statements_with_their_tallies(storage_url: str) -> None:
    store = Storage(storage_url)
    store.create_schema()
    room, other = store.create_room("R", 8).id, store.create_room("O", 8).id
    for n, sid in enumerate(["s1", "s2", "s3"]):
        store.add_statement(statement(room, sid).model_copy(update={"ts": float(n)}))
    store.add_statement(statement(other, "s9"))
    for pid, choice in [("a", "agree"), ("b", "agree"), ("c", "disagree")]:
        store.cast_vote("s1", pid, choice, 0)
    store.cast_vote("s3", "a", "pass", 0)
    store.cast_vote("s9", "a", "agree", 0)
    listed = store.statements_with_tallies(room)
    assert [(s.statement_id, tally) for s, tally in listed] == [
        ("s1", {"agree": 2, "disagree": 1, "pass": 0}), ("s2", {"agree": 0, "disagree": 0, "pass": 0}),
        ("s3", {"agree": 0, "disagree": 0, "pass": 1})]
    store.close()


def test_a_participant_flags_a_summary_point_once(storage_url: str) -> None:
    store = Storage(storage_url)
    store.create_schema()
    room = store.create_room("R", 8).id
    assert store.add_summary_flag(room, "m1", 0, "p1", "Nobody said parks")
    assert not store.add_summary_flag(room, "m1", 0, "p1", "Again, with another note")
    assert store.add_summary_flag(room, "m1", 1, "p1", "")
    assert store.add_summary_flag(room, "m1", 0, "p2", "")
    assert [(f["point"], f["participant_id"], f["note"]) for f in store.summary_flags(room)] == [
        (0, "p1", "Nobody said parks"), (1, "p1", ""), (0, "p2", "")]
    store.close()


class _Once:
    """Runs ``action`` the first time a statement starting with ``prefix`` is about to reach the database."""

    def __init__(self, prefix: str, action: Any) -> None:
        self.prefix, self.action, self.result = prefix, action, None
        self.fired = False

    def __call__(self, conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if not self.fired and statement.lstrip().startswith(self.prefix):
            self.fired = True
            self.result = self.action()


def test_an_edit_and_a_vote_racing_on_sqlite_never_leave_a_vote_on_another_text(tmp_path: Path) -> None:
    """SQLite: another connection commits an edit (or a vote) just before the vote (or the edit) writes."""
    store = Storage(f"sqlite:///{tmp_path / 'moot.db'}")
    store.create_schema()
    room = store.create_room("R", 8).id
    store.add_statement(statement(room, "s1"))
    store.add_statement(statement(room, "s2"))

    edit_first = _Once("INSERT INTO votes", lambda: store.edit_statement("s1", "The council should NOT build", 0))
    event.listen(store.engine, "before_cursor_execute", edit_first)
    try:
        assert store.cast_vote("s1", "p2", "agree", 0) is None
    finally:
        event.remove(store.engine, "before_cursor_execute", edit_first)
    assert edit_first.result == "edited" and store.tally("s1")["agree"] == 0

    vote_first = _Once("UPDATE statements", lambda: store.cast_vote("s2", "p2", "agree", 0))
    event.listen(store.engine, "before_cursor_execute", vote_first)
    try:
        assert store.edit_statement("s2", "The council should NOT build", 0) == "voted_on"
    finally:
        event.remove(store.engine, "before_cursor_execute", vote_first)
    assert vote_first.result == {"agree": 1, "disagree": 0, "pass": 0}
    kept = store.get_statement("s2")
    assert kept is not None and (kept.text, kept.revision) == ("The council should build homes", 0)
    store.close()


def _wait_until_someone_waits_for_a_lock(monitor: Connection, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    query = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND wait_event_type = 'Lock'")
    while not monitor.execute(query).scalar():
        assert time.monotonic() < deadline, "nobody waited for the statement's lock"
        time.sleep(0.01)


def test_an_edit_and_a_vote_racing_on_postgresql_wait_for_each_other(postgres_url: str) -> None:
    """PostgreSQL: while another transaction edits (or votes on) a statement, a vote (or an edit) waits for it, and
    then sees what it did (SQLite: the test above)."""
    storage_url = postgres_url
    store = Storage(storage_url)
    store.create_schema()
    room = store.create_room("R", 8).id
    store.add_statement(statement(room, "s1"))
    store.add_statement(statement(room, "s2"))
    engine = create_engine(storage_url)
    with engine.connect() as other, engine.connect().execution_options(isolation_level="AUTOCOMMIT") as monitor, \
            ThreadPoolExecutor(1) as pool:
        with other.begin():  # an edit in progress, as edit_statement does it
            other.execute(text("SELECT revision FROM statements WHERE statement_id = 's1' FOR UPDATE"))
            other.execute(text("UPDATE statements SET text = 'The council should NOT build', revision = 1 "
                               "WHERE statement_id = 's1'"))
            vote = pool.submit(store.cast_vote, "s1", "p2", "agree", 0)
            _wait_until_someone_waits_for_a_lock(monitor)
        assert vote.result(timeout=10) is None

        with other.begin():  # a vote in progress, as cast_vote does it
            other.execute(text("SELECT statement_id FROM statements WHERE statement_id = 's2' FOR SHARE"))
            other.execute(text("INSERT INTO votes (statement_id, participant_id, choice, ts, revision) "
                               "VALUES ('s2', 'p2', 'agree', 1.0, 0)"))
            edit = pool.submit(store.edit_statement, "s2", "The council should NOT build", 0)
            _wait_until_someone_waits_for_a_lock(monitor)
        assert edit.result(timeout=10) == "voted_on"
    engine.dispose()
    assert store.tally("s1")["agree"] == 0 and store.tally("s2")["agree"] == 1
    kept = store.get_statement("s2")
    assert kept is not None and (kept.text, kept.revision) == ("The council should build homes", 0)
    store.close()


def test_older_database_gains_statement_revisions_and_keeps_one_flag_per_participant_and_point(
        storage_url: str) -> None:
    """A database made before statement revisions and unique summary flags: its statements are at revision 0, its
    votes count, and duplicate flags are reduced to the first."""
    serial = "SERIAL" if storage_url.startswith("postgresql") else "INTEGER"
    engine = create_engine(storage_url)
    with engine.begin() as conn:
        for sql in [
            "CREATE TABLE rooms (id VARCHAR(32) PRIMARY KEY, title VARCHAR(200), created_at FLOAT, "
            "max_participants INTEGER)",
            "CREATE TABLE statements (statement_id VARCHAR(80) PRIMARY KEY, room_id VARCHAR(32) REFERENCES rooms(id), "
            "text TEXT, author_id VARCHAR(32), author_name VARCHAR(64), ai_generated BOOLEAN, sources JSON, "
            "created_at FLOAT, edited_at FLOAT)",
            "CREATE TABLE votes (statement_id VARCHAR(80) REFERENCES statements(statement_id), "
            "participant_id VARCHAR(32), choice VARCHAR(8), ts FLOAT, PRIMARY KEY (statement_id, participant_id))",
            f"CREATE TABLE summary_flags (id {serial} PRIMARY KEY, room_id VARCHAR(32) REFERENCES rooms(id), "
            "message_id VARCHAR(120), point INTEGER, participant_id VARCHAR(32), note TEXT, ts FLOAT)",
            "INSERT INTO rooms VALUES ('abcd2345', 'Old room', 1.0, 8)",
            "INSERT INTO statements VALUES ('s1', 'abcd2345', 'Build homes', 'p1', 'Ada', false, '[]', 1.0, NULL)",
            "INSERT INTO statements VALUES ('s2', 'abcd2345', 'Open the library', 'p1', 'Ada', false, '[]', 2.0, NULL)",
            "INSERT INTO votes VALUES ('s1', 'p2', 'agree', 3.0)",
            "INSERT INTO summary_flags (room_id, message_id, point, participant_id, note, ts) "
            "VALUES ('abcd2345', 'm1', 0, 'p2', 'first', 4.0)",
            "INSERT INTO summary_flags (room_id, message_id, point, participant_id, note, ts) "
            "VALUES ('abcd2345', 'm1', 0, 'p2', 'again', 5.0)",
        ]:
            conn.execute(text(sql))
    engine.dispose()
    store = Storage(storage_url)
    store.create_schema()
    store.create_schema()  # idempotent
    assert [(s.statement_id, s.revision) for s in store.statements("abcd2345")] == [("s1", 0), ("s2", 0)]
    assert store.edit_statement("s1", "Do not build homes", 0) == "voted_on"
    assert store.edit_statement("s2", "Open the library on Sundays", 0) == "edited"
    assert store.cast_vote("s1", "p3", "disagree", 0) == {"agree": 1, "disagree": 1, "pass": 0}
    assert [f["note"] for f in store.summary_flags("abcd2345")] == ["first"]
    assert not store.add_summary_flag("abcd2345", "m1", 0, "p2", "once more")
    assert store.add_summary_flag("abcd2345", "m1", 1, "p2", "")
    store.close()


def test_two_processes_creating_the_schema_at_once_both_succeed(tmp_path: Path) -> None:
    """Two nodes starting together on one new database: the one whose CREATE TABLE loses the race looks again."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    script = ("import sys; from server.storage import Storage; s = Storage(sys.argv[1]); s.create_schema(); "
              "s.close(); print('ok')")
    for _ in range(5):
        (tmp_path / "shared.db").unlink(missing_ok=True)
        runs = [subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True) for _ in range(3)]
        for run in runs:
            out, err = run.communicate(timeout=60)
            assert run.returncode == 0 and out.strip() == "ok", err
