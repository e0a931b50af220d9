"""Metrics (Prometheus format) and structured logs of one collector.

Metrics live in a registry owned by the collector instance (no module-level state), served
over HTTP when ``gateway.metrics.port`` is set. Logs are ``key=value`` lines on the
``energymon.collector`` logger. :class:`OutageLog` logs a failing device or link once when it
goes down, stays quiet (debug level) while it keeps failing, and logs once when it recovers,
with how long and how many attempts the outage lasted. :func:`to_loop` hands an event from a
client library's own thread (paho's network loop) to the collector's asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

__all__ = ["CollectorMetrics", "OutageLog", "kv", "log_event", "to_loop"]

log = logging.getLogger("energymon.collector")


def _fmt(value: Any) -> str:
    text = f"{value:.3f}" if isinstance(value, float) else str(value)
    if text == "" or any(c in text for c in ' "=\t\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    return text


def kv(event: str, **fields: Any) -> str:
    """``event=<event> k=v ...`` with values quoted when they contain spaces or quotes."""
    parts = [f"event={_fmt(event)}"]
    parts += [f"{k}={_fmt(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


def log_event(level: int, event: str, **fields: Any) -> None:
    if log.isEnabledFor(level):
        log.log(level, kv(event, **fields))


def to_loop(loop: asyncio.AbstractEventLoop | None, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in ``loop`` (thread-safe); dropped when the loop is gone or closing
    (paho callbacks may still fire while a component stops)."""
    if loop is not None and not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, *args)


@dataclass
class _Outage:
    since: float
    failures: int = 1
    last_error: str = ""


@dataclass
class OutageLog:
    """Once-per-outage logging for things that fail repeatedly (devices, links, brokers)."""

    kind: str
    clock: Callable[[], float] = time.monotonic
    _down: dict[str, _Outage] = field(default_factory=dict)

    def failure(self, name: str, error: str, **context: Any) -> bool:
        """Record a failure; logs (and returns True) only for the first one of an outage."""
        outage = self._down.get(name)
        if outage is None:
            self._down[name] = _Outage(self.clock(), 1, error)
            log_event(logging.WARNING, f"{self.kind}_down", **{self.kind: name}, error=error,
                      **context)
            return True
        outage.failures += 1
        outage.last_error = error
        log_event(logging.DEBUG, f"{self.kind}_still_down", **{self.kind: name}, error=error,
                  failures=outage.failures)
        return False

    def success(self, name: str, **context: Any) -> bool:
        """Record a success; logs (and returns True) only when it ends an outage."""
        outage = self._down.pop(name, None)
        if outage is None:
            return False
        log_event(logging.INFO, f"{self.kind}_up", **{self.kind: name},
                  down_s=round(self.clock() - outage.since, 1), failures=outage.failures,
                  last_error=outage.last_error, **context)
        return True

    def is_down(self, name: str) -> bool:
        return name in self._down

    @property
    def down(self) -> tuple[str, ...]:
        return tuple(sorted(self._down))


class _SpoolCollector:
    """Exports spool state (read at scrape time from a callable returning a stats object)."""

    def __init__(self, stats: Callable[[], Any]) -> None:
        self._stats = stats

    def collect(self) -> Any:
        s = self._stats()
        if s is None:
            return
        g = GaugeMetricFamily("energymon_collector_spool_depth_readings",
                              "readings in the spool not yet acknowledged (by the platform, "
                              "or by the broker with acknowledgement: broker)")
        g.add_metric([], s.depth)
        yield g
        g = GaugeMetricFamily("energymon_collector_spool_batches",
                              "messages (batches) in the spool not yet acknowledged")
        g.add_metric([], s.batches)
        yield g
        g = GaugeMetricFamily("energymon_collector_spool_capacity_readings",
                              "configured spool capacity")
        g.add_metric([], s.capacity)
        yield g
        g = GaugeMetricFamily("energymon_collector_oldest_unsent_age_seconds",
                              "age of the oldest unacknowledged reading (0 when none)")
        g.add_metric([], max(0.0, time.time() - s.oldest_ts) if s.oldest_ts else 0.0)
        yield g
        c = CounterMetricFamily("energymon_collector_spool_dropped_readings",
                                "readings dropped because the spool was full (persisted)",
                                labels=["policy"])
        c.add_metric(["drop_oldest"], s.dropped_oldest)
        c.add_metric(["refuse_new"], s.refused_new)
        yield c
        g = GaugeMetricFamily("energymon_collector_unacked_oldest_age_seconds",
                              "how long the oldest batch in the spool has waited to be "
                              "acknowledged (0 when none)")
        g.add_metric([], max(0.0, time.time() - s.oldest_created) if s.oldest_created else 0.0)
        yield g
        g = GaugeMetricFamily("energymon_collector_gateway_seq",
                              "next gateway sequence number (persisted)")
        g.add_metric([], s.next_seq)
        yield g


class CollectorMetrics:
    """Every metric of one collector, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.polls = Counter("energymon_collector_polls", "device polls by result",
                             ["device", "result"], registry=r)
        self.device_errors = Counter("energymon_collector_device_errors",
                                     "failed requests by device and kind",
                                     ["device", "kind"], registry=r)
        self.requests = Counter("energymon_collector_modbus_requests",
                                "Modbus read requests sent", ["link", "function_code"],
                                registry=r)
        self.poll_seconds = Histogram(
            "energymon_collector_poll_duration_seconds", "duration of one device poll",
            ["link"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.cycle_seconds = Histogram(
            "energymon_collector_cycle_duration_seconds", "boundary to last reading of a cycle",
            registry=r, buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300),
        )
        self.readings = Counter("energymon_collector_readings", "readings spooled by source and "
                                "quality", ["source", "quality"], registry=r)
        self.not_available = Counter("energymon_collector_values_not_available",
                                     "fields read as 'not available' (sentinel/NaN)",
                                     ["device"], registry=r)
        self.link_connected = Gauge("energymon_collector_link_connected",
                                    "1 when the Modbus link is connected", ["link"], registry=r)
        self.link_reconnects = Counter("energymon_collector_link_connects",
                                       "connection attempts by result", ["link", "result"],
                                       registry=r)
        self.published = Counter("energymon_collector_published_messages",
                                 "messages handed to the MQTT client", registry=r)
        self.acked = Counter("energymon_collector_acked_messages",
                             "messages acknowledged by the broker (PUBACK)", registry=r)
        self.acked_readings = Counter("energymon_collector_acked_readings",
                                      "readings acknowledged by the broker", registry=r)
        self.publish_refused = Counter("energymon_collector_publish_refused",
                                       "PUBACKs with a failure reason code (kept in the spool)",
                                       registry=r)
        self.republished = Counter("energymon_collector_republished_messages",
                                   "messages sent again after an ack timeout", registry=r)
        self.awaiting_platform = Gauge(
            "energymon_collector_awaiting_platform_batches",
            "batches the broker acknowledged that the platform has not yet confirmed committed",
            registry=r)
        self.platform_acked_seq = Gauge(
            "energymon_collector_platform_acked_seq",
            "highest seq the platform confirmed committed (-1: none since start)", registry=r)
        self.platform_acked_seq.set(-1)
        self.platform_confirmed_readings = Counter(
            "energymon_collector_platform_confirmed_readings",
            "readings deleted from the spool because the platform confirmed them", registry=r)
        self.resent_unconfirmed = Counter(
            "energymon_collector_resent_unconfirmed_messages",
            "messages sent again because the platform had not confirmed them in time",
            registry=r)
        self.mqtt_connected = Gauge("energymon_collector_mqtt_connected",
                                    "1 when connected to the platform broker", registry=r)
        self.mqtt_in = Counter("energymon_collector_mqtt_meter_messages",
                               "messages from MQTT-native meters by result", ["result"],
                               registry=r)

    def watch_spool(self, stats: Callable[[], Any]) -> None:
        self.registry.register(_SpoolCollector(stats))

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Start the HTTP endpoint; returns an object with ``shutdown()``."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return server
