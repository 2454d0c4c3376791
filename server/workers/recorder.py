"""``moot worker recorder``: the transcript recorder (the consumer group ``recorder`` on the shared bus), storing what
the rooms say in the shared database, and the deliberations' timed work (scheduled first rounds, transcript
retention), and cross-pollination (other rooms' statements shared into each room's vote). Any number may run; each
event is stored once."""

from __future__ import annotations

from server.core.clock import SystemClock
from server.runtime import Runtime
from server.transcripts import TranscriptRecorder
from server.workers.crosspoll import CrossPollinator
from server.workers.schedule import DeliberationScheduler


async def assemble(runtime: Runtime) -> None:
    resources = runtime.resources
    recorder = TranscriptRecorder(await resources.bus(), await resources.storage(), name=resources.name)
    await recorder.start()
    runtime.add("recorder", recorder)
    crosspoll = CrossPollinator(await resources.bus(), await resources.storage(), name=resources.name)
    await crosspoll.start()
    runtime.add("crosspoll", crosspoll)
    scheduler = DeliberationScheduler(await resources.storage(), SystemClock())
    await scheduler.start()
    runtime.add("scheduler", scheduler)
