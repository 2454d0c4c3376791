"""Fakes for tests: a caption service that records the audio it is given."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from server.core.speech import SAMPLE_RATE


class RecordingSink:
    def __init__(self, room_id: str, participant_id: str, name: str) -> None:
        self.room_id, self.participant_id, self.name = room_id, participant_id, name
        self.chunks: list[tuple[float, npt.NDArray[np.float32]]] = []
        self.closed = False
        self.language: str | None = None

    def set_language(self, language: str) -> None:
        self.language = language

    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        assert pcm.dtype == np.float32 and pcm.ndim == 1
        self.chunks.append((t, pcm.copy()))

    async def aclose(self) -> None:
        self.closed = True

    @property
    def seconds(self) -> float:
        return sum(c.size for _, c in self.chunks) / SAMPLE_RATE

    def audio(self) -> npt.NDArray[np.float32]:
        return np.concatenate([c for _, c in self.chunks]) if self.chunks else np.zeros(0, np.float32)


class RecordingCaptionService:
    """Implements ``CaptionService``; every speaker's sink keeps what it was pushed."""

    def __init__(self) -> None:
        self.sinks: dict[str, RecordingSink] = {}
        self.started = False

    async def start(self) -> None:
        self.started = True

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str,
                     language: str | None = None) -> RecordingSink:
        sink = RecordingSink(room_id, participant_id, speaker_name)
        sink.language = language
        self.sinks[participant_id] = sink
        return sink

    async def close(self) -> None:
        await asyncio.sleep(0)
