"""The per-process resources shared by HTTP routes, the signaling WebSocket and background tasks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from server.accounts.throttle import SignInThrottle
from server.core.bus import Bus
from server.core.directory import RoomDirectory
from server.core.leases import Leases
from server.core.settings import Settings
from server.storage import Storage

if TYPE_CHECKING:
    from server.accounts.service import AccountService
    from server.core.speech import CaptionService
    from server.lobby.credentials import CredentialSigner
    from server.report.jobs import ReportJobs
    from server.rooms import RoomRegistry


@dataclass
class ServerContext:
    settings: Settings
    bus: Bus
    storage: Storage
    captions: CaptionService | None = None
    rooms: RoomRegistry | None = field(default=None)
    leases: Leases | None = None  # follows the bus: in memory, or on Redis shared by every node
    directory: RoomDirectory | None = None  # which node hosts which room; None: this node hosts every room
    accounts: AccountService | None = None  # organisers', moderators' and administrators' sign-in
    sign_in_throttle: SignInThrottle = field(default_factory=SignInThrottle)
    participant_credentials: CredentialSigner | None = None  # made on first use (reads the signing key)
    reports: ReportJobs | None = None  # the cross-room report jobs this process runs
    rate_clock: Callable[[], float] = time.monotonic  # the signaling rate limits' clock (tests may hold it still)

    def participant_signer(self) -> CredentialSigner:
        """Signs and reads participant credentials (blocking the first time: it may create the key file)."""
        if self.participant_credentials is None:
            from server.accounts.secret import resolve_secret_key
            from server.lobby.credentials import CredentialSigner

            self.participant_credentials = CredentialSigner(resolve_secret_key(self.settings), self.clock)
        return self.participant_credentials
    clock: Callable[[], float] = time.time
