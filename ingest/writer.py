"""The PostgreSQL writer: one batch of messages per transaction, binary COPY, idempotent.

Per batch, in one transaction:

1. Readings, already encoded as binary COPY tuples by validation (:mod:`ingest.rows`), so the
   writer only concatenates blocks. Optimistic fast path: binary ``COPY readings FROM STDIN``
   inside a savepoint.
   When a key of the batch is already stored (a redelivery, a resend) the COPY fails with
   ``unique_violation``; the savepoint is rolled back and the batch goes the dedup path:
   binary COPY into a temporary staging table, then
   ``INSERT INTO readings SELECT ... FROM ingest_stage ON CONFLICT (meter_id, ts) DO NOTHING``.
   Staged rows whose key now holds another value or quality are written to
   ``reading_conflicts`` (first write wins, the second value is kept for review); identical
   redeliveries are absorbed. After a duplicate the writer stays on the dedup path for a while
   (redeliveries come in runs) before it tries the fast path again.
2. Accounting: each meter's time range of the batch is queued with energymon_mark_dirty().
3. Dead letters (rejected messages or readings, with their raw bytes), binary COPY.
4. Gateway streams (:mod:`ingest.streams`): the batches are recorded as committed and each
   gateway's highest contiguous committed seq advanced, the acknowledgement the pipeline
   publishes after the commit.

Concurrent workers are safe: two transactions writing the same key serialise on the unique
index; the later one fails the fast path or skips the row with ON CONFLICT.

The writer makes one attempt per call and raises on error; retrying, backoff and setting
batches aside are the pipeline's job (``ingest.pipeline``). A broken connection is dropped and
re-made on the next call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from core.settings import IngestSettings
from ingest.model import Unit, WriteStats
from ingest.reasons import ReasonCode
from ingest.rows import (
    COPY_HEADER,
    COPY_TRAILER,
    decode_keys,
    decode_rows,
    from_micros,
    to_micros,
)
from ingest.streams import track
from ingest.validation import DeadLetter
from storage.dirty import mark_dirty

log = logging.getLogger(__name__)

STAGE_TABLE = "ingest_stage"
_DEAD_TYPES = ["timestamptz", "text", "text", "text", "text", "bytea", "int4", "bytea"]

_COPY_READINGS = sql.SQL(
    "COPY {} (meter_id, ts, value, quality) FROM STDIN (FORMAT BINARY)"
).format(sql.Identifier("readings"))
_CREATE_STAGE = sql.SQL(
    "CREATE TEMPORARY TABLE IF NOT EXISTS {} (meter_id int8 NOT NULL, ts timestamptz NOT NULL, "
    "value float8 NOT NULL, quality int2 NOT NULL) ON COMMIT DELETE ROWS"
).format(sql.Identifier(STAGE_TABLE))
_COPY_STAGE = sql.SQL(
    "COPY {} (meter_id, ts, value, quality) FROM STDIN (FORMAT BINARY)"
).format(sql.Identifier(STAGE_TABLE))
_INSERT_FROM_STAGE = sql.SQL(
    "INSERT INTO readings (meter_id, ts, value, quality) "
    "SELECT meter_id, ts, value, quality FROM {} "
    "ON CONFLICT (meter_id, ts) DO NOTHING"
).format(sql.Identifier(STAGE_TABLE))
_FIND_CONFLICTS = sql.SQL(
    "SELECT s.meter_id, s.ts, r.value, r.quality, s.value, s.quality "
    "FROM {} s JOIN readings r ON r.meter_id = s.meter_id AND r.ts = s.ts "
    "WHERE r.value <> s.value OR r.quality <> s.quality"
).format(sql.Identifier(STAGE_TABLE))
_INSERT_CONFLICT = (
    "INSERT INTO reading_conflicts (meter_id, ts, stored_value, stored_quality, new_value, "
    "new_quality, source) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)
_COPY_DEAD = sql.SQL(
    "COPY {} (received_at, source, plant_code, reason_code, reason, payload, payload_bytes, "
    "payload_sha256) FROM STDIN (FORMAT BINARY)"
).format(sql.Identifier("dead_letters"))
_COUNT_OVERFLOW = (
    "INSERT INTO dead_letter_overflow (plant_code, window_start, reason_code, dropped, bytes) "
    "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (plant_code, window_start, reason_code) DO UPDATE "
    "SET dropped = dead_letter_overflow.dropped + EXCLUDED.dropped, "
    "bytes = dead_letter_overflow.bytes + EXCLUDED.bytes"
)
_PRUNE_DEAD = ("DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters "
               "WHERE received_at < now() - %s LIMIT %s)")


@dataclass(frozen=True)
class DeadLetterLimits:
    """What dead letters may cost (security review M3: 83 MB in 6 s from one client); the
    defaults are the ``ingest`` settings' (:meth:`from_settings`)."""

    max_payload_bytes: int               # stored prefix; the full size and SHA-256 are kept
    per_plant_per_minute: int            # beyond it: counted in dead_letter_overflow
    retention: timedelta
    prune_every: float = 600.0           # seconds between retention passes
    prune_batch: int = 10_000            # rows deleted per pass at most

    @classmethod
    def from_settings(cls, settings: IngestSettings | None = None) -> DeadLetterLimits:
        """The bounds of the ``ingest`` settings (their defaults when None)."""
        settings = settings or IngestSettings()
        return cls(max_payload_bytes=settings.dead_letter_max_bytes,
                   per_plant_per_minute=settings.dead_letter_quota_per_minute,
                   retention=timedelta(days=settings.dead_letter_retention_days))


def _text(value: str | None) -> str | None:
    """Text safe for a PostgreSQL text column (no NUL, no lone surrogates)."""
    if value is None:
        return None
    return value.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


class PgWriter:
    """Writes batches of :class:`Unit` to PostgreSQL/TimescaleDB over one connection."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 5,
        dedup_hold: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        dead_letters: DeadLetterLimits | None = None,
    ) -> None:
        self.url = url
        self.connect_timeout = connect_timeout
        self.dedup_hold = dedup_hold
        self.limits = dead_letters or DeadLetterLimits.from_settings()
        self._clock = clock
        self._conn: psycopg.Connection | None = None
        self._fast_after = 0.0
        # dead letters stored per (plant, minute) by this writer (committed ones only)
        self._quota: dict[tuple[str, datetime], int] = {}
        self._prune_after = 0.0

    # -- connection --------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        conn = psycopg.connect(self.url, autocommit=True,
                               connect_timeout=max(1, int(self.connect_timeout)),
                               application_name="energymon-ingest")
        try:
            conn.execute(_CREATE_STAGE)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        log.info("ingest writer connected to the database")
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a dead connection may fail; nothing to keep
                log.debug("closing a broken connection failed", exc_info=True)
            self._conn = None

    def close(self) -> None:
        self._drop()

    # -- writing -----------------------------------------------------------------------------
    def write(self, units: Sequence[Unit]) -> WriteStats:
        """Write ``units`` in one transaction; raise on any error (nothing is then written)."""
        conn = self._connection()
        try:
            with conn.transaction():
                stats = self._write_readings(conn, units)
                if stats.inserted:
                    self._queue_accounting(conn, units)
                used = self._write_dead(conn, [(u, d) for u in units for d in u.dead], stats)
                stats.acks, stats.redeliveries, stats.skipped = track(conn, units)
            self._commit_quota(used)
            self._prune(conn)
            return stats
        except BaseException:
            if conn.closed or conn.broken:
                self._drop()
            raise

    @staticmethod
    def _queue_accounting(conn: psycopg.Connection, units: Sequence[Unit]) -> None:
        """Queue each meter's time range of the batch for accounting (energymon_mark_dirty),
        in the transaction that stores the readings, so late and pushed readings recompute
        the intervals they touch."""
        lo: dict[int, int] = {}
        hi: dict[int, int] = {}
        for unit in units:
            if not unit.count:
                continue
            for meter_id, micros in decode_keys(unit.rows):
                if micros < lo.get(meter_id, micros + 1):
                    lo[meter_id] = micros
                if micros > hi.get(meter_id, micros - 1):
                    hi[meter_id] = micros
        mark_dirty(conn, ((m, from_micros(lo[m]), from_micros(hi[m])) for m in lo))

    def write_dead_letters(self, items: Sequence[tuple[Unit, DeadLetter]]) -> WriteStats:
        """Write only dead letters (used to set a message aside)."""
        conn = self._connection()
        stats = WriteStats()
        try:
            with conn.transaction():
                used = self._write_dead(conn, items, stats)
                # a message set aside is durable too: its batch counts as committed
                stats.acks, stats.redeliveries, stats.skipped = track(
                    conn, list({id(u): u for u, _ in items}.values()))
            self._commit_quota(used)
            return stats
        except BaseException:
            if conn.closed or conn.broken:
                self._drop()
            raise

    def _write_readings(self, conn: psycopg.Connection, units: Sequence[Unit]) -> WriteStats:
        total = sum(u.count for u in units)
        stats = WriteStats()
        if not total:
            return stats
        data = b"".join([COPY_HEADER, *(u.rows for u in units if u.count), COPY_TRAILER])
        if self._clock() >= self._fast_after:
            try:
                with conn.transaction(), conn.cursor() as cur, cur.copy(_COPY_READINGS) as copy:
                    copy.write(data)
                stats.inserted = total
                return stats
            except psycopg.errors.UniqueViolation:
                self._fast_after = self._clock() + self.dedup_hold
                log.debug("batch holds already stored keys; deduplicating through staging")
        return self._write_dedup(conn, units, data, total, stats)

    def _write_dedup(self, conn: psycopg.Connection, units: Sequence[Unit], data: bytes,
                     total: int, stats: WriteStats) -> WriteStats:
        with conn.cursor() as cur:
            with cur.copy(_COPY_STAGE) as copy:
                copy.write(data)
            cur.execute(_INSERT_FROM_STAGE)
            stats.inserted = max(cur.rowcount, 0)
            if stats.inserted < total:
                found = cur.execute(_FIND_CONFLICTS).fetchall()
                if found:
                    self._record_conflicts(cur, units, found)
                stats.conflicts = len(found)
                stats.duplicates = total - stats.inserted - stats.conflicts
        return stats

    @staticmethod
    def _record_conflicts(cur: psycopg.Cursor, units: Sequence[Unit],
                          found: list[tuple[int, datetime, float, int, float, int]]) -> None:
        """Keep each second value with the source of the message that brought it."""
        source_of: dict[tuple[int, int, float, int], str] = {}
        for unit in units:
            for meter_id, ts, value, quality in decode_rows(unit.rows):
                source_of.setdefault((meter_id, to_micros(ts), value, quality), unit.source)
        params = []
        seen: set[tuple[int, datetime, float, int]] = set()
        for meter_id, ts, stored_v, stored_q, new_v, new_q in found:
            if (meter_id, ts, new_v, new_q) in seen:
                continue
            seen.add((meter_id, ts, new_v, new_q))
            source = source_of.get((meter_id, to_micros(ts), new_v, new_q), "unknown")
            params.append((meter_id, ts, stored_v, stored_q, new_v, new_q, _text(source)))
        cur.executemany(_INSERT_CONFLICT, params)

    def _write_dead(self, conn: psycopg.Connection, items: Sequence[tuple[Unit, DeadLetter]],
                    stats: WriteStats) -> dict[tuple[str, datetime], int]:
        """Store ``items`` within the limits; returns the quota they used (merged once the
        transaction commits, so a retried batch is not counted twice)."""
        used: dict[tuple[str, datetime], int] = {}
        if not items:
            return used
        limits = self.limits
        counts: dict[ReasonCode, int] = {}
        overflow: dict[tuple[str, datetime, str], list[int]] = {}
        with conn.cursor() as cur:
            with cur.copy(_COPY_DEAD) as copy:
                copy.set_types(_DEAD_TYPES)
                for unit, dead in items:
                    plant = unit.plant_code or ""
                    window = unit.received_at.replace(second=0, microsecond=0)
                    key = (plant, window)
                    payload = dead.payload
                    if self._quota.get(key, 0) + used.get(key, 0) >= limits.per_plant_per_minute:
                        slot = overflow.setdefault((plant, window, dead.reason_code.value),
                                                   [0, 0])
                        slot[0] += 1
                        slot[1] += len(payload)
                        continue
                    used[key] = used.get(key, 0) + 1
                    copy.write_row((unit.received_at, _text(unit.source), _text(unit.plant_code),
                                    dead.reason_code.value, _text(dead.reason),
                                    payload[:limits.max_payload_bytes], len(payload),
                                    hashlib.sha256(payload).digest()))
                    counts[dead.reason_code] = counts.get(dead.reason_code, 0) + 1
            if overflow:
                cur.executemany(_COUNT_OVERFLOW, [(p, w, r, n, b) for (p, w, r), (n, b)
                                                  in overflow.items()])
                for (plant, _, reason), (n, _) in overflow.items():
                    log.warning("dead letters of plant %r over the quota of %d a minute: %d "
                                "%s not stored, counted in dead_letter_overflow", plant,
                                limits.per_plant_per_minute, n, reason)
        for code, count in counts.items():
            stats.dead_letters[code] = stats.dead_letters.get(code, 0) + count
        stats.dead_letters_over_quota += sum(n for n, _ in overflow.values())
        return used

    def _commit_quota(self, used: dict[tuple[str, datetime], int]) -> None:
        if not used:
            return
        for key, n in used.items():
            self._quota[key] = self._quota.get(key, 0) + n
        latest = max(window for _, window in used)
        for key in [k for k in self._quota if k[1] < latest - timedelta(minutes=2)]:
            del self._quota[key]          # bounded: only the last few minutes are kept

    def _prune(self, conn: psycopg.Connection) -> None:
        """Delete dead letters older than the retention period, a batch at a time, at most
        every ``prune_every`` seconds."""
        if self._clock() < self._prune_after:
            return
        self._prune_after = self._clock() + self.limits.prune_every
        cur = conn.execute(_PRUNE_DEAD, (self.limits.retention, self.limits.prune_batch))
        if cur.rowcount:
            log.info("deleted %d dead letters older than %s", cur.rowcount,
                     self.limits.retention)
