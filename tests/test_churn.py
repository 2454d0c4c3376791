"""Join/leave churn: participants who leave at any point of the negotiation leave nothing behind.

The soak test runs 200 join/leave cycles, several at once, each stopping at a random point (before joining, right after
``join``, after ``welcome`` while the server gathers ICE candidates, after the offer, after answering, once media
flows), ending with a ``leave`` message or an abrupt disconnect. Afterwards the process's open file descriptors, UDP
sockets, threads and the server's asyncio tasks are back at their starting values and the process is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from server.core.events import Error, Offer, ParticipantLeft, Pong, decode_server_message
from server.core.settings import Settings
from server.rtc.testmedia import MovingPatternVideoTrack, WavAudioTrack
from server.rtc.testpeer import TestPeer
from tests.servers import RunningServer, running_server

STOPS = ["connected", "join_sent", "welcome", "offer", "answered", "media"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = Settings(data_dir=tmp_path, asr_backend="fake", rtc_loopback_candidates=True, max_participants=8,
                        negotiation_timeout_s=10, llm_backend="none", join_deadline_s=5)
    with running_server(settings) as running:
        yield running


def udp_inodes() -> set[str]:
    inodes = set()
    for table in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            for line in f.readlines()[1:]:
                inodes.add(line.split()[9])
    return inodes


def pool_thread(thread: threading.Thread) -> bool:
    """A worker of a ``ThreadPoolExecutor`` (e.g. asyncio's default executor): pools keep idle workers up to their
    bound, so these are counted separately from threads that would be leaked per participant."""
    target = getattr(thread, "_target", None)
    return getattr(target, "__module__", "") == "concurrent.futures.thread"


def fd_kinds() -> dict[str, int]:
    kinds: dict[str, int] = {}
    udp = udp_inodes()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            kind = "udp" if link.startswith("socket:[") and link[8:-1] in udp else link.split(":")[0][:20]
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def database_files(server: RunningServer) -> int:
    """Descriptors of the database's pooled connections (files in the data directory)."""
    database = str(server.ctx.settings.data_dir.resolve())
    return sum(1 for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}").startswith(database))


def resources(server: RunningServer) -> dict[str, int]:
    """What a leak would make grow: open fds, UDP sockets, threads, and tasks on the server's loop. The database's
    connection pool (files in the data directory) and thread pools keep up to their bound; checked separately."""
    fds = os.listdir("/proc/self/fd")
    udp = udp_inodes()
    sockets = 0
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:[") and link[8:-1] in udp:
                sockets += 1
    threads = [t for t in threading.enumerate() if not pool_thread(t)]
    return {"fds": len(fds) - database_files(server), "udp_sockets": sockets, "threads": len(threads),
            "server_tasks": len(server.task_names())}


async def cycle(server: RunningServer, room: str, rng: random.Random, n: int) -> str:
    """One participant joins and leaves, stopping at a random point of the negotiation."""
    stop = rng.choice(STOPS)
    polite = rng.random() < 0.5  # send ``leave`` first, or just vanish
    pc: RTCPeerConnection | None = None
    ws = await websockets.connect(server.ws(room), max_size=2**22)
    try:
        if stop == "connected":
            return stop
        await ws.send(json.dumps({"type": "join", "name": f"P{n}", "consent": True}))
        if stop == "join_sent":
            return stop
        offer = None
        async with asyncio.timeout(30):
            while offer is None:
                message = decode_server_message(await ws.recv())
                if isinstance(message, Error) and message.fatal:
                    raise AssertionError(f"join refused: {message}")
                if message.type == "welcome" and stop == "welcome":
                    return stop
                if isinstance(message, Offer):
                    offer = message
        if stop == "offer":
            return stop
        pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        connected = asyncio.Event()
        pc.on("connectionstatechange", lambda: connected.set() if pc and pc.connectionState == "connected" else None)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer.sdp, type="offer"))
        transceivers = pc.getTransceivers()
        audio = next(t for t in transceivers if t.kind == "audio")
        video = next(t for t in transceivers if t.kind == "video")
        audio.sender.replaceTrack(WavAudioTrack(tone_hz=300 + 10 * n))
        video.sender.replaceTrack(MovingPatternVideoTrack())
        audio.direction = video.direction = "sendrecv"
        await pc.setLocalDescription(await pc.createAnswer())
        await ws.send(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
        if stop == "answered":
            return stop
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(connected.wait(), 10)
        return stop
    finally:
        if polite:
            with contextlib.suppress(Exception):
                await ws.send(json.dumps({"type": "leave"}))
            await ws.close()
        else:
            ws.transport.abort()  # vanish without a closing handshake
            await ws.wait_closed()
        if pc is not None:
            await pc.close()


async def settle(server: RunningServer, baseline: dict[str, int], timeout: float = 60) -> dict[str, int]:
    """The resources once they stop changing (closing peers finish in the background), or at the deadline."""
    deadline = time.monotonic() + timeout
    now = resources(server)
    while now != baseline and time.monotonic() < deadline:
        await asyncio.sleep(0.5)  # polling a measurement under a deadline, not synchronising with an event
        now = resources(server)
    return now


async def churn(server: RunningServer, rooms: list[str], rng: random.Random, batches: int) -> dict[str, int]:
    """A bystander stays in the first room while participants come and go, four at a time; then it leaves too."""
    bystander = TestPeer(server.ws(rooms[0]), "Bystander", audio=WavAudioTrack(tone_hz=200),
                         video=MovingPatternVideoTrack())
    await bystander.join()
    stops: dict[str, int] = {}
    try:
        for batch in range(batches):
            done = await asyncio.gather(*(cycle(server, rooms[(batch + i) % 3], rng, batch * 4 + i)
                                          for i in range(4)))
            for stop in done:
                stops[stop] = stops.get(stop, 0) + 1
    finally:
        await bystander.close()
    return stops


async def test_two_hundred_join_leave_cycles_leak_nothing(server: RunningServer) -> None:
    rooms = [server.ctx.storage.create_room(f"Churn {i}", 8).id for i in range(3)]
    await churn(server, rooms, random.Random(1), batches=3)  # warm-up: pools and caches made once per process
    baseline = await settle(server, {}, timeout=10)
    baseline_fds, baseline_tasks = fd_kinds(), server.task_names()
    pool_bound = sum(1 for t in threading.enumerate() if pool_thread(t))

    stops = await churn(server, rooms, random.Random(20261201), batches=int(os.environ.get("CHURN_BATCHES", 50)))
    assert set(stops) == set(STOPS), f"every stopping point was exercised: {stops}"
    after = await settle(server, baseline)
    assert after == baseline, (f"leaked after {sum(stops.values())} cycles ({stops}): {baseline} -> {after}; "
                               f"descriptors {baseline_fds} -> {fd_kinds()}; server tasks {baseline_tasks} -> "
                               f"{server.task_stacks()}")
    assert all(server.ctx.rooms.room(room) is None for room in rooms), "empty rooms are dropped"
    pools = sum(1 for t in threading.enumerate() if pool_thread(t))
    assert pools <= max(pool_bound, 2 * ((os.cpu_count() or 1) + 4)), "thread pools stay within their bounds"
    assert database_files(server) <= 3 * 5, "at most the pool's 5 connections (database, WAL, shared memory)"

    # Idle: over two seconds the process (the server and this test's loop) uses almost no CPU.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    await asyncio.sleep(2)  # the window being measured
    idle = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (idle.ru_utime + idle.ru_stime) - (usage.ru_utime + usage.ru_stime)
    assert cpu / (time.monotonic() - started) < 0.15, f"not idle: {cpu:.2f} s of CPU in 2 s"


async def test_unjoined_sockets_are_closed_at_the_join_deadline(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Deadline", 8).id
    async with websockets.connect(server.ws(room)) as ws:
        message = decode_server_message(await asyncio.wait_for(ws.recv(), 30))
        assert isinstance(message, Error) and message.code == "join_timeout" and message.fatal
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)


async def test_a_leave_renegotiates_only_those_whose_subscriptions_changed(server: RunningServer) -> None:
    room = server.ctx.storage.create_room("Renegotiation", 8).id
    ada = TestPeer(server.ws(room), "Ada", audio=WavAudioTrack(tone_hz=220), video=MovingPatternVideoTrack())
    await ada.join()
    try:
        await ada.wait_for(lambda m: isinstance(m, Offer), 30)
        # Bo joins and leaves before publishing anything: Ada's subscriptions never changed, so no new offer.
        offers = ada.offers
        async with websockets.connect(server.ws(room)) as bo:
            await bo.send(json.dumps({"type": "join", "name": "Bo", "consent": True}))
            while decode_server_message(await asyncio.wait_for(bo.recv(), 30)).type != "welcome":
                pass
            await bo.send(json.dumps({"type": "leave"}))
        await ada.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.name == "Bo", 30)
        await ada.send({"type": "ping"})
        await ada.wait_for(lambda m: isinstance(m, Pong), 30)
        assert ada.offers == offers, "nothing Ada receives changed: no renegotiation"
        # Cy publishes, then leaves: Ada's subscriptions change both times, so she gets offers.
        cy = TestPeer(server.ws(room), "Cy", audio=WavAudioTrack(tone_hz=440), video=MovingPatternVideoTrack())
        welcome = await cy.join()
        await ada.wait_media(welcome.participant_id, "video", frames=5, timeout=30)
        before_leave = ada.offers
        await cy.close()
        await ada.wait_for(lambda m: isinstance(m, ParticipantLeft) and m.name == "Cy", 30)
        await ada.wait_for(lambda m: isinstance(m, Offer) and ada.offers > before_leave, 30)
    finally:
        await ada.close()


async def test_closing_a_peer_while_it_gathers_ice_candidates_closes_every_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's first offer gathers candidates, binding one UDP socket per host address in turn; a participant
    gone while the second was being bound once left the first open forever (aioice loses the sockets of a cancelled
    gathering). Close exactly then, many times, on a host with two addresses."""
    import aioice.ice

    from server.rtc.peer import Peer

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1", "127.0.0.2"])
    caught = 0
    for attempt in range(20):
        before = len(udp_inodes())
        peer = Peer(f"p{attempt}", lambda message: None, 10, lambda peer, published: None, None)
        peer.negotiate()
        deadline = time.monotonic() + 10
        while len(udp_inodes()) < before + 2 and peer.pc.iceGatheringState != "complete":
            assert time.monotonic() < deadline, "gathering never bound a second socket"
            await asyncio.sleep(0)  # polling for the second bound socket: close in the middle of gathering
        caught += peer.pc.iceGatheringState != "complete"
        await peer.close()
        assert len(udp_inodes()) == before, "UDP sockets left open after closing a peer during ICE gathering"
    assert caught >= 5, "closed during gathering often enough to matter"


async def test_consent_checks_never_start_on_a_closed_ice_connection() -> None:
    """A peer closed while its ICE checks had just succeeded: aioice's connect() resumed after close() and started
    consent-freshness checks that nothing ever stopped (one task leaked per such participant)."""
    from aioice.ice import Connection

    from server.rtc import forwarding

    forwarding.guard_consent_after_close()
    connection = Connection(ice_controlling=True)
    connection.remote_password = "remote"
    await connection.close()
    consent = asyncio.create_task(connection.query_consent())  # what the late connect() does
    await asyncio.wait_for(consent, 10)  # ends at once instead of checking every 5 s forever
