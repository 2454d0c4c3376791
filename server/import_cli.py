"""``moot import polis DIR``: load a Polis export as a closed deliberation owned by an organiser (see
``server/deliberations/polis_import.py``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from server.users_cli import settings_from


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("import", help="load data from another tool (a Polis export)",
                              description="Load data into the database MOOT_DATABASE_URL (or the SQLite file in "
                              "--data-dir) names.")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{polis}")
    polis = kinds.add_parser("polis", help="a Polis export (comments.csv + votes.csv, or participants-votes.csv) "
                             "as a closed deliberation")
    polis.add_argument("directory", type=Path, help="the directory holding the export's CSV files")
    polis.add_argument("--owner", required=True, help="email of the organiser (or admin) who will own it")
    polis.add_argument("--data-dir", type=Path, help="the data directory (default ./data)")
    polis.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data directory)")
    polis.set_defaults(func=_import_polis)


def _fail(message: str) -> int:
    print(f"moot import polis: {message}", file=sys.stderr)
    return 1


def _import_polis(args: argparse.Namespace) -> int:
    from server.deliberations.polis_import import PolisImportError, load, parse
    from server.storage import Storage

    try:
        conversation = parse(args.directory)
    except PolisImportError as exc:
        return _fail(str(exc))
    storage = Storage(settings_from(args).resolved_database_url())
    try:
        storage.create_schema()
        from server.accounts.store import AccountStore

        owner = AccountStore(storage.sessions).user_by_email(args.owner)
        if owner is None or owner.role not in ("organiser", "admin") or owner.disabled:
            return _fail(f"{args.owner}: no such organiser or administrator (create one with moot users add)")
        deliberation_id = load(storage.sessions, owner.id, conversation)
    finally:
        storage.close()
    print(f"imported {conversation.topic!r} as deliberation {deliberation_id} (closed): "
          f"{len(conversation.comments)} statements, {len(conversation.votes)} votes, "
          f"{len(conversation.participants)} participants"
          + (f"; {conversation.skipped_comments} comments moderated out in Polis left out"
             if conversation.skipped_comments else ""))
    return 0
