"""Numbers and ids in words: sizes, durations, task-id lists (one home for each format)."""

from __future__ import annotations

from collections.abc import Iterable

from acme_core.manifest import to_ranges

__all__ = ["format_bytes", "format_duration", "format_id_list", "format_id_ranges"]


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, like dask's memory specifications)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def format_duration(seconds: float) -> str:
    """``0.0123`` -> ``"12.3 ms"``, ``75`` -> ``"1 min 15 s"``, ``7300`` -> ``"2 h 1 min"``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def format_id_ranges(ids: Iterable[int], limit: int = 20) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"`` (at most ``limit`` ranges, then ``...``)."""
    ranges = to_ranges(ids)
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:limit]]
    return ", ".join(parts) + (", ..." if len(ranges) > limit else "")


def format_id_list(ids: list[int], limit: int = 10) -> str:
    """``"1, 2, 3, ..."``: the first ``limit`` ids, one by one."""
    return ", ".join(map(str, ids[:limit])) + (", ..." if len(ids) > limit else "")
