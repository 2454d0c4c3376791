"""Full-text search over captions with the database's own index: an FTS5 table kept in step by triggers on SQLite
(external content: the text is stored once, in ``captions``), a GIN index on ``to_tsvector('simple', text)`` on
PostgreSQL. Both tokenise without stemming ('simple' / unicode61), the same for every language a deliberation offers.

A later migration that rebuilds ``captions`` on SQLite (batch mode copies the table) must create the triggers again."""

from __future__ import annotations

from alembic import op

revision = "0008_caption_search"
down_revision = "0007_room_creators"
branch_labels = None
depends_on = None

SQLITE = [
    "CREATE VIRTUAL TABLE captions_fts USING fts5(text, content='captions', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER captions_fts_insert AFTER INSERT ON captions BEGIN "
    "INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text); END",
    "CREATE TRIGGER captions_fts_delete AFTER DELETE ON captions BEGIN "
    "INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text); END",
    "CREATE TRIGGER captions_fts_update AFTER UPDATE OF text ON captions BEGIN "
    "INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text); "
    "INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text); END",
    "INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')",  # the captions already there
]


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for statement in SQLITE:
            op.execute(statement)
    else:
        op.execute("CREATE INDEX ix_captions_text_search ON captions USING GIN (to_tsvector('simple', text))")


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER captions_fts_{trigger}")
        op.execute("DROP TABLE captions_fts")
    else:
        op.execute("DROP INDEX ix_captions_text_search")
