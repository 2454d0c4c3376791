"""Helpers for the speech tier's tests: speech encoded as a browser sends it (20 ms mono Opus packets), and the
server node's side (``RemoteCaptionService``) fed from it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TypeVar

import numpy as np

from server.asr.remote import RemoteSpeakerSink
from server.bench.speech_wire import encode_opus, read_wav
from server.core.bus import Subscription
from server.core.events import BusEvent

DATA = Path(__file__).parent / "data"
T0 = 1_700_000_000.0
PACKET_S = 0.02
E = TypeVar("E")


def opus_speech(path: Path = DATA / "hello16.wav", silence_after_s: float = 1.5) -> list[bytes]:
    """The WAV as 20 ms mono Opus packets at 32 kb/s (as browsers send speech), then ``silence_after_s`` of
    silence."""
    pcm, rate = read_wav(path)
    return encode_opus(np.concatenate([pcm, np.zeros(int(silence_after_s * rate), np.int16)]), rate)


def send(sink: RemoteSpeakerSink, packets: list[bytes], first: int = 0, t0: float = T0) -> None:
    """Packets as the media side hands them over: packet ``n`` was heard at ``t0 + n * 20 ms``."""
    for n, packet in enumerate(packets[first:], first):
        sink.push_opus(packet, t0 + n * PACKET_S)


async def speak(sink: RemoteSpeakerSink, packets: list[bytes], first: int = 0, t0: float = T0) -> None:
    """Like ``send``, at the speaking rate (100 ms at a time): partial captions come while the speaker talks."""
    step = 5
    for start in range(first, len(packets), step):
        send(sink, packets[:start + step], first=start, t0=t0)
        await asyncio.sleep(step * PACKET_S)  # the speaking rate, not a synchronisation


async def next_matching(sub: Subscription, kind: type[E], timeout: float = 30.0, **fields: object) -> E:
    """The next event of type ``kind`` with these field values."""
    while True:
        event: BusEvent = await sub.get(timeout=timeout)
        if isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items()):
            return event
