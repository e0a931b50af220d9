"""Gateway streams over real Mosquitto and PostgreSQL: what ingest commits, it acknowledges
end to end (``plants/{plant}/acks/{gateway}``, retained), from what is in the database; gaps,
redeliveries and the gateway's own drops are counted in ``gateway_streams``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest

from app.devservices.broker import Mosquitto
from core.payload import AckPayload, ack_topic_for, topic_for
from tests.integration.ingest_support import (
    BASE,
    CEMENT,
    CEMENT_METERS,
    Publisher,
    Worker,
    wait_until,
)

pytestmark = pytest.mark.timeout(180)

EPOCH = 1234567


def batch(seq: int, *, epoch: int = EPOCH, held_from: int | None = None,
          dropped: int | None = None, meters: list[str] | None = None,
          gateway: str = "gw-1") -> bytes:
    ts = (BASE + timedelta(minutes=15 * seq)).isoformat()
    body: dict[str, Any] = {"v": 1, "gateway": gateway, "seq": seq, "epoch": epoch,
                            "readings": [{"meter": m, "ts": ts, "value": 1000.0 + seq}
                                         for m in (meters or CEMENT_METERS[:2])]}
    if held_from is not None:
        body["held_from"] = held_from
    if dropped is not None:
        body["dropped"] = dropped
    return json.dumps(body).encode()


class AckWatcher:
    """Subscribes to a gateway's acknowledgement topic (as its collector does)."""

    def __init__(self, broker: Mosquitto, plant: str = CEMENT, gateway: str = "gw-1") -> None:
        self.acks: list[AckPayload] = []
        self.retained: list[bool] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.subscribe(ack_topic_for(plant, gateway), qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.acks.append(AckPayload.model_validate_json(message.payload))
            self.retained.append(bool(message.retain))

    @property
    def last(self) -> int | None:
        """The highest acknowledgement seen, as the collector takes it (two workers may
        publish theirs in either order: the lower one arriving last is stale, not news)."""
        with self._lock:
            return max(a.acked for a in self.acks) if self.acks else None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stream(url: str, epoch: int = EPOCH, gateway: str = "gw-1") -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        cur = conn.execute(
            "SELECT acked_seq, max_seq, committed_batches, redeliveries, skipped_batches, "
            "dropped_readings, gap_since IS NOT NULL AS gap, "
            "(SELECT count(*) FROM gateway_batches_ahead a WHERE a.plant_id = g.plant_id "
            " AND a.gateway = g.gateway AND a.epoch = g.epoch) AS ahead "
            "FROM gateway_streams g JOIN plants p ON p.id = g.plant_id "
            "WHERE p.code = %s AND g.gateway = %s AND g.epoch = %s", (CEMENT, gateway, epoch))
        row = cur.fetchone()
        assert row is not None, "no stream recorded"
        assert cur.description is not None
        return dict(zip([c.name for c in cur.description], row, strict=True))


@pytest.fixture
def worker(db: str, mosquitto: Mosquitto) -> Iterator[Worker]:
    w = Worker(db, mosquitto, "streams-0")
    yield w
    w.stop()


def test_commits_are_acknowledged_with_gaps_redeliveries_and_drops_counted(
        db: str, mosquitto: Mosquitto, worker: Worker, publisher: Publisher) -> None:
    topic = topic_for(CEMENT)
    watcher = AckWatcher(mosquitto)
    try:
        publisher.publish_many([(topic, batch(s)) for s in (0, 1, 2)])
        wait_until(lambda: watcher.last == 2, what="ack of seq 2")
        assert stream(db) | {} == {"acked_seq": 2, "max_seq": 2, "committed_batches": 3,
                                   "redeliveries": 0, "skipped_batches": 0,
                                   "dropped_readings": 0, "gap": False, "ahead": 0}
        # seq 3 lost on the way: 4 and 5 are committed but not acknowledged
        publisher.publish_many([(topic, batch(4)), (topic, batch(5))])
        wait_until(lambda: stream(db)["max_seq"] == 5, what="seq 5 committed")
        assert stream(db)["acked_seq"] == 2 and stream(db)["gap"] and stream(db)["ahead"] == 2
        assert watcher.last == 2
        publisher.publish(topic, batch(3))               # the collector resends it
        wait_until(lambda: watcher.last == 5, what="the gap closing")
        s = stream(db)
        assert (s["acked_seq"], s["gap"], s["ahead"], s["committed_batches"]) == (5, False, 0, 6)
        publisher.publish(topic, batch(4))               # a resend of a committed batch
        wait_until(lambda: stream(db)["redeliveries"] == 1, what="the redelivery counted")
        # the gateway's spool dropped 6..8 (held_from 9) and says it lost 6 readings
        publisher.publish(topic, batch(10, held_from=9, dropped=6))
        wait_until(lambda: stream(db)["max_seq"] == 10, what="seq 10")
        s = stream(db)
        assert (s["acked_seq"], s["skipped_batches"], s["dropped_readings"], s["gap"]) == \
            (8, 3, 6, True)                              # 9 is still held: not acknowledged
        publisher.publish(topic, batch(9, held_from=9, dropped=6))
        wait_until(lambda: watcher.last == 10, what="ack of seq 10")
        assert stream(db)["gap"] is False
        # what is acknowledged is in the database
        with psycopg.connect(db) as conn:
            stored = conn.execute("SELECT count(DISTINCT ts) FROM readings").fetchone()
        assert stored == (8,)                            # seqs 0..5, 9 and 10
    finally:
        watcher.close()
    # a collector connecting later gets the latest acknowledgement at once (retained)
    late = AckWatcher(mosquitto)
    try:
        wait_until(lambda: late.last == 10, what="the retained ack")
        assert late.retained == [True]
    finally:
        late.close()
    text = worker.pipeline.metrics.registry.get_sample_value
    assert text("energymon_ingest_redelivered_batches_total") == 1
    assert text("energymon_ingest_skipped_batches_total") == 3


def test_a_batch_whose_readings_are_all_dead_letters_is_acknowledged(
        db: str, mosquitto: Mosquitto, worker: Worker, publisher: Publisher) -> None:
    """Dead letters are durable: the collector must not resend them forever."""
    watcher = AckWatcher(mosquitto)
    try:
        publisher.publish(topic_for(CEMENT), batch(0, meters=["no-such-meter"]))
        wait_until(lambda: watcher.last == 0, what="ack of the dead-lettered batch")
        with psycopg.connect(db) as conn:
            assert conn.execute("SELECT count(*) FROM dead_letters").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM readings").fetchone() == (0,)
    finally:
        watcher.close()


def test_epochs_are_separate_streams_and_a_new_one_starts_where_it_says(
        db: str, mosquitto: Mosquitto, worker: Worker, publisher: Publisher) -> None:
    topic = topic_for(CEMENT)
    publisher.publish_many([(topic, batch(s)) for s in (0, 1)])
    # a spool created anew (seq 0 again, a new epoch) and an old spool met mid-stream
    publisher.publish_many([(topic, batch(0, epoch=99, held_from=0)),
                            (topic, batch(40, epoch=5, held_from=40))])
    wait_until(lambda: worker.pipeline.pending == 0 and _streams(db) == 3, what="3 streams")
    assert stream(db)["acked_seq"] == 1
    assert stream(db, epoch=99)["acked_seq"] == 0
    assert stream(db, epoch=5) | {} == {"acked_seq": 40, "max_seq": 40, "committed_batches": 1,
                                        "redeliveries": 0, "skipped_batches": 0,
                                        "dropped_readings": 0, "gap": False, "ahead": 0}


def _streams(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM gateway_streams").fetchone()
        return int(row[0]) if row else 0


def test_two_workers_on_one_stream_acknowledge_everything_without_deadlock(
        db: str, mosquitto: Mosquitto, publisher: Publisher) -> None:
    """The shared subscription splits one gateway's batches over two workers; the stream
    row serialises them and the acknowledgement reaches the end."""
    workers = [Worker(db, mosquitto, f"streams-{i}") for i in range(2)]
    watcher = AckWatcher(mosquitto)
    try:
        n = 400
        topic = topic_for(CEMENT)
        # a fresh spool holds everything from seq 0 (held_from), so whichever worker
        # commits first, the stream starts at 0
        publisher.publish_many([(topic, batch(s, held_from=0)) for s in range(n)])
        wait_until(lambda: watcher.last == n - 1, timeout=60, what=f"ack of seq {n - 1}")
        s = stream(db)
        assert (s["acked_seq"], s["committed_batches"], s["gap"], s["ahead"]) == \
            (n - 1, n, False, 0)
        counts = [w.mqtt.received for w in workers]
        assert all(c > 0 for c in counts), f"one worker took everything: {counts}"
    finally:
        watcher.close()
        for w in workers:
            w.stop()


def test_the_api_shows_a_plants_streams_to_whoever_may_see_the_plant(
        db: str, mosquitto: Mosquitto, worker: Worker, publisher: Publisher) -> None:
    from tests.integration.api_support import api_env

    topic = topic_for(CEMENT)
    publisher.publish_many([(topic, batch(0, held_from=0)), (topic, batch(2, held_from=0))])
    wait_until(lambda: _streams(db) == 1 and stream(db)["max_seq"] == 2, what="seq 2")
    with api_env(db, load=False) as env:
        path = f"/api/v1/plants/{CEMENT}/gateways"
        for token in ("plant-cement", "regulator-jx", "admin"):
            r = env.get(token, path)
            assert r.status_code == 200, (token, r.text)
            body = r.json()
            assert body["open_gaps"] == 1
            (s,) = body["streams"]
            assert (s["gateway"], s["epoch"], s["acked_seq"], s["max_seq"], s["gap"]) == \
                ("gw-1", EPOCH, 0, 2, True)
            assert s["gap_since"].endswith("+08:00")
        for token in ("plant-glass", "regulator-gx"):
            assert env.get(token, path).status_code == 404, token
