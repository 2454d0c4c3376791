"""The Redis Streams bus for the scaled deployment: any number of server nodes and workers share rooms through it.

Keys (all under ``prefix``, ``moot:`` by default):

- ``s:<channel>`` (``room:<id>`` or a named channel): the channel's stream, trimmed to about ``history`` entries. An
  entry's id is ``<seq>-0``, so ``history`` and resumes are ``XRANGE`` reads.
- ``seq:<channel>``: the channel's sequence counter. Stream and counter expire ``ttl_s`` after the last event; a
  channel whose keys expired starts again from seq 1 (a subscriber takes a live seq 1 after a higher one as such a
  fresh start, not as a repeat). A counter lost while its stream remains continues after the stream's last entry.
- ``log:rooms`` (every room's events) and ``log:<channel>`` (each named channel): the logs that consumer groups read,
  trimmed to about ``log`` entries; an entry holds ``s`` (the seq) and ``e`` (the event). A bus made with ``log=0``
  writes no log (the speech tier's audio: read by subscription and history only, never by a consumer group).
- ``p:<channel>``: the pub/sub channel carrying ``"<seq> <event JSON>"`` for live fan-out.

Publishing is one Lua script (counter, stream, log and publish in one step, so the seq order is the order everywhere).
The stored JSON carries ``seq`` 0; readers fill it in from the entry id, the log entry or the message.

A lost connection (Redis restarting, or a pooled connection it closed as it did) does not fail a command at once:
publishing, history reads and acknowledgements are tried again, at once and then with a growing pause, for up to
``retry_for_s`` (10 s); a publish waits meanwhile, so its caller's events go out in order once Redis is back. Then
``ConnectionLost`` says that Redis stays unreachable. A publish tried again may have been carried out already (its
reply lost with the connection): the script then looks for the event's ``event_id`` among the stream's latest entries
and returns the seq it got instead of adding it again, so a retried publish is published once.

Fan-out: one pub/sub connection per process, subscribed once per pattern however many local subscriptions share it
(``SUBSCRIBE`` for a channel, ``PSUBSCRIBE`` for a glob); ``subscribe`` returns once Redis has confirmed. A live
message whose seq jumps past what a subscription has seen on its channel first brings the missing events from the
stream (gap fill: this repairs what was lost while the connection was down). redis-py subscribes again when it
reconnects; that confirmation makes the bus catch every subscription of the pattern up from the stream. A resume
(``after_seq``) subscribes first, then reads the stream and holds live messages back until the replay is delivered.

Consumers: each member has a reader task and its own connection (its blocking ``XREADGROUP``, at most 2 s at a time,
never delays anything else). It reads its own pending entries first (a restarted member), then new ones, at most
``prefetch`` ahead of ``get``, and every ``reclaim_after_s / 2`` (at most every 0.1 s) claims the entries that other
members, or an earlier instance of itself, left unacknowledged for longer than ``reclaim_after_s`` (never those it
still holds itself). Read-ahead entries count as delivered: keep ``prefetch`` times the handling time well under
``reclaim_after_s``, or another member may get them too.

Messages that are not known event types, or are malformed, are logged, counted in ``rejected`` and dropped, never
passed on (a log entry of that kind is acknowledged, so that it is not delivered again and again). Readers that lose
their connection log it once, back off (0.1 s doubling to 2 s) and carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError

from server.core.bus.base import (
    ROOMS,
    Bus,
    Consumer,
    Delivery,
    Subscription,
    check_named_channel,
    room_channel,
    stamp,
)
from server.core.errors import ConnectionLost, EventDecodeError, connection_lost
from server.core.events import BusEvent, bus_event_from_data, encode

logger = logging.getLogger(__name__)

PREFIX = "moot:"

_CONFIRM_TIMEOUT_S = 10.0
_BACKOFF_FIRST_S = 0.1
_BACKOFF_MAX_S = 2.0
_PENDING_PAGE = 100
_MAX_BLOCK_MS = 2000  # a consumer's blocking read; its connection's socket timeout is well above it
_READER_SOCKET_TIMEOUT_S = 10.0
_RETRY_FIRST_S = 0.05  # commands: the first retry is immediate (a stale connection), then 0.05 s doubling to 0.5 s
_RETRY_MAX_S = 0.5
_DEDUPE_LOOKBACK = 1000  # a retried publish looks for its event among this many of the channel's latest entries

# KEYS: stream, counter, log. ARGV: event JSON, history length, log length, ttl (ms, 0: none), pub/sub channel,
# event id ('' on a first attempt; on a retry, the event already published under this id is not published again),
# how many of the stream's latest entries to look through for it.
# A counter that is gone while its stream is not (evicted) continues after the stream's last entry.
_PUBLISH = """
if ARGV[6] ~= '' then
  for _, entry in ipairs(redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[7])) do
    local body = entry[2][2]
    if string.find(body, ARGV[6], 1, true) and cjson.decode(body).event_id == ARGV[6] then
      return tonumber(string.match(entry[1], '^(%d+)'))
    end
  end
end
local seq = redis.call('INCR', KEYS[2])
if seq == 1 then
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  if last[1] then
    seq = tonumber(string.match(last[1][1], '^(%d+)')) + 1
    redis.call('SET', KEYS[2], string.format('%d', seq))
  end
end
local id = string.format('%d', seq)
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id .. '-0', 'e', ARGV[1])
if tonumber(ARGV[4]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[4])
end
if tonumber(ARGV[3]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 's', id, 'e', ARGV[1])
end
redis.call('PUBLISH', ARGV[5], id .. ' ' .. ARGV[1])
return seq
"""

_GLOB = re.compile(r"[*?\[]")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.:-]")

Entry = tuple[Any, Any]  # a stream entry as redis-py returns it: (id, {field: value}) with bytes
T = TypeVar("T")
Retrying = Callable[[str, Callable[[bool], Awaitable[T]]], Awaitable[T]]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_pattern(channel: str) -> bool:
    return _GLOB.search(channel) is not None


def _check_single(channel: str) -> None:
    if _is_pattern(channel):
        raise ValueError("history and after_seq need one channel, not a pattern")


def _stream_entries(reply: Any) -> list[Entry]:
    """The entries of the one stream an ``XREADGROUP`` read (RESP2 list or RESP3 map)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return [entry for entries in reply.values() for entry in (entries[0] if entries else [])]
    return [entry for _stream, entries in reply for entry in entries]


async def _stop(task: asyncio.Task[None]) -> None:
    """Cancel a reader task and wait until it has ended. On Python 3.11 a cancellation can be lost inside redis-py
    (``asyncio.wait_for`` there returns a result that completed at the moment of the cancellation), so the readers
    also check a flag, and the task is cancelled again until it has ended."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.1)
    if not task.cancelled() and task.exception() is not None:
        logger.error("redis bus: %s ended with an error", task.get_name(), exc_info=task.exception())


class _Backoff:
    """Retry pacing for a reader loop: logs the first failure of a run of failures, and the recovery."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.delay = _BACKOFF_FIRST_S
        self.failing = False

    async def failed(self, exc: BaseException) -> None:
        if not self.failing:
            if connection_lost(exc):
                logger.warning("redis bus: %s lost its connection (%s); retrying", self.what, exc)
            else:
                logger.error("redis bus: %s failed; retrying", self.what, exc_info=exc)
        self.failing = True
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, _BACKOFF_MAX_S)

    def succeeded(self) -> None:
        if self.failing:
            logger.info("redis bus: %s works again", self.what)
        self.failing = False
        self.delay = _BACKOFF_FIRST_S


@dataclass(eq=False)
class _Listener:
    """A local subscription on a pub/sub key; ``held`` collects live messages while a resume replays history."""

    sub: Subscription
    key: str
    held: list[tuple[str, int, BusEvent]] | None = None


class RedisBus(Bus):
    def __init__(self, url: str, source: str = "local", prefix: str = PREFIX, history: int = 10_000,
                 log: int = 1_000_000, ttl_s: float = 86_400.0, retry_for_s: float = 10.0) -> None:
        self.source = source
        self.prefix = prefix
        self.rejected = 0  # messages and entries dropped as unknown or malformed
        self._url = url
        self._history_len = history
        self._log_len = log
        self.ttl_s = ttl_s
        self._retry_for_s = retry_for_s
        self._commands_failing = False
        self._client_name = "moot-bus:" + _UNSAFE_NAME.sub("_", source)
        self._pubsub_prefix = f"{prefix}p:"
        self._pattern_prefix = _GLOB_SPECIAL.sub(r"\\\1", prefix) + "p:"
        self._client: aioredis.Redis | None = None
        self._publish_script: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._listeners: dict[str, list[_Listener]] = {}
        self._confirmed: dict[str, asyncio.Event] = {}  # per pub/sub key: Redis confirmed the subscription
        self._consumers: set[_RedisConsumer] = set()
        self._closing = False

    # -- connections ---------------------------------------------------------------------------------------------

    def _connect(self, **options: Any) -> aioredis.Redis:
        return aioredis.from_url(self._url, client_name=self._client_name, health_check_interval=30, **options)

    async def start(self) -> None:
        client = self._connect()
        try:
            await client.ping()
            self._publish_script = client.register_script(_PUBLISH)
            pubsub = client.pubsub()
            # A channel nobody publishes on: the pub/sub connection exists (and is read) before any subscription.
            idle_key = f"{self.prefix}pubsub-reader"
            self._confirmed[idle_key] = asyncio.Event()
            await pubsub.subscribe(idle_key)
        except BaseException:
            await client.aclose()
            raise
        self._client, self._pubsub = client, pubsub
        self._reader = asyncio.create_task(self._read(), name="redis-bus-pubsub")

    def _require_client(self) -> aioredis.Redis:
        if self._client is None:
            raise RuntimeError("RedisBus.start() was not awaited (or the bus is closed)")
        return self._client

    async def close(self) -> None:
        self._closing = True
        for consumer in list(self._consumers):
            await consumer.close()
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                await listener.sub.close()
        if self._reader is not None:
            await _stop(self._reader)
            self._reader = None
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _retrying(self, what: str, attempt: Callable[[bool], Awaitable[T]]) -> T:
        """``await attempt(again)`` until it succeeds; a lost connection is tried again (``again``: an earlier attempt
        may have been carried out) for up to ``retry_for_s``, then ``ConnectionLost``. Other errors pass at once."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry_for_s
        delay = 0.0
        failures = 0
        while True:
            try:
                result = await attempt(failures > 0)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                failures += 1
                if failures == 2 and not self._commands_failing:  # (one failure: a stale pooled connection)
                    self._commands_failing = True
                    logger.warning("redis bus: lost the connection to Redis (%s); retrying for up to %g s",
                                   exc, self._retry_for_s)
                if self._closing:
                    raise ConnectionLost(f"redis bus: could not {what}: the bus is closing ({exc})") from exc
                if loop.time() >= deadline:
                    raise ConnectionLost(f"redis bus: could not {what}: Redis unreachable for {self._retry_for_s:g} s "
                                         f"({exc})") from exc
                await asyncio.sleep(min(delay, deadline - loop.time()))  # (the last try at the deadline)
                delay = min(max(delay * 2, _RETRY_FIRST_S), _RETRY_MAX_S)
                continue
            if self._commands_failing:
                self._commands_failing = False
                logger.info("redis bus: Redis answers again")
            return result

    # -- publishing ----------------------------------------------------------------------------------------------

    def _key(self, kind: str, channel: str) -> str:
        return f"{self.prefix}{kind}:{channel}"

    async def _append(self, channel: str, log_name: str, event: BusEvent) -> BusEvent:
        self._require_client()
        stamped = stamp(event, self.source)
        stored = stamped.model_copy(update={"seq": 0}) if stamped.seq else stamped
        body = encode(stored)

        async def attempt(again: bool) -> Any:
            return await self._publish_script(
                keys=[self._key("s", channel), self._key("seq", channel), self._key("log", log_name)],
                args=[body, self._history_len, self._log_len, max(0, int(self.ttl_s * 1000)),
                      self._pubsub_prefix + channel, stamped.event_id if again else "", _DEDUPE_LOOKBACK],
            )

        seq = await self._retrying(f"publish on {channel}", attempt)
        return stamped.model_copy(update={"seq": int(seq)})

    async def publish(self, event: BusEvent) -> BusEvent:
        return await self._append(room_channel(event.room_id), ROOMS, event)

    async def publish_to(self, channel: str, event: BusEvent) -> BusEvent:
        check_named_channel(channel)
        return await self._append(channel, channel, event)

    # -- decoding ------------------------------------------------------------------------------------------------

    def _decode(self, body: bytes | str, seq: int, where: str) -> BusEvent | None:
        """The event stored as ``body`` with its ``seq``; None (logged and counted) when it is not a known event."""
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise EventDecodeError("not a JSON object")
            data["seq"] = seq
            return bus_event_from_data(data)
        except ValueError as exc:  # EventDecodeError, JSON and UTF-8 errors are all ValueErrors
            self.rejected += 1
            logger.warning("redis bus: dropped an unknown or malformed event on %s: %s", where, exc)
            return None

    def _decode_message(self, channel: str, data: bytes | str) -> tuple[int, BusEvent] | None:
        raw = data.encode() if isinstance(data, str) else data
        seq_text, _, body = raw.partition(b" ")
        try:
            seq = int(seq_text)
        except ValueError:
            seq = 0
        if seq <= 0:
            self.rejected += 1
            logger.warning("redis bus: dropped a pub/sub message without a sequence number on %s", channel)
            return None
        event = self._decode(body, seq, channel)
        return None if event is None else (seq, event)

    def _decode_log_entry(self, fields: dict[bytes, bytes], where: str) -> BusEvent | None:
        try:
            seq = int(fields[b"s"])
            body = fields[b"e"]
        except (KeyError, ValueError):
            self.rejected += 1
            logger.warning("redis bus: dropped a malformed log entry on %s", where)
            return None
        return self._decode(body, seq, where)

    # -- history -------------------------------------------------------------------------------------------------

    async def _range(self, channel: str, after_seq: int, upto_seq: int | None = None,
                     limit: int | None = None) -> list[BusEvent]:
        client: Any = self._require_client()  # redis-py's annotations mix its sync and async return types
        entries: list[Entry] = await self._retrying(f"read {channel}", lambda _again: client.xrange(
            self._key("s", channel), min=str(max(after_seq, 0) + 1), max="+" if upto_seq is None else str(upto_seq),
            count=limit))
        events: list[BusEvent] = []
        for entry_id, fields in entries:
            seq = int(_text(entry_id).partition("-")[0])
            event = self._decode(fields.get(b"e", b""), seq, channel)
            if event is not None:
                events.append(event)
        return events

    async def history(self, channel: str, after_seq: int = 0, limit: int | None = None) -> list[BusEvent]:
        _check_single(channel)
        if limit is not None and limit <= 0:
            return []
        return await self._range(channel, after_seq, limit=limit)

    # -- fan-out -------------------------------------------------------------------------------------------------

    def _pubsub_key(self, pattern: str) -> str:
        return (self._pattern_prefix if _is_pattern(pattern) else self._pubsub_prefix) + pattern

    async def subscribe(self, pattern: str, maxsize: int = 1000, after_seq: int | None = None) -> Subscription:
        if self._pubsub is None:
            raise RuntimeError("RedisBus.start() was not awaited (or the bus is closed)")
        if after_seq is not None:
            _check_single(pattern)
        sub = Subscription(pattern, maxsize, on_close=self._remove)
        key = self._pubsub_key(pattern)
        listener = _Listener(sub, key, held=[] if after_seq is not None else None)
        self._listeners.setdefault(key, []).append(listener)  # live messages reach it (or are held) from now on
        try:
            confirmed = self._confirmed.get(key)
            if confirmed is None:
                confirmed = self._confirmed[key] = asyncio.Event()
                if _is_pattern(pattern):
                    await self._pubsub.psubscribe(key)
                else:
                    await self._pubsub.subscribe(key)
            # Once confirmed, every later publish reaches this process: events published after we return are not
            # missed, and a replay read from now on overlaps live delivery rather than leaving a gap.
            await asyncio.wait_for(confirmed.wait(), _CONFIRM_TIMEOUT_S)
            if after_seq is not None:
                for event in await self._range(pattern, after_seq):
                    sub.deliver(event, pattern)
                await self._release_held(listener)
        except BaseException:
            await sub.close()
            raise
        return sub

    async def _release_held(self, listener: _Listener) -> None:
        """Deliver the live messages held during a replay (duplicates of the replay are skipped by seq), then let
        live messages through directly. The reader keeps appending while we await: loop until none are left."""
        while listener.held:
            held, listener.held = listener.held, []
            for channel, seq, event in held:
                await self._deliver_live([listener], channel, seq, event)
        listener.held = None

    async def _remove(self, sub: Subscription) -> None:
        key = self._pubsub_key(sub.pattern)
        listeners = self._listeners.get(key, [])
        for listener in listeners:
            if listener.sub is sub:
                listeners.remove(listener)
                break
        else:
            return
        if listeners:
            return
        del self._listeners[key]
        self._confirmed.pop(key, None)
        if self._closing or self._pubsub is None:
            return  # the connection is about to close: nothing to unsubscribe from
        try:
            if _is_pattern(sub.pattern):
                await self._pubsub.punsubscribe(key)
            else:
                await self._pubsub.unsubscribe(key)
        except Exception as exc:  # still subscribed: its messages find no listener and are ignored
            logger.warning("redis bus: could not unsubscribe from %s: %s", key, exc)

    async def _read(self) -> None:
        """The pub/sub reader: confirmations and live messages, in the order Redis sends them."""
        backoff = _Backoff("the pub/sub reader")
        while not self._closing:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await backoff.failed(exc)
                continue
            backoff.succeeded()
            if message is None:
                continue
            try:
                await self._handle(message)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("redis bus: could not handle a pub/sub message")

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind in ("subscribe", "psubscribe"):
            key = _text(message["channel"])
            confirmed = self._confirmed.get(key)
            if confirmed is None:
                return
            if confirmed.is_set():  # subscribed again after a reconnect: fetch what was published meanwhile
                await self._catch_up(key)
            else:
                confirmed.set()
            return
        if kind == "message":
            key = _text(message["channel"])
        elif kind == "pmessage":
            key = _text(message["pattern"])
        else:
            return
        listeners = self._listeners.get(key)
        if not listeners:
            return
        channel = _text(message["channel"]).removeprefix(self._pubsub_prefix)
        decoded = self._decode_message(channel, message["data"])
        if decoded is None:
            return
        seq, event = decoded
        live: list[_Listener] = []
        for listener in list(listeners):
            if listener.held is not None:
                listener.held.append((channel, seq, event))
                continue
            if seq == 1 and listener.sub.last_seq.get(channel, 0) > 1:
                # The channel started again from 1 (its keys expired after ``ttl_s`` of quiet, or Redis lost them):
                # a new event, not a repeat. (Repeats of live messages come from catching up, never with seq 1.)
                del listener.sub.last_seq[channel]
            live.append(listener)
        if live:
            await self._deliver_live(live, channel, seq, event)

    async def _deliver_live(self, listeners: Sequence[_Listener], channel: str, seq: int, event: BusEvent) -> None:
        """Deliver a live event; to a subscription that saw an earlier seq on this channel but not the one before
        this, first the missing events from the stream (those still retained)."""
        behind = [listener for listener in listeners if 0 < listener.sub.last_seq.get(channel, 0) < seq - 1]
        if behind:
            since = min(listener.sub.last_seq[channel] for listener in behind)
            try:
                missing = await self._range(channel, since, upto_seq=seq - 1)
            except Exception as exc:
                logger.warning("redis bus: could not fill a gap on %s before seq %d: %s", channel, seq, exc)
                missing = []
            for listener in behind:
                for earlier in missing:
                    listener.sub.deliver(earlier, channel)
        for listener in listeners:
            listener.sub.deliver(event, channel)

    async def _catch_up(self, key: str) -> None:
        for listener in list(self._listeners.get(key, ())):
            if listener.held is not None:
                continue  # its replay is under way; a gap after it is filled on the next live message
            for channel, last in list(listener.sub.last_seq.items()):
                try:
                    events = await self._range(channel, last)
                except Exception as exc:
                    logger.warning("redis bus: could not catch %s up after a reconnect: %s", channel, exc)
                    continue
                for event in events:
                    listener.sub.deliver(event, channel)

    # -- durable consumers ---------------------------------------------------------------------------------------

    async def consumer(self, group: str, name: str, channel: str = ROOMS, reclaim_after_s: float = 30.0,
                       prefetch: int = 64) -> Consumer:
        if channel != ROOMS:
            check_named_channel(channel)
        if prefetch < 1 or reclaim_after_s <= 0:
            raise ValueError("a consumer needs prefetch >= 1 and reclaim_after_s > 0")
        client = self._require_client()
        log_key = self._key("log", channel)
        await _create_group(client, log_key, group)
        # Its own connection, without redis-py's retries: the reader loop handles a lost connection itself.
        reader = self._connect(single_connection_client=True, retry=Retry(NoBackoff(), 0),
                               socket_timeout=_READER_SOCKET_TIMEOUT_S)
        member = _RedisConsumer(client, reader, log_key, group, name, reclaim_after_s, prefetch,
                                decode=self._decode_log_entry, on_close=self._consumers.discard,
                                retrying=self._retrying)
        self._consumers.add(member)
        member.start()
        return member


async def _create_group(client: aioredis.Redis, log_key: str, group: str) -> None:
    """Create the group at the log's oldest entry (creating the log too); an existing group is kept as it is."""
    try:
        await client.xgroup_create(log_key, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class _RedisConsumer(Consumer):
    def __init__(self, client: aioredis.Redis, reader: aioredis.Redis, log_key: str, group: str, name: str,
                 reclaim_after_s: float, prefetch: int, decode: Callable[[dict[bytes, bytes], str], BusEvent | None],
                 on_close: Callable[[_RedisConsumer], None], retrying: Retrying[Any]) -> None:
        self.group = group
        self.name = name
        # (Any: redis-py's annotations mix its sync and async return types.)
        self._client: Any = client  # shared: acknowledgements
        self._reader: Any = reader  # this member's own: reads and claims, from its reader task only
        self._log_key = log_key
        self._reclaim_after_ms = max(1, int(reclaim_after_s * 1000))
        self._reclaim_every_s = max(reclaim_after_s / 2, 0.1)
        self._prefetch = prefetch
        self._decode = decode
        self._on_close = on_close
        self._retrying = retrying
        self._queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=prefetch)
        self._taken = asyncio.Event()
        self._outstanding: set[str] = set()  # entry ids queued or handed out by this instance, not acknowledged
        self._reread_own = False  # an acknowledgement failed: read this member's pending entries again
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"redis-bus-consumer:{self.group}:{self.name}")

    @property
    def pending(self) -> int:
        return len(self._outstanding)

    async def get(self, timeout: float | None = None) -> Delivery:
        if self._closed:
            raise StopAsyncIteration
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            self._queue.put_nowait(None)  # stay ended for the next caller too
            raise StopAsyncIteration
        self._taken.set()
        return item

    async def ack(self, *deliveries: Delivery) -> None:
        if not deliveries:
            return
        ids = [delivery.entry_id for delivery in deliveries]
        try:
            await self._retrying(f"acknowledge on {self._log_key}",
                                 lambda _again: self._client.xack(self._log_key, self.group, *ids))
        except Exception:
            # Not known to be acknowledged: they stay pending under this name and are delivered again (the reader
            # reads this member's pending entries again), as after a lost reply.
            self._reread_own = True
            raise
        finally:
            self._outstanding.difference_update(ids)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            await _stop(self._task)
        # What was read ahead stays pending in Redis under this name: a restart or another member gets it.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self._outstanding.clear()
        await self._reader.aclose()
        self._on_close(self)

    # -- the reader task -----------------------------------------------------------------------------------------

    def _room(self) -> int:
        return self._prefetch - self._queue.qsize()

    async def _wait_for_room(self) -> None:
        while self._room() <= 0:
            self._taken.clear()
            await self._taken.wait()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = _Backoff(f"consumer {self.group}/{self.name}")
        own_first = True  # at the start, and after a lost connection (a lost reply leaves entries pending here)
        next_reclaim = loop.time()
        while not self._closed:
            try:
                await self._wait_for_room()
                if own_first or self._reread_own:
                    self._reread_own = False
                    await self._read_own_pending()
                    own_first = False
                elif loop.time() >= next_reclaim:
                    await self._reclaim()
                    next_reclaim = loop.time() + self._reclaim_every_s
                else:
                    wait_ms = int((next_reclaim - loop.time()) * 1000)
                    await self._read_new(block_ms=min(max(wait_ms, 1), _MAX_BLOCK_MS))
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the log or the group is gone (e.g. Redis restarted empty): create again
                    logger.warning("redis bus: consumer group %s on %s was missing; creating it again",
                                   self.group, self._log_key)
                    with contextlib.suppress(Exception):
                        await _create_group(self._client, self._log_key, self.group)
                own_first = True
                await backoff.failed(exc)
                continue
            except Exception as exc:
                own_first = True
                await backoff.failed(exc)
                continue
            backoff.succeeded()

    async def _hand(self, entry_id: str, fields: dict[bytes, bytes] | None, attempt: int) -> None:
        event = self._decode(fields, self._log_key) if fields else None
        if event is None:  # trimmed away (no fields) or not an event: it can never be handled, so it is done
            if not fields:
                logger.warning("redis bus: pending entry %s of %s was trimmed before it was handled",
                               entry_id, self._log_key)
            await self._client.xack(self._log_key, self.group, entry_id)
            return
        self._outstanding.add(entry_id)
        await self._queue.put(Delivery(entry_id, event, attempt))

    async def _read_own_pending(self) -> None:
        """This member's entries that were delivered and never acknowledged (an earlier instance's, or replies lost
        with a connection), except those this instance already holds."""
        after = "0"
        while True:
            await self._wait_for_room()
            reply = await self._reader.xreadgroup(self.group, self.name, {self._log_key: after}, count=self._room())
            entries = _stream_entries(reply)
            if not entries:
                return
            first, after = _text(entries[0][0]), _text(entries[-1][0])
            rows = await self._reader.xpending_range(self._log_key, self.group, min=first, max=after,
                                                     count=len(entries), consumername=self.name)
            delivered = {_text(row["message_id"]): int(row["times_delivered"]) for row in rows}
            for raw_id, fields in entries:
                entry_id = _text(raw_id)
                if entry_id not in self._outstanding:
                    await self._hand(entry_id, fields, max(2, delivered.get(entry_id, 2)))

    async def _read_new(self, block_ms: int) -> None:
        reply = await self._reader.xreadgroup(self.group, self.name, {self._log_key: ">"}, count=self._room(),
                                              block=block_ms)
        for raw_id, fields in _stream_entries(reply):
            await self._hand(_text(raw_id), fields, 1)

    async def _reclaim(self) -> None:
        """Claim the group's entries left unacknowledged for longer than ``reclaim_after_s`` (not those this
        instance holds), as many as there is room for."""
        room = self._room()
        delivered: dict[str, int] = {}
        start = "-"
        while len(delivered) < room:
            rows = await self._reader.xpending_range(self._log_key, self.group, min=start, max="+",
                                                     count=_PENDING_PAGE, idle=self._reclaim_after_ms)
            for row in rows:
                entry_id = _text(row["message_id"])
                if entry_id not in self._outstanding:
                    delivered[entry_id] = int(row["times_delivered"])
            if len(rows) < _PENDING_PAGE:
                break
            start = "(" + _text(rows[-1]["message_id"])
        ids = list(delivered)[:room]
        if not ids:
            return
        # Claimed only if still idle that long: of members racing for an entry, one gets it.
        claimed = await self._reader.xclaim(self._log_key, self.group, self.name, self._reclaim_after_ms, ids)
        for raw_id, fields in claimed:
            entry_id = _text(raw_id)
            if fields:  # Redis drops entries trimmed from the log from the pending list as it claims them
                await self._hand(entry_id, fields, delivered.get(entry_id, 1) + 1)
