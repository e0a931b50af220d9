"""MQTT-native meters: subscribe on the plant's local broker, forward through the same spool.

Each configured meter has its own topic. Messages are parsed in the asyncio loop, buffered for
``flush_s``, committed to the spool as one batch, and only then acknowledged to the local
broker (paho ``manual_ack``). The session is persistent (MQTT 5 clean start off, session
expiry one week), so a message received but not yet spooled when the collector dies is
delivered again when it comes back.

Payload formats (per meter):

- ``reading``: energymon's single-reading JSON ``{"meter", "ts", "value"[, "quality"]}``
  (:class:`core.payload.SingleReadingPayload`); ``meter`` must be the configured id;
- ``number``: the payload is the value, e.g. ``1234.5``; timestamped on receipt (UTC, s);
- ``json``: an object; the value at ``value_key`` (dotted path) and, when ``ts_key`` is set,
  an ISO 8601 time with offset or epoch seconds at ``ts_key``, otherwise the receipt time.

A payload that cannot be parsed is counted and logged (once per meter until it recovers),
acknowledged and not forwarded: a poison message must not block the meter's topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from collector.config import MqttMeter, MqttMeters
from collector.observability import CollectorMetrics, OutageLog, to_loop
from collector.spool import Spool, SpoolReading
from core.contract import Quality
from core.mqtt import mqtt_client
from core.payload import SingleReadingPayload

__all__ = ["MqttMeterSource", "parse_meter_payload"]

SESSION_EXPIRY_S = 7 * 86_400


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            raise ValueError(f"no key {path!r} in the payload")
        obj = obj[part]
    return obj


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"value {value!r} is not a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("value must be finite")
    return number


def _timestamp(value: Any) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        ts = datetime.fromisoformat(value)
        if ts.tzinfo is None or ts.utcoffset() is None:
            raise ValueError("timestamp must carry a UTC offset")
        return ts
    raise ValueError(f"timestamp {value!r} is neither ISO 8601 nor epoch seconds")


def parse_meter_payload(meter: MqttMeter, payload: bytes, received_at: float) -> SpoolReading:
    """One reading from one message (:class:`ValueError` when it cannot be used)."""
    now = datetime.fromtimestamp(math.floor(received_at), UTC)
    if meter.format == "reading":
        try:
            msg = SingleReadingPayload.model_validate_json(payload)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"{where}: {first['msg']}".lstrip(": ")) from None
        if msg.meter != meter.id:
            raise ValueError(f"payload names meter {msg.meter!r}, topic belongs to {meter.id!r}")
        return SpoolReading(meter.id, msg.ts, msg.value, msg.quality.value)
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError("payload is not UTF-8") from None
    if meter.format == "number":
        try:
            return SpoolReading(meter.id, now, _number(text), Quality.GOOD.value)
        except ValueError:
            raise ValueError(f"payload {text[:40]!r} is not a number") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc.msg}") from None
    value = _number(_dig(obj, meter.value_key or ""))
    ts = _timestamp(_dig(obj, meter.ts_key)) if meter.ts_key else now
    return SpoolReading(meter.id, ts, value, Quality.GOOD.value)


class MqttMeterSource:
    """Subscribes to the MQTT-native meters and spools their readings."""

    def __init__(
        self,
        config: MqttMeters,
        spool: Spool,
        metrics: CollectorMetrics,
        *,
        client_id: str,
        on_spooled: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.spool = spool
        self.metrics = metrics
        self.client_id = config.client_id or client_id
        self.on_spooled = on_spooled
        self._by_topic = {m.topic: m for m in config.meters}
        self._buffer: list[tuple[SpoolReading | None, int, int]] = []  # (reading, mid, qos)
        self._meters_log = OutageLog("mqtt_meter")
        self._broker_log = OutageLog("local_broker")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None

    # paho thread -> asyncio loop (to_loop)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            to_loop(self._loop, self._broker_log.failure, self.config.url, str(rc))
            return
        client.subscribe([(topic, 1) for topic in self._by_topic])
        to_loop(self._loop, self._broker_log.success, self.config.url)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        to_loop(self._loop, self._broker_log.failure, self.config.url, f"disconnected: {rc}")

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        to_loop(self._loop, self._received, msg.topic, bytes(msg.payload), msg.mid, msg.qos,
                time.time())

    def _received(self, topic: str, payload: bytes, mid: int, qos: int, at: float) -> None:
        meter = self._by_topic.get(topic)
        if meter is None:
            self._buffer.append((None, mid, qos))
            return
        try:
            reading = parse_meter_payload(meter, payload, at)
        except ValueError as exc:
            self.metrics.mqtt_in.labels("rejected").inc()
            self._meters_log.failure(meter.id, str(exc), topic=topic)
            self._buffer.append((None, mid, qos))
            return
        self.metrics.mqtt_in.labels("ok").inc()
        self._meters_log.success(meter.id)
        self._buffer.append((reading, mid, qos))

    def flush(self) -> int:
        """Spool the buffered readings, then acknowledge their messages; returns readings."""
        if not self._buffer:
            return 0
        items, self._buffer = self._buffer, []
        readings = [r for r, _, _ in items if r is not None]
        if readings:
            self.spool.add(readings)
            for r in readings:
                self.metrics.readings.labels("mqtt", r.quality).inc()
            self.on_spooled()
        if self._client is not None:
            for _, mid, qos in items:
                self._client.ack(mid, qos)
        return len(readings)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        endpoint = self.config.endpoint
        client = mqtt_client(endpoint, self.client_id, manual_ack=True,
                             reconnect_min=1, reconnect_max=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        if endpoint.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            client.connect_async(endpoint.host, endpoint.port, keepalive=30, clean_start=False,
                                 properties=props)
        else:  # MQTT 3.1.1: the persistent session comes from clean_session=False
            client.connect_async(endpoint.host, endpoint.port, keepalive=30)
        client.loop_start()
        self._client = client

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.flush_s)
            self.flush()

    def stop(self) -> None:
        self.flush()
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._loop = None
