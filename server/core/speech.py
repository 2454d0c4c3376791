"""The contract between media (which decodes each participant's audio once) and speech (the caption service)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000


class SpeakerAudioSink(Protocol):
    """Receives one participant's audio. ``push`` is called on the event loop and must never block."""

    def push(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        """Mono 16 kHz float32 samples in [-1, 1]; ``t`` is the wall-clock time (epoch seconds) of the first sample."""

    async def aclose(self) -> None:
        """The participant left or muted for good: finish (emit the final caption of) any utterance in progress."""


@runtime_checkable
class EncodedAudioSink(Protocol):
    """A sink that takes the participant's encoded audio as it arrives, undecoded (the speech tier decodes it in a
    speech worker: the media node saves the Opus decode, its main CPU cost per speaker). The media side calls
    ``push_opus`` instead of decoding when its sink has it."""

    def push_opus(self, packet: bytes, t: float) -> None:
        """One Opus packet; ``t`` is the wall-clock time (epoch seconds) of its first sample. Never blocks."""

    async def aclose(self) -> None: ...


class CaptionService(Protocol):
    """Turns speakers' audio into ``caption.partial`` / ``caption.final`` / ``voice.activity`` events on the bus."""

    async def start(self) -> None:
        """Load models (in a thread, never on the event loop)."""

    def open_speaker(self, room_id: str, participant_id: str, speaker_name: str,
                     language: str | None = None) -> SpeakerAudioSink:
        """``language``: the one the participant chose (recognition runs in it; None: detected)."""

    async def close(self) -> None: ...
