"""The accounting queue: writers of readings mark the ranges accounting must recompute.

``energymon_mark_dirty(meter_ids, from_ts, to_ts)`` (migration 0011) merges each range into
``accounting_dirty``; call it in the transaction that writes the readings, so a committed
reading is never missed by accounting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import psycopg

MARK_DIRTY = "SELECT energymon_mark_dirty(%s, %s, %s)"


def mark_dirty_arrays(conn: psycopg.Connection, meter_ids: Sequence[int],
                      starts: Sequence[datetime], ends: Sequence[datetime]) -> None:
    """Queue ``meter_ids[i]`` from ``starts[i]`` to ``ends[i]`` (in the caller's transaction)."""
    if meter_ids:
        conn.execute(MARK_DIRTY, (list(meter_ids), list(starts), list(ends)))


def mark_dirty(conn: psycopg.Connection,
               ranges: Iterable[tuple[int, datetime, datetime]]) -> None:
    """Queue (meter id, from, to) ranges for recomputation (in the caller's transaction)."""
    rows = list(ranges)
    mark_dirty_arrays(conn, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
