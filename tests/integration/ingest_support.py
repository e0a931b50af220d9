"""Helpers shared by the ingest integration tests (payloads, a QoS 1 publisher, a worker
pair, and the ``db`` / ``publisher`` fixtures)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

from app.devservices.broker import Mosquitto
from core.settings import MqttEndpoint
from fleet import load_fleet
from fleet.registry import load_registry
from ingest.mqtt import MqttIngestWorker
from ingest.pipeline import IngestConfig, IngestPipeline

CEMENT = "jx-yujiang-cement"
GLASS = "jx-shangyou-glass"
CEMENT_METERS = ["k1-elec", "k1-coal", "k1-clinker", "k2-elec", "k2-coal", "k2-clinker"]
# a quarter-hour well in the past, whatever the clock says
BASE = (datetime.now(UTC) - timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
FAST = IngestConfig(batch_size=500, flush_interval=0.05, retry_initial=0.05, retry_max=0.5)


# -- helpers ----------------------------------------------------------------------------------
def load_example_fleet(url: str, fleet_path: Path) -> None:
    with psycopg.connect(url) as conn:
        load_registry(conn, load_fleet(fleet_path))


def wait_until(predicate: Callable[[], bool], timeout: float = 20, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(0.05)


def scalar(url: str, query: str, *params: Any) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()  # type: ignore[arg-type]
        return row[0] if row else None


def batch_payload(seq: int, meters: list[str], interval: int, value: float | None = None,
                  gateway: str = "gw-1") -> bytes:
    ts = (BASE + timedelta(minutes=15 * interval)).isoformat()
    return json.dumps({"v": 1, "gateway": gateway, "seq": seq, "readings": [
        {"meter": m, "ts": ts, "value": value if value is not None else 1000.0 + interval + i}
        for i, m in enumerate(meters)]}).encode()


class Publisher:
    """A QoS 1 publisher; ``publish`` returns once the broker has acknowledged."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(500)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        infos = [self.client.publish(t, p, qos=1) for t, p in messages]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Worker:
    """A pipeline + MQTT worker pair on one database and broker."""

    def __init__(self, url: str, broker: Mosquitto, client_id: str, group: str = "ingest",
                 config: IngestConfig = FAST) -> None:
        self.pipeline = IngestPipeline.for_database(url, config=config).start(registry_timeout=10)
        self.mqtt = MqttIngestWorker(self.pipeline, MqttEndpoint.parse(broker.url), group=group,
                                     client_id=client_id, reconnect_max=2)
        self.mqtt.start()
        assert self.mqtt.wait_subscribed(10), "the worker did not subscribe"

    def stop(self) -> None:
        self.mqtt.stop(drain_timeout=10)
        self.pipeline.close(10)


def readings_count(url: str) -> int:
    return int(scalar(url, "SELECT count(*) FROM readings"))
