"""Gateway streams: which batches are committed, the end-to-end acknowledgement, gaps.

A collector gateway numbers its batches (``seq``) within one spool file (``epoch``). In the
transaction that stores a batch's readings and dead letters, :func:`track` records that the
batch is committed and advances the stream's highest contiguous committed seq
(``gateway_streams.acked_seq``): the acknowledgement ingest publishes after the commit, so it
says what is in the database, not what was received. Batches committed above a missing seq
wait in ``gateway_batches_ahead`` until the gap closes (the collector resends what it has not
seen acknowledged) or the gateway says it no longer holds the missing ones (``held_from``:
dropped by its spool's policy; counted in ``skipped_batches``).

A stream starts at the lowest ``held_from`` its first transaction carries (a collector's
first message says 0). A sender that gives no ``held_from`` (one older than this protocol,
the simulators' floods) starts its stream at the first seq committed; a lower seq committed
later, by a second worker, say, is then counted as a redelivery.

The steady state (no gap, the next seqs in order) costs one ``UPDATE`` per stream per
transaction. Stream rows are locked in key order, so concurrent workers writing batches of the
same gateway serialise on the row and never deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from ingest.model import StreamAck, Unit
from ingest.validation import BatchMark

__all__ = ["StreamUpdate", "plan", "track"]

_ENSURE = (
    "INSERT INTO gateway_streams (plant_id, gateway, epoch, acked_seq, max_seq) "
    "SELECT p.id, s.gateway, s.epoch, s.start - 1, s.start - 1 "
    "FROM unnest(%s::text[], %s::text[], %s::int8[], %s::int8[]) AS s(code, gateway, epoch, start) "
    "JOIN plants p ON p.code = s.code ON CONFLICT DO NOTHING"
)
_LOCK = (
    "SELECT p.code, g.gateway, g.epoch, g.plant_id, g.acked_seq, g.max_seq "
    "FROM gateway_streams g JOIN plants p ON p.id = g.plant_id "
    "JOIN unnest(%s::text[], %s::text[], %s::int8[]) AS s(code, gateway, epoch) "
    "ON p.code = s.code AND g.gateway = s.gateway AND g.epoch = s.epoch "
    "ORDER BY g.plant_id, g.gateway, g.epoch FOR UPDATE OF g"
)
_AHEAD_INSERT = (
    "INSERT INTO gateway_batches_ahead (plant_id, gateway, epoch, seq) "
    "SELECT %s, %s, %s, unnest(%s::int8[]) ON CONFLICT DO NOTHING RETURNING seq"
)
_AHEAD_DELETE = (
    "DELETE FROM gateway_batches_ahead WHERE plant_id = %s AND gateway = %s AND epoch = %s "
    "AND seq <= %s"
)
# the longest run of consecutive seqs right above acked_seq: seq - row_number() is constant
# (= acked_seq) along it
_AHEAD_RUN = (
    "SELECT max(seq) FROM (SELECT seq, seq - row_number() OVER (ORDER BY seq) AS d "
    "FROM gateway_batches_ahead WHERE plant_id = %s AND gateway = %s AND epoch = %s "
    "AND seq > %s) t WHERE d = %s"
)
_UPDATE = (
    "UPDATE gateway_streams SET acked_seq = %s, max_seq = %s, "
    "committed_batches = committed_batches + %s, redeliveries = redeliveries + %s, "
    "skipped_batches = skipped_batches + %s, "
    "dropped_readings = greatest(dropped_readings, %s), "
    "gap_since = CASE WHEN %s THEN NULL ELSE coalesce(gap_since, now()) END, "
    "last_commit_at = now() WHERE plant_id = %s AND gateway = %s AND epoch = %s"
)

StreamKey = tuple[str, str, int]   # (plant code, gateway, epoch)


@dataclass
class StreamUpdate:
    """What one transaction does to one stream (computed by :func:`plan`)."""

    acked: int
    max_seq: int
    committed: int = 0
    redeliveries: int = 0
    skipped: int = 0
    ahead: list[int] = field(default_factory=list)   # seqs to keep above a gap
    floor: int = -1                                   # acked_seq at least (held_from - 1)
    fast: bool = True      # no gap before or after: nothing kept in gateway_batches_ahead


def plan(acked: int, max_seq: int, marks: Sequence[BatchMark]) -> StreamUpdate:
    """The update of a stream at ``acked``/``max_seq`` by the committed batches ``marks``,
    as far as it can be decided without the batches kept ahead of a gap (the slow path,
    ``fast`` False, asks the database for those)."""
    seqs = sorted({m.seq for m in marks})
    floor = max((m.held_from for m in marks if m.held_from is not None), default=0) - 1
    new = [s for s in seqs if s > acked]
    update = StreamUpdate(acked, max_seq, redeliveries=len(marks) - len(new), floor=floor)
    contiguous = bool(new) and new[-1] - new[0] == len(new) - 1 and new[0] == acked + 1
    if max_seq == acked and (not new or contiguous) and floor <= (new[-1] if new else acked):
        if new:
            update.acked = update.max_seq = new[-1]
            update.committed = len(new)
        return update
    update.ahead = new
    update.fast = False
    return update


def _marks(units: Sequence[Unit]) -> dict[StreamKey, list[BatchMark]]:
    by_stream: dict[StreamKey, list[BatchMark]] = {}
    for unit in units:
        mark = unit.batch
        if mark is None or not unit.plant_code:
            continue
        by_stream.setdefault((unit.plant_code, mark.gateway, mark.epoch), []).append(mark)
    return by_stream


def track(conn: psycopg.Connection, units: Sequence[Unit]) -> tuple[list[StreamAck], int, int]:
    """Record the batches of ``units`` as committed (inside the caller's transaction).

    Returns the acknowledgement of every stream touched, and the batches redelivered and
    skipped (dropped by their gateway before they came) in this transaction.
    """
    by_stream = _marks(units)
    if not by_stream:
        return [], 0, 0
    keys = sorted(by_stream)
    codes = [k[0] for k in keys]
    gateways = [k[1] for k in keys]
    epochs = [k[2] for k in keys]
    starts = [min(m.held_from if m.held_from is not None else m.seq for m in by_stream[k])
              for k in keys]
    acks: list[StreamAck] = []
    redelivered = skipped = 0
    with conn.cursor() as cur:
        cur.execute(_ENSURE, (codes, gateways, epochs, starts))
        rows = cur.execute(_LOCK, (codes, gateways, epochs)).fetchall()
        updates = []
        for code, gateway, epoch, plant_id, acked, max_seq in rows:
            key = (plant_id, gateway, epoch)
            update = plan(acked, max_seq, by_stream[(code, gateway, epoch)])
            if not update.fast:
                _slow(cur, key, update)
            redelivered += update.redeliveries
            skipped += update.skipped
            dropped = max((m.dropped or 0 for m in by_stream[(code, gateway, epoch)]), default=0)
            updates.append((update.acked, update.max_seq, update.committed, update.redeliveries,
                            update.skipped, dropped, update.max_seq == update.acked, *key))
            acks.append(StreamAck(code, gateway, epoch, update.acked))
        cur.executemany(_UPDATE, updates)
    return acks, redelivered, skipped


def _slow(cur: psycopg.Cursor, key: tuple[int, str, int], update: StreamUpdate) -> None:
    """A gap is open or opens: keep the new batches ahead, jump to the gateway's floor,
    advance over the run of consecutive seqs that follows."""
    inserted: list[int] = []
    if update.ahead:
        inserted = [r[0] for r in cur.execute(_AHEAD_INSERT, (*key, update.ahead)).fetchall()]
    update.redeliveries += len(update.ahead) - len(inserted)
    update.committed = len(inserted)
    if inserted:
        update.max_seq = max(update.max_seq, max(inserted))
    if update.floor > update.acked:
        # every seq up to the floor is committed (kept ahead) or was dropped by the gateway
        gone = cur.execute(_AHEAD_DELETE, (*key, update.floor)).rowcount
        update.skipped = (update.floor - update.acked) - gone
        update.acked = update.floor
        update.max_seq = max(update.max_seq, update.acked)
    run = cur.execute(_AHEAD_RUN, (*key, update.acked, update.acked)).fetchone()
    if run is not None and run[0] is not None:
        update.acked = int(run[0])
        cur.execute(_AHEAD_DELETE, (*key, update.acked))
