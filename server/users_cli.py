"""``moot users``: organisers', moderators' and administrators' accounts from the command line (the first organiser
comes from here: ``moot users add EMAIL --role organiser``)."""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from server.core.settings import Settings

if TYPE_CHECKING:
    from server.accounts.service import AccountService
    from server.accounts.store import UserRecord
    from server.storage import Storage


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("users", help="manage organiser, moderator and admin accounts",
                              description="Manage accounts in the database MOOT_DATABASE_URL (or the SQLite file in "
                              "--data-dir) names.")
    p.add_argument("--data-dir", type=Path, help="the data directory (default ./data)")
    p.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in the data directory)")
    actions = p.add_subparsers(dest="action", required=True, metavar="{add,list,set-password,disable}")
    add = actions.add_parser("add", help="create an account; prints a generated password once "
                             "unless --password-stdin")
    add.add_argument("email")
    add.add_argument("--role", required=True, choices=("organiser", "moderator", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(func=_add)
    listing = actions.add_parser("list", help="list the accounts (email, role, created, disabled)")
    listing.set_defaults(func=_list)
    password = actions.add_parser("set-password", help="set a new password (ends the account's sessions)")
    password.add_argument("email")
    password.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    password.set_defaults(func=_set_password)
    disable = actions.add_parser("disable", help="disable an account (ends its sessions)")
    disable.add_argument("email")
    disable.set_defaults(func=_disable)


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings with ``--data-dir`` and ``--database-url`` applied (for commands that only use the database)."""
    overrides: dict[str, object] = {}
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.database_url is not None:
        overrides["database_url"] = args.database_url
    return Settings(**overrides)  # type: ignore[arg-type]  # (pydantic validates the values)


def _read_password(from_stdin: bool) -> str | None:
    if not from_stdin:
        return None
    if sys.stdin.isatty():
        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _open(args: argparse.Namespace) -> tuple[Storage, AccountService]:
    from server.accounts.service import open_account_service
    from server.storage import Storage

    settings = settings_from(args)
    storage = Storage(settings.resolved_database_url())
    storage.create_schema()
    return storage, open_account_service(settings, storage)


def _fail(message: str) -> int:
    print(f"moot users: {message}", file=sys.stderr)
    return 1


def _add(args: argparse.Namespace) -> int:
    from server.accounts.emails import InvalidEmail
    from server.accounts.passwords import WeakPassword
    from server.accounts.store import AccountExists

    password = _read_password(args.password_stdin)
    storage, accounts = _open(args)
    try:
        user, generated = accounts.add_user(args.email, args.role, password)
    except (InvalidEmail, WeakPassword) as exc:
        return _fail(str(exc))
    except AccountExists:
        return _fail(f"an account for {args.email.strip()} exists already")
    finally:
        storage.close()
    print(f"created {user.role} {user.email}")
    if generated is not None:
        print(f"password (shown once, change it after signing in): {generated}")
    return 0


def _list(args: argparse.Namespace) -> int:
    storage, accounts = _open(args)
    try:
        for user in accounts.store.users():
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(user.created_at))
            state = "\tdisabled" if user.disabled else ""
            print(f"{user.email}\t{user.role}\t{created}{state}")
    finally:
        storage.close()
    return 0


def _find(accounts: AccountService, email: str) -> UserRecord | None:
    from server.accounts.emails import InvalidEmail, normalise_email

    try:
        return accounts.store.user_by_email(normalise_email(email))
    except InvalidEmail:
        return None


def _set_password(args: argparse.Namespace) -> int:
    from server.accounts.passwords import WeakPassword

    password = _read_password(True) if args.password_stdin else None
    storage, accounts = _open(args)
    try:
        user = _find(accounts, args.email)
        if user is None:
            return _fail(f"no account for {args.email.strip()}")
        generated = None
        if password is None:
            from server.accounts.passwords import generate_password

            password = generated = generate_password()
        try:
            accounts.set_password(user.id, password)
        except WeakPassword as exc:
            return _fail(str(exc))
    finally:
        storage.close()
    print(f"password of {user.email} changed; its sessions ended")
    if generated is not None:
        print(f"password (shown once): {generated}")
    return 0


def _disable(args: argparse.Namespace) -> int:
    storage, accounts = _open(args)
    try:
        user = _find(accounts, args.email)
        if user is None:
            return _fail(f"no account for {args.email.strip()}")
        accounts.disable(user.id)
    finally:
        storage.close()
    print(f"{user.email} disabled; its sessions ended")
    return 0
