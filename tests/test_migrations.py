"""Schema migrations (Alembic) on SQLite and a real PostgreSQL: a new database gets exactly the models' schema; a
database made by the last release before migrations (and an even older one) is upgraded without losing rows; the
captions' uniqueness moves from "across all rooms" to "per room"."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, UniqueConstraint, create_engine, inspect, text

from server.core.events import CaptionFinal
from server.storage import Storage
from server.storage.repository import _alembic_config, _baseline_metadata
from server.storage.tables import Base, is_search_index


def head() -> str:
    with create_engine("sqlite://").connect() as connection:
        revision = ScriptDirectory.from_config(_alembic_config(connection)).get_current_head()
    assert revision is not None
    return revision


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(engine: Engine) -> list[object]:
    """What differs between the database and the models (tables, columns, types, indexes, unique constraints)."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "compare_type": True,
            "include_object": lambda _o, name, kind, _r, _c: not is_search_index(kind, name)})
        return list(compare_metadata(context, Base.metadata))


def caption(room: str, utterance: str) -> CaptionFinal:
    return CaptionFinal(room_id=room, utterance_id=utterance, participant_id="p1", speaker_name="Ada",
                        text=f"said {utterance}", start=1.0, end=2.0)


def test_a_new_database_gets_the_models_schema_at_the_head_revision(database_url: str) -> None:
    store = Storage(database_url)
    store.create_schema()
    store.create_schema()  # again: nothing to do
    assert current_revision(store.engine) == head()
    assert schema_differences(store.engine) == []
    store.close()


def test_a_database_of_the_last_release_before_migrations_keeps_its_rows(database_url: str) -> None:
    engine = create_engine(database_url)
    _baseline_metadata().create_all(engine)  # what that release's create_all made: no alembic_version
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rooms (id, title, created_at, max_participants) VALUES "
                                "('room-a', 'A', 1.0, 8), ('room-b', 'B', 2.0, 8)"))
        connection.execute(text(
            "INSERT INTO captions (utterance_id, room_id, participant_id, speaker_name, start, \"end\", text, "
            "language, words) VALUES ('u1', 'room-a', 'p1', 'Ada', 1.0, 2.0, 'hello', 'en', '[]'), "
            "('u2', 'room-a', 'p1', 'Ada', 3.0, 4.0, 'again', 'en', '[]')"))
        connection.execute(text(
            "INSERT INTO statements (statement_id, room_id, text, author_id, author_name, ai_generated, sources, "
            "created_at, revision) VALUES ('s1', 'room-a', 'Open on Sundays', 'p1', 'Ada', false, '[]', 1.0, 1)"))
        connection.execute(text("INSERT INTO votes (statement_id, participant_id, choice, ts, revision) VALUES "
                                "('s1', 'p1', 'agree', 2.0, 1)"))
        connection.execute(text("INSERT INTO deliberations (room_id, template_id, question, ai_messages) VALUES "
                                "('room-a', 'quick-20', 'Sundays?', 'approve')"))  # now room_plans
    engine.dispose()

    store = Storage(database_url)
    store.create_schema()
    assert current_revision(store.engine) == head()
    assert schema_differences(store.engine) == []
    assert [c.text for c in store.transcript("room-a")] == ["hello", "again"]
    assert [s.text for s in store.statements("room-a")] == ["Open on Sundays"]
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT choice FROM votes")).scalar_one() == "agree"
    plan = store.room_plan("room-a")
    assert plan is not None and (plan.template_id, plan.question, plan.ai_messages) == ("quick-20", "Sundays?",
                                                                                        "approve")
    assert store.get_room("room-b") is not None
    # the same utterance id in another room is another caption now; in the same room still stored once
    assert store.add_caption(caption("room-b", "u1"))
    assert not store.add_caption(caption("room-a", "u1"))
    assert [c.text for c in store.transcript("room-b")] == ["said u1"]
    store.close()


def test_an_older_database_gets_its_missing_columns_and_indexes_first(database_url: str) -> None:
    engine = create_engine(database_url)
    metadata = _baseline_metadata()
    statements = metadata.tables["statements"]
    statements._columns.remove(statements.c.revision)  # an even older release: no revisions yet
    summary = metadata.tables["summary_flags"]
    summary.indexes = {i for i in summary.indexes if i.name != "ux_summary_flags_once"}  # nor this index
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO rooms (id, title, created_at, max_participants) VALUES "
                                "('room-a', 'A', 1.0, 8)"))
        connection.execute(text(
            "INSERT INTO statements (statement_id, room_id, text, author_id, author_name, ai_generated, sources, "
            "created_at) VALUES ('s1', 'room-a', 'Open on Sundays', 'p1', 'Ada', false, '[]', 1.0)"))
        for note in ("first", "twice"):  # a duplicate the unique index forbids: the first is kept
            connection.execute(text("INSERT INTO summary_flags (room_id, message_id, point, participant_id, note, "
                                    "ts) VALUES ('room-a', 'm1', 0, 'p1', :note, 1.0)"), {"note": note})
    engine.dispose()

    store = Storage(database_url)
    store.create_schema()
    assert current_revision(store.engine) == head()
    assert schema_differences(store.engine) == []
    assert [s.text for s in store.statements("room-a")] == ["Open on Sundays"]
    with store.engine.connect() as connection:
        assert connection.execute(text("SELECT note FROM summary_flags")).scalars().all() == ["first"]
    assert "revision" in {c["name"] for c in inspect(store.engine).get_columns("statements")}
    store.close()


def test_a_database_of_the_release_between_is_adopted(database_url: str) -> None:
    """(The release between: create_all with captions already unique per room, no alembic_version.)"""
    metadata = _baseline_metadata()
    captions = metadata.tables["captions"]
    for constraint in [c for c in captions.constraints if isinstance(c, UniqueConstraint)]:
        captions.constraints.remove(constraint)
    captions.append_constraint(UniqueConstraint("room_id", "utterance_id", name="uq_captions_room_utterance"))
    engine = create_engine(database_url)
    metadata.create_all(engine)
    engine.dispose()
    store = Storage(database_url)
    store.create_schema()
    assert current_revision(store.engine) == head()
    assert schema_differences(store.engine) == []
    store.close()
