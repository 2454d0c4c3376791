"""Alembic migrations of Moot's database (run by ``Storage.create_schema``; ``versions/`` holds one file per step)."""
