"""Forward the spool to the platform: QoS 1, one message per batch, delete when committed.

The spool is the source of truth; the paho client's own queue is only a window of at most
``max_inflight`` messages. Two acknowledgements count:

1. The broker's PUBACK of the very message that carried a batch (paho 2.x ``on_publish(client,
   userdata, mid, reason_code, properties)`` with a success reason code). What paho had in
   flight when the connection dropped it re-sends by itself after reconnecting (same ``mid``,
   DUP flag); anything not acknowledged within ``ack_timeout_s`` of a live connection is
   published again from the spool.
2. The platform's (``acknowledgement: platform``, the default): ingest publishes, after each
   commit, the highest contiguous committed ``seq`` of this gateway's spool epoch on
   ``plants/{plant}/acks/{gateway}`` (retained, QoS 1; ``core.payload.AckPayload``). Only that
   deletes batches from the spool. A batch the broker acknowledged that the platform has not
   confirmed within ``platform_ack_timeout_s`` is published again, the wait doubling with every
   resend of it up to ``platform_ack_max_s``: a broker that lost what it acknowledged (a
   restart that does not restore a shared subscription, a queue limit) loses nothing.

With ``acknowledgement: broker`` the PUBACK deletes the batch (at-least-once to the broker
only). Duplicates on the wire are possible either way and loss is not: the platform keys
readings by ``(meter, ts)``. Every message says from which seq the spool still holds batches
(``held_from``) and how many readings its policy dropped (``dropped``), so the platform can
tell a gap from a drop.

Order: ``oldest_first`` publishes strictly in spool order (so each meter's readings reach the
broker in time order); ``live_first`` publishes the newest cycle as soon as it is spooled and
drains the older backlog oldest-first in between. In both modes the backlog is paced by a
token bucket of ``drain_rate_msgs_s`` so a plant coming back after an outage does not flood
its uplink or the platform.

paho runs its network loop in its own thread; its callbacks only hand events to the asyncio
loop (``call_soon_threadsafe``), where all spool access happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt

from collector.config import PublishConfig
from collector.observability import CollectorMetrics, OutageLog, log_event, to_loop
from collector.spool import Batch, Spool
from core.mqtt import mqtt_client
from core.payload import AckPayload, BatchPayload, ack_topic_for, topic_for
from core.settings import MqttEndpoint

__all__ = ["Publisher", "TokenBucket"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = max(1.0, burst)
        self._clock = clock
        self._tokens = self.burst
        self._at = clock()

    def _fill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> bool:
        self._fill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def wait_s(self) -> float:
        """Seconds until a token is available."""
        self._fill()
        return max(0.0, (1 - self._tokens) / self.rate)


class Publisher:
    """Publishes spooled batches of one gateway to ``plants/{plant}/readings``."""

    def __init__(
        self,
        spool: Spool,
        *,
        gateway_id: str,
        plant: str,
        endpoint: MqttEndpoint,
        config: PublishConfig,
        metrics: CollectorMetrics,
        live_window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spool = spool
        self.gateway_id = gateway_id
        self.topic = topic_for(plant)
        self.ack_topic = ack_topic_for(plant, gateway_id)
        self.platform = config.acknowledgement == "platform"
        self.endpoint = endpoint
        self.config = config
        self.metrics = metrics
        self.live_window_s = live_window_s
        self._clock = clock
        self._bucket = TokenBucket(config.drain_rate_msgs_s,
                                   min(config.drain_rate_msgs_s, config.max_inflight), clock)
        self._inflight: dict[int, tuple[int, float, int]] = {}  # seq -> (mid, sent_at, readings)
        self._by_mid: dict[int, int] = {}
        self._acked: list[int] = []  # acknowledged, not yet deleted from the spool
        self._acked_set: set[int] = set()
        # broker-acknowledged, waiting for the platform: seq -> when it may be sent again
        self._awaiting: dict[int, float] = {}
        self._attempts: dict[int, int] = {}   # seq -> times sent (for the doubling wait)
        self.platform_acked = -1               # highest seq the platform confirmed
        self._flush_handle: asyncio.TimerHandle | None = None
        self._connected = False
        self._connected_since = 0.0
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: mqtt.Client | None = None
        self._broker_log = OutageLog("broker")
        self._stopping = False

    # ----------------------------------------------------------------- paho side (thread)
    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.platform and not rc.is_failure:
            # every (re)connect: the retained acknowledgement comes back at once
            client.subscribe(self.ack_topic, qos=1)
        to_loop(self._loop, self._connected_event, not rc.is_failure, str(rc))

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        to_loop(self._loop, self._platform_ack_event, bytes(message.payload))

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        to_loop(self._loop, self._disconnected_event, str(rc))

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        to_loop(self._loop, self._ack_event, mid, bool(rc.is_failure), str(rc))

    # ----------------------------------------------------------------- asyncio side
    def _connected_event(self, ok: bool, reason: str) -> None:
        where = f"{self.endpoint.host}:{self.endpoint.port}"
        if not ok:
            self._broker_log.failure(where, f"connection refused: {reason}")
            return
        self._connected = True
        self._connected_since = self._clock()
        self.metrics.mqtt_connected.set(1)
        if not self._broker_log.success(where):
            log_event(logging.INFO, "broker_connected", broker=where, topic=self.topic)
        self._wake.set()

    def _disconnected_event(self, reason: str) -> None:
        self._connected = False
        if self._stopping:
            return
        self.metrics.mqtt_connected.set(0)
        self._broker_log.failure(f"{self.endpoint.host}:{self.endpoint.port}",
                                 f"disconnected: {reason}", inflight=len(self._inflight))

    def _ack_event(self, mid: int, failed: bool, reason: str) -> None:
        seq = self._by_mid.pop(mid, None)
        if seq is None:
            return  # an ack for a message we already gave up on (it was re-sent)
        _, _, n = self._inflight.pop(seq, (0, 0.0, 0))
        if failed:
            self.metrics.publish_refused.inc()
            log_event(logging.ERROR, "publish_refused", seq=seq, reason=reason, topic=self.topic)
        else:
            self.metrics.acked.inc()
            self.metrics.acked_readings.inc(n)
            if self.platform:
                if seq > self.platform_acked:
                    attempts = self._attempts.get(seq, 1)
                    wait = min(self.config.platform_ack_max_s,
                               self.config.platform_ack_timeout_s * 2 ** (attempts - 1))
                    self._awaiting[seq] = self._clock() + wait
                    self.metrics.awaiting_platform.set(len(self._awaiting))
            else:
                self._acked.append(seq)
                self._acked_set.add(seq)
                if self._flush_handle is None and self._loop is not None:
                    self._flush_handle = self._loop.call_later(0.05, self.flush_acks)
        self._wake.set()

    def _platform_ack_event(self, raw: bytes) -> None:
        try:
            ack = AckPayload.model_validate_json(raw)
        except ValueError:
            log_event(logging.WARNING, "platform_ack_unreadable", topic=self.ack_topic,
                      payload=raw[:200].decode("utf-8", "replace"))
            return
        epoch = self.spool.stats().epoch
        if ack.gateway != self.gateway_id or ack.epoch != epoch:
            # another spool's stream (an old or replaced spool file): not ours to confirm
            log_event(logging.DEBUG, "platform_ack_other_epoch", epoch=ack.epoch, ours=epoch)
            return
        if ack.acked <= self.platform_acked:
            return
        self.platform_acked = ack.acked
        removed = self.spool.confirm(ack.acked)
        for seq in [s for s in self._awaiting if s <= ack.acked]:
            del self._awaiting[seq]
        for seq in [s for s in self._attempts if s <= ack.acked]:
            del self._attempts[seq]
        for seq in [s for s in self._inflight if s <= ack.acked]:
            mid, _, _ = self._inflight.pop(seq)
            self._by_mid.pop(mid, None)
        m = self.metrics
        m.platform_acked_seq.set(ack.acked)
        m.platform_confirmed_readings.inc(removed)
        m.awaiting_platform.set(len(self._awaiting))
        self._wake.set()

    def flush_acks(self) -> None:
        """Delete acknowledged batches from the spool (one transaction)."""
        self._flush_handle = None
        if not self._acked:
            return
        seqs, self._acked = self._acked, []
        self.spool.ack(seqs)
        self._acked_set.difference_update(seqs)

    def wake(self) -> None:
        self._wake.set()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        client_id = self.config.client_id or f"energymon-{self.gateway_id}"
        client = mqtt_client(self.endpoint, client_id,
                             reconnect_min=self.config.reconnect_min_s,
                             reconnect_max=self.config.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.max_inflight_messages_set(self.config.max_inflight)
        client.connect_async(self.endpoint.host, self.endpoint.port,
                             keepalive=self.config.keepalive_s)
        client.loop_start()
        self._client = client

    async def stop(self, grace_s: float = 2.0) -> None:
        """Wait up to ``grace_s`` for in-flight acks (and the platform's confirmation of
        them), delete what was acknowledged, disconnect. What is left stays in the spool."""
        deadline = self._clock() + grace_s
        while ((self._inflight or self._awaiting) and self._connected
               and self._clock() < deadline):
            await asyncio.sleep(0.02)
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self.flush_acks()
        self._stopping = True
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        self._loop = None

    # ----------------------------------------------------------------- publishing
    def _expire_inflight(self) -> None:
        if not self._connected:
            return
        now = self._clock()
        for seq, (mid, sent_at, _) in list(self._inflight.items()):
            if now - max(sent_at, self._connected_since) > self.config.ack_timeout_s:
                del self._inflight[seq]
                self._by_mid.pop(mid, None)
                self.metrics.republished.inc()
                log_event(logging.WARNING, "ack_timeout", seq=seq,
                          waited_s=round(now - sent_at, 1))

    def _payload(self, batch: Batch) -> str:
        stats = self.spool.stats()
        return BatchPayload.model_validate({
            "gateway": self.gateway_id,
            "seq": batch.seq,
            "epoch": stats.epoch,
            "held_from": stats.held_from,
            "dropped": stats.dropped,
            "sent_at": datetime.now(UTC),
            "readings": [
                {"meter": m, "ts": ts, "value": v, "quality": q} for m, ts, v, q in batch.readings
            ],
        }).model_dump_json(exclude_none=True)

    def _send(self, batch: Batch) -> None:
        assert self._client is not None
        info = self._client.publish(self.topic, self._payload(batch), qos=1)
        # rc NO_CONN still queues the message in paho, which sends it after reconnecting
        self._inflight[batch.seq] = (info.mid, self._clock(), len(batch.readings))
        self._by_mid[info.mid] = batch.seq
        self.metrics.published.inc()
        if self.platform:
            if self._awaiting.pop(batch.seq, None) is not None:
                self.metrics.resent_unconfirmed.inc()
                self.metrics.awaiting_platform.set(len(self._awaiting))
            self._attempts[batch.seq] = self._attempts.get(batch.seq, 0) + 1

    def _busy(self) -> set[int]:
        busy = set(self._inflight) | self._acked_set
        if self._awaiting:
            now = self._clock()
            busy.update(seq for seq, due in self._awaiting.items() if due > now)
        return busy

    def publish_ready(self) -> float | None:
        """Publish what the window and the rate allow; returns seconds to wait for a token."""
        if not self._connected or self._client is None:
            return None
        room = self.config.max_inflight - len(self._inflight)
        if room <= 0:
            return None
        if self.config.order == "live_first":
            newest = self.spool.pending(1, self._busy(), newest=True)
            if newest and time.time() - newest[0].created_at <= self.live_window_s:
                self._send(newest[0])
                room -= 1
        while room > 0:
            batches = self.spool.pending(min(room, 50), self._busy())
            if not batches:
                return None
            for batch in batches:
                if not self._bucket.take():
                    return self._bucket.wait_s()
                self._send(batch)
                room -= 1
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until ``stop`` is set."""
        while not stop.is_set():
            self._wake.clear()
            self._expire_inflight()
            wait = self.publish_ready()
            timeout = 0.5 if wait is None else min(0.5, max(wait, 0.001))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def connected(self) -> bool:
        return self._connected
