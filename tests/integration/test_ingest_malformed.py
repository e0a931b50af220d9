"""A stream mixing valid messages with 10 000 generated malformed ones: every valid reading is
stored, every bad payload (or bad reading) is dead-lettered with its reason, nothing crashes."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devservices.broker import Mosquitto
from core.payload import MAX_PAYLOAD_BYTES, topic_for
from ingest.reasons import ReasonCode
from tests.integration.ingest_support import (
    BASE,
    CEMENT,
    CEMENT_METERS,
    FAST,
    GLASS,
    Publisher,
    Worker,
    wait_until,
)

MALFORMED = 10_000
INSTALLED = BASE - timedelta(days=365)
FUTURE = datetime.now(UTC) + timedelta(days=2)

_code = st.from_regex(r"[a-z][a-z0-9-]{1,12}", fullmatch=True).map(lambda c: "zz-" + c)
_wrong_type = st.one_of(st.text(max_size=8), st.booleans(), st.none(),
                        st.lists(st.integers(), max_size=2), st.dictionaries(
                            st.text(max_size=3), st.integers(), max_size=2))
_non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
_item_faults = ["wrong_type", "non_finite", "unknown", "foreign", "future", "before", "extra",
                "missing_field", "bad_quality", "naive_ts"]

_whole_message = st.one_of(
    st.tuples(st.just("truncated"), st.floats(0.01, 0.99)),
    st.tuples(st.just("garbage"), st.binary(max_size=64)),
    st.tuples(st.just("not_object"), st.one_of(
        st.lists(st.integers(), max_size=3), st.integers(), st.text(max_size=10), st.none())),
    st.tuples(st.just("single_wrong_type"), _wrong_type),
    st.tuples(st.just("unknown_plant"), _code),
    st.tuples(st.just("bad_envelope"), st.sampled_from(["gateway", "seq", "v", "extra",
                                                          "epoch", "held_from", "dropped"])),
)
_bad_reading = st.tuples(st.just("bad_item"), st.sampled_from(_item_faults), _wrong_type,
                         _non_finite, _code, st.integers(0, 4), st.integers(0, 3))
# half whole-message failures, half one bad reading among valid ones
SPECS = st.booleans().flatmap(lambda one_reading: _bad_reading if one_reading else _whole_message)


@pytest.fixture
def worker(db: str, mosquitto: Mosquitto) -> Iterator[Worker]:
    # every dead letter is to be stored and checked: no per-minute quota in the way (the
    # quota itself is tested in test_dead_letter_bounds.py)
    config = replace(FAST, dead_letters=replace(FAST.dead_letters,
                                                per_plant_per_minute=10 * MALFORMED))
    w = Worker(db, mosquitto, "test-malformed", config=config)
    yield w
    w.stop()


class Stream:
    """Builds messages with the readings and dead letters each one must produce."""

    def __init__(self) -> None:
        self.interval = itertools.count(1)
        self.seq = itertools.count(1)
        self.messages: list[tuple[str, bytes]] = []
        self.valid: dict[tuple[str, datetime], float] = {}
        self.dead: Counter[str] = Counter()
        self.malformed = 0

    def _reading(self, meter: str) -> dict[str, Any]:
        ts = BASE - timedelta(minutes=15 * next(self.interval))
        value = round(ts.timestamp() / 1000.0, 3)
        self.valid[(meter, ts)] = value
        return {"meter": meter, "ts": ts.isoformat(), "value": value}

    def _batch(self, readings: list[Any], **envelope: Any) -> bytes:
        body = {"v": 1, "gateway": "gw-h", "seq": next(self.seq), "readings": readings}
        body.update(envelope)
        return json.dumps(body, allow_nan=True).encode()

    def valid_message(self, n: int = 3) -> None:
        meters = CEMENT_METERS[:n]
        self.messages.append((topic_for(CEMENT), self._batch([self._reading(m) for m in meters])))

    def add(self, spec: tuple[Any, ...]) -> None:
        kind = spec[0]
        topic, reason = topic_for(CEMENT), None
        if kind == "truncated":
            whole = self._batch([{"meter": "k1-elec", "ts": BASE.isoformat(), "value": 1.0}])
            payload = whole[: max(1, min(len(whole) - 1, int(len(whole) * spec[1])))]
            reason = ReasonCode.INVALID_JSON
        elif kind == "garbage":
            payload, reason = b"\xff" + spec[1], ReasonCode.INVALID_JSON
        elif kind == "not_object":
            payload, reason = json.dumps(spec[1]).encode(), ReasonCode.INVALID_SCHEMA
        elif kind == "single_wrong_type":
            payload = json.dumps({"meter": "k1-elec", "ts": BASE.isoformat(),
                                  "value": spec[1]}).encode()
            reason = ReasonCode.INVALID_SCHEMA
        elif kind == "unknown_plant":
            topic, reason = topic_for(spec[1]), ReasonCode.UNKNOWN_PLANT
            payload = self._batch([{"meter": "k1-elec", "ts": BASE.isoformat(), "value": 1.0}])
        elif kind == "bad_envelope":
            field = spec[1]
            envelope: dict[str, Any] = {
                "gateway": {"gateway": "GW 1"}, "seq": {"seq": -5}, "v": {"v": 2},
                "extra": {"plant": CEMENT}, "epoch": {"epoch": "one"},
                "held_from": {"held_from": -1}, "dropped": {"dropped": 1.5}}[field]
            payload = self._batch([{"meter": "k1-elec", "ts": BASE.isoformat(), "value": 1.0}],
                                  **envelope)
            reason = ReasonCode.INVALID_SCHEMA
        else:  # one bad reading among valid ones
            _, fault, wrong, non_finite, code, position, n_valid = spec
            good = [self._reading(m) for m in CEMENT_METERS[:n_valid]]
            ts = (BASE - timedelta(minutes=15 * next(self.interval))).isoformat()
            item: dict[str, Any] = {"meter": "k2-coal", "ts": ts, "value": 5.0}
            reason = ReasonCode.INVALID_SCHEMA
            if fault == "wrong_type":
                item["value"] = wrong
            elif fault == "non_finite":
                item["value"], reason = non_finite, ReasonCode.NON_FINITE
            elif fault == "unknown":
                item["meter"], reason = code, ReasonCode.UNKNOWN_METER
            elif fault == "foreign":
                item["meter"], reason = "f1-gas", ReasonCode.UNKNOWN_METER
            elif fault == "future":
                item["ts"], reason = FUTURE.isoformat(), ReasonCode.FUTURE_TIMESTAMP
            elif fault == "before":
                item["meter"], reason = "k2-elec", ReasonCode.BEFORE_INSTALLATION
                item["ts"] = (INSTALLED - timedelta(hours=1)).isoformat()
            elif fault == "extra":
                item["plant"] = GLASS
            elif fault == "missing_field":
                del item["value"]
            elif fault == "bad_quality":
                item["quality"] = "excellent"
            elif fault == "naive_ts":
                item["ts"] = ts[:19]
            good.insert(min(position, len(good)), item)
            payload = self._batch(good)
        self.messages.append((topic, payload))
        self.dead[reason.value] += 1
        self.malformed += 1


def test_valid_and_malformed_payloads_mixed(db: str, worker: Worker,
                                            publisher: Publisher) -> None:
    with psycopg.connect(db) as conn:
        conn.execute("UPDATE meters SET installed_at = %s WHERE code = 'k2-elec'", (INSTALLED,))
    assert worker.pipeline.registry.refresh()
    stream = Stream()

    @settings(max_examples=60, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(SPECS, min_size=20, max_size=20))
    def generate(specs: list[tuple[Any, ...]]) -> None:
        for spec in specs:
            if stream.malformed < MALFORMED:
                stream.add(spec)
                stream.valid_message(1 + stream.malformed % 3)

    while stream.malformed < MALFORMED:
        generate()
    # two oversized messages (kept out of the generator: they are 1 MiB each)
    for _ in range(2):
        padded = b'{"gateway": "gw-h", "seq": 1, "readings": []' + b" " * MAX_PAYLOAD_BYTES + b"}"
        stream.messages.append((topic_for(CEMENT), padded))
        stream.dead[ReasonCode.OVERSIZED.value] += 1

    publisher.publish_many(stream.messages)
    total = len(stream.messages)
    wait_until(lambda: worker.mqtt.received == total, timeout=180, what=f"{total} deliveries")
    assert worker.pipeline.flush(20)
    assert worker.pipeline.running, "the writer thread died"

    with psycopg.connect(db) as conn:
        stored = {(code, ts): value for code, ts, value in conn.execute(
            "SELECT m.code, r.ts, r.value FROM readings r JOIN meters m ON m.id = r.meter_id")}
        dead = Counter({code: n for code, n in conn.execute(
            "SELECT reason_code, count(*) FROM dead_letters GROUP BY 1")})
        empty = conn.execute("SELECT count(*) FROM dead_letters WHERE octet_length(payload) = 0 "
                             "OR reason = ''").fetchone()
    assert stored == stream.valid, "every valid reading stored, nothing else"
    assert dead == stream.dead, "every bad payload or reading dead-lettered with its reason"
    assert sum(dead.values()) == MALFORMED + 2
    assert empty == (0,)
    assert len(stream.dead) >= 8, f"the generator covered too few reasons: {stream.dead}"
    print(f"{total} messages, {len(stream.valid)} valid readings, dead letters: {dict(dead)}")
