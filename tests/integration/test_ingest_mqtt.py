"""Ingest end to end with a real Mosquitto and a real PostgreSQL: idempotency, shared
subscriptions, acknowledgement after commit, conflicts, the transport-independent API.

The helpers at the top are shared by the other ``test_ingest_*`` integration modules.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from app.devservices.broker import Mosquitto
from core.payload import topic_for
from core.settings import MqttEndpoint
from ingest.model import Outcome
from ingest.mqtt import MqttIngestWorker
from ingest.pipeline import IngestConfig, IngestPipeline
from ingest.reasons import ReasonCode
from tests.integration.ingest_support import (
    CEMENT,
    CEMENT_METERS,
    FAST,
    GLASS,
    Publisher,
    Worker,
    batch_payload,
    readings_count,
    scalar,
    wait_until,
)


@pytest.fixture
def worker(db: str, mosquitto: Mosquitto) -> Iterator[Worker]:
    w = Worker(db, mosquitto, "test-w1")
    yield w
    w.stop()


# -- tests ------------------------------------------------------------------------------------
def test_same_batch_delivered_three_times_is_stored_once(
        db: str, worker: Worker, publisher: Publisher) -> None:
    payloads = [batch_payload(seq, CEMENT_METERS, interval=seq) for seq in range(5)]
    for _ in range(3):
        for p in payloads:
            publisher.publish(topic_for(CEMENT), p)
    wait_until(lambda: worker.mqtt.received == 15, what="15 deliveries")
    assert worker.pipeline.flush(10)
    assert readings_count(db) == 5 * len(CEMENT_METERS)
    assert scalar(db, "SELECT count(*) FROM (SELECT meter_id, ts FROM readings "
                      "GROUP BY 1, 2 HAVING count(*) > 1) d") == 0
    assert scalar(db, "SELECT count(*) FROM reading_conflicts") == 0
    assert scalar(db, "SELECT count(*) FROM dead_letters") == 0
    assert scalar(db, "SELECT sum(value) FROM readings") == sum(
        1000.0 + s + i for s in range(5) for i in range(len(CEMENT_METERS)))
    metrics = worker.pipeline.metrics
    assert metrics.readings_committed._value.get() == 30
    assert metrics.duplicates._value.get() == 60


def test_a_second_value_for_a_stored_key_is_kept_as_a_conflict(
        db: str, worker: Worker, publisher: Publisher) -> None:
    publisher.publish(topic_for(CEMENT), batch_payload(1, ["k1-elec", "k1-coal"], 0, 10.0))
    wait_until(lambda: readings_count(db) == 2)
    publisher.publish(topic_for(CEMENT), batch_payload(2, ["k1-elec", "k1-coal"], 0, 11.0))
    publisher.publish(topic_for(CEMENT), batch_payload(3, ["k1-elec"], 0, 11.0))  # same again
    wait_until(lambda: worker.mqtt.received == 3)
    assert worker.pipeline.flush(10)
    assert scalar(db, "SELECT array_agg(DISTINCT value) FROM readings") == [10.0]
    with psycopg.connect(db) as conn:
        conflicts = conn.execute(
            "SELECT m.code, c.stored_value, c.new_value, c.source FROM reading_conflicts c "
            "JOIN meters m ON m.id = c.meter_id ORDER BY m.code").fetchall()
    assert conflicts == [("k1-coal", 10.0, 11.0, f"mqtt:{topic_for(CEMENT)}"),
                         ("k1-elec", 10.0, 11.0, f"mqtt:{topic_for(CEMENT)}")]


def test_two_workers_on_one_shared_subscription_store_every_reading_once(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    first = Worker(db, mosquitto, "test-a")
    second = Worker(db, mosquitto, "test-b")
    try:
        messages = [(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, interval=s))
                    for s in range(200)]
        publisher.publish_many(messages)
        wait_until(lambda: first.mqtt.received + second.mqtt.received == 200,
                   what="200 deliveries")
        assert first.pipeline.flush(10) and second.pipeline.flush(10)
        assert first.mqtt.received > 0 and second.mqtt.received > 0, "the stream was not split"
        assert readings_count(db) == 200 * len(CEMENT_METERS)
        committed = sum(w.pipeline.metrics.readings_committed._value.get()
                        for w in (first, second))
        assert committed == 200 * len(CEMENT_METERS)
        assert scalar(db, "SELECT count(*) FROM reading_conflicts") == 0
    finally:
        first.stop()
        second.stop()


def test_messages_are_acknowledged_only_after_commit(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    """A worker that received messages but never committed them dies; its successor (same
    client id, same session) gets them again. Had they been acknowledged on receipt, they
    would be lost."""
    gate = threading.Event()
    crashed = Worker(db, mosquitto, "test-crash")
    real_write = crashed.pipeline.writer.write

    def stuck_write(units: Any) -> Any:
        gate.wait()
        return real_write(units)

    crashed.pipeline.writer.write = stuck_write  # type: ignore[method-assign]
    messages = [(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, interval=s))
                for s in range(20)]
    publisher.publish_many(messages)
    wait_until(lambda: crashed.mqtt.received == 20, what="20 deliveries")
    # crash: the process disappears without DISCONNECT, nothing was committed
    crashed.mqtt.client._sock_close()  # simulate a killed process
    crashed.mqtt.client.loop_stop()
    crashed.mqtt._stopped = True
    assert readings_count(db) == 0
    successor = Worker(db, mosquitto, "test-crash")
    try:
        wait_until(lambda: readings_count(db) == 20 * len(CEMENT_METERS),
                   what="redelivered readings")
    finally:
        successor.stop()
        gate.set()
        crashed.pipeline.close(5)
    assert readings_count(db) == 20 * len(CEMENT_METERS)


def test_worker_reconnects_after_a_broker_restart(db: str, mosquitto: Mosquitto) -> None:
    w = Worker(db, mosquitto, "test-reconnect")
    try:
        first = Publisher(mosquitto)
        first.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, s))
                            for s in range(10)])
        first.close()
        wait_until(lambda: readings_count(db) == 60)
        mosquitto.kill()                                    # a broker crash
        wait_until(lambda: not w.mqtt.client.is_connected(), what="the disconnect")
        mosquitto.start()
        wait_until(lambda: w.pipeline.metrics.mqtt_connects._value.get() == 2, timeout=30,
                   what="the worker to reconnect by itself")
        assert w.mqtt.wait_subscribed(10)
        second = Publisher(mosquitto)
        second.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, s))
                             for s in range(10, 20)])
        second.close()
        wait_until(lambda: readings_count(db) == 120, what="readings after the restart")
    finally:
        w.stop()


def test_a_database_stalled_beyond_the_keepalive_causes_no_disconnect(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    """Reliability review D6: the readings table is locked for four keepalive periods while
    messages keep arriving and the queue (10 readings) is full after two of them. paho's
    network thread never waits for the pipeline, so it keeps answering the broker: one
    connection throughout, no acknowledgement dropped, nothing committed twice."""
    pipeline = IngestPipeline.for_database(db, config=IngestConfig(
        batch_size=6, max_pending=12, flush_interval=0.05, retry_initial=0.05,
        retry_max=0.5)).start(registry_timeout=10)
    worker = MqttIngestWorker(pipeline, MqttEndpoint.parse(mosquitto.url), client_id="t-d6",
                              keepalive=2, reconnect_max=1).start()
    metric = pipeline.metrics.registry.get_sample_value
    try:
        assert worker.wait_subscribed(10)
        with psycopg.connect(db) as lock:
            lock.execute("LOCK TABLE readings IN ACCESS EXCLUSIVE MODE")
            publisher.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, s))
                                    for s in range(30)])
            wait_until(lambda: worker.delivered == 30, what="30 deliveries")
            time.sleep(8)   # 4 keepalives: a blocked network thread is cut off after 3 s
        wait_until(lambda: readings_count(db) == 30 * len(CEMENT_METERS), timeout=30,
                   what="every reading stored")
        assert worker.stop(drain_timeout=10)
    finally:
        worker.stop(drain_timeout=1)
        pipeline.close(5)
    assert metric("energymon_ingest_mqtt_connects_total") == 1, "the worker was disconnected"
    assert metric("energymon_ingest_mqtt_acks_dropped_total") == 0
    assert metric("energymon_ingest_duplicates_total") == 0, "committed work was redelivered"
    assert (metric("energymon_ingest_backpressure_waits_total") or 0) > 0, \
        "the queue never filled: the test did not stall the pipeline"


def test_the_hand_off_holds_at_most_the_receive_maximum(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    """Mosquitto 2.0.11 sends more than the client's Receive Maximum once acknowledgements
    flow (reliability review D7; 1 910 messages held against 50 when the hand-off was not
    bounded): the hand-off queue still never holds more than the Receive Maximum, and every
    reading is stored on the one connection."""
    pipeline = IngestPipeline.for_database(db, config=IngestConfig(
        batch_size=60, max_pending=120, flush_interval=0.05)).start(registry_timeout=10)
    worker = MqttIngestWorker(pipeline, MqttEndpoint.parse(mosquitto.url), client_id="t-d7",
                              receive_maximum=50).start()
    metric = pipeline.metrics.registry.get_sample_value
    try:
        assert worker.wait_subscribed(10)
        publisher.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, s))
                                for s in range(1500)])
        wait_until(lambda: readings_count(db) == 1500 * len(CEMENT_METERS), timeout=60,
                   what="every reading stored")
    finally:
        worker.stop(drain_timeout=5)
        pipeline.close(5)
    assert 0 < worker.handoff_peak <= 50
    assert metric("energymon_ingest_mqtt_connects_total") == 1
    assert metric("energymon_ingest_duplicates_total") == 0


def test_submit_is_transport_independent_and_returns_a_receipt(db: str) -> None:
    """The HTTP push path: same validation and writer, no broker."""
    pipeline = IngestPipeline.for_database(db, config=FAST).start(registry_timeout=10)
    try:
        good = pipeline.submit(CEMENT, batch_payload(1, ["k1-elec", "nope"], 0),
                               "http:/api/v1/readings")
        foreign = pipeline.submit(GLASS, batch_payload(2, ["k1-elec"], 0), "http:/api/v1/readings")
        assert (good.accepted, [r.reason_code for r in good.rejected]) == (
            1, [ReasonCode.UNKNOWN_METER])
        assert [r.reason_code for r in foreign.rejected] == [ReasonCode.UNKNOWN_METER]
        assert CEMENT not in foreign.rejected[0].reason  # M1: no other plant named
        assert good.wait(10) is Outcome.COMMITTED and foreign.wait(10) is Outcome.COMMITTED
        assert readings_count(db) == 1
        with psycopg.connect(db) as conn:
            dead = conn.execute("SELECT source, plant_code, reason_code, payload FROM "
                                "dead_letters ORDER BY id").fetchall()
        assert [(d[0], d[1], d[2]) for d in dead] == [
            ("http:/api/v1/readings", CEMENT, "unknown_meter"),
            ("http:/api/v1/readings", GLASS, "unknown_meter")]
        assert json.loads(dead[0][3])["meter"] == "nope"
    finally:
        pipeline.close(10)


def test_unknown_meter_added_to_the_registry_is_picked_up(db: str) -> None:
    config = IngestConfig(batch_size=100, flush_interval=0.05, registry_miss_interval=0)
    pipeline = IngestPipeline.for_database(db, config=config).start(registry_timeout=10)
    try:
        with psycopg.connect(db) as conn:
            conn.execute(
                "INSERT INTO meters (plant_id, code, name, energy_type, kind, eng_unit) "
                "SELECT id, 'new-meter', 'added later', 'electricity', 'counter', 'kWh' "
                "FROM plants WHERE code = %s", (CEMENT,))
        receipt = pipeline.submit(CEMENT, batch_payload(1, ["new-meter"], 0), "http:x")
        assert receipt.accepted == 1 and receipt.wait(10) is Outcome.COMMITTED
    finally:
        pipeline.close(10)


def test_graceful_stop_commits_and_acknowledges_everything_received(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    slow = IngestConfig(batch_size=100_000, flush_interval=30, idle_flush=None)
    w = Worker(db, mosquitto, "test-graceful", config=slow)
    publisher.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, interval=s))
                            for s in range(30)])
    wait_until(lambda: w.mqtt.received == 30)
    assert readings_count(db) == 0          # still queued (30 s flush interval)
    w.stop()                                # flush, commit, ack, disconnect
    assert readings_count(db) == 30 * len(CEMENT_METERS)
    # everything was acknowledged: the same session gets nothing again
    again = Worker(db, mosquitto, "test-graceful")
    try:
        time.sleep(1.0)
        assert again.mqtt.received == 0
    finally:
        again.stop()


def _metrics_text(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        return resp.read().decode()


def test_cli_ingest_runs_until_sigterm(db: str, mosquitto: Mosquitto, publisher: Publisher,
                                       tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    from core.ports import free_port

    port = free_port()
    env = {**os.environ, "ENERGYMON_DATABASE_URL": db, "ENERGYMON_MQTT_URL": mosquitto.url,
           "ENERGYMON_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "ingest", "--client-id", "test-cli",
         "--metrics-port", str(port), "--flush-interval", "0.05"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: "energymon_ingest_mqtt_connected 1.0" in _try(_metrics_text, port),
                   what="the CLI worker to connect")
        publisher.publish_many([(topic_for(CEMENT), batch_payload(s, CEMENT_METERS, s))
                                for s in range(10)])
        wait_until(lambda: readings_count(db) == 60, what="readings from the CLI worker")
        text = _metrics_text(port)
        assert "energymon_ingest_readings_committed_total 60.0" in text
        assert 'energymon_ingest_messages_total{transport="mqtt"} 10.0' in text
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopped" in out


def _try(fn: Callable[[int], str], port: int) -> str:
    try:
        return fn(port)
    except OSError:
        return ""


def test_cli_ingest_without_broker_url_says_what_to_set(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    monkeypatch.delenv("ENERGYMON_MQTT_URL", raising=False)
    monkeypatch.delenv("ENERGYMON_CONFIG", raising=False)
    assert main(["ingest"]) == 2
    assert "ENERGYMON_MQTT_URL is not set" in capsys.readouterr().err
