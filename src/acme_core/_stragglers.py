"""Calls that run far longer than the others, named in the log every few minutes.

Without a ``timeout``, one call that hangs keeps a run waiting with nothing said.
The dispatcher tells :class:`Stragglers` when a chunk of calls leaves and comes
back; every :data:`REPORT_EVERY` seconds it names the chunks out for much longer
than the calls take (:data:`FACTOR` times the median, and at least
:data:`MIN_SECONDS`), longest first.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from typing import Any

from acme_core._format import format_duration, format_id_ranges

__all__ = ["FACTOR", "MIN_SECONDS", "REPORT_EVERY", "Stragglers"]

#: seconds between two reports
REPORT_EVERY = 120.0
#: a chunk is a straggler when out this many times longer than its calls should take
FACTOR = 10.0
#: ... and out for at least this long
MIN_SECONDS = 60.0


class Stragglers:
    """Which chunks are out for how long, against the calls' median duration."""

    def __init__(self, report_every: float = REPORT_EVERY, factor: float = FACTOR,
                 min_seconds: float = MIN_SECONDS) -> None:
        self.report_every = report_every
        self.factor = factor
        self.min_seconds = min_seconds
        self._out: dict[Any, tuple[float, list[int]]] = {}
        self._per_call: deque[float] = deque(maxlen=200)
        self._reported = time.monotonic()

    def left(self, key: Any, ids: list[int], now: float | None = None) -> None:
        self._out[key] = (time.monotonic() if now is None else now, ids)

    def came_back(self, key: Any, seconds_per_call: float | None) -> None:
        self._out.pop(key, None)
        if seconds_per_call is not None:
            self._per_call.append(seconds_per_call)

    def longest(self, now: float | None = None) -> list[tuple[float, list[int]]]:
        """``(seconds out, task ids)`` of the stragglers, longest first."""
        now = time.monotonic() if now is None else now
        median = statistics.median(self._per_call) if self._per_call else 0.0
        found = [(now - t0, ids) for t0, ids in self._out.values()
                 if now - t0 > max(self.min_seconds, self.factor * median * len(ids))]
        return sorted(found, key=lambda item: -item[0])

    def report(self, now: float | None = None) -> str | None:
        """The text to log now, or None (not time yet, or nothing runs long)."""
        now = time.monotonic() if now is None else now
        if now - self._reported < self.report_every:
            return None
        self._reported = now
        longest = self.longest(now)
        if not longest:
            return None
        median = statistics.median(self._per_call) if self._per_call else None
        parts = [f"task{'s' if len(ids) > 1 else ''} {format_id_ranges(ids, 4)} for "
                 f"{format_duration(age)}" for age, ids in longest[:5]]
        typical = (f"; calls take {format_duration(median)} (median)" if median is not None
                   else "; no call has finished yet")
        return f"Running longest: {'; '.join(parts)}{typical}"
