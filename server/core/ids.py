"""Identifiers: unguessable ids for rooms, participants and statements, and unique ids for events.

Room and participant ids appear in links and must not be guessable; ``new_id`` draws them from ``secrets`` over an
alphabet without look-alike characters. Event ids only need to be unique across processes.
"""

from __future__ import annotations

import secrets

ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: ids are read aloud and typed


def new_id(length: int = 12) -> str:
    """An unguessable, URL-safe, unambiguous id (about 59 bits for 12 characters)."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(length))


def event_id() -> str:
    """A random id for one event (128 bits, hex): unique across processes without coordination."""
    return secrets.token_hex(16)


def process_name(role: str) -> str:
    """This process's name in event envelopes and consumer groups: its role, host and process id
    (e.g. ``server:web-1:4242``)."""
    import os
    import socket

    return f"{role}:{socket.gethostname()}:{os.getpid()}"
