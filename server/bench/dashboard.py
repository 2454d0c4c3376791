"""``moot bench dashboard``: the moderators' live dashboard with many busy rooms.

A real server node runs as its own process on the Redis bus (``moot server``, no speech recognition, no facilitator,
so its CPU is the dashboard's and the bus's). This process makes a deliberation whose round seats ``--rooms`` rooms of
``--people`` and then plays those rooms' traffic on the bus, at the rates of a live session: per room and second two
voice-activity events and three partial captions (which the dashboard must skip cheaply), a final caption every 4 s,
speaking balance and the node's ``room.status`` every 5 s, and calls for a moderator across the deliberation (one
every 5 s, taken 10 s later).

Two ways for the same moderators to watch the same rooms are measured one after the other in the same run:

- **push** (the dashboard): one WebSocket client that records every message (count, bytes, and how long after a
  final caption was published its card arrived), plus headless Chromium rendering the dashboard page, which records
  the time from a message's arrival to the DOM showing it, and the main thread's long tasks;
- **poll** (the peer: what the per-room moderator page did before, for every room): each room's five moderator API
  reads every 2 s.

For each: the server process's CPU (its own ``/proc`` counters; average and worst second), messages or requests and
bytes per second (worst second), and for push the caption-to-card latency and render times (median and worst).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from server.bench import print_result

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "bench password for the dashboard"
SENTENCES = [
    "I think the bus lane would help people who cannot drive.",
    "The shops on the high street worry about deliveries.",
    "Could we try it for six months and then decide?",
    "My street already has too much traffic at school time.",
    "Cyclists would need a safe space as well.",
]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "dashboard",
        help="the moderators' live dashboard with many busy rooms: server CPU, event rate, render time, vs polling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--rooms", type=int, default=50)
    p.add_argument("--people", type=int, default=6, help="participants per room (2-12)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each measured phase")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--no-browser", action="store_true", help="skip the headless Chromium render measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=main)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSampler:
    """The server's CPU use per second over a phase (a core = 100%)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[float] = []

    async def run(self, seconds: float) -> None:
        last, at = _cpu_seconds(self.pid), time.monotonic()
        end = at + seconds
        while time.monotonic() < end:
            await asyncio.sleep(1.0)
            now_cpu, now = _cpu_seconds(self.pid), time.monotonic()
            self.samples.append(100 * (now_cpu - last) / (now - at))
            last, at = now_cpu, now

    def summary(self) -> dict[str, float]:
        return {"cpu_avg_pct": round(statistics.fmean(self.samples), 1) if self.samples else 0.0,
                "cpu_worst_s_pct": round(max(self.samples), 1) if self.samples else 0.0}


def per_second_worst(times: list[float], weights: list[float] | None = None) -> float:
    """The largest total (count, or sum of ``weights``) in any one-second bucket."""
    buckets: dict[int, float] = {}
    for i, t in enumerate(times):
        buckets[int(t)] = buckets.get(int(t), 0.0) + (weights[i] if weights is not None else 1.0)
    return max(buckets.values(), default=0.0)


def _setup(settings: Any, rooms: int, people: int) -> tuple[str, dict[str, list[tuple[str, str]]], str]:
    """A deliberation seated in ``rooms`` rooms; the organiser's email; rooms -> [(participant id, name)]."""
    from server.accounts.service import open_account_service
    from server.deliberations.spec import DeliberationSpec
    from server.deliberations.store import DeliberationStore
    from server.lobby.notice import NOTICE_VERSION
    from server.lobby.store import LobbyStore
    from server.storage import Storage

    storage = Storage(settings.resolved_database_url())
    storage.create_schema()
    accounts = open_account_service(settings, storage)
    email = "bench-organiser@example.org"
    user, _ = accounts.add_user(email, "organiser", PASSWORD)
    deliberations = DeliberationStore(storage.sessions)
    spec = DeliberationSpec(title="Dashboard bench", question="Should the high street get a bus lane?",
                            group_min=people, group_max=people)
    record = deliberations.transition(deliberations.create(user.id, spec, time.time()).id, "open", time.time())
    lobby = LobbyStore(storage.sessions)
    names = {}
    for n in range(rooms * people):
        entry = lobby.arrive(record, f"Person {n + 1}", {}, NOTICE_VERSION, time.time())
        names[entry.id] = entry.name
    formed = lobby.start_round(record, time.time())
    seated = {room: [(pid, names[pid]) for pid in members] for room, members in formed.rooms.items()}
    storage.close()
    return record.id, seated, email


class Traffic:
    """Plays the rooms' bus traffic; remembers when each final caption was published."""

    def __init__(self, bus: Any, seated: dict[str, list[tuple[str, str]]]) -> None:
        self.bus = bus
        self.seated = seated
        self.caption_published: dict[str, float] = {}
        self.events = 0
        self._tick = 0
        self._calls: list[tuple[float, str, str, str]] = []

    async def start_rooms(self) -> None:
        from server.core.events import ParticipantInfo, ParticipantJoined, StageChanged

        now = time.time()
        for room_id, people in self.seated.items():
            for pid, name in people:
                await self.bus.publish(ParticipantJoined(room_id=room_id, participant=ParticipantInfo(
                    participant_id=pid, name=name)))
            await self.bus.publish(StageChanged(room_id=room_id, template_id="bench", stage_id="discuss", index=1,
                                                title="Share your views", kind="discuss", started_at=now,
                                                ends_at=now + 1200))

    async def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            await self.second()
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))

    async def second(self) -> None:
        from server.core.events import (
            CaptionFinal,
            CaptionPartial,
            HelpRequested,
            HelpTaken,
            ParticipantHealth,
            RoomStatus,
            SpeakerTime,
            SpeakingBalance,
            VoiceActivity,
        )

        self._tick += 1
        now = time.time()
        batch: list[Any] = []
        for index, (room_id, people) in enumerate(self.seated.items()):
            speaker_id, speaker = people[(self._tick + index) % len(people)]
            for n in range(2):
                batch.append(VoiceActivity(room_id=room_id, participant_id=speaker_id, speaking=n == 0, t=now))
            for n in range(3):
                batch.append(CaptionPartial(room_id=room_id, utterance_id=f"{room_id}-{self._tick}",
                                            participant_id=speaker_id, speaker_name=speaker, committed="",
                                            tentative=SENTENCES[self._tick % len(SENTENCES)][: 10 * (n + 1)],
                                            start=float(self._tick)))
            if (self._tick + index) % 4 == 0:
                utterance = f"{room_id}-f{self._tick}"
                batch.append(CaptionFinal(room_id=room_id, utterance_id=utterance, participant_id=speaker_id,
                                          speaker_name=speaker, text=SENTENCES[self._tick % len(SENTENCES)],
                                          start=float(self._tick), end=self._tick + 3.0))
            if (self._tick + index) % 5 == 0:
                batch.append(SpeakingBalance(room_id=room_id, speakers=[
                    SpeakerTime(participant_id=pid, name=name, seconds=self._tick * (i + 1) / 3)
                    for i, (pid, name) in enumerate(people)]))
                batch.append(RoomStatus(room_id=room_id, node="bench", participants=[
                    ParticipantHealth(participant_id=pid, name=name, audio=True, video=True, connection="connected",
                                      loss=random.choice([0.0, 0.0, 0.01, 0.08]), rtt_ms=random.uniform(20, 200),
                                      audio_silent_s=random.choice([None, None, None, 35.0]))
                    for pid, name in people]))
        if self._tick % 5 == 0:
            room_id = random.choice(list(self.seated))
            pid, name = random.choice(self.seated[room_id])
            request = f"h{self._tick}"
            batch.append(HelpRequested(room_id=room_id, request_id=request, participant_id=pid, participant_name=name,
                                       note="The sound keeps cutting out"))
            self._calls.append((time.monotonic() + 10, room_id, request, pid))
        while self._calls and self._calls[0][0] <= time.monotonic():
            _, room_id, request, pid = self._calls.pop(0)
            batch.append(HelpTaken(room_id=room_id, request_id=request, participant_id=pid))
        for event in batch:
            published = await self.bus.publish(event)
            if isinstance(event, CaptionFinal):
                self.caption_published[event.utterance_id] = published.ts
        self.events += len(batch)


async def _push_client(url: str, token: str, origin: str, stop: asyncio.Event,
                       captions: dict[str, float]) -> dict[str, Any]:
    import websockets

    arrivals: list[float] = []
    sizes: list[float] = []
    latencies: list[float] = []
    seen: set[str] = set()
    async with websockets.connect(url, additional_headers={"Cookie": f"moot_session={token}"}, origin=origin,  # type: ignore[arg-type]
                                  max_size=2**24) as ws:
        start = time.monotonic()
        while not stop.is_set():
            try:
                raw = await asyncio.wait_for(ws.recv(), 0.5)
            except TimeoutError:
                continue
            received = time.time()
            arrivals.append(time.monotonic() - start)
            sizes.append(float(len(raw)))
            message = json.loads(raw)
            for card in message.get("rooms", []):
                for line in card.get("captions", []):
                    published = captions.get(line["utterance_id"])
                    if published is not None and line["utterance_id"] not in seen:
                        seen.add(line["utterance_id"])
                        latencies.append(received - published)
    return {
        "messages": len(arrivals),
        "messages_per_s_worst": per_second_worst(arrivals),
        "bytes_per_s_worst": int(per_second_worst(arrivals, sizes)),
        "caption_to_card_p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "caption_to_card_worst_s": round(max(latencies), 3) if latencies else None,
        "captions_seen": len(latencies),
    }


async def _poll(base: str, token: str, rooms: list[str], seconds: float) -> dict[str, Any]:
    import httpx

    paths = ["ai-messages/pending", "safety-flags", "summary-flags", "llm-calls", "help-requests"]
    times: list[float] = []
    sizes: list[float] = []
    failures = 0
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"},
                                 limits=httpx.Limits(max_connections=20)) as client:
        async def one(path: str) -> None:
            nonlocal failures
            response = await client.get(path)
            if response.status_code != 200:
                failures += 1
            times.append(time.monotonic() - start)
            sizes.append(float(len(response.content)))

        while time.monotonic() - start < seconds:
            began = time.monotonic()
            await asyncio.gather(*(one(f"/api/rooms/{room}/{path}") for room in rooms for path in paths))
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - began)))
    return {"requests": len(times), "requests_per_s_worst": per_second_worst(times), "failed": failures,
            "bytes_per_s_worst": int(per_second_worst(times, sizes))}


def _browser_measure(base: str, deliberation: str, token: str, ready: threading.Event,
                     done: threading.Event) -> dict[str, Any]:
    """Chromium renders the dashboard: sets ``ready`` once it shows the rooms, measures until ``done``."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(viewport={"width": 1600, "height": 1000}, bypass_csp=True)  # (for probes)
        context.add_cookies([{"name": "moot_session", "value": token, "url": base}])
        page = context.new_page()
        page.add_init_script("""window.__longTasks = [];
            new PerformanceObserver((list) => { for (const e of list.getEntries())
              window.__longTasks.push([e.startTime, e.duration]); }).observe({ type: 'longtask', buffered: true });""")
        page.goto(f"{base}/dashboard/{deliberation}")
        page.wait_for_function("window.mootDashboard && window.mootDashboard.cards > 0", timeout=60_000)
        start = page.evaluate("performance.now()")
        ready.set()
        while not done.wait(0.5):
            page.wait_for_timeout(100)  # (let Playwright serve the page's events meanwhile)
        stats = page.evaluate("({renders: window.mootDashboard.renders, messages: window.mootDashboard.messages,"
                              " cards: window.mootDashboard.cards, long: window.__longTasks,"
                              " nodes: document.getElementsByTagName('*').length})")
        browser.close()
    renders = [(at, ms) for at, ms in stats["renders"] if at >= start]
    long_tasks = [(at, ms) for at, ms in stats["long"] if at >= start]
    durations = [ms for _, ms in renders]
    return {
        "cards": stats["cards"], "dom_nodes": stats["nodes"], "renders": len(renders),
        "render_p50_ms": round(statistics.median(durations), 1) if durations else None,
        "render_p95_ms": round(sorted(durations)[int(0.95 * (len(durations) - 1))], 1) if durations else None,
        "renders_over_100ms": sum(1 for ms in durations if ms > 100),
        "render_worst_ms": round(max(durations), 1) if durations else None,
        "long_tasks": len(long_tasks), "long_task_worst_ms": round(max((ms for _, ms in long_tasks), default=0.0), 1),
        "main_thread_busy_worst_s_ms": round(per_second_worst([at / 1000 for at, _ in long_tasks],
                                                              [ms for _, ms in long_tasks]), 1),
    }


async def run_dashboard_bench(rooms: int, people: int, seconds: float, redis_url: str,
                              browser: bool) -> dict[str, Any]:
    from server.accounts.service import open_account_service
    from server.core.bus import create_bus
    from server.core.settings import Settings
    from server.storage import Storage

    prefix = f"moot-bench-dashboard-{os.getpid()}:"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data_dir=Path(data), bus="redis", redis_url=SecretStr(redis_url), redis_prefix=prefix)
        deliberation, seated, email = await asyncio.to_thread(_setup, settings, rooms, people)
        env = {**os.environ, "MOOT_LOG_LEVEL": "WARNING", "MOOT_BUS": "redis", "MOOT_REDIS_URL": redis_url,
               "MOOT_REDIS_PREFIX": prefix, "MOOT_FACILITATOR_ENABLED": "false", "MOOT_RECORDER_ENABLED": "false",
               "MOOT_ASR_BACKEND": "none", "MOOT_DATA_DIR": data}
        # The server's log goes to a file: a pipe nobody reads could fill and stall it.
        log = await asyncio.to_thread((Path(data) / "server.log").open, "wb")
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "server", "server", "--port", str(port), "--processes", "1",
            env=env, stdout=subprocess.DEVNULL, stderr=log)
        bus = create_bus("redis", redis_url, source="bench:dashboard", prefix=prefix)
        try:
            await _wait_healthy(base, server, Path(data) / "server.log")
            storage = Storage(settings.resolved_database_url())
            accounts = open_account_service(settings, storage)
            token = (await asyncio.to_thread(accounts.sign_in, email, PASSWORD)).token
            storage.close()
            await bus.start()
            traffic = Traffic(bus, seated)
            await traffic.start_rooms()
            await traffic.run(3.0)  # warm-up: every room has had traffic

            idle = CpuSampler(server.pid)
            await asyncio.gather(idle.run(seconds / 2), traffic.run(seconds / 2))

            push = CpuSampler(server.pid)
            stop = asyncio.Event()
            client = asyncio.create_task(_push_client(
                f"ws://127.0.0.1:{port}/ws/deliberations/{deliberation}/dashboard", token, base, stop,
                traffic.caption_published))
            ready, done = threading.Event(), threading.Event()
            rendering = None
            if browser:
                rendering = asyncio.create_task(asyncio.to_thread(_browser_measure, base, deliberation, token, ready,
                                                                  done))
                while not ready.is_set() and not rendering.done():
                    await traffic.run(1.0)  # rooms stay busy while the browser starts
                if rendering.done():
                    rendering.result()  # (raises what went wrong)
            events_before = traffic.events
            await asyncio.gather(push.run(seconds), traffic.run(seconds))
            stop.set()
            done.set()
            push_client = await client
            render = await rendering if rendering is not None else None
            push_events = traffic.events - events_before

            poll_cpu = CpuSampler(server.pid)
            polled, _, _ = await asyncio.gather(_poll(base, token, list(seated), seconds), poll_cpu.run(seconds),
                                                traffic.run(seconds))
        finally:
            await bus.close()
            if server.returncode is None:
                server.terminate()
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                server.kill()
                await server.wait()
            log.close()
    return {
        "rooms": rooms, "people_per_room": people, "seconds_per_phase": seconds,
        "bus_events_per_s": round(push_events / seconds, 1),
        "server_traffic_only": idle.summary(),
        "push": {**push.summary(), **push_client, "browser": render},
        "poll_peer": {**poll_cpu.summary(), **polled},
    }


async def _wait_healthy(base: str, server: asyncio.subprocess.Process, log: Path) -> None:
    import httpx

    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                text = await asyncio.to_thread(log.read_text, errors="replace")
                raise RuntimeError(f"the server exited: {text[-2000:]}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)  # another process: poll its health endpoint
    raise RuntimeError("the server did not become healthy within 60 s")


def main(args: argparse.Namespace) -> int:
    if not 2 <= args.people <= 12 or args.rooms < 1:
        print("--people must be 2-12 and --rooms at least 1", file=sys.stderr)
        return 2
    browser = not args.no_browser
    if browser and not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        print(f"no Chromium at {CHROMIUM}: install it (apt install chromium) or pass --no-browser", file=sys.stderr)
        return 2
    if browser:
        try:
            import playwright  # noqa: F401
        except ImportError:
            print("the render measurement needs Playwright: pip install 'moot[test]' (or pass --no-browser)",
                  file=sys.stderr)
            return 2
    result = asyncio.run(run_dashboard_bench(args.rooms, args.people, args.seconds, args.redis_url, browser))
    print_result(result, args.json)
    return 0
