"""The per-process resources shared by HTTP routes, the signaling WebSocket and background tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.bus import Bus
from server.settings import Settings
from server.storage import Storage

if TYPE_CHECKING:
    from server.asr.base import CaptionService
    from server.rtc.rooms import RoomRegistry


@dataclass
class ServerContext:
    settings: Settings
    bus: Bus
    storage: Storage
    captions: CaptionService | None = None
    rooms: RoomRegistry | None = field(default=None)
    moderator_token: str = ""  # see server/auth.py; empty: nobody is a moderator
