"""The collector process: poll cycles -> spool -> publisher, plus MQTT-native meters.

:class:`Collector` wires one gateway file: a :class:`~collector.polling.LinkPoller` per link,
a :class:`~collector.polling.DevicePlan` per device, the spool, the publisher and the metrics.
Each boundary tick starts a cycle task: the devices due at that tick are polled, grouped by
link (links concurrently, devices on one link one after the other); when every link is done,
the cycle's readings are committed to the spool as one batch (one MQTT message) and the
publisher is woken. Cycles may overlap when a link is slower than the interval; a device whose
turn comes a whole interval after its boundary is skipped and counted, never stamped with the
wrong time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collector.config import Gateway, spool_path
from collector.guard import ReadOnlyModbus, open_client
from collector.mqtt_meters import MqttMeterSource
from collector.observability import CollectorMetrics, OutageLog, log_event
from collector.polling import DevicePlan, LinkPoller, PollResult
from collector.publisher import Publisher
from collector.schedule import due, next_tick, nominal_ts, quality_for
from collector.spool import Spool, SpoolReading
from core.exitcodes import EXIT_FAILURE, EXIT_OK
from core.settings import MqttEndpoint

__all__ = ["Collector", "run_collector"]


class Collector:
    """One gateway: everything it polls, spools and publishes."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        data_dir: Path,
        mqtt: MqttEndpoint | None,
        client_factory: Callable[[Any], ReadOnlyModbus] = open_client,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.gateway = gateway
        self._wall = wall
        self.metrics = CollectorMetrics()
        cfg = gateway.spool
        self.spool = Spool(
            spool_path(gateway, data_dir),
            capacity=cfg.capacity_readings,
            when_full=cfg.when_full,
            synchronous=cfg.synchronous,
            max_per_batch=gateway.publish.max_readings_per_message,
        )
        self.metrics.watch_spool(self.spool.stats)
        self.devices_log = OutageLog("device")
        self.links_log = OutageLog("link")
        self.links = {
            link.name: LinkPoller(link, self.metrics, self.devices_log, self.links_log,
                                  client_factory=client_factory, wall=wall)
            for link in gateway.links
        }
        self.plans = [DevicePlan.build(d, gateway.link(d.link)) for d in gateway.devices]
        intervals = [d.interval_s for d in gateway.devices]
        self.publisher = None
        if mqtt is not None:
            self.publisher = Publisher(
                self.spool,
                gateway_id=gateway.id,
                plant=gateway.plant,
                endpoint=mqtt,
                config=gateway.publish,
                metrics=self.metrics,
                live_window_s=float(min(intervals, default=60)),
            )
        self.mqtt_source = None
        if gateway.mqtt_meters is not None:
            self.mqtt_source = MqttMeterSource(
                gateway.mqtt_meters, self.spool, self.metrics,
                client_id=f"energymon-{gateway.id}-meters", on_spooled=self._wake_publisher,
            )
        self._cycles: set[asyncio.Task[Any]] = set()
        self._http: Any = None

    def _wake_publisher(self) -> None:
        if self.publisher is not None:
            self.publisher.wake()

    # ------------------------------------------------------------------------ cycles
    async def run_cycle(self, tick: int) -> list[PollResult]:
        """Poll the devices due at ``tick`` and spool their readings as one batch."""
        by_link: dict[str, list[DevicePlan]] = {}
        for plan in self.plans:
            if due(tick, plan.device.interval_s):
                by_link.setdefault(plan.device.link, []).append(plan)
        if not by_link:
            return []
        groups = await asyncio.gather(
            *(self.links[name].poll_all(plans, tick) for name, plans in by_link.items())
        )
        results = [r for group in groups for r in group]
        ts = nominal_ts(tick)
        thresholds = {p.device.id: p.device.late_threshold_s for p in self.plans}
        readings: list[SpoolReading] = []
        for r in results:
            if r.read_at is None:
                continue
            quality = quality_for(tick, r.read_at, thresholds[r.device]).value
            for meter, value in r.values.items():
                readings.append(SpoolReading(meter, ts, value, quality))
                self.metrics.readings.labels("modbus", quality).inc()
        if readings:
            seqs = self.spool.add(readings, cycle_ts=float(tick))
            log_event(logging.DEBUG, "cycle_spooled", tick=ts.isoformat(), seqs=seqs,
                      readings=len(readings),
                      failed=sum(1 for r in results if r.error and not r.skipped),
                      skipped=sum(1 for r in results if r.skipped))
            self._wake_publisher()
        self.metrics.cycle_seconds.observe(max(0.0, self._wall() - tick))
        return results

    def _start_cycle(self, tick: int) -> None:
        task = asyncio.create_task(self.run_cycle(tick), name=f"cycle-{tick}")
        self._cycles.add(task)
        task.add_done_callback(self._cycle_done)

    def _cycle_done(self, task: asyncio.Task[Any]) -> None:
        self._cycles.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log_event(logging.ERROR, "cycle_failed", task=task.get_name(),
                      error=f"{type(exc).__name__}: {exc}")

    async def _schedule(self, stop: asyncio.Event) -> None:
        intervals = sorted({p.device.interval_s for p in self.plans})
        if not intervals:
            await stop.wait()
            return
        last = 0
        while not stop.is_set():
            tick = next_tick(max(self._wall(), last), intervals)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, tick - self._wall()))
            if stop.is_set():
                break
            last = tick
            self._start_cycle(tick)

    # ------------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then finish running cycles and shut down cleanly."""
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # we log outages ourselves
        g = self.gateway
        if g.metrics.port is not None:
            try:
                self._http = self.metrics.serve(g.metrics.port, g.metrics.host)
            except OSError as exc:  # collecting matters more than being scraped
                log_event(logging.ERROR, "metrics_unavailable", host=g.metrics.host,
                          port=g.metrics.port, error=str(exc))
        tasks = [asyncio.create_task(self._schedule(stop), name="schedule")]
        if self.publisher is not None:
            self.publisher.start()
            tasks.append(asyncio.create_task(self.publisher.run(stop), name="publish"))
        if self.mqtt_source is not None:
            self.mqtt_source.start()
            tasks.append(asyncio.create_task(self.mqtt_source.run(stop), name="mqtt-meters"))
        stats = self.spool.stats()
        log_event(logging.INFO, "collector_started", gateway=g.id, plant=g.plant,
                  links=len(self.links), devices=len(self.plans),
                  mqtt_meters=len(g.mqtt_meters.meters) if g.mqtt_meters else 0,
                  spool=str(self.spool.path), backlog=stats.depth, next_seq=stats.next_seq)
        try:
            await asyncio.gather(*tasks)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._cycles:
            await asyncio.wait(set(self._cycles), timeout=30)
        if self.mqtt_source is not None:
            self.mqtt_source.stop()
        if self.publisher is not None:
            await self.publisher.stop()
        for link in self.links.values():
            link.close()
        if self._http is not None:
            self._http.shutdown()
            self._http = None
        stats = self.spool.stats()
        self.spool.close()
        log_event(logging.INFO, "collector_stopped", gateway=self.gateway.id,
                  backlog=stats.depth, next_seq=stats.next_seq)


def run_collector(gateway: Gateway, *, data_dir: Path, mqtt: MqttEndpoint | None) -> int:
    """Run a collector in the foreground until SIGINT/SIGTERM; returns an exit code."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        collector = Collector(gateway, data_dir=data_dir, mqtt=mqtt)
        await collector.run(stop)

    try:
        asyncio.run(main())
    except (OSError, sqlite3.Error) as exc:  # e.g. the spool directory is not writable
        log_event(logging.CRITICAL, "collector_failed", gateway=gateway.id,
                  error=f"{type(exc).__name__}: {exc}")
        return EXIT_FAILURE
    return EXIT_OK
