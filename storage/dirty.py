"""The accounting queue: writers of readings mark the ranges accounting must recompute.

``energymon_mark_dirty(meter_ids, from_ts, to_ts)`` (migration 0011) merges each range into
``accounting_dirty``. Ingest, backfill and accounting call :func:`mark_dirty` in the
transaction that writes the readings, so a committed reading is never missed by accounting.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import psycopg

MARK_DIRTY = "SELECT energymon_mark_dirty(%s, %s, %s)"


def mark_dirty(conn: psycopg.Connection,
               ranges: Iterable[tuple[int, datetime, datetime]]) -> None:
    """Queue (meter id, from, to) ranges for recomputation (in the caller's transaction)."""
    rows = list(ranges)
    if rows:
        conn.execute(MARK_DIRTY, ([r[0] for r in rows], [r[1] for r in rows],
                                  [r[2] for r in rows]))
