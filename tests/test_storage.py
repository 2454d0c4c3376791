"""Storage on SQLite (default) and PostgreSQL (real server): rooms, participants, captions, restart survival."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from server.events import CaptionFinal, CaptionWord
from server.storage import Storage

PG_ADMIN_URL = os.environ.get("MOOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def caption(room: str, n: int, start: float) -> CaptionFinal:
    return CaptionFinal(
        room_id=room, utterance_id=f"u{n}-{room}", participant_id="p1", speaker_name="Ada", text=f"line {n}",
        start=start, end=start + 1, language="en", words=[CaptionWord(word="line", start=start, end=start + 0.5)],
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'moot.db'}"
        return
    name = f"moot_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


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
    deliberation = store.deliberation("abcd2345")
    assert deliberation is not None and deliberation.ai_messages == "direct"
    assert [m.text for m in store.ai_messages("abcd2345")] == ["Hi?"]
    room = store.get_room("abcd2345")
    assert room is not None and room.title == "Old room"
    store.close()
