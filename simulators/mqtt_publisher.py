"""MQTT plants: plants that push their own readings in the platform's payload format.

Topic ``plants/{plant}/readings`` (:func:`core.payload.topic_for`), JSON, QoS from the plant's
transport (default 1). ``mode: batch`` publishes one :class:`core.payload.BatchPayload` per
plant per 15-minute interval (every meter's reading at the interval end, ``seq`` = interval
number since the simulation epoch, so it rises by one per message); ``mode: single`` publishes
one :class:`core.payload.SingleReadingPayload` per meter reading.

Declared transport faults (per message, deterministic by hash of plant and interval):

- ``duplicate``: the same bytes are published twice (QoS 1 redelivery, a gateway resend);
- ``out_of_order``: the message is held back and published after the next interval's message;
- ``late``: the message is published ``delay`` simulated seconds after its interval;
- ``clock_skew``: reading timestamps (and ``sent_at``) are off by ``skew`` seconds;
- ``malformed``: the payload is broken in one of several ways (truncated JSON, NaN value, value
  as text, timestamp without offset, unknown key, not JSON at all) and fails the ingest schema.

Message plans are pure (:meth:`PlantFeed.messages`); :class:`MqttPublisher` sends them with
paho-mqtt (``CallbackAPIVersion.VERSION2``), either paced by a :class:`SimClock` or as fast as
the broker takes them (backfill, perf).
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

import numpy as np
import paho.mqtt.client as mqtt

from core.mqtt import mqtt_client
from core.payload import PAYLOAD_VERSION, topic_for
from core.settings import MqttEndpoint
from fleet import (
    ClockSkewFault,
    DuplicateFault,
    LateFault,
    MalformedFault,
    MqttFault,
    MqttTransport,
    OutOfOrderFault,
)
from simulators import _hash
from simulators.clock import SimClock
from simulators.model import STEP_S, FleetModel, MeterModel, PlantModel, in_window

log = logging.getLogger("energymon.simulators.mqtt")

MALFORMED_VARIANTS = ("truncated", "nan_value", "text_value", "naive_ts", "unknown_key",
                      "not_json")
_SEND_LAG_S = 2.0      # a gateway publishes a couple of seconds after the quarter hour


@dataclass(order=True)
class OutMessage:
    """One message to publish, at simulated instant ``due``."""

    due: float
    order: int
    topic: str = field(compare=False)
    payload: bytes = field(compare=False)
    qos: int = field(compare=False, default=1)
    interval_end: float = field(compare=False, default=0.0)
    seq: int | None = field(compare=False, default=None)
    readings: int = field(compare=False, default=0)
    faults: tuple[str, ...] = field(compare=False, default=())


def _fmt_ts(t: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(t, tz).isoformat()


def _reading_json(meter: str, ts: str, value: float) -> str:
    # meter ids match CODE_PATTERN ([a-z0-9._-]) and ts is ISO 8601: nothing to escape;
    # repr() of a finite float is the shortest exact decimal, as json.dumps writes it.
    return f'{{"meter":"{meter}","ts":"{ts}","value":{value!r}}}'


class PlantFeed:
    """The messages an MQTT-pushing plant sends for a range of intervals (a pure plan)."""

    def __init__(self, model: FleetModel, plant_id: str, *, faults: bool = True,
                 mode: str | None = None) -> None:
        self.model = model
        self.pm: PlantModel = model.plant(plant_id)
        transport = self.pm.transport
        if not isinstance(transport, MqttTransport):
            transport = MqttTransport(type="mqtt")      # a Modbus plant published directly
        self.transport = transport
        self.mode = mode or transport.mode
        self.gateway = transport.gateway or f"{plant_id}-gw"
        self.topic = topic_for(plant_id)
        self.faults = list(transport.faults) if faults else []
        self.meters: list[MeterModel] = list(self.pm.meters.values())
        assert self.pm.plant.simulation is not None
        self.key = _hash.key64(model.seed, self.pm.plant.simulation.seed, plant_id, "mqtt")
        self._order = 0

    def _hit(self, fault: MqttFault, stream: int, index: int, t: float) -> bool:
        if not in_window(fault, t, self.model.epoch_s):
            return False
        p = fault.probability
        return p >= 1 or _hash.uniform1(self.key, stream, index) < p

    def _message_faults(self, index: int, t: float) -> dict[str, object]:
        active: dict[str, object] = {}
        for i, fault in enumerate(self.faults):
            if self._hit(fault, 200 + i, index, t):
                active.setdefault(fault.kind, fault)
        return active

    def _next_order(self) -> int:
        self._order += 1
        return self._order

    def _malform(self, payload: str, index: int, ts: str) -> tuple[bytes, str]:
        variant = MALFORMED_VARIANTS[int(_hash.uniform1(self.key, 300, index)
                                         * len(MALFORMED_VARIANTS))]
        if variant == "truncated":
            return payload[: max(1, len(payload) // 2)].encode(), variant
        if variant == "nan_value":
            return payload.replace('"value":', '"value":NaN,"x":', 1).encode(), variant
        if variant == "text_value":
            head, _, tail = payload.partition('"value":')
            rest = tail.split("}", 1)
            return (head + '"value":"n/a"}' + (rest[1] if len(rest) > 1 else "")).encode(), \
                variant
        if variant == "naive_ts":
            return payload.replace(ts, ts[:19], 1).encode(), variant
        if variant == "unknown_key":
            return ('{"plant":"someone-else",' + payload[1:]).encode(), variant
        return b"\x00\xff not json \xfe", variant

    def messages(self, k0: int, k1: int) -> list[OutMessage]:
        """Messages for the readings at interval ends k0·900 .. (k1−1)·900 (seconds UTC)."""
        n = k1 - k0
        if n <= 0:
            return []
        values = {m.id: m.readings(k0, k1) for m in self.meters}
        due_meters = {m.id: max(1, m.meter.interval_s // STEP_S) for m in self.meters}
        out: list[OutMessage] = []
        tz = self.pm.tz
        qos = self.transport.qos
        origin = self.model.origin_k
        for i in range(n):
            k = k0 + i
            t = k * STEP_S
            meters = [m for m in self.meters if (k - origin) % due_meters[m.id] == 0]
            if not meters:
                continue
            if self.mode == "batch":
                out.extend(self._batch(k, t, meters, values, i, tz, qos))
            else:
                for j, m in enumerate(meters):
                    out.extend(self._single(k, t, m, float(values[m.id][i]), j, tz, qos))
        return out

    def _timing(self, msg: OutMessage, active: dict[str, object]) -> list[OutMessage]:
        late = active.get("late")
        if isinstance(late, LateFault):
            msg.due += late.delay
        elif isinstance(active.get("out_of_order"), OutOfOrderFault):
            msg.due += STEP_S + 1.0             # after the next interval's message
        msgs = [msg]
        if isinstance(active.get("duplicate"), DuplicateFault):
            msgs.append(OutMessage(msg.due + 0.5, self._next_order(), msg.topic, msg.payload,
                                   msg.qos, msg.interval_end, msg.seq, msg.readings, msg.faults))
        return msgs

    def _batch(self, k: int, t: float, meters: list[MeterModel], values: dict[str, np.ndarray],
               i: int, tz: tzinfo, qos: int) -> list[OutMessage]:
        index = k - self.model.origin_k
        active = self._message_faults(index, t)
        skew = active.get("clock_skew")
        shift = skew.skew if isinstance(skew, ClockSkewFault) else 0.0
        ts = _fmt_ts(t + shift, tz)
        sent = _fmt_ts(t + _SEND_LAG_S + shift, tz)
        body = ",".join(_reading_json(m.id, ts, float(values[m.id][i])) for m in meters)
        payload = (f'{{"v":{PAYLOAD_VERSION},"gateway":"{self.gateway}","seq":{index},'
                   f'"sent_at":"{sent}","readings":[{body}]}}')
        faults = tuple(sorted(active))
        if isinstance(active.get("malformed"), MalformedFault):
            data, variant = self._malform(payload, index, ts)
            faults = tuple(sorted({*faults, f"malformed:{variant}"} - {"malformed"}))
        else:
            data = payload.encode()
        msg = OutMessage(t + _SEND_LAG_S, self._next_order(), self.topic, data, qos, t, index,
                         len(meters), faults)
        return self._timing(msg, active)

    def _single(self, k: int, t: float, m: MeterModel, value: float, j: int, tz: tzinfo,
                qos: int) -> list[OutMessage]:
        index = (k - self.model.origin_k) * 1024 + j
        active = self._message_faults(index, t)
        skew = active.get("clock_skew")
        shift = skew.skew if isinstance(skew, ClockSkewFault) else 0.0
        ts = _fmt_ts(t + shift, tz)
        payload = _reading_json(m.id, ts, value)
        faults = tuple(sorted(active))
        if isinstance(active.get("malformed"), MalformedFault):
            data, variant = self._malform(payload, index, ts)
            faults = tuple(sorted({*faults, f"malformed:{variant}"} - {"malformed"}))
        else:
            data = payload.encode()
        msg = OutMessage(t + _SEND_LAG_S, self._next_order(), self.topic, data, qos, t, None, 1,
                         faults)
        return self._timing(msg, active)


def merge_plans(feeds: Iterable[PlantFeed], k0: int, k1: int) -> list[OutMessage]:
    """All feeds' messages for [k0, k1), in publishing order (by due time)."""
    msgs: list[OutMessage] = []
    for feed in feeds:
        msgs.extend(feed.messages(k0, k1))
    msgs.sort()
    return msgs


@dataclass
class PublishStats:
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class MqttPublisher:
    """Publish plant feeds to a broker with paho-mqtt (VERSION2 callbacks)."""

    def __init__(self, endpoint: MqttEndpoint, *, client_id: str = "energymon-sim",
                 connect_timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.stats = PublishStats()
        self._connected = threading.Event()
        # MQTT 3.1.1 whatever the endpoint says, with a clean session: it only publishes
        client = mqtt_client(endpoint, client_id, protocol="3.1.1", persistent_session=False,
                             reconnect_min=1, reconnect_max=30)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self.client = client
        self._timeout = connect_timeout
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason: object, properties: object) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()
        else:
            log.error("MQTT connect refused: %s", reason)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason: object, properties: object) -> None:
        self._connected.clear()

    def connect(self) -> None:
        self.client.connect(self.endpoint.host, self.endpoint.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(self._timeout):
            self.client.loop_stop()
            raise ConnectionError(f"MQTT broker {self.endpoint.host}:{self.endpoint.port} "
                                  "did not accept the connection")

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, msg: OutMessage) -> None:
        info = self.client.publish(msg.topic, msg.payload, qos=msg.qos)
        if msg.qos:
            self._pending.append(info)
            if len(self._pending) > 5000:
                self._drain(2500)
        st = self.stats
        st.messages += 1
        st.readings += msg.readings
        st.bytes += len(msg.payload)
        for f in msg.faults:
            key = f.split(":", 1)[0]
            st.faults[key] = st.faults.get(key, 0) + 1

    def _drain(self, keep: int) -> None:
        while len(self._pending) > keep:
            info = self._pending.pop(0)
            info.wait_for_publish(timeout=60)

    def flush(self) -> None:
        """Wait until every QoS 1 message is acknowledged by the broker."""
        self._drain(0)

    def publish_all(self, messages: Iterable[OutMessage],
                    progress: Callable[[int], None] | None = None) -> PublishStats:
        """Publish ``messages`` as fast as the broker takes them, then wait for the acks."""
        start = time.perf_counter()
        for msg in messages:
            self.publish(msg)
            if progress is not None:
                progress(msg.readings)
        self.flush()
        self.stats.seconds += time.perf_counter() - start
        return self.stats

    def run(self, feeds: list[PlantFeed], clock: SimClock, *, until: float | None = None,
            stop: threading.Event | None = None, chunk_intervals: int = 96) -> PublishStats:
        """Publish in simulated real time: each message when the clock reaches its due time.

        Plans ``chunk_intervals`` intervals ahead; stops at simulated ``until`` or on ``stop``.
        """
        stop = stop or threading.Event()
        heap: list[OutMessage] = []
        k_next = math.ceil(clock.now() / STEP_S)          # the first boundary not yet passed
        while not stop.is_set():
            now = clock.now()
            if until is not None and now >= until and not (heap and heap[0].due <= until):
                break
            if not heap or heap[0].due > (k_next - 1) * STEP_S:
                for msg in merge_plans(feeds, k_next, k_next + chunk_intervals):
                    heapq.heappush(heap, msg)
                k_next += chunk_intervals
            while heap and heap[0].due <= now:
                self.publish(heapq.heappop(heap))
            wait = clock.wall_seconds_until(heap[0].due) if heap else 0.5
            if until is not None:
                wait = min(wait, clock.wall_seconds_until(until))
            stop.wait(min(max(wait, 0.01), 0.5))
        self.flush()
        return self.stats


def feeds_for(model: FleetModel, plants: Iterable[str] | None = None, *, faults: bool = True,
              mode: str | None = None) -> list[PlantFeed]:
    """Feeds of the MQTT-pushing plants (or of the named plants, whatever their transport)."""
    names = list(plants) if plants is not None else [
        p for p, pm in model.plants.items() if pm.transport.type == "mqtt"]
    return [PlantFeed(model, p, faults=faults, mode=mode) for p in names]


def iter_chunks(k0: int, k1: int, size: int) -> Iterator[tuple[int, int]]:
    k = k0
    while k < k1:
        yield k, min(k1, k + size)
        k += size
