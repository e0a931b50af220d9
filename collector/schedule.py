"""Pure cycle arithmetic: interval boundaries, nominal timestamps and reading quality.

Cycles are aligned to multiples of the interval counted from the Unix epoch, so a 900 s
interval ticks at hh:00, :15, :30 and :45 (in UTC and in every zone whose offset is a whole
number of quarter hours, which includes Asia/Shanghai) and a 60 s interval on every minute.
Every reading of a cycle carries the cycle's *nominal* time (the boundary), not the moment the
response arrived; a read that completes later than the device's threshold after the boundary
is marked ``suspect``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime

from core.contract import Quality

__all__ = [
    "due",
    "next_tick",
    "nominal_ts",
    "quality_for",
    "too_late",
]


def next_tick(now: float, intervals: Iterable[int]) -> int:
    """The first boundary strictly after ``now`` (epoch seconds) of any of ``intervals``."""
    best: int | None = None
    for interval in set(intervals):
        if interval <= 0:
            raise ValueError(f"interval must be positive, got {interval}")
        candidate = (math.floor(now) // interval + 1) * interval
        best = candidate if best is None else min(best, candidate)
    if best is None:
        raise ValueError("no intervals")
    return best


def due(tick: int, interval: int) -> bool:
    """True when ``tick`` (epoch seconds) is a boundary of ``interval``."""
    return tick % interval == 0


def nominal_ts(tick: int | float) -> datetime:
    """The cycle's nominal time as an aware UTC datetime."""
    return datetime.fromtimestamp(tick, UTC)


def quality_for(tick: int | float, read_at: float, late_after_s: float) -> Quality:
    """``good`` if the read completed within ``late_after_s`` of the boundary, else ``suspect``."""
    return Quality.GOOD if read_at - tick <= late_after_s else Quality.SUSPECT


def too_late(tick: int | float, now: float, interval_s: int) -> bool:
    """A poll that would start a whole interval after its boundary is skipped, not stamped."""
    return now - tick >= interval_s
