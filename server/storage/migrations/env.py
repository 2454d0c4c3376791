"""Alembic's environment: migrations run on the connection ``Storage.create_schema`` hands over (never a URL from a
config file), in its transaction, with batch mode so SQLite can alter tables by copying them."""

from __future__ import annotations

from alembic import context

from server.storage.tables import Base, is_search_index

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  compare_type=True, include_object=lambda _o, name, kind, _r, _c: not is_search_index(kind, name))
with context.begin_transaction():
    context.run_migrations()
