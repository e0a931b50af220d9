"""PostgreSQL restarted while readings stream in: nothing lost, nothing stored twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devservices.broker import Mosquitto
from app.devservices.embedded_pg import EmbeddedPostgres
from core.payload import topic_for
from ingest.pipeline import IngestConfig
from storage.migrate import migrate
from tests.integration.ingest_support import (
    CEMENT,
    CEMENT_METERS,
    Publisher,
    Worker,
    batch_payload,
    load_example_fleet,
    readings_count,
    scalar,
    wait_until,
)

MESSAGES = 300


@pytest.fixture
def own_server(server_dir: Path) -> Iterator[EmbeddedPostgres]:
    """A server of this test alone (the session server must not be restarted)."""
    pg = EmbeddedPostgres(server_dir / "restart", unsafe_fast=True)
    pg.start("ingest")
    yield pg
    pg.stop("immediate")


def test_postgres_restart_mid_stream_loses_nothing(
        own_server: EmbeddedPostgres, mosquitto: Mosquitto, example_fleet_path: Path) -> None:
    url = own_server.url("ingest")
    migrate(url, backend="postgres")
    load_example_fleet(url, example_fleet_path)
    config = IngestConfig(batch_size=200, flush_interval=0.05, retry_initial=0.05,
                          retry_max=0.5, connect_timeout=2)
    worker = Worker(url, mosquitto, "test-restart", config=config)
    publisher = Publisher(mosquitto)
    published = threading.Event()

    def publish() -> None:
        for seq in range(MESSAGES):
            publisher.publish(topic_for(CEMENT), batch_payload(seq, CEMENT_METERS, interval=seq))
            time.sleep(0.01)
        published.set()

    thread = threading.Thread(target=publish, daemon=True)
    try:
        thread.start()
        wait_until(lambda: readings_count(url) >= 300, what="the stream to start")
        own_server.stop("fast")                 # mid-stream: the writer loses its connection
        gauge = worker.pipeline.metrics.registry.get_sample_value
        time.sleep(1.5)
        before = worker.mqtt.received
        # the metrics stay true while the database is away (review D4: they froze)
        held = gauge("energymon_ingest_queue_readings")
        age = gauge("energymon_ingest_oldest_unacknowledged_age_seconds")
        assert held is not None and held > 0, held
        assert age is not None and age >= 1.0, age
        time.sleep(0.5)
        assert gauge("energymon_ingest_oldest_unacknowledged_age_seconds") >= age + 0.4
        own_server.start("ingest")
        assert published.wait(30)
        total = MESSAGES * len(CEMENT_METERS)
        wait_until(lambda: readings_count(url) == total, timeout=30, what="every reading")
        assert worker.pipeline.flush(10)
        assert readings_count(url) == total
        assert gauge("energymon_ingest_queue_readings") == 0
        assert gauge("energymon_ingest_oldest_unacknowledged_age_seconds") == 0
        assert scalar(url, "SELECT count(*) FROM dead_letters") == 0
        assert scalar(url, "SELECT count(*) FROM reading_conflicts") == 0
        retries = sum(s.get() for m in worker.pipeline.metrics.db_retries._metrics.values()
                      for s in [m._value])
        assert retries > 0, "the restart was not noticed: the test proved nothing"
        assert before < MESSAGES, "the stream had ended before the restart"
    finally:
        thread.join(30)
        worker.stop()
        publisher.close()
