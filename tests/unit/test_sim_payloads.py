"""MQTT plants: payloads follow core.payload (batch and single), faults show up as declared."""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from core.payload import BatchPayload, SingleReadingPayload, topic_for
from simulators.model import STEP_S
from simulators.mqtt_publisher import MALFORMED_VARIANTS, PlantFeed
from tests.sim_support import NOON, example_data, example_model, model, plant_of

COPPER = "jx-yujiang-copper"
K = int(NOON.timestamp() // STEP_S)


def _valid(payload: bytes, single: bool = False) -> bool:
    try:
        (SingleReadingPayload if single else BatchPayload).model_validate_json(payload)
    except ValidationError:
        return False
    return True


def _copper(faults: list[dict], mode: str = "batch") -> PlantFeed:
    data = example_data()
    transport = plant_of(data, COPPER)["simulation"]["transport"]
    transport["faults"] = faults
    transport["mode"] = mode
    return PlantFeed(model(data, plants=[COPPER]), COPPER)


def test_batches_validate_and_carry_every_meter_at_the_interval_end() -> None:
    m = example_model()
    feed = PlantFeed(m, COPPER, faults=False)
    msgs = feed.messages(K - 96, K)
    assert len(msgs) == 96
    for i, msg in enumerate(msgs):
        assert msg.topic == topic_for(COPPER) == f"plants/{COPPER}/readings"
        batch = BatchPayload.model_validate_json(msg.payload)
        assert batch.gateway == f"{COPPER}-gw" and batch.seq == msgs[0].seq + i
        t = (K - 96 + i) * STEP_S
        assert {r.meter for r in batch.readings} == {"main-elec", "main-gas"}
        for r in batch.readings:
            assert r.ts.timestamp() == t and r.ts.utcoffset().total_seconds() == 8 * 3600
            assert r.value == m.meter(COPPER, r.meter).reading(t)    # exactly
        assert batch.sent_at is not None and batch.sent_at.timestamp() > t


def test_single_reading_payloads_validate() -> None:
    feed = _copper([], mode="single")
    msgs = feed.messages(K - 4, K)
    assert len(msgs) == 8
    for msg in msgs:
        reading = SingleReadingPayload.model_validate_json(msg.payload)
        assert reading.meter in ("main-elec", "main-gas") and msg.readings == 1
        assert not _valid(msg.payload)            # a single reading is not a batch


def test_every_malformed_variant_fails_the_ingest_schema() -> None:
    for mode in ("batch", "single"):
        feed = _copper([{"kind": "malformed"}], mode=mode)
        msgs = feed.messages(K - 96 * 3, K)
        seen = set()
        for msg in msgs:
            variant = next(f for f in msg.faults if f.startswith("malformed:"))
            seen.add(variant.split(":")[1])
            assert not _valid(msg.payload) and not _valid(msg.payload, single=True), variant
        assert seen == set(MALFORMED_VARIANTS)


def test_duplicates_repeat_the_same_bytes() -> None:
    msgs = _copper([{"kind": "duplicate", "probability": 0.5}]).messages(K - 96, K)
    dups = [m for m in msgs if "duplicate" in m.faults]
    assert 0 < len(dups) < len(msgs)
    by_seq: dict[int, list[bytes]] = {}
    for m in msgs:
        by_seq.setdefault(m.seq, []).append(m.payload)
    twice = [s for s, p in by_seq.items() if len(p) == 2]
    assert twice and all(by_seq[s][0] == by_seq[s][1] for s in twice)
    assert len(msgs) == 96 + len(twice)


def test_out_of_order_and_late_messages() -> None:
    feed = _copper([{"kind": "out_of_order", "every": "1d", "duration": "1h"}])
    msgs = sorted(feed.messages(K - 96, K))          # publishing order
    seqs = [m.seq for m in msgs]
    assert seqs != sorted(seqs)
    swapped = {m.seq for m in msgs if "out_of_order" in m.faults}
    assert len(swapped) == 4                                  # the hour's four messages
    for seq in swapped:
        if seq + 1 not in swapped:
            assert seqs.index(seq) > seqs.index(seq + 1)      # after the next one
    late = _copper([{"kind": "late", "delay": "2h", "probability": 0.1}]).messages(K - 96, K)
    for m in late:
        expected = m.interval_end + (7200 if "late" in m.faults else 0)
        assert m.due == pytest.approx(expected + 2.0)
    assert any("late" in m.faults for m in late)


def test_clock_skew_shifts_the_timestamps() -> None:
    feed = _copper([{"kind": "clock_skew", "skew": -300}])
    for msg in feed.messages(K - 4, K):
        batch = BatchPayload.model_validate_json(msg.payload)
        assert all(r.ts.timestamp() == msg.interval_end - 300 for r in batch.readings)
        assert json.loads(msg.payload)["readings"][0]["value"] == pytest.approx(
            example_model().meter(COPPER, "main-elec").reading(msg.interval_end))


def test_modbus_plants_can_be_published_as_gateway_batches() -> None:
    feed = PlantFeed(example_model(), "gx-liuzhou-steel", mode="batch")
    (msg,) = feed.messages(K, K + 1)
    batch = BatchPayload.model_validate_json(msg.payload)
    assert len(batch.readings) == 10 and batch.gateway == "gx-liuzhou-steel-gw"
    assert datetime.fromisoformat(json.loads(msg.payload)["sent_at"]).tzinfo is not None
