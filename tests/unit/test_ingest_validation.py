"""Validation of reading payloads: one table row per reason code, fast path == authoritative."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.payload import MAX_READINGS_PER_BATCH
from ingest.reasons import ReasonCode
from ingest.registry_cache import RegistryCache, RegistrySnapshot
from ingest.rows import decode_rows
from ingest.validation import Validated, Validator

RECEIVED = datetime(2026, 6, 1, 0, 0, tzinfo=UTC)
INSTALLED = datetime(2025, 1, 1, tzinfo=UTC)
SNAPSHOT = RegistrySnapshot.from_rows([
    ("p1", "m1", 1, INSTALLED),
    ("p1", "m2", 2, None),
    ("p2", "x1", 3, None),
    ("p3", None, None, None),          # a plant without meters
])
TS = "2026-05-31T23:45:00+08:00"
TS_UTC = datetime(2026, 5, 31, 15, 45, tzinfo=UTC)


def batch(*readings: dict[str, Any], **envelope: Any) -> bytes:
    body = {"v": 1, "gateway": "gw-1", "seq": 7, "readings": list(readings)}
    body.update(envelope)
    return json.dumps(body, allow_nan=True).encode()


def single(**fields: Any) -> bytes:
    return json.dumps(fields, allow_nan=True).encode()


def r(meter: str = "m1", ts: str = TS, value: Any = 12.5, **extra: Any) -> dict[str, Any]:
    return {"meter": meter, "ts": ts, "value": value, **extra}


def validators(**kwargs: Any) -> list[Validator]:
    cache = RegistryCache.fixed(SNAPSHOT)
    return [Validator(cache, fast=True, **kwargs), Validator(cache, fast=False, **kwargs)]


def summary(result: Validated) -> tuple[list[tuple[int, datetime, float, int]], list[str]]:
    return decode_rows(result.rows), [d.reason_code.value for d in result.dead]


future = (RECEIVED + timedelta(minutes=6)).isoformat()
near_future = (RECEIVED + timedelta(minutes=4)).isoformat()

# plant, payload, stored (meter id, value) pairs, dead-letter reason codes
CASES: list[tuple[str, str | None, bytes, list[tuple[int, float]], list[ReasonCode]]] = [
    ("valid batch", "p1", batch(r("m1"), r("m2", value=3)), [(1, 12.5), (2, 3.0)], []),
    ("valid single", "p1", single(meter="m2", ts=TS, value=1.0, quality="estimated"),
     [(2, 1.0)], []),
    ("empty batch", "p1", batch(), [], []),
    ("invalid json", "p1", b'{"meter": "m1", ', [], [ReasonCode.INVALID_JSON]),
    ("not utf-8", "p1", b"\xff\xfe{}", [], [ReasonCode.INVALID_JSON]),
    ("json array", "p1", b"[1, 2]", [], [ReasonCode.INVALID_SCHEMA]),
    ("single missing ts", "p1", single(meter="m1", value=1.0), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("single value as string", "p1", single(meter="m1", ts=TS, value="12.5"), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("single extra field", "p1", single(meter="m1", ts=TS, value=1.0, plant="p2"), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("batch without gateway", "p1", json.dumps({"seq": 1, "readings": []}).encode(), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("batch negative seq", "p1", batch(r(), seq=-1), [], [ReasonCode.INVALID_SCHEMA]),
    ("batch readings not a list", "p1", batch(readings={"a": 1}), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("wrong types in one reading", "p1", batch(r("m1"), r("m2", value=True)), [(1, 12.5)],
     [ReasonCode.INVALID_SCHEMA]),
    ("naive timestamp", "p1", batch(r("m1", ts="2026-05-31T23:45:00"), r("m2")), [(2, 12.5)],
     [ReasonCode.INVALID_SCHEMA]),
    ("unknown quality", "p1", batch(r("m1", quality="great")), [],
     [ReasonCode.INVALID_SCHEMA]),
    ("unknown plant", "nope", batch(r()), [], [ReasonCode.UNKNOWN_PLANT]),
    ("no plant (topic not a readings topic)", None, batch(r()), [],
     [ReasonCode.UNKNOWN_PLANT]),
    ("unknown meter", "p1", batch(r("m1"), r("zz")), [(1, 12.5)], [ReasonCode.UNKNOWN_METER]),
    ("unknown meter, single", "p1", single(meter="zz", ts=TS, value=1.0), [],
     [ReasonCode.UNKNOWN_METER]),
    ("meter of another plant", "p1", batch(r("x1"), r("m2")), [(2, 12.5)],
     [ReasonCode.UNKNOWN_METER]),
    ("plant without meters", "p3", batch(r("x1")), [], [ReasonCode.UNKNOWN_METER]),
    ("timestamp too far ahead", "p1", batch(r("m1", ts=future), r("m2")), [(2, 12.5)],
     [ReasonCode.FUTURE_TIMESTAMP]),
    ("timestamp ahead within tolerance", "p1", batch(r("m1", ts=near_future)), [(1, 12.5)], []),
    ("before installation", "p1", batch(r("m1", ts="2024-12-31T23:59:59Z"), r("m2")),
     [(2, 12.5)], [ReasonCode.BEFORE_INSTALLATION]),
    ("reset device clock", "p1", batch(r("m2", ts="1970-01-01T00:00:00Z"), r("m1")),
     [(1, 12.5)], [ReasonCode.BEFORE_INSTALLATION]),
    ("year 1 with an offset", "p1", single(meter="m2", ts="0001-01-01T00:00:00+01:00",
                                           value=1.0), [], [ReasonCode.BEFORE_INSTALLATION]),
    ("at installation", "p1", batch(r("m1", ts="2025-01-01T00:00:00Z")), [(1, 12.5)], []),
    ("NaN", "p1", batch(r("m1", value=float("nan")), r("m2")), [(2, 12.5)],
     [ReasonCode.NON_FINITE]),
    ("infinity", "p1", batch(r("m1", value=float("inf")), r("m2", value=float("-inf"))), [],
     [ReasonCode.NON_FINITE, ReasonCode.NON_FINITE]),
    ("overflowing number", "p1", b'{"meter":"m1","ts":"' + TS.encode() + b'","value":1e400}',
     [], [ReasonCode.NON_FINITE]),
    ("NaN single", "p1", single(meter="m1", ts=TS, value=float("nan")), [],
     [ReasonCode.NON_FINITE]),
    ("oversized bytes", "p1", batch(*[r("m2", ts=f"2026-05-01T00:{i % 60:02d}:00Z")
                                      for i in range(40)]), [], [ReasonCode.OVERSIZED]),
]


@pytest.mark.parametrize(("plant", "payload", "stored", "reasons"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_reason_codes(plant: str | None, payload: bytes, stored: list[tuple[int, float]],
                      reasons: list[ReasonCode]) -> None:
    for validator in validators(max_payload_bytes=2000):
        result = validator.validate(plant, payload, RECEIVED)
        rows, codes = summary(result)
        assert [(meter_id, value) for meter_id, _, value, _ in rows] == stored, validator.fast
        assert codes == [code.value for code in reasons], (validator.fast, result.dead)
        assert result.count == len(stored)
        for dead in result.dead:
            assert dead.payload, "a dead letter always keeps bytes"
            assert dead.reason


def test_every_reason_code_but_db_and_internal_is_covered() -> None:
    covered = {code for case in CASES for code in case[4]}
    assert covered == set(ReasonCode) - {ReasonCode.PERMANENT_DB_ERROR,
                                         ReasonCode.INTERNAL_ERROR, ReasonCode.FOREIGN_METER}


def test_a_meter_of_another_plant_reads_as_a_meter_that_does_not_exist() -> None:
    """Security review M1: the answer to a plant names no other plant and does not tell an
    existing meter code of another plant from one that exists nowhere."""
    for validator in validators():
        foreign = validator.validate("p1", batch(r("x1")), RECEIVED).dead
        nowhere = validator.validate("p1", batch(r("x9")), RECEIVED).dead
        assert [d.reason_code for d in foreign] == [ReasonCode.UNKNOWN_METER]
        assert foreign[0].reason == nowhere[0].reason.replace("x9", "x1")
        assert "p2" not in foreign[0].reason


def test_too_many_readings_is_oversized() -> None:
    payload = batch(*([r("m2")] * (MAX_READINGS_PER_BATCH + 1)))
    for validator in validators(max_payload_bytes=len(payload) + 1):
        assert summary(validator.validate("p1", payload, RECEIVED)) == ([], ["oversized"])


def test_rows_carry_meter_id_utc_time_value_and_quality_code() -> None:
    payload = batch(r("m1", quality="suspect"), r("m2", ts="2026-05-31T15:45:00.25Z"))
    for validator in validators():
        rows, codes = summary(validator.validate("p1", payload, RECEIVED))
        assert codes == []
        assert rows == [(1, TS_UTC, 12.5, 2),
                        (2, TS_UTC + timedelta(microseconds=250_000), 12.5, 0)]


def test_dead_letters_keep_whole_message_or_the_rejected_reading() -> None:
    for validator in validators():
        bad_json = b'{"readings": [}'
        [dead] = validator.validate("p1", bad_json, RECEIVED).dead
        assert dead.payload == bad_json
        result = validator.validate("p1", batch(r("m1"), r("zz", value=99.5)), RECEIVED)
        [dead] = result.dead
        assert json.loads(dead.payload) == r("zz", value=99.5)
        assert "readings[1]" in dead.reason and "gateway gw-1 seq 7" in dead.reason
        lone = single(meter="zz", ts=TS, value=1.0)
        assert validator.validate("p1", lone, RECEIVED).dead[0].payload == lone


def test_unknown_meter_triggers_a_rate_limited_registry_refresh() -> None:
    snapshots = [SNAPSHOT, RegistrySnapshot.from_rows([("p1", "m1", 1, None),
                                                      ("p1", "new", 9, None)])]
    loads: list[int] = []
    now = [0.0]

    def loader() -> RegistrySnapshot:
        loads.append(1)
        return snapshots[min(len(loads) - 1, 1)]

    cache = RegistryCache(loader, miss_interval=5.0, clock=lambda: now[0])
    cache.refresh()
    validator = Validator(cache)
    now[0] = 10.0
    rows, codes = summary(validator.validate("p1", batch(r("new")), RECEIVED))
    assert (len(loads), codes, [row[0] for row in rows]) == (2, [], [9])
    validator.validate("p1", batch(r("other")), RECEIVED)      # within 5 s: no reload
    assert len(loads) == 2
    now[0] = 20.0
    validator.validate("p1", batch(r("other")), RECEIVED)
    assert len(loads) == 3


def test_a_failing_registry_refresh_keeps_the_cached_snapshot() -> None:
    calls = [0]

    def loader() -> RegistrySnapshot:
        calls[0] += 1
        if calls[0] > 1:
            raise OSError("database down")
        return SNAPSHOT

    cache = RegistryCache(loader, miss_interval=0)
    assert cache.refresh() and not cache.refresh()
    assert cache.snapshot is SNAPSHOT


# -- the fast path is a faithful twin of core.payload ------------------------------------------
_digits = st.integers
_ts_text = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, frac, sep, off: f"{y:04d}-{mo:02d}-{d:02d}{sep}{h:02d}:"
                                                   f"{mi:02d}:{s:02d}{frac}{off}",
        _digits(0, 9999), _digits(0, 13), _digits(0, 32), _digits(0, 25), _digits(0, 60),
        _digits(0, 61), st.sampled_from(["", ".5", ".123456", ".1234567", "."]),
        st.sampled_from(["T", "t", " ", "_"]),
        st.sampled_from(["Z", "z", "+08:00", "-05:30", "+00:00", "+24:00", "+0800", "",
                         "+08:00:30", "+23:59", "-00:00"])),
    st.text(max_size=30),
    st.just(TS),
)
_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(),
                   st.just(10**400), st.text(max_size=5), st.booleans(), st.none())
_meter = st.one_of(st.sampled_from(["m1", "m2", "x1", "zz"]), st.text(max_size=10))
_quality = st.one_of(st.sampled_from(["good", "estimated", "suspect", "missing"]),
                     st.text(max_size=8))


@st.composite
def _reading(draw: st.DrawFn) -> dict[str, Any]:
    item: dict[str, Any] = {"meter": draw(_meter), "ts": draw(_ts_text), "value": draw(_value)}
    if draw(st.booleans()):
        item["quality"] = draw(_quality)
    if draw(st.integers(0, 9)) == 0:
        item.pop(draw(st.sampled_from(["meter", "ts", "value"])))
    if draw(st.integers(0, 9)) == 0:
        item["extra"] = 1
    return item


@st.composite
def _payload(draw: st.DrawFn) -> bytes:
    if draw(st.booleans()):
        return json.dumps(draw(_reading()), allow_nan=True).encode()
    envelope: dict[str, Any] = {"gateway": draw(st.sampled_from(["gw-1", "GW!"])),
                                "seq": draw(st.sampled_from([0, 5, -1]))}
    if draw(st.booleans()):
        envelope["v"] = draw(st.sampled_from([1, 2, 0]))
    if draw(st.booleans()):
        envelope["sent_at"] = draw(st.one_of(_ts_text, st.none()))
    envelope["readings"] = draw(st.lists(_reading(), max_size=4))
    return json.dumps(envelope, allow_nan=True).encode()


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_payload())
def test_fast_path_agrees_with_core_payload(payload: bytes) -> None:
    fast, slow = validators()
    a, b = fast.validate("p1", payload, RECEIVED), slow.validate("p1", payload, RECEIVED)
    assert summary(a) == summary(b)
    assert [d.payload for d in a.dead] == [d.payload for d in b.dead]
