"""The MQTT transport: a shared subscription feeding the pipeline, acknowledged after commit.

- paho-mqtt 2.x, ``CallbackAPIVersion.VERSION2``, MQTT 5, ``manual_ack=True``: a QoS 1 message
  is acknowledged (PUBACK) only from the pipeline's ``on_done`` callback, i.e. after its readings
  and dead letters are committed. A crash before the commit means redelivery, never loss.
- ``$share/<group>/plants/+/readings``: every worker of a group gets a share of the stream.
- A persistent session (``clean_start=False`` with a session expiry) under a stable client id:
  messages delivered but not acknowledged when the connection or the process dies are
  redelivered when the worker comes back.
- Subscribe in ``on_connect`` (so every reconnect re-subscribes); paho's loop thread reconnects
  with an explicit, capped backoff (``reconnect_delay_set``).
- An acknowledgement belongs to the connection its message came on: after a disconnect, the
  acknowledgements of messages received before it are dropped (packet ids are only meaningful
  on their connection; the broker redelivers those messages and the writer absorbs them).
- Backpressure without blocking paho's network thread (reliability review D6): ``on_message``
  only appends the message to a hand-off queue; a hand-off thread submits it to the pipeline,
  and waits there while the pipeline's bounded queue is full. The network thread keeps
  answering the broker (PINGREQ, PUBACK) however slow the database is, so a stalled database
  causes no disconnect and no redelivery of committed work. A message is acknowledged only
  after its commit, and a broker stops sending once ``ReceiveMaximum`` messages are
  unacknowledged (MQTT 5), so the hand-off queue needs room for ``receive_maximum`` messages
  of the current connection; that is its bound. Messages of a connection that is gone are
  dropped from it at the disconnect (not acknowledged: the broker redelivers them).
  Mosquitto 2.0.11 honours the Receive Maximum while nothing is acknowledged (a database
  outage) but overruns it once acknowledgements flow (a slow database; reliability review
  D7): then the hand-off queue is full and the network thread waits for room, which is at
  most the time of one commit, never the length of an outage.
- End-to-end acknowledgement: after each commit the worker publishes every gateway stream the
  commit advanced on ``plants/{plant}/acks/{gateway}`` (QoS 1, retained; ``core.payload``):
  the collector keeps a batch in its spool until such an acknowledgement covers it, because
  the broker's PUBACK alone does not survive every broker failure.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.mqtt import mqtt_client
from core.payload import AckPayload, ack_topic_for, plant_from_topic
from core.settings import MqttEndpoint
from ingest.model import Receipt, StreamAck
from ingest.pipeline import IngestPipeline, PipelineClosed

log = logging.getLogger(__name__)

READINGS_TOPICS = ("plants/+/readings",)


def default_client_id(group: str = "ingest") -> str:
    """A stable id per host, so a restarted worker resumes its session (use --client-id to run
    several workers on one host)."""
    host = socket.gethostname().split(".")[0].lower() or "host"
    return f"energymon-{group}-{host}"[:64]


class MqttIngestWorker:
    """Consumes readings from the broker into an :class:`IngestPipeline`."""

    def __init__(
        self,
        pipeline: IngestPipeline,
        endpoint: MqttEndpoint,
        *,
        group: str = "ingest",
        client_id: str | None = None,
        topics: Sequence[str] = READINGS_TOPICS,
        qos: int = 1,
        session_expiry: int = 60,
        receive_maximum: int = 20_000,
        keepalive: int = 30,
        reconnect_min: int = 1,
        reconnect_max: int = 5,
        quiet_period: float = 0.3,
    ) -> None:
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1 (QoS 1 is the contract)")
        self.pipeline = pipeline
        self.endpoint = endpoint
        self.group = group
        self.client_id = client_id or default_client_id(group)
        # MQTT 3.1.1 brokers have no shared subscriptions: one worker takes the whole stream
        self.filters = [f"$share/{group}/{topic}" if group and endpoint.mqtt5 else topic
                        for topic in topics]
        self.qos = qos
        self.session_expiry = session_expiry
        self.receive_maximum = max(1, min(receive_maximum, 65_535))
        self.keepalive = keepalive
        self.quiet_period = quiet_period
        self.metrics = pipeline.metrics
        self.delivered = 0                   # messages taken from the broker
        self.received = 0                    # messages handed to the pipeline
        # (generation, mid, qos, topic, payload) received and not yet handed to the pipeline
        self._handoff: deque[tuple[int, int, int, str, bytes]] = deque()
        self._handoff_ready = threading.Condition()
        self._handoff_thread: threading.Thread | None = None
        self.handoff_peak = 0                # the most messages the hand-off queue held
        self.metrics.handoff_depth.set_function(lambda: len(self._handoff))
        self._topics: dict[str, tuple[str | None, str]] = {}   # topic -> (plant, source)
        self._generation = 0                 # bumped on every (dis)connect
        self._ack_lock = threading.Lock()
        self._subscribed = threading.Event()
        self._draining = False
        self._stopped = False
        # MQTT 3.1.1: the persistent session comes from clean_session=False
        client = mqtt_client(endpoint, self.client_id, manual_ack=True,
                             reconnect_min=reconnect_min, reconnect_max=reconnect_max)
        client.max_inflight_messages_set(1000)   # our own publishes: the platform acks
        client.on_pre_connect = self._on_pre_connect
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        self._unsubscribed = threading.Event()
        self.client = client
        pipeline.ack_listeners.append(self._publish_acks)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> MqttIngestWorker:
        """Connect in the background (paho's loop thread retries until the broker answers)."""
        if self.endpoint.mqtt5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho
            props.SessionExpiryInterval = self.session_expiry
            props.ReceiveMaximum = self.receive_maximum
            self.client.connect_async(self.endpoint.host, self.endpoint.port,
                                      keepalive=self.keepalive, clean_start=False,
                                      properties=props)
        else:
            self.client.connect_async(self.endpoint.host, self.endpoint.port,
                                      keepalive=self.keepalive)
        self._handoff_thread = threading.Thread(target=self._run_handoff,
                                                name="ingest-mqtt-handoff", daemon=True)
        self._handoff_thread.start()
        self.client.loop_start()
        return self

    def wait_subscribed(self, timeout: float | None = None) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """Graceful stop: unsubscribe, commit (and acknowledge) what arrives until the broker
        has nothing more for this session (or ``drain_timeout``), then disconnect. Returns True
        when everything received was committed; anything else stays unacknowledged in the
        session and is redelivered when a worker with this client id connects again."""
        if self._stopped:
            return True
        self._draining = True
        deadline = time.monotonic() + drain_timeout
        if self.client.is_connected():
            self._unsubscribed.clear()
            self.client.unsubscribe(self.filters)
            self._unsubscribed.wait(min(5, drain_timeout))
        # the broker still sends what it had queued for this session: take it until quiet
        clean = True
        while True:
            seen = self.delivered
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._handed_off(remaining) \
                    or not self.pipeline.flush(max(0.0, deadline - time.monotonic())):
                clean = False
                break
            time.sleep(min(self.quiet_period, max(0.0, deadline - time.monotonic())))
            if (self.delivered == seen and not self._handoff
                    and self.pipeline.pending == 0):
                break
        self._stopped = True
        with self._handoff_ready:
            self._handoff_ready.notify_all()
        with self._ack_lock:
            # the acks queued by the flush must leave before the DISCONNECT packet
            self.client.disconnect()
        self.client.loop_stop()
        self.metrics.mqtt_connected.set(0)
        return clean

    # -- callbacks (paho's loop thread) --------------------------------------------------------
    def _on_pre_connect(self, client: mqtt.Client, userdata: Any) -> None:
        with self._ack_lock:
            self._generation += 1

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        if reason_code.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.endpoint.host,
                      self.endpoint.port, reason_code)
            return
        with self._ack_lock:
            self._generation += 1
        self.metrics.mqtt_connected.set(1)
        self.metrics.mqtt_connects.inc()
        log.info("connected to %s:%d as %s (session %s); subscribing %s", self.endpoint.host,
                 self.endpoint.port, self.client_id,
                 "resumed" if flags.session_present else "new", ", ".join(self.filters))
        if self._draining:
            return
        if self.endpoint.mqtt5:
            client.subscribe([(f, SubscribeOptions(qos=self.qos)) for f in self.filters])
        else:
            client.subscribe([(f, self.qos) for f in self.filters])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: list[ReasonCode], properties: Properties | None) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            log.error("subscription refused by the broker: %s", ", ".join(failed))
            return
        self._subscribed.set()

    def _on_unsubscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                        reason_codes: list[ReasonCode],
                        properties: Properties | None) -> None:
        self._unsubscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any,
                       flags: mqtt.DisconnectFlags, reason_code: ReasonCode,
                       properties: Properties | None) -> None:
        with self._ack_lock:
            self._generation += 1
        self._drop_stale()
        self._subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopped:
            log.warning("disconnected from the broker (%s); paho reconnects with backoff",
                        reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        """Hand the message over and return at once: this thread must never wait."""
        try:
            # paho hands the payload over as bytes (bytearray only when built by hand)
            payload = message.payload
            with self._handoff_ready:
                if len(self._handoff) >= self.receive_maximum:
                    # the broker sent more than the Receive Maximum we announced (Mosquitto
                    # 2.0.11 does once acknowledgements flow, D7): memory first, so wait
                    # for space; that is one commit at most, as the hand-off thread takes a
                    # message as soon as the queue has room
                    self.metrics.handoff_waits.inc()
                    while len(self._handoff) >= self.receive_maximum and not self._stopped:
                        self._handoff_ready.wait(1.0)
                self._handoff.append((self._generation, message.mid, message.qos,
                                      message.topic, bytes(payload) if isinstance(
                                          payload, bytearray) else payload))
                self.delivered += 1
                self.handoff_peak = max(self.handoff_peak, len(self._handoff))
                self._handoff_ready.notify()
        except Exception:  # nothing may kill paho's loop thread
            log.exception("unexpected failure handling a message on %r", message.topic)

    def _drop_stale(self) -> None:
        """At a disconnect: forget the QoS 1 messages of the connection that is gone which
        are not handed over yet (they could not be acknowledged; the broker redelivers them
        on the next connection), so the hand-off queue never holds more than one
        connection's ``ReceiveMaximum``."""
        with self._handoff_ready:
            kept = deque(m for m in self._handoff if m[2] == 0 or m[0] == self._generation)
            dropped = len(self._handoff) - len(kept)
            self._handoff = kept
            self._handoff_ready.notify_all()
        if dropped:
            self.metrics.handoff_dropped.inc(dropped)

    def _handed_off(self, timeout: float) -> bool:
        """Wait until every message received was handed to the pipeline."""
        deadline = time.monotonic() + timeout
        with self._handoff_ready:
            while self._handoff:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._handoff_ready.wait(remaining)
        return True

    def _run_handoff(self) -> None:
        """The hand-off thread: submit messages in order, waiting while the pipeline is
        full (that wait holds back acknowledgements, and so the broker)."""
        while True:
            with self._handoff_ready:
                while not self._handoff and not self._stopped:
                    self._handoff_ready.wait(1.0)
                if not self._handoff:
                    return
                generation, mid, qos, topic, payload = self._handoff[0]
            try:
                on_done = None
                if qos > 0:
                    on_done = partial(self._ack, generation, mid, qos)
                known = self._topics.get(topic)
                if known is None:
                    if len(self._topics) > 100_000:
                        self._topics.clear()
                    known = self._topics[topic] = (plant_from_topic(topic), "mqtt:" + topic)
                self.pipeline.submit(known[0], payload, known[1], on_done=on_done)
                self.received += 1
            except PipelineClosed:
                # shutting down: not acknowledged, the broker redelivers it
                log.debug("message on %s not taken: pipeline closed", topic)
                with self._handoff_ready:
                    self._handoff.clear()
                    self._handoff_ready.notify_all()
                return
            except Exception:  # one bad message never stops the rest
                log.exception("unexpected failure handing over a message on %r", topic)
            with self._handoff_ready:
                # a disconnect may have replaced the queue meanwhile: pop only our message
                if self._handoff and self._handoff[0][:2] == (generation, mid):
                    self._handoff.popleft()
                self._handoff_ready.notify_all()

    # -- acknowledgement (writer thread) -------------------------------------------------------
    def _publish_acks(self, acks: Sequence[StreamAck]) -> None:
        """Tell each gateway how far its batches are committed (retained: a collector that
        connects later gets the latest at once; paho queues them while disconnected)."""
        if self._stopped:
            return
        for ack in acks:
            payload = AckPayload(gateway=ack.gateway, epoch=ack.epoch, acked=ack.acked)
            self.client.publish(ack_topic_for(ack.plant_code, ack.gateway),
                                payload.model_dump_json(), qos=1, retain=True)
        self.metrics.platform_acks.inc(len(acks))

    def _ack(self, generation: int, mid: int, qos: int, receipt: Receipt) -> None:
        if not receipt.durable:
            return  # abandoned: no ack, the broker redelivers
        with self._ack_lock:
            if generation != self._generation or self._stopped:
                self.metrics.acks_dropped.inc()
                return
            self.client.ack(mid, qos)
