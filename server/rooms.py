"""Live rooms on this server node: who is in each room, who publishes what, and who receives what.

A room exists here while it has participants. With a room directory (``ctx.directory``), the first participant's
join takes the room's ``room-node`` lease for this node, kept by heartbeats while the room has participants and released
when it empties; a room leased to another node is refused with ``room_elsewhere`` and that node's URL, and a room whose
lease this node lost (it could not renew in time, and another node may have it now) is emptied with ``room_moved``, so
its participants' clients rejoin where it lives. Joining normalises the display name (server/names.py: refused with
``bad_name`` or ``name_reserved``), then checks capacity and look-alike names under the room's lock,
records the participant (with the time of consent) in storage and announces them on the bus; each participant's peer
receives every other participant's published tracks. Leaving (or vanishing) closes the peer, finalises the speaker's
captions, announces the departure and renegotiates everyone else.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from server.context import ServerContext
from server.core.directory import ROOM_NODE, HostedElsewhere
from server.core.errors import Refused
from server.core.events import (
    ObserversChanged,
    ParticipantInfo,
    ParticipantJoined,
    ParticipantLanguage,
    ParticipantLeft,
    ParticipantMediaState,
    RoomControl,
    RoomInfo,
    RoomLanguages,
    ServerMessage,
)
from server.core.ids import new_id
from server.core.leases import Lease, LeaseKeeper
from server.names import DisplayNameRefused, display_name, names_clash
from server.rtc import forwarding
from server.rtc.peer import NegotiationFailed, Peer
from server.rtc.relay import PublishedTrack
from server.storage import RoomRecord

logger = logging.getLogger(__name__)


class JoinRefused(Refused):
    """Joining the room was refused; ``code`` says why (``location``: the node to join instead, for
    ``room_elsewhere``)."""

    def __init__(self, code: str, message: str, location: str | None = None, reason: str | None = None,
                 params: dict[str, str | int] | None = None) -> None:
        super().__init__(code, message, reason, params)
        self.location = location


@dataclass
class Participant:
    id: str
    name: str
    room: Room
    send: Callable[[ServerMessage], None]
    peer: Peer
    audio: bool = True
    video: bool = True
    on_removed: Callable[[str, str, str | None], None] | None = None  # (code, message, location): told, then leaves
    observer: bool = False  # a moderator observing: receives everyone's media, sends none, is nobody's participant
    language: str | None = None  # the language they speak and read

    def info(self) -> ParticipantInfo:
        return ParticipantInfo(participant_id=self.id, name=self.name, audio=self.audio, video=self.video,
                               language=self.language)


@dataclass
class Room:
    id: str
    title: str
    max_participants: int
    participants: dict[str, Participant] = field(default_factory=dict)
    observers: dict[str, Participant] = field(default_factory=dict)  # moderators observing (not participants)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    lease: Lease | None = None  # this node's room-node lease, while it hosts the room (with a directory)
    deliberation_id: str | None = None  # the deliberation whose lobby formed it
    languages: list[str] = field(default_factory=list)  # the reading languages last announced (``room.languages``)

    def info(self) -> RoomInfo:
        return RoomInfo(room_id=self.id, title=self.title, max_participants=self.max_participants)


@dataclass
class _ResumeTicket:
    room_id: str
    participant_id: str
    expires_at: float | None = None  # set when the connection is lost; None while connected


class ResumeTickets:
    """Single-use tickets that let a participant whose connection dropped rejoin with a replay of what they missed.
    A ticket is valid while its participant is connected and for ``window_s`` after the connection was lost; an
    explicit leave revokes it."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._tickets: dict[str, _ResumeTicket] = {}
        self._by_participant: dict[str, str] = {}

    def issue(self, room_id: str, participant_id: str) -> str:
        self._prune()
        token = secrets.token_urlsafe(24)
        self._tickets[token] = _ResumeTicket(room_id, participant_id)
        self._by_participant[participant_id] = token
        return token

    def redeem(self, room_id: str, token: str) -> str | None:
        """The participant id the ticket was issued to (and the ticket is used up), or None."""
        ticket = self._tickets.get(token)
        if ticket is None or ticket.room_id != room_id or self._expired(ticket):
            return None
        del self._tickets[token]
        self._by_participant.pop(ticket.participant_id, None)
        return ticket.participant_id

    def disconnected(self, participant_id: str) -> None:
        token = self._by_participant.get(participant_id)
        if token is not None and token in self._tickets:
            self._tickets[token].expires_at = time.monotonic() + self.window_s

    def revoke(self, participant_id: str) -> None:
        token = self._by_participant.pop(participant_id, None)
        if token is not None:
            self._tickets.pop(token, None)

    def __len__(self) -> int:
        return len(self._tickets)

    def _expired(self, ticket: _ResumeTicket) -> bool:
        return ticket.expires_at is not None and ticket.expires_at < time.monotonic()

    def _prune(self) -> None:
        for token, ticket in list(self._tickets.items()):
            if self._expired(ticket):
                del self._tickets[token]
                self._by_participant.pop(ticket.participant_id, None)


def _refuse_unoffered(language: str, offered: list[str]) -> None:
    """A deliberation's room: only the languages it offers."""
    if language not in offered:
        raise JoinRefused("unsupported_language", f"This deliberation offers {', '.join(offered)}: choose one of them.",
                          params={"offered": ",".join(offered)})


class RoomRegistry:
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        self._rooms: dict[str, Room] = {}
        self.resume_tickets = ResumeTickets(ctx.settings.resume_window_s)
        self._background: set[asyncio.Task[None]] = set()
        self._stun_urls = [u for s in ctx.settings.ice_servers for u in s.urls if u.startswith("stun:")]
        self._directory = ctx.directory
        self._keeper = LeaseKeeper(ctx.directory.leases, on_lost=self._on_lease_lost) if ctx.directory else None
        forwarding.check_aiortc_version()
        forwarding.guard_consent_after_close()
        if ctx.settings.rtc_loopback_candidates:
            forwarding.enable_loopback_candidates()

    def room(self, room_id: str) -> Room | None:
        return self._rooms.get(room_id)

    def hosted(self) -> list[Room]:
        """The rooms with participants on this node now."""
        return list(self._rooms.values())

    async def join(
        self,
        room_id: str,
        name: str,
        audio: bool,
        video: bool,
        send: Callable[[ServerMessage], None],
        on_removed: Callable[[str, str, str | None], None] | None = None,
        credential: str | None = None,
        language: str | None = None,
    ) -> Participant:
        """Admit a participant or raise ``JoinRefused`` (unknown_room, bad_name, name_reserved, room_elsewhere,
        room_full, name_taken; for a deliberation's room: credential_required, not_your_room, deliberation_closed).
        The participant's name is the normalised ``name``, or in a deliberation's room the name its lobby gave."""
        settings = self._ctx.settings
        record = await asyncio.to_thread(self._ctx.storage.get_room, room_id)
        if record is None:
            raise JoinRefused("unknown_room", "There is no room with this link.")
        if record.ended_at is not None:
            raise JoinRefused("room_ended", "This room has ended. Thank you for taking part.")
        fixed_id: str | None = None
        if record.deliberation_id is not None:
            fixed_id, name, offered = await self._admitted(record.deliberation_id, room_id, credential)
            if language is not None:
                _refuse_unoffered(language, offered)
        else:
            try:
                name = display_name(name)
            except DisplayNameRefused as exc:
                raise JoinRefused(exc.code, str(exc), reason=exc.reason, params=exc.params) from None
        room = await self._locked_room(record)
        try:
            await self._host(room)
            earlier = room.participants.get(fixed_id) if fixed_id is not None else None
            if earlier is not None:  # the same person again (a reload, another device): the new window wins
                await self._replace(room, earlier)
            if len(room.participants) >= room.max_participants:
                raise JoinRefused("room_full", f"This room is full ({room.max_participants} people).",
                                  params={"count": room.max_participants})
            same = next((p.name for p in room.participants.values() if names_clash(p.name, name)), None)
            if same is not None:
                looks = "" if same == name else f", which looks the same as “{name}”"
                raise JoinRefused("name_taken", f"Someone in this room is already called “{same}”{looks}. "
                                                "Please pick another name, for example with an initial.",
                                  reason="same" if same == name else "looks_alike",
                                  params={"taken": same, "name": name})
            stored = await asyncio.to_thread(self._ctx.storage.add_participant, room_id, name, time.time(),
                                             fixed_id)
            sink = None
            if self._ctx.captions is not None:
                sink = self._ctx.captions.open_speaker(room_id, stored.id, name, language)
            peer = Peer(stored.id, send, settings.negotiation_timeout_s, self._on_published, sink, self._stun_urls)
            participant = Participant(stored.id, name, room, send, peer, audio, video, on_removed,
                                      language=language)
            peer.on_failed = self._on_negotiation_failed
            room.participants[stored.id] = participant
            languages_changed = self._languages_changed(room)
            self._tell_readers(room, [participant] if languages_changed is None else None)
        finally:
            try:
                await self._drop_if_empty(room)  # refused or failed into an empty room: do not keep it
            finally:
                room.lock.release()
        await self._ctx.bus.publish(ParticipantJoined(room_id=room_id, participant=participant.info()))
        if languages_changed is not None:
            await self._ctx.bus.publish(RoomLanguages(room_id=room_id, languages=languages_changed))
        self._update_subscriptions(room, participant)
        logger.info("participant %s joined room %s (%d present)", participant.id, room_id, len(room.participants))
        return participant

    async def set_language(self, participant: Participant, language: str) -> None:
        """A participant changes the language they speak and read (a deliberation's room: one of its languages, else
        ``JoinRefused('unsupported_language')``)."""
        room = participant.room
        if room.deliberation_id is not None:
            from server.deliberations.store import DeliberationStore

            record = await asyncio.to_thread(DeliberationStore(self._ctx.storage.sessions).get, room.deliberation_id)
            _refuse_unoffered(language, list(record.spec.languages) if record is not None else [])
        async with room.lock:
            if room.participants.get(participant.id) is not participant or participant.language == language:
                return
            participant.language = language
            changed = self._languages_changed(room)
            if changed is not None:
                self._tell_readers(room)
            set_language = getattr(participant.peer.audio_sink, "set_language", None)
            if set_language is not None:  # recognised in it from the next utterance (a speech worker: from its next
                set_language(language)  # session; until then its detection and the translation's source hint)
        await self._ctx.bus.publish(ParticipantLanguage(room_id=room.id, participant_id=participant.id,
                                                        language=language))
        if changed is not None:
            await self._ctx.bus.publish(RoomLanguages(room_id=room.id, languages=changed))

    @staticmethod
    def _tell_readers(room: Room, only: list[Participant] | None = None) -> None:
        """Tell the speakers' caption streams which languages the room reads (Whisper's translate task runs for
        the English readers when it is the translation backend)."""
        for participant in only if only is not None else list(room.participants.values()):
            set_readers = getattr(participant.peer.audio_sink, "set_readers", None)
            if set_readers is not None:
                set_readers(list(room.languages))

    @staticmethod
    def _languages_changed(room: Room) -> list[str] | None:
        """The languages the room's participants read, when that set differs from the last one announced (then it
        is remembered as announced); None when unchanged. Called under the room's lock."""
        now = sorted({p.language for p in room.participants.values() if p.language})
        if now == room.languages:
            return None
        room.languages = now
        return now

    async def observe(self, room_id: str, send: Callable[[ServerMessage], None],
                      on_removed: Callable[[str, str, str | None], None] | None = None) -> Participant:
        """Admit a moderator as an observer (the caller checked they may moderate the room): they receive every
        participant's media and the room's events, take no seat, publish nothing and are in nobody's participant
        list; the room is told how many observe (``room.observers``)."""
        record = await asyncio.to_thread(self._ctx.storage.get_room, room_id)
        if record is None:
            raise JoinRefused("unknown_room", "There is no room with this link.")
        if record.ended_at is not None:
            raise JoinRefused("room_ended", "This room has ended.")
        room = await self._locked_room(record)
        try:
            await self._host(room)
            observer_id = f"observer-{new_id(12)}"
            peer = Peer(observer_id, send, self._ctx.settings.negotiation_timeout_s, self._on_published, None,
                        self._stun_urls)
            observer = Participant(observer_id, "Moderator", room, send, peer, False, False, on_removed,
                                   observer=True)
            peer.on_failed = self._on_negotiation_failed
            room.observers[observer_id] = observer
            count = len(room.observers)
        finally:
            try:
                await self._drop_if_empty(room)
            finally:
                room.lock.release()
        await self._ctx.bus.publish(ObserversChanged(room_id=room_id, count=count))
        self._update_subscriptions(room, observer)
        logger.info("a moderator observes room %s (%d observing)", room_id, count)
        return observer

    async def _locked_room(self, record: RoomRecord) -> Room:
        """The live room for ``record`` (made if it has nobody yet), with its lock held: release it when done."""
        while True:
            room = self._rooms.setdefault(record.id, Room(record.id, record.title, record.max_participants,
                                                         deliberation_id=record.deliberation_id))
            await room.lock.acquire()
            if self._rooms.get(record.id) is room:
                return room
            room.lock.release()  # the last participant left meanwhile and the room was dropped: use the new one

    async def _admitted(self, deliberation_id: str, room_id: str,
                        credential: str | None) -> tuple[str, str, list[str]]:
        """The participant id and name a deliberation's room admits with ``credential`` and the deliberation's
        languages, or ``JoinRefused``."""
        from server.deliberations.store import DeliberationStore
        from server.lobby.credentials import InvalidCredential
        from server.lobby.store import LobbyStore

        if not credential:
            raise JoinRefused("credential_required", "This room belongs to a deliberation: join it through the "
                              "deliberation's link, which places you in your group.")
        try:
            claims = (await asyncio.to_thread(self._ctx.participant_signer)).read(credential)
        except InvalidCredential:
            raise JoinRefused("credential_required", "Your place in this deliberation could not be checked: "
                              "open the deliberation's link again.") from None
        sessions = self._ctx.storage.sessions
        entry = await asyncio.to_thread(LobbyStore(sessions).entry, claims.participant_id)
        if entry is None or claims.deliberation_id != deliberation_id or entry.deliberation_id != deliberation_id \
                or entry.status != "assigned" or entry.room_id != room_id:
            raise JoinRefused("not_your_room", "This is not the room you were given: open the deliberation's link "
                              "to find yours.")
        deliberation = await asyncio.to_thread(DeliberationStore(sessions).get, deliberation_id)
        if deliberation is None or not deliberation.running:
            raise JoinRefused("deliberation_closed", "This deliberation has ended. Thank you for taking part.")
        return entry.id, entry.room_name or entry.name, list(deliberation.spec.languages)

    async def _replace(self, room: Room, earlier: Participant) -> None:
        """Remove a participant who joins again from another window or device (called under the room's lock): their
        earlier connection is told and closes; the room sees them leave, then join again."""
        room.participants.pop(earlier.id, None)
        if earlier.on_removed is not None:
            earlier.on_removed("joined_elsewhere", "You joined this room from another window or device.", None)
        try:
            await earlier.peer.close()
        except Exception:
            logger.exception("closing the media of %s failed", earlier.id)
        await self._ctx.bus.publish(ParticipantLeft(room_id=room.id, participant_id=earlier.id, name=earlier.name,
                                                    reason="joined_elsewhere"))
        for other in room.participants.values():
            self._update_subscriptions(room, other)

    async def _host(self, room: Room) -> None:
        """Make sure this node holds the room's lease (taken when the room gets its first participant, or again after
        a loss), or refuse with ``room_elsewhere``. Called under the room's lock: other rooms are not held up."""
        if self._directory is None or self._keeper is None or room.lease is not None:
            return
        claim = await self._directory.claim(ROOM_NODE, room.id)
        if isinstance(claim, HostedElsewhere):
            raise JoinRefused("room_elsewhere", "This room is on another server: join it there.",
                              location=claim.url or None)
        room.lease = claim
        self._keeper.keep(claim)

    async def _drop_if_empty(self, room: Room) -> None:
        """Forget an empty room and give its lease up. Called under the room's lock; the lease is released before the
        room is forgotten, so a join that comes meanwhile (it waits for the lock, then finds a new room) claims it
        afresh instead of renewing the lease just before it is released."""
        if room.participants or room.observers or self._rooms.get(room.id) is not room:
            return
        if room.lease is not None and self._keeper is not None:
            lease, room.lease = room.lease, None
            await self._keeper.drop(lease)
        del self._rooms[room.id]

    def _on_lease_lost(self, lease: Lease) -> None:
        """This node could not renew a room's lease in time (e.g. it was paused past the ttl): another node may host
        the room now. Its participants here are removed with ``room_moved``; their clients rejoin where it lives."""
        room = self._rooms.get(lease.key)
        if room is None or room.lease != lease:
            return
        room.lease = None  # a join from now on claims it again (or is sent where the room is now)
        logger.warning("room %s: this node lost its lease; moving its %d participants", room.id,
                       len(room.participants))
        for participant in [*room.participants.values(), *room.observers.values()]:
            self._remove(participant, "room_moved", "This room moved to another server: reconnecting.")

    def _remove(self, participant: Participant, code: str, message: str, location: str | None = None) -> None:
        """Remove a participant on the server's initiative: their connection is told (fatal ``code``) and leaves."""
        if participant.on_removed is not None:
            participant.on_removed(code, message, location)  # its connection then leaves
        else:
            task = asyncio.create_task(self.leave(participant, reason=code))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

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
                for other in [*room.participants.values(), *room.observers.values()]:
                    if other.peer is not peer:
                        self._update_subscriptions(room, other)
                return

    def _on_negotiation_failed(self, peer: Peer, failure: NegotiationFailed) -> None:
        participant = self._find(peer.participant_id)
        if participant is None:
            return
        logger.info("removing %s: %s", participant.id, failure.code)
        self._remove(participant, failure.code, str(failure))

    async def resume(self, room_id: str, token: str) -> str | None:
        """Redeem a resume ticket: the participant id it was issued to, or None when it is not valid here. If that
        participant is still in the room (the server had not noticed the lost connection yet), they are removed now,
        so the rejoin is not refused as a taken name."""
        participant_id = self.resume_tickets.redeem(room_id, token)
        if participant_id is None:
            return None
        stale = self._find(participant_id)
        if stale is not None:
            await self.leave(stale, reason="reconnected")
            if stale.on_removed is not None:
                stale.on_removed("reconnected", "You joined again from a new connection.", None)
        return participant_id

    async def control(self, event: RoomControl) -> bool:
        """Carry out a moderator's action on a room hosted here (``server/room_control.py`` delivers them); False when
        the room or the participant is not here."""
        room = self._rooms.get(event.room_id)
        if room is None:
            return False
        if event.action == "end":
            for present in [*room.participants.values(), *room.observers.values()]:
                self._remove(present, "room_ended", "A moderator has ended this room. Thank you for taking part.")
            return True
        participant = room.participants.get(event.participant_id or "")
        if participant is None:
            return False
        if event.action == "remove":
            self._remove(participant, "removed", "A moderator removed you from this room.")
        elif event.action == "move":
            self._remove(participant, "moved", "A moderator moved you to another room: joining it now.",
                         event.to_room)
        elif event.action == "mute":
            participant.audio = False
            await self._ctx.bus.publish(ParticipantMediaState(room_id=room.id, participant_id=participant.id,
                                                              audio=False, video=participant.video, by="moderator"))
        logger.info("moderator action %s on %s in room %s", event.action, participant.id, room.id)
        return True

    def _find(self, participant_id: str) -> Participant | None:
        for room in self._rooms.values():
            if participant_id in room.participants:
                return room.participants[participant_id]
            if participant_id in room.observers:
                return room.observers[participant_id]
        return None

    async def set_media(self, participant: Participant, audio: bool, video: bool) -> None:
        participant.audio, participant.video = audio, video
        await self._ctx.bus.publish(
            ParticipantMediaState(room_id=participant.room.id, participant_id=participant.id, audio=audio, video=video)
        )

    async def leave(self, participant: Participant, reason: str = "left") -> None:
        room = participant.room
        if participant.observer:
            await self._stop_observing(participant)
            return
        async with room.lock:
            if room.participants.get(participant.id) is not participant:  # gone, or replaced by a new join
                return
            del room.participants[participant.id]
        try:
            await participant.peer.close()
        except Exception:  # still announce the departure and renegotiate the others
            logger.exception("closing the media of %s failed", participant.id)
        await asyncio.to_thread(self._ctx.storage.mark_left, participant.id)
        await self._ctx.bus.publish(
            ParticipantLeft(room_id=room.id, participant_id=participant.id, name=participant.name, reason=reason)
        )
        async with room.lock:  # a join holds the lock until its participant is in the room
            for other in [*room.participants.values(), *room.observers.values()]:
                self._update_subscriptions(room, other)
            changed = self._languages_changed(room) if room.participants else None
            if changed is not None:
                self._tell_readers(room)
            await self._drop_if_empty(room)
        if changed is not None:
            await self._ctx.bus.publish(RoomLanguages(room_id=room.id, languages=changed))
        logger.info("participant %s left room %s (%s)", participant.id, room.id, reason)

    async def _stop_observing(self, observer: Participant) -> None:
        room = observer.room
        async with room.lock:
            if room.observers.get(observer.id) is not observer:
                return
            del room.observers[observer.id]
            count = len(room.observers)
        try:
            await observer.peer.close()
        except Exception:
            logger.exception("closing an observer's media failed")
        await self._ctx.bus.publish(ObserversChanged(room_id=room.id, count=count))
        async with room.lock:
            await self._drop_if_empty(room)

    async def close(self) -> None:
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for room in list(self._rooms.values()):
            for participant in [*room.participants.values(), *room.observers.values()]:
                await self.leave(participant, reason="server_shutdown")
        if self._keeper is not None:
            await self._keeper.close()
