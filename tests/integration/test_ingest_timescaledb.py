"""The ingest writer on TimescaleDB: hypertable COPY, dedup and conflicts, compressed chunks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from ingest.model import Outcome
from ingest.pipeline import IngestConfig, IngestPipeline
from storage.migrate import Backend, migrate
from tests.integration.ingest_support import CEMENT, CEMENT_METERS, load_example_fleet, scalar

pytestmark = pytest.mark.timescale


def payload(seq: int, ts: datetime, value: float) -> bytes:
    return json.dumps({"gateway": "gw-ts", "seq": seq, "readings": [
        {"meter": m, "ts": ts.isoformat(), "value": value + i}
        for i, m in enumerate(CEMENT_METERS)]}).encode()


def test_idempotent_ingest_on_a_hypertable_with_compressed_chunks(
        timescale_db: str, example_fleet_path: Path) -> None:
    assert migrate(timescale_db).backend is Backend.TIMESCALEDB
    load_example_fleet(timescale_db, example_fleet_path)
    config = IngestConfig(batch_size=100, flush_interval=0.02)
    pipeline = IngestPipeline.for_database(timescale_db, config=config).start(registry_timeout=10)
    old = (datetime.now(UTC) - timedelta(days=60)).replace(minute=0, second=0, microsecond=0)
    recent = old + timedelta(days=50)
    try:
        def submit(seq: int, ts: datetime, value: float) -> None:
            receipt = pipeline.submit(CEMENT, payload(seq, ts, value), "mqtt:test")
            assert receipt.wait(10) is Outcome.COMMITTED

        for seq in range(3):                                    # old and recent chunks
            submit(seq, old + timedelta(minutes=15 * seq), 10.0)
            submit(seq, recent + timedelta(minutes=15 * seq), 10.0)
        n = 6 * len(CEMENT_METERS)
        assert scalar(timescale_db, "SELECT count(*) FROM readings") == n
        with psycopg.connect(timescale_db, autocommit=True) as conn:
            compressed = conn.execute(
                "SELECT count(compress_chunk(c)) FROM show_chunks('readings', "
                "older_than => INTERVAL '30 days') c").fetchone()
        assert compressed is not None and compressed[0] >= 1
        for seq in range(3):                                    # redelivery, old and recent
            submit(seq, old + timedelta(minutes=15 * seq), 10.0)
            submit(seq, recent + timedelta(minutes=15 * seq), 10.0)
        submit(9, old, 99.0)                                    # a second value, compressed
        submit(9, recent, 99.0)                                 # a second value, uncompressed
        assert scalar(timescale_db, "SELECT count(*) FROM readings") == n
        assert scalar(timescale_db, "SELECT count(*) FROM reading_conflicts") == \
            2 * len(CEMENT_METERS)
        assert scalar(timescale_db, "SELECT count(*) FROM readings WHERE value >= 99") == 0
    finally:
        pipeline.close(10)
