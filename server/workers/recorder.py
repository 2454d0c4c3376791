"""``moot worker recorder``: the transcript recorder (the consumer group ``recorder`` on the shared bus), storing what
the rooms say in the shared database, and the deliberations' timed work (scheduled first rounds, transcript
retention). Any number may run; each event is stored once."""

from __future__ import annotations

from server.core.clock import SystemClock
from server.runtime import Runtime
from server.transcripts import TranscriptRecorder
from server.workers.schedule import DeliberationScheduler


async def assemble(runtime: Runtime) -> None:
    resources = runtime.resources
    recorder = TranscriptRecorder(await resources.bus(), await resources.storage(), name=resources.name)
    await recorder.start()
    runtime.add("recorder", recorder)
    scheduler = DeliberationScheduler(await resources.storage(), SystemClock())
    await scheduler.start()
    runtime.add("scheduler", scheduler)
