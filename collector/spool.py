"""Durable store-and-forward spool: SQLite in WAL mode, one row per reading.

Every reading is committed here before anything is published, and removed only after the
platform acknowledged the message that carried it (:meth:`Spool.confirm`: ingest committed
it; or, with ``acknowledgement: broker``, :meth:`Spool.ack` on the broker's PUBACK). Readings
are grouped into *batches* when they
are written (one per cycle, split at ``max_per_batch``); each batch gets the next gateway
sequence number in the same transaction, so a batch keeps its ``seq`` across resends and
restarts and the platform can count gaps and redeliveries. The next ``seq``, the drop
counters and the spool's ``epoch`` (a random id made when the file is created: a new spool
restarts at seq 0 in a new epoch, so the platform never mistakes it for old batches) live in
the ``meta`` table and survive restarts.

Capacity is counted in readings. When a new batch does not fit:

- ``drop_oldest`` deletes the oldest readings (whole or partial batches) to make room;
- ``refuse_new`` keeps what is stored and refuses the new readings that do not fit.

Either way every reading lost is added to a persisted counter and reported in a log line.

Durability: ``synchronous=FULL`` (default) fsyncs every commit, so a committed batch survives
power loss; ``NORMAL`` survives a killed process but may lose the last commits on power loss.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from collector.observability import log_event

__all__ = ["Batch", "Spool", "SpoolReading", "SpoolStats", "read_stats"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS batches (
    seq        INTEGER PRIMARY KEY,          -- gateway sequence number of the message
    cycle_ts   REAL,                         -- nominal cycle time (NULL: MQTT-native meters)
    first_ts   REAL NOT NULL,                -- oldest reading in the batch (epoch seconds)
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    seq     INTEGER NOT NULL REFERENCES batches(seq),
    meter   TEXT NOT NULL,
    ts      TEXT NOT NULL,                   -- ISO 8601 with offset, as published
    value   REAL NOT NULL,
    quality TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS readings_seq ON readings(seq);
CREATE INDEX IF NOT EXISTS batches_first_ts ON batches(first_ts);
"""


@dataclass(frozen=True, slots=True)
class SpoolReading:
    meter: str
    ts: datetime
    value: float
    quality: str = "good"


@dataclass(frozen=True, slots=True)
class Batch:
    seq: int
    cycle_ts: float | None
    created_at: float
    readings: tuple[tuple[str, str, float, str], ...]  # (meter, ts iso, value, quality)


@dataclass(frozen=True, slots=True)
class SpoolStats:
    depth: int
    batches: int
    capacity: int
    oldest_ts: float | None
    next_seq: int
    dropped_oldest: int
    refused_new: int
    epoch: int = 0
    held_from: int = 0             # lowest seq still held (next_seq when empty)
    oldest_created: float | None = None   # when the oldest batch held was spooled

    @property
    def dropped(self) -> int:
        """Readings lost to the capacity policy, either way (reported to the platform)."""
        return self.dropped_oldest + self.refused_new


class Spool:
    """The spool file of one gateway. Not thread-safe: use it from one thread (the event loop).

    ``max_per_batch`` caps readings per message (larger cycles become several batches).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        capacity: int,
        when_full: str = "drop_oldest",
        synchronous: str = "full",
        max_per_batch: int = 5000,
    ) -> None:
        if when_full not in ("drop_oldest", "refuse_new"):
            raise ValueError(f"unknown drop policy {when_full!r}")
        if capacity < 1 or max_per_batch < 1:
            raise ValueError("capacity and max_per_batch must be positive")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.when_full = when_full
        self.max_per_batch = max_per_batch
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._db.executescript(_SCHEMA)
        with self._tx():
            for key in ("next_seq", "dropped_oldest", "refused_new"):
                self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES (?, 0)", (key,))
            # older spool files get an epoch on first open too; their seqs continue in it
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', ?)",
                             (secrets.randbits(62),))
        self._meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._depth = self._db.execute("SELECT count(*) FROM readings").fetchone()[0]
        self._batches = self._db.execute("SELECT count(*) FROM batches").fetchone()[0]
        self._oldest = self._db.execute("SELECT min(first_ts) FROM batches").fetchone()[0]
        self._head = self._head_row()
        self._stats = self._make_stats()

    # ------------------------------------------------------------------------ plumbing
    def _head_row(self) -> tuple[int, float] | None:
        """(seq, created_at) of the oldest batch held."""
        row = self._db.execute(
            "SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1").fetchone()
        return (int(row[0]), float(row[1])) if row else None

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    def _bump(self, key: str, by: int) -> None:
        self._meta[key] = self._meta.get(key, 0) + by
        self._db.execute("UPDATE meta SET value = ? WHERE key = ?", (self._meta[key], key))

    def _refresh(self) -> None:
        """Recompute the oldest timestamp (indexed) and publish a new stats snapshot."""
        self._oldest = self._db.execute("SELECT min(first_ts) FROM batches").fetchone()[0]
        self._head = self._head_row()
        self._stats = self._make_stats()

    def _make_stats(self) -> SpoolStats:
        return SpoolStats(
            depth=self._depth,
            batches=self._batches,
            capacity=self.capacity,
            oldest_ts=self._oldest,
            next_seq=self._meta["next_seq"],
            dropped_oldest=self._meta["dropped_oldest"],
            refused_new=self._meta["refused_new"],
            epoch=self._meta["epoch"],
            held_from=self._head[0] if self._head else self._meta["next_seq"],
            oldest_created=self._head[1] if self._head else None,
        )

    def close(self) -> None:
        self._db.close()

    # ------------------------------------------------------------------------ writing
    def add(self, readings: Sequence[SpoolReading], cycle_ts: float | None = None) -> list[int]:
        """Commit readings as one or more batches; returns the new batches' ``seq`` numbers.

        Applies the capacity policy first, inside the same transaction, so the spool never
        holds more than ``capacity`` readings.
        """
        if not readings:
            return []
        keep = list(readings)
        seqs: list[int] = []
        with self._tx():
            room = self.capacity - self._depth
            if len(keep) > room:
                excess = len(keep) - room
                if self.when_full == "refuse_new":
                    refused = len(keep) - max(room, 0)
                    keep = keep[: max(room, 0)]
                    self._bump("refused_new", refused)
                    log_event(logging.ERROR, "spool_full", policy="refuse_new",
                              refused=refused, refused_total=self._meta["refused_new"],
                              capacity=self.capacity)
                else:
                    dropped = self._drop_oldest(min(excess, self._depth))
                    if len(keep) > self.capacity:  # a single cycle larger than the spool
                        over = len(keep) - self.capacity
                        keep = keep[over:]
                        dropped += over
                    self._bump("dropped_oldest", dropped)
                    log_event(logging.ERROR, "spool_full", policy="drop_oldest",
                              dropped=dropped, dropped_total=self._meta["dropped_oldest"],
                              capacity=self.capacity)
            now = time.time()
            for start in range(0, len(keep), self.max_per_batch):
                chunk = keep[start : start + self.max_per_batch]
                seq = self._meta["next_seq"]
                self._bump("next_seq", 1)
                first = min(r.ts.timestamp() for r in chunk)
                self._db.execute(
                    "INSERT INTO batches(seq, cycle_ts, first_ts, created_at) VALUES (?,?,?,?)",
                    (seq, cycle_ts, first, now),
                )
                self._db.executemany(
                    "INSERT INTO readings(seq, meter, ts, value, quality) VALUES (?,?,?,?,?)",
                    [(seq, r.meter, r.ts.isoformat(), float(r.value), str(r.quality))
                     for r in chunk],
                )
                seqs.append(seq)
            self._depth += len(keep)
            self._batches += len(seqs)
        self._refresh()
        return seqs

    def _drop_oldest(self, n: int) -> int:
        if n <= 0:
            return 0
        cur = self._db.execute(
            "DELETE FROM readings WHERE id IN (SELECT id FROM readings ORDER BY id LIMIT ?)", (n,)
        )
        # batches emptied by the drop go too; a partly dropped batch keeps its first_ts as a
        # lower bound of its oldest reading
        gone = self._db.execute(
            "DELETE FROM batches WHERE seq < (SELECT coalesce(min(seq), 1 << 62) FROM readings)"
        )
        self._depth -= cur.rowcount
        self._batches -= gone.rowcount
        return int(cur.rowcount)

    # ------------------------------------------------------------------------ reading
    def pending(self, limit: int, exclude: Iterable[int] = (), newest: bool = False) -> list[Batch]:
        """Up to ``limit`` unacknowledged batches, oldest first (``newest``: newest first),
        skipping the ``seq`` numbers in ``exclude`` (already in flight)."""
        skip = set(exclude)
        order = "DESC" if newest else "ASC"
        out: list[Batch] = []
        rows = self._db.execute(
            f"SELECT seq, cycle_ts, created_at FROM batches ORDER BY seq {order}"  # noqa: S608
        )
        for seq, cycle_ts, created_at in rows:
            if seq in skip:
                continue
            readings = tuple(self._db.execute(
                "SELECT meter, ts, value, quality FROM readings WHERE seq = ? ORDER BY id", (seq,)
            ).fetchall())
            out.append(Batch(seq, cycle_ts, created_at, readings))
            if len(out) >= limit:
                break
        return out

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged batches; returns the number of readings removed."""
        seqs = list(seqs)
        if not seqs:
            return 0
        with self._tx():
            cur = self._db.executemany("DELETE FROM readings WHERE seq = ?", [(s,) for s in seqs])
            removed = cur.rowcount
            gone = self._db.executemany("DELETE FROM batches WHERE seq = ?", [(s,) for s in seqs])
        self._depth -= removed
        self._batches -= gone.rowcount
        self._refresh()
        return int(removed)

    def confirm(self, acked: int) -> int:
        """The platform committed every batch up to ``acked``: delete them; returns the
        number of readings removed."""
        if self._head is None or self._head[0] > acked:
            return 0
        with self._tx():
            removed = self._db.execute("DELETE FROM readings WHERE seq <= ?", (acked,)).rowcount
            gone = self._db.execute("DELETE FROM batches WHERE seq <= ?", (acked,)).rowcount
        self._depth -= removed
        self._batches -= gone
        self._refresh()
        return int(removed)

    def stats(self) -> SpoolStats:
        """Counters kept in memory (cheap; safe to call from a metrics thread)."""
        return self._stats


def read_stats(path: str | Path, capacity: int = 0) -> SpoolStats:
    """The state of a spool file, read-only (safe while its collector runs: WAL readers do
    not block the writer). Raises ``FileNotFoundError`` when there is no spool there."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no spool at {path}")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"meta", "batches", "readings"} <= tables:
            # a collector creating it this moment, or some other SQLite file
            raise FileNotFoundError(f"{path} is not an initialised spool (yet)")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        depth = db.execute("SELECT count(*) FROM readings").fetchone()[0]
        batches, oldest = db.execute("SELECT count(*), min(first_ts) FROM batches").fetchone()
        head = db.execute("SELECT seq, created_at FROM batches ORDER BY seq LIMIT 1").fetchone()
    finally:
        db.close()
    return SpoolStats(depth=depth, batches=batches, capacity=capacity, oldest_ts=oldest,
                      next_seq=meta.get("next_seq", 0),
                      dropped_oldest=meta.get("dropped_oldest", 0),
                      refused_new=meta.get("refused_new", 0), epoch=meta.get("epoch", 0),
                      held_from=head[0] if head else meta.get("next_seq", 0),
                      oldest_created=head[1] if head else None)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
