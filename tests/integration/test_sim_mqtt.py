"""MQTT plants against a real Mosquitto: what arrives validates (or, malformed, does not),
carries the plant model's readings, and shows the declared transport faults."""

from __future__ import annotations

import threading
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from app.devservices.broker import Mosquitto
from core.payload import BatchPayload, SingleReadingPayload
from core.settings import MqttEndpoint
from simulators.clock import SimClock
from simulators.model import STEP_S
from simulators.mqtt_publisher import MqttPublisher, PlantFeed, merge_plans
from simulators.truth import compute_truth
from tests.sim_support import NOON, example_data, example_model, model, plant_of

COPPER = "jx-yujiang-copper"
K = int(NOON.timestamp() // STEP_S)


class Subscriber:
    """Collects (topic, payload) in arrival order."""

    def __init__(self, broker: Mosquitto) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="sim-test-sub")
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda c, u, msg: self.messages.append(
            (msg.topic, msg.payload))
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def _on_connect(self, client: mqtt.Client, *_args: object) -> None:
        client.subscribe("plants/+/readings", qos=1)
        client.on_subscribe = lambda *a: self.ready.set()

    def wait_for(self, n: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.02)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _endpoint(broker: Mosquitto) -> MqttEndpoint:
    return MqttEndpoint.parse(broker.url)


def test_batches_with_faults_arrive_as_declared(mosquitto: Mosquitto) -> None:
    data = example_data()
    plant_of(data, COPPER)["simulation"]["transport"]["faults"] = [
        {"kind": "duplicate", "probability": 0.1},
        {"kind": "out_of_order", "every": "1d", "duration": "15m", "offset": "4h"},
        {"kind": "late", "delay": "1h", "every": "1d", "duration": "15m", "offset": "6h"},
        {"kind": "clock_skew", "skew": 120, "every": "1d", "duration": "30m", "offset": "8h"},
        {"kind": "malformed", "probability": 0.05},
    ]
    m = model(data, plants=[COPPER])
    feed = PlantFeed(m, COPPER)
    k0, k1 = K - 96, K
    plan = merge_plans([feed], k0, k1)
    sub = Subscriber(mosquitto)
    publisher = MqttPublisher(_endpoint(mosquitto), client_id="sim-test-pub")
    publisher.connect()
    try:
        stats = publisher.publish_all(plan)
        sub.wait_for(len(plan))
    finally:
        publisher.close()
        sub.close()
    assert len(sub.messages) == len(plan) == stats.messages
    assert [p for _, p in sub.messages] == [msg.payload for msg in plan]     # order kept
    truth = compute_truth(m, k0 - 1, k1)
    by_seq: dict[int, int] = {}
    seen_faults: set[str] = set()
    for msg in plan:
        seen_faults.update(f.split(":")[0] for f in msg.faults)
        try:
            batch = BatchPayload.model_validate_json(msg.payload)
        except ValidationError:
            assert any(f.startswith("malformed") for f in msg.faults)
            continue
        assert not any(f.startswith("malformed") for f in msg.faults)
        by_seq[batch.seq] = by_seq.get(batch.seq, 0) + 1
        i = int(msg.interval_end // STEP_S) - (k0 - 1) - 1      # truth reading at its end
        skew = 120 if "clock_skew" in msg.faults else 0
        for r in batch.readings:
            assert r.ts.timestamp() == msg.interval_end + skew
            assert r.value == truth.meters[COPPER, r.meter].reading[i]
    assert seen_faults == {"duplicate", "out_of_order", "late", "clock_skew", "malformed"}
    assert any(n == 2 for n in by_seq.values())                             # duplicates
    seqs = [msg.seq for msg in plan]
    late = next(msg.seq for msg in plan if "late" in msg.faults)
    assert seqs.index(late) > seqs.index(late + 3)                          # an hour late


def test_real_time_publishing_follows_the_clock(mosquitto: Mosquitto) -> None:
    m = example_model()
    feed = PlantFeed(m, COPPER, faults=False)
    start = (K * STEP_S) - 300.0
    sub = Subscriber(mosquitto)
    publisher = MqttPublisher(_endpoint(mosquitto), client_id="sim-test-rt")
    publisher.connect()
    try:
        clock = SimClock(start, speed=1800)           # a quarter hour every half second
        publisher.run([feed], clock, until=K * STEP_S + STEP_S + 10)
        sub.wait_for(2)
    finally:
        publisher.close()
        sub.close()
    batches = [BatchPayload.model_validate_json(p) for _, p in sub.messages]
    assert [b.seq for b in batches] == [K - m.origin_k, K + 1 - m.origin_k]
    for b in batches:
        t = (b.seq + m.origin_k) * STEP_S
        assert {r.meter: r.value for r in b.readings} == {
            mm.id: mm.reading(t) for mm in m.plant(COPPER).meters.values()}


def test_single_reading_mode(mosquitto: Mosquitto) -> None:
    feed = PlantFeed(example_model(), "cq-jiangjin-chem", faults=False, mode="single")
    plan = merge_plans([feed], K - 2, K)
    sub = Subscriber(mosquitto)
    publisher = MqttPublisher(_endpoint(mosquitto), client_id="sim-test-single")
    publisher.connect()
    try:
        publisher.publish_all(plan)
        sub.wait_for(len(plan))
    finally:
        publisher.close()
        sub.close()
    assert len(sub.messages) == 12
    for topic, payload in sub.messages:
        assert topic == "plants/cq-jiangjin-chem/readings"
        SingleReadingPayload.model_validate_json(payload)
        with pytest.raises(ValidationError):
            BatchPayload.model_validate_json(payload)
