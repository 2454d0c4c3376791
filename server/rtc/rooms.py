"""Live rooms on this server node: who is in each room, who publishes what, and who receives what.

A room exists here while it has participants. Joining normalises the display name (server/names.py: refused with
``bad_name`` or ``name_reserved``), then checks capacity and look-alike names under the room's lock,
records the participant (with the time of consent) in storage and announces them on the bus; each participant's peer
receives every other participant's published tracks. Leaving (or vanishing) closes the peer, finalises the speaker's
captions, announces the departure and renegotiates everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.context import ServerContext
from server.events import (
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLeft,
    ParticipantMediaState,
    RoomInfo,
    ServerMessage,
)
from server.names import DisplayNameRefused, display_name, names_clash
from server.rtc import forwarding
from server.rtc.peer import NegotiationFailed, Peer
from server.rtc.relay import PublishedTrack

logger = logging.getLogger(__name__)


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Participant:
    id: str
    name: str
    room: Room
    send: Callable[[ServerMessage], None]
    peer: Peer
    audio: bool = True
    video: bool = True
    on_removed: Callable[[str, str], None] | None = None

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(participant_id=self.id, name=self.name, audio=self.audio, video=self.video)


@dataclass
class Room:
    id: str
    title: str
    max_participants: int
    participants: dict[str, Participant] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def info(self) -> RoomInfo:
        return RoomInfo(room_id=self.id, title=self.title, max_participants=self.max_participants)


class RoomRegistry:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._rooms: dict[str, Room] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stun_urls = [u for s in ctx.settings.ice_servers for u in s.urls if u.startswith("stun:")]
        forwarding.check_aiortc_version()
        forwarding.guard_consent_after_close()
        if ctx.settings.rtc_loopback_candidates:
            forwarding.enable_loopback_candidates()

    def room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    async def join(
        self,
        room_id: str,
        name: str,
        audio: bool,
        video: bool,
        send: Callable[[ServerMessage], None],
        on_removed: Callable[[str, str], None] | None = None,
    ) -> Participant:
        """Admit a participant or raise ``JoinRefused`` (unknown_room, bad_name, name_reserved, room_full,
        name_taken). The participant's name is the normalised ``name``."""
        settings = self._ctx.settings
        record = await asyncio.to_thread(self._ctx.storage.get_room, room_id)
        if record is None:
            raise JoinRefused("unknown_room", "There is no room with this link.")
        try:
            name = display_name(name)
        except DisplayNameRefused as exc:
            raise JoinRefused(exc.code, str(exc)) from None
        while True:
            room = self._rooms.setdefault(room_id, Room(room_id, record.title, record.max_participants))
            await room.lock.acquire()
            if self._rooms.get(room_id) is room:
                break
            room.lock.release()  # the last participant left meanwhile and the room was dropped: use the new one
        try:
            if len(room.participants) >= room.max_participants:
                raise JoinRefused("room_full", f"This room is full ({room.max_participants} people).")
            same = next((p.name for p in room.participants.values() if names_clash(p.name, name)), None)
            if same is not None:
                looks = "" if same == name else f", which looks the same as “{name}”"
                raise JoinRefused("name_taken", f"Someone in this room is already called “{same}”{looks}. "
                                                "Please pick another name, for example with an initial.")
            stored = await asyncio.to_thread(self._ctx.storage.add_participant, room_id, name, time.time())
            sink = None
            if self._ctx.captions is not None:
                sink = self._ctx.captions.open_speaker(room_id, stored.id, name)
            peer = Peer(stored.id, send, settings.negotiation_timeout_s, self._on_published, sink, self._stun_urls)
            participant = Participant(stored.id, name, room, send, peer, audio, video, on_removed)
            peer.on_failed = self._on_negotiation_failed
            room.participants[stored.id] = participant
        finally:
            if not room.participants and self._rooms.get(room_id) is room:
                del self._rooms[room_id]  # refused or failed into an empty room: do not keep it
            room.lock.release()
        await self._ctx.bus.publish(ParticipantJoined(room_id=room_id, participant=participant.info()))
        self._update_subscriptions(room, participant)
        logger.info("participant %s joined room %s (%d present)", participant.id, room_id, len(room.participants))
        return participant

    def participants(self, room: Room) -> list[ParticipantInfo]:
        return [p.info() for p in room.participants.values()]

    def _wanted_for(self, room: Room, participant: Participant) -> dict[tuple[str, str], PublishedTrack]:
        return {
            (other.id, kind): published
            for other in room.participants.values()
            if other is not participant
            for kind, published in other.peer.published.items()
        }

    def _update_subscriptions(self, room: Room, participant: Participant) -> None:
        participant.peer.set_subscriptions(self._wanted_for(room, participant))

    def _on_published(self, peer: Peer, published: PublishedTrack) -> None:
        for room in self._rooms.values():
            if peer.participant_id in room.participants:
                for other in room.participants.values():
                    if other.peer is not peer:
                        self._update_subscriptions(room, other)
                return

    def _on_negotiation_failed(self, peer: Peer, failure: NegotiationFailed) -> None:
        participant = self._find(peer.participant_id)
        if participant is None:
            return
        logger.info("removing %s: %s", participant.id, failure.code)
        if participant.on_removed is not None:
            participant.on_removed(failure.code, str(failure))  # its connection then leaves
        else:
            task = asyncio.create_task(self.leave(participant, reason=failure.code))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _find(self, participant_id: str) -> Participant | None:
        for room in self._rooms.values():
            if participant_id in room.participants:
                return room.participants[participant_id]
        return None

    async def set_media(self, participant: Participant, audio: bool, video: bool) -> None:
        participant.audio, participant.video = audio, video
        await self._ctx.bus.publish(
            ParticipantMediaState(room_id=participant.room.id, participant_id=participant.id, audio=audio, video=video)
        )

    async def leave(self, participant: Participant, reason: str = "left") -> None:
        room = participant.room
        async with room.lock:
            if room.participants.pop(participant.id, None) is None:
                return
        try:
            await participant.peer.close()
        except Exception:  # still announce the departure and renegotiate the others
            logger.exception("closing the media of %s failed", participant.id)
        await asyncio.to_thread(self._ctx.storage.mark_left, participant.id)
        await self._ctx.bus.publish(
            ParticipantLeft(room_id=room.id, participant_id=participant.id, name=participant.name, reason=reason)
        )
        async with room.lock:  # a join holds the lock until its participant is in the room
            for other in room.participants.values():
                self._update_subscriptions(room, other)
            if not room.participants and self._rooms.get(room.id) is room:
                del self._rooms[room.id]
        logger.info("participant %s left room %s (%s)", participant.id, room.id, reason)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for room in list(self._rooms.values()):
            for participant in list(room.participants.values()):
                await self.leave(participant, reason="server_shutdown")
