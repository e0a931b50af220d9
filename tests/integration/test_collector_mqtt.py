"""Collector end to end: simulated meters -> `energymon collect` (a child process) -> Mosquitto.

What is checked is the spool ledger against what a subscriber received: the spool hands out
gateway sequence numbers 0, 1, 2, ... in one transaction with the readings, so "no reading
lost" means every ``seq`` below the final ``next_seq`` that is no longer in the spool reached
the broker. Duplicates on the wire are allowed (QoS 1); loss is not.

These collectors run with ``acknowledgement: broker`` (no ingest here to confirm batches); the
end-to-end acknowledgement, with ingest and PostgreSQL, is tested in ``tests/faults``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.devservices.broker import Mosquitto
from core.payload import BatchPayload
from tests.integration.collector_support import (
    CollectorProcess,
    Subscriber,
    gateway_yaml,
    spool_state,
    wait_for,
)
from tests.support.sim_gateways import SimMeter, SimulatedGateways

pytestmark = pytest.mark.timeout(240)

METERS = ["k1-elec", "k1-coal", "k1-clinker"]


@pytest.fixture
def plant(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Three meters behind a simulated Modbus TCP gateway (frozen clock: their registers hold
    still), and a gateway file polling them every second."""
    servers = SimulatedGateways()
    server = servers.start([SimMeter(1, "chint_dtsu666"), SimMeter(2, "generic_flow_totaliser"),
                            SimMeter(3, "generic_belt_scale")])
    units = [server.served(unit_id) for unit_id in (1, 2, 3)]  # .values: what must arrive
    fields = ["energy_import", "flow_total", "production_total"]
    devices = [{"id": meter, "link": "lan", "unit_id": u.unit_id, "model": u.model,
                "interval_s": 1, "meters": [{"id": meter, "field": f}]}
               for meter, u, f in zip(METERS, units, fields, strict=True)]
    spool = tmp_path / "spool.sqlite"
    config = gateway_yaml(tmp_path / "gateway.yaml", spool=spool, links=[
        {"name": "lan", "transport": "tcp", "host": "127.0.0.1", "port": server.port,
         "timeout_s": 0.5}], devices=devices)
    yield {"config": config, "spool": spool, "units": units, "fields": fields,
           "server": server, "tmp": tmp_path}
    servers.close()


def ledger_check(messages: list[dict[str, Any]], spool: Path) -> dict[str, list[str]]:
    """Assert no loss; return each meter's timestamps in order of first arrival."""
    batches = [BatchPayload.model_validate(m) for m in messages]
    next_seq, pending = spool_state(spool)
    assert pending == 0, "the spool should have drained"
    received = {b.seq for b in batches}
    missing = set(range(next_seq)) - received
    assert not missing, f"lost seqs: {sorted(missing)[:20]} of {next_seq}"
    assert received <= set(range(next_seq))
    first_seen: dict[tuple[str, str], int] = {}
    order: dict[str, list[str]] = {m: [] for m in METERS}
    for b in batches:
        assert b.gateway == "gw-test"
        assert len({r.ts for r in b.readings}) == 1  # one message per cycle
        for r in b.readings:
            key = (r.meter, r.ts.isoformat())
            if key not in first_seen:
                first_seen[key] = b.seq
                order[r.meter].append(r.ts.isoformat())
    return order


def assert_values(messages: list[dict[str, Any]], plant: dict[str, Any]) -> None:
    expected = {m: float(u.values[f]) for m, u, f in zip(METERS, plant["units"],
                                                          plant["fields"], strict=True)}
    for msg in messages:
        for r in msg["readings"]:
            assert r["value"] == pytest.approx(expected[r["meter"]], rel=1e-6)


def test_broker_down_30s_then_back_every_reading_arrives_in_order(
        plant: dict[str, Any], tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    sub = Subscriber(broker.port)
    proc = CollectorProcess(plant["config"], mqtt_url=broker.url, data_dir=tmp_path,
                            log=tmp_path / "collector.log")
    try:
        assert wait_for(lambda: sub.client.is_connected(), 10)
        proc.start()
        assert wait_for(lambda: len(sub.snapshot()) >= 3, 20), (tmp_path / "collector.log") \
            .read_text()[-3000:]
        broker.stop()  # graceful: the broker keeps the subscriber's session on disk
        time.sleep(30)
        backlog = spool_state(plant["spool"])[1]
        assert backlog >= 25  # one cycle a second kept polling and spooling
        broker.start()
        assert wait_for(lambda: spool_state(plant["spool"])[1] <= 1, 60)
        time.sleep(2)
        assert proc.terminate() == 0
        assert wait_for(lambda: len({m["seq"] for m in sub.snapshot()})
                        >= spool_state(plant["spool"])[0], 20)
    finally:
        proc.ensure_stopped()
        sub.close()
        broker.stop()
    messages = sub.snapshot()
    order = ledger_check(messages, plant["spool"])
    for meter in METERS:
        assert order[meter] == sorted(order[meter]), f"{meter} out of order"
        assert len(order[meter]) >= 35
    assert_values(messages, plant)
    log = (tmp_path / "collector.log").read_text()
    assert log.count("event=broker_down") == 1 and log.count("event=broker_up") == 1


def test_sigkill_mid_run_and_restart_loses_nothing(plant: dict[str, Any], tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    sub = Subscriber(broker.port)
    log = tmp_path / "collector.log"
    proc = CollectorProcess(plant["config"], mqtt_url=broker.url, data_dir=tmp_path, log=log)
    try:
        assert wait_for(lambda: sub.client.is_connected(), 10)
        proc.start()
        assert wait_for(lambda: len(sub.snapshot()) >= 2, 20), log.read_text()[-3000:]
        proc.kill()  # 1: crash while connected and publishing
        proc.start()
        assert wait_for(lambda: spool_state(plant["spool"])[0] >= 8, 20)
        broker.stop()  # 2: build a backlog, then crash while it drains
        assert wait_for(lambda: spool_state(plant["spool"])[1] >= 5, 20)
        broker.start()
        time.sleep(1.5)
        proc.kill()
        killed_at = spool_state(plant["spool"])
        proc.start()
        assert wait_for(lambda: spool_state(plant["spool"])[0] >= killed_at[0] + 3, 20)
        proc.kill()  # 3: and once more right after a restart
        proc.start()
        assert wait_for(lambda: spool_state(plant["spool"])[1] <= 1, 60)
        time.sleep(1.5)
        assert proc.terminate() == 0
        assert wait_for(lambda: len({m["seq"] for m in sub.snapshot()})
                        >= spool_state(plant["spool"])[0], 20)
    finally:
        proc.ensure_stopped()
        sub.close()
        broker.stop()
    messages = sub.snapshot()
    ledger_check(messages, plant["spool"])
    assert_values(messages, plant)
    keys = [(r["meter"], r["ts"]) for m in messages for r in m["readings"]]
    assert len(set(keys)) == 3 * spool_state(plant["spool"])[0]  # every (meter, ts) arrived


def test_mqtt_native_meters_are_forwarded_through_the_spool(tmp_path: Path) -> None:
    """A meter publishing on the plant's local broker reaches the platform broker as a batch."""
    import json

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    local = Mosquitto(tmp_path / "local")
    platform = Mosquitto(tmp_path / "platform")
    local.start()
    platform.start()
    spool = tmp_path / "spool.sqlite"
    config = tmp_path / "gateway.yaml"
    config.write_text(json.dumps({"gateway": {
        "id": "gw-test", "plant": "cu", "spool": {"path": str(spool)},
        "publish": {"reconnect_min_s": 1, "reconnect_max_s": 2, "acknowledgement": "broker"},
        "mqtt_meters": {"url": local.url, "flush_s": 0.2, "meters": [
            {"id": "main-elec", "topic": "site/main/kwh", "format": "number"},
            {"id": "main-gas", "topic": "site/gas", "format": "reading"}]}}}))
    sub = Subscriber(platform.port)
    proc = CollectorProcess(config, mqtt_url=platform.url, data_dir=tmp_path,
                            log=tmp_path / "collector.log")
    meter = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="meter")
    try:
        assert wait_for(lambda: sub.client.is_connected(), 10)
        proc.start()
        meter.connect("127.0.0.1", local.port)
        meter.loop_start()
        time.sleep(2)  # the collector subscribes
        meter.publish("site/main/kwh", "1234.5", qos=1).wait_for_publish(5)
        meter.publish("site/gas", json.dumps({"meter": "main-gas", "value": 77.25,
                                              "ts": "2026-11-20T10:15:00+08:00"}),
                      qos=1).wait_for_publish(5)
        meter.publish("site/gas", "garbage", qos=1).wait_for_publish(5)
        assert wait_for(lambda: sum(len(m["readings"]) for m in sub.snapshot()) >= 2, 15), \
            (tmp_path / "collector.log").read_text()[-3000:]
        assert proc.terminate() == 0
    finally:
        meter.loop_stop()
        proc.ensure_stopped()
        sub.close()
        local.stop()
        platform.stop()
    readings = {r["meter"]: r for m in sub.snapshot() for r in m["readings"]}
    assert readings["main-elec"]["value"] == 1234.5
    assert readings["main-gas"] == {"meter": "main-gas", "ts": "2026-11-20T10:15:00+08:00",
                                    "value": 77.25, "quality": "good"}
    assert set(sub.topics) == {"plants/cu/readings"}
    assert spool_state(spool)[1] == 0
    log = (tmp_path / "collector.log").read_text()
    assert "event=mqtt_meter_down mqtt_meter=main-gas" in log
