"""One speaker's recent audio, addressed by absolute sample index, with the wall-clock time of every sample.

The media layer stamps each pushed chunk with the wall-clock time of its first sample. Samples are stored back to back
(appending is amortised O(chunk), not a copy of the whole buffer); where a chunk's time does not continue the previous
one (audio dropped by a full queue, a muted microphone that sent nothing, lost packets) an *anchor* records the jump, so
``time_of`` maps any kept sample index to its own wall-clock time.
"""

from __future__ import annotations

import bisect

import numpy as np
import numpy.typing as npt

from server.core.speech import SAMPLE_RATE

JUMP_S = 0.05  # a chunk stamped further than this from where the timeline would put it starts a new anchor


class Clock:
    """Maps absolute sample indices to wall-clock times: piecewise, one piece per anchor (index, time)."""

    def __init__(self, indices: list[int], times: list[float]) -> None:
        self._anchor_index = indices
        self._anchor_time = times

    def time_of(self, index: int) -> float:
        """Wall-clock time of sample ``index`` (extrapolated from the nearest anchor at or before it)."""
        if not self._anchor_index:
            return 0.0
        k = max(0, bisect.bisect_right(self._anchor_index, index) - 1)
        return self._anchor_time[k] + (index - self._anchor_index[k]) / SAMPLE_RATE

    def end_time_of(self, index: int) -> float:
        """Wall-clock time of the end of the samples before ``index``: at a jump, the time before it."""
        if not self._anchor_index:
            return 0.0
        k = max(0, bisect.bisect_left(self._anchor_index, index) - 1)
        return self._anchor_time[k] + (index - self._anchor_index[k]) / SAMPLE_RATE


class Timeline(Clock):
    def __init__(self, capacity_s: float = 30.0) -> None:
        self._data = np.zeros(max(SAMPLE_RATE, int(capacity_s * SAMPLE_RATE)), dtype=np.float32)
        self._offset = 0  # absolute index of self._data[0]
        self._used = 0  # samples in self._data
        self.start = 0  # absolute index of the first sample still kept
        self.total = 0  # absolute index of the next sample to arrive
        super().__init__([], [])

    # Time ------------------------------------------------------------------------------------------------------------
    def clock(self, start: int, end: int) -> Clock:
        """The time mapping of samples ``[start, end)``, which stays valid after they are trimmed."""
        lo = max(0, bisect.bisect_right(self._anchor_index, start) - 1)
        hi = bisect.bisect_left(self._anchor_index, end)
        return Clock(self._anchor_index[lo:hi], self._anchor_time[lo:hi])

    def last_jump_at_or_before(self, index: int) -> int:
        """Index of the latest anchor (a time discontinuity, or the first sample) at or before ``index``."""
        k = bisect.bisect_right(self._anchor_index, index) - 1
        return self._anchor_index[k] if k >= 0 else 0

    # Samples ---------------------------------------------------------------------------------------------------------
    def append(self, pcm: npt.NDArray[np.float32], t: float) -> None:
        if pcm.size == 0:
            return
        if not self._anchor_index or abs(self.time_of(self.total) - t) > JUMP_S:
            self._anchor_index.append(self.total)
            self._anchor_time.append(t)
        if self._used + pcm.size > self._data.size:
            self._compact(pcm.size)
        self._data[self._used : self._used + pcm.size] = pcm
        self._used += pcm.size
        self.total += pcm.size

    def _compact(self, incoming: int) -> None:
        keep = self._data[self.start - self._offset : self._used]
        size = self._data.size
        while keep.size + incoming > size:
            size *= 2
        data = self._data if size == self._data.size else np.zeros(size, dtype=np.float32)
        data[: keep.size] = keep  # numpy handles the overlapping move
        self._data, self._offset, self._used = data, self.start, keep.size

    def restart_at(self, index: int) -> None:
        """Number samples from ``index`` on (a speaker resumed from a checkpoint); forgets what is kept."""
        self._offset = self.start = self.total = index
        self._used = 0
        del self._anchor_index[:], self._anchor_time[:]

    def audio(self, start: int, end: int) -> npt.NDArray[np.float32]:
        """A copy of samples ``[start, end)`` (clipped to what is kept)."""
        start = max(start, self.start)
        end = min(max(start, end), self.total)
        return self._data[start - self._offset : end - self._offset].copy()

    def trim(self, keep_from: int) -> None:
        """Forget samples before ``keep_from`` (their space is reused by later appends)."""
        keep_from = min(keep_from, self.total)
        if keep_from <= self.start:
            return
        self.start = keep_from
        # Keep the anchor that covers the new first sample, drop the ones before it.
        k = bisect.bisect_right(self._anchor_index, keep_from) - 1
        if k > 0:
            del self._anchor_index[:k]
            del self._anchor_time[:k]
