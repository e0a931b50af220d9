"""Cycle arithmetic, structured logs and MQTT-native payload parsing (pure functions)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from collector.config import MqttMeter
from collector.mqtt_meters import parse_meter_payload
from collector.observability import OutageLog, kv
from collector.schedule import due, next_tick, nominal_ts, quality_for, too_late
from core.contract import Quality

# 2026-11-20 10:07:31 +08:00 = 02:07:31 UTC
NOW = datetime(2026, 11, 20, 2, 7, 31, tzinfo=UTC).timestamp()


def at(h: int, m: int, s: int = 0) -> int:
    return int(datetime(2026, 11, 20, h, m, s, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([900], at(2, 15)),            # quarter hours: hh:00 :15 :30 :45
        ([1800], at(2, 30)),
        ([3600], at(3, 0)),
        ([60], at(2, 8)),              # every minute
        ([900, 60], at(2, 8)),         # the earliest boundary of any interval
        ([1], at(2, 7, 32)),
    ],
)
def test_next_tick_is_the_next_boundary(intervals: list[int], expected: int) -> None:
    assert next_tick(NOW, intervals) == expected


def test_next_tick_on_a_boundary_moves_to_the_following_one() -> None:
    assert next_tick(at(2, 15), [900]) == at(2, 30)
    assert next_tick(at(2, 15) + 0.999, [900]) == at(2, 30)


def test_quarter_hours_are_local_quarter_hours_in_shanghai() -> None:
    tick = next_tick(NOW, [900])
    local = nominal_ts(tick).astimezone(__import__("zoneinfo").ZoneInfo("Asia/Shanghai"))
    assert (local.hour, local.minute, local.second) == (10, 15, 0)


def test_due_and_nominal_ts() -> None:
    assert due(at(2, 15), 900) and due(at(2, 15), 60) and not due(at(2, 15), 1800)
    ts = nominal_ts(at(2, 15))
    assert ts.tzinfo is not None and ts.utcoffset().total_seconds() == 0
    assert ts.isoformat() == "2026-11-20T02:15:00+00:00"


@pytest.mark.parametrize(
    ("delay", "threshold", "quality"),
    [(0.2, 60, Quality.GOOD), (60, 60, Quality.GOOD), (60.5, 60, Quality.SUSPECT),
     (3, 2, Quality.SUSPECT)],
)
def test_quality_follows_lateness(delay: float, threshold: float, quality: Quality) -> None:
    assert quality_for(at(2, 15), at(2, 15) + delay, threshold) is quality


def test_too_late_means_a_whole_interval_behind() -> None:
    assert not too_late(at(2, 15), at(2, 15) + 899.9, 900)
    assert too_late(at(2, 15), at(2, 30), 900)


def test_kv_quotes_what_needs_quoting() -> None:
    line = kv("device_down", device="k1", error='no "answer" here', n=3, t=0.5, skip=None)
    assert line == 'event=device_down device=k1 error="no \\"answer\\" here" n=3 t=0.500'


def test_outage_log_logs_once_down_and_once_up(caplog: pytest.LogCaptureFixture) -> None:
    clock = iter([0.0, 5.0]).__next__
    log = OutageLog("device", clock=clock)
    with caplog.at_level(logging.INFO, logger="energymon.collector"):
        assert log.failure("k1", "timeout") is True
        for _ in range(50):
            assert log.failure("k1", "timeout") is False
        assert log.is_down("k1") and log.down == ("k1",)
        assert log.success("k1") is True
        assert log.success("k1") is False
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith("event=device_down device=k1 error=timeout")
    assert "event=device_up device=k1 down_s=5.000 failures=51" in lines[1]


RECEIVED = datetime(2026, 11, 20, 2, 15, 3, 700000, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("meter", "payload", "ts", "value", "quality"),
    [
        (MqttMeter(id="cu-main", topic="t"),
         b'{"meter": "cu-main", "ts": "2026-11-20T10:15:00+08:00", "value": 12.5}',
         "2026-11-20T10:15:00+08:00", 12.5, "good"),
        (MqttMeter(id="cu-main", topic="t"),
         b'{"meter": "cu-main", "ts": "2026-11-20T10:15:00+08:00", "value": 1, '
         b'"quality": "estimated"}', "2026-11-20T10:15:00+08:00", 1.0, "estimated"),
        (MqttMeter(id="m", topic="t", format="number"), b" 1234.5\n",
         "2026-11-20T02:15:03+00:00", 1234.5, "good"),
        (MqttMeter(id="m", topic="t", format="json", value_key="data.kwh"),
         b'{"data": {"kwh": 7}}', "2026-11-20T02:15:03+00:00", 7.0, "good"),
        (MqttMeter(id="m", topic="t", format="json", value_key="v", ts_key="t"),
         b'{"v": "3.25", "t": 1795140900}', "2026-11-20T02:15:00+00:00", 3.25, "good"),
    ],
)
def test_mqtt_meter_payloads(meter: MqttMeter, payload: bytes, ts: str, value: float,
                             quality: str) -> None:
    reading = parse_meter_payload(meter, payload, RECEIVED)
    assert reading.meter == meter.id
    assert reading.ts == datetime.fromisoformat(ts)
    assert (reading.value, reading.quality) == (value, quality)


@pytest.mark.parametrize(
    ("meter", "payload", "message"),
    [
        (MqttMeter(id="cu-main", topic="t"),
         b'{"meter": "other", "ts": "2026-11-20T10:15:00+08:00", "value": 1}', "other"),
        (MqttMeter(id="cu-main", topic="t"), b'{"meter": "cu-main", "ts": "2026-11-20T10:15:00",'
         b' "value": 1}', "offset"),
        (MqttMeter(id="m", topic="t", format="number"), b"NaN", "not a number"),
        (MqttMeter(id="m", topic="t", format="number"), b"\xff", "UTF-8"),
        (MqttMeter(id="m", topic="t", format="json", value_key="v"), b"{oops", "invalid JSON"),
        (MqttMeter(id="m", topic="t", format="json", value_key="v"), b'{"w": 1}', "no key"),
        (MqttMeter(id="m", topic="t", format="json", value_key="v"), b'{"v": true}',
         "not a number"),
        (MqttMeter(id="m", topic="t", format="json", value_key="v", ts_key="t"),
         b'{"v": 1, "t": "2026-11-20 10:15"}', "offset"),
    ],
)
def test_mqtt_meter_payloads_rejected(meter: MqttMeter, payload: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_meter_payload(meter, payload, RECEIVED)
