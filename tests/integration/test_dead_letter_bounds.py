"""Dead letters are bounded (security review M3: one client added 83 MB in 6 s): a stored
prefix with the payload's full size and SHA-256, a quota per plant per minute whose overflow
is counted (never dropped silently), and a retention period. A real PostgreSQL, the one
writer behind MQTT ingest and the API's push."""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta

import psycopg

from ingest.model import Receipt, Unit
from ingest.reasons import ReasonCode
from ingest.validation import DeadLetter
from ingest.writer import DeadLetterLimits, PgWriter
from storage.migrate import migrate


def unit(plant: str | None, payload: bytes, at: datetime) -> Unit:
    receipt = Receipt(plant, f"mqtt:plants/{plant}/readings", at, 0, ())
    return Unit(receipt, b"", 0, [DeadLetter(ReasonCode.INVALID_JSON, "not JSON", payload)],
                payload)


def test_dead_letters_are_bounded(migrated_db: str) -> None:
    limits = DeadLetterLimits(max_payload_bytes=1024, per_plant_per_minute=5,
                              retention=timedelta(days=30), prune_every=0)
    writer = PgWriter(migrated_db, dead_letters=limits)
    now = datetime.now(UTC).replace(second=10, microsecond=0)
    big = os.urandom(2_000_000)
    try:
        with psycopg.connect(migrated_db) as conn:    # an old one, beyond the retention
            conn.execute("INSERT INTO dead_letters (received_at, source, reason_code, reason, "
                         "payload) VALUES (now() - INTERVAL '31 days', 'old', 'invalid_json', "
                         "'x', 'x')")
        # plant a: 8 in one minute (5 stored, 3 counted); plant b: 3; one 2 MB payload
        stats = writer.write([unit("a", b"{" * 10, now) for _ in range(7)]
                             + [unit("a", big, now)] + [unit("b", b"[", now) for _ in range(3)])
        assert stats.dead_letters_over_quota == 3
        assert stats.dead_letters == {ReasonCode.INVALID_JSON: 8}
        # the next minute has its own quota; a set-aside message counts against it too
        later = writer.write_dead_letters([(u, u.dead[0]) for u in
                                           [unit("a", big, now + timedelta(minutes=1))]])
        assert later.dead_letters == {ReasonCode.INVALID_JSON: 1}
    finally:
        writer.close()
    with psycopg.connect(migrated_db) as conn:
        stored = conn.execute(
            "SELECT plant_code, count(*), max(length(payload)), max(payload_bytes) "
            "FROM dead_letters GROUP BY plant_code ORDER BY plant_code").fetchall()
        overflow = conn.execute("SELECT plant_code, reason_code, dropped, bytes "
                                "FROM dead_letter_overflow").fetchall()
        big_row = conn.execute("SELECT length(payload), payload_bytes, payload_sha256 "
                               "FROM dead_letters WHERE payload_bytes = 2000000").fetchall()
    # the old one was pruned; a: 5 + 1 (next minute), b: 3
    assert stored == [("a", 6, 1024, 2_000_000), ("b", 3, 1, 1)]
    # the 2 MB payload was the 8th of plant a in the first minute: over the quota, counted
    assert overflow == [("a", "invalid_json", 3, 2_000_000 + 10 + 10)]
    # the one stored (next minute): a 1 KiB prefix, the full size and hash
    assert big_row == [(1024, 2_000_000, hashlib.sha256(big).digest())]


def test_existing_rows_keep_their_payload(fresh_db: str) -> None:
    migrate(fresh_db, backend="postgres")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO dead_letters (source, reason_code, reason, payload) "
                     "VALUES ('x', 'oversized', 'x', 'abc')")
        row = conn.execute("SELECT payload, payload_bytes FROM dead_letters").fetchone()
    assert row == (b"abc", None)
