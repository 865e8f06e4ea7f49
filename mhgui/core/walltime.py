"""Wall-clock times for monotonic times, right across a suspend (sans-I/O).

The model clock is ``time.monotonic()`` (CLOCK_MONOTONIC): right for durations and ordering, but it stops
while the machine is suspended, so ``wall = t + (time.time() - time.monotonic())`` taken when a time is
*read* shifts everything recorded before a suspend later by the suspend's length. Instead the caller
notes a true ``(monotonic, wall)`` pair when it records something (:meth:`WallMap.note`, the caller reads
both clocks: this module does no I/O) and :meth:`WallMap.wall_of` maps a monotonic time with the offset
noted *at or after* it: exact (to :data:`TOLERANCE`) for every time that was followed by a note before the
next suspend, which holds when each recorder notes right after taking its times, in the same step.

A wall-clock step (NTP, the user setting the clock) starts a new segment too: times before it keep the wall
time they had, as a suspend does.
"""

from __future__ import annotations

import bisect
import math

__all__ = ["TOLERANCE", "MAX_SEGMENTS", "WallMap"]

#: seconds: a note whose offset (wall − monotonic) differs by less from the current segment's extends it
TOLERANCE = 0.005
#: segments kept (the oldest is dropped; its times then take the next one's offset)
MAX_SEGMENTS = 2048


class WallMap:
    """Segments of constant offset (wall − monotonic, seconds) between suspends or clock steps.

    :meth:`note` ``(now, wall)``: ``now`` monotonic seconds, ``wall`` seconds since 1970 (UTC), read at the
    same moment; non-finite values are ignored. :meth:`wall_of` ``(t)``: seconds since 1970 for monotonic
    ``t``; before any note it raises :class:`LookupError`.
    """

    def __init__(self, *, tolerance: float = TOLERANCE, max_segments: int = MAX_SEGMENTS) -> None:
        self.tolerance = tolerance
        self.max_segments = max(1, max_segments)
        self._ends: list[float] = []  # monotonic time of each segment's last note (ascending)
        self._offsets: list[float] = []  # each segment's offset (its last note's)

    def __len__(self) -> int:
        return len(self._ends)

    def note(self, now: float, wall: float) -> None:
        """A true (monotonic, wall) pair, read together. Notes older than the last one are ignored."""
        if not (math.isfinite(now) and math.isfinite(wall)):
            return
        if self._ends and now < self._ends[-1]:
            return
        offset = wall - now
        if self._offsets and abs(offset - self._offsets[-1]) < self.tolerance:
            self._ends[-1], self._offsets[-1] = now, offset
            return
        self._ends.append(now)
        self._offsets.append(offset)
        if len(self._ends) > self.max_segments:
            del self._ends[0], self._offsets[0]

    def offset_at(self, t: float) -> float:
        """wall − monotonic (s) for monotonic ``t``: the first segment ending at or after ``t``, else the last."""
        if not self._ends:
            raise LookupError("no wall-clock time noted yet")
        i = bisect.bisect_left(self._ends, t)
        return self._offsets[min(i, len(self._offsets) - 1)]

    def wall_of(self, t: float) -> float:
        """Seconds since 1970 (UTC) for monotonic ``t`` (class docstring)."""
        return t + self.offset_at(t)

    def mono_of(self, wall: float) -> float:
        """The monotonic time for a wall time (earlier runs' journal lines), with the latest offset."""
        if not self._offsets:
            raise LookupError("no wall-clock time noted yet")
        return wall - self._offsets[-1]
