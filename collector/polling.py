"""Polling: one client per physical link, requests serialised on it, links polled concurrently.

A :class:`DevicePlan` is computed once per device at startup with the shared planner
(:func:`modbus.plan_reads`): the fields bound to meters (plus the ratio registers when the
device reports its own CT/PT ratios), coalesced into as few reads as the link allows.

A :class:`LinkPoller` owns the link's guarded client (:mod:`collector.guard`) and an
:class:`asyncio.Lock`, so at most one request is on the wire per link. It reconnects with a
capped exponential backoff, retries timeouts (only once per cycle for a device that is already
known to be down), pauses between requests when the link asks for it, and resets RTU links
after a timeout so a late answer cannot be taken for the next request's. Every request is
also bounded by an outer :func:`asyncio.wait_for`, so a hung client cannot stall a link.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.config import Device, Link, device_fields
from collector.guard import DeviceExceptionError, ReadOnlyModbus, open_client
from collector.observability import CollectorMetrics, OutageLog
from collector.schedule import too_late
from modbus import ReadRequest, RegisterField, RegisterMap, decode_plan, plan_reads
from modbus.registermap import Ratio, load_register_map

__all__ = ["DevicePlan", "LinkPoller", "PollResult"]

_OUTER_GRACE_S = 0.5


@dataclass(frozen=True, slots=True)
class DevicePlan:
    """What to read from one device and how its fields become meter values."""

    device: Device
    register_map: RegisterMap
    requests: tuple[ReadRequest, ...]
    bindings: tuple[tuple[str, RegisterField], ...]  # (meter id, field)

    @classmethod
    def build(cls, device: Device, link: Link) -> DevicePlan:
        rmap = load_register_map(device.model)
        requests = plan_reads(
            rmap,
            device.unit_id,
            select=device_fields(device, rmap),
            max_gap=device.max_gap,
            max_registers=link.quirks.max_registers_per_read,
            max_bits=link.quirks.max_bits_per_read,
        )
        bindings = tuple((m.id, rmap.field(m.field)) for m in device.meters)
        return cls(device, rmap, requests, bindings)

    def _ratios(self, decoded: dict[str, Any]) -> tuple[float | None, float | None]:
        d = self.device
        if d.ratio == "configured":
            return (d.ct_ratio or 1.0, d.pt_ratio or 1.0)
        if d.ratio == "from_meter":
            ct = decoded.get(self.register_map.ct_ratio_field or "", 1)
            pt = decoded.get(self.register_map.pt_ratio_field or "", 1)
            return (None if ct is None else float(ct), None if pt is None else float(pt))
        return (1.0, 1.0)

    def meter_values(self, decoded: dict[str, Any]) -> tuple[dict[str, float], list[str]]:
        """Meter values from decoded fields; second item: meters whose value is not available."""
        ct, pt = self._ratios(decoded)
        values: dict[str, float] = {}
        missing: list[str] = []
        for meter, f in self.bindings:
            raw = decoded.get(f.name)
            needs_ct = f.ratio in (Ratio.CT, Ratio.CT_PT)
            needs_pt = f.ratio in (Ratio.PT, Ratio.CT_PT)
            if raw is None or (needs_ct and ct is None) or (needs_pt and pt is None):
                missing.append(meter)
                continue
            value = float(raw)
            if self.device.ratio != "none":
                value *= float(f.primary_factor(ct or 1.0, pt or 1.0))
            if not math.isfinite(value):
                missing.append(meter)
                continue
            values[meter] = value
        return values, missing


@dataclass(frozen=True, slots=True)
class PollResult:
    device: str
    tick: int
    values: dict[str, float]
    read_at: float | None  # wall-clock time the last response arrived
    error: str | None = None
    skipped: bool = False
    duration_s: float = 0.0


class _PollError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class LinkPoller:
    """The one client of one physical link; polls are serialised by a lock."""

    def __init__(
        self,
        link: Link,
        metrics: CollectorMetrics,
        devices_log: OutageLog,
        links_log: OutageLog,
        *,
        client_factory: Callable[[Link], ReadOnlyModbus] = open_client,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.link = link
        self.metrics = metrics
        self.devices_log = devices_log
        self.links_log = links_log
        self._factory = client_factory
        self._wall = wall
        self._clock = clock
        self._lock = asyncio.Lock()
        self._client: ReadOnlyModbus | None = None
        self._next_connect_at = 0.0
        self._backoff = link.reconnect_min_s
        self._last_request_end = -math.inf
        # labelled children of the hot-path metrics, looked up once
        self._requests = {fc: metrics.requests.labels(link.name, str(fc)) for fc in (1, 2, 3, 4)}
        self._poll_seconds = metrics.poll_seconds.labels(link.name)
        self._polls_ok: dict[str, Any] = {}
        metrics.link_connected.labels(link.name).set(0)

    # -------------------------------------------------------------------- connection
    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.metrics.link_connected.labels(self.link.name).set(0)

    async def _ensure_connected(self) -> None:
        if self.connected:
            return
        now = self._clock()
        if now < self._next_connect_at:
            raise _PollError("link_down", f"link {self.link.name} is down; reconnect in "
                             f"{self._next_connect_at - now:.1f} s")
        if self._client is None:
            self._client = self._factory(self.link)
        error = "connection refused or timed out"
        try:
            ok = await asyncio.wait_for(self._client.connect(),
                                        self.link.timeout_s + _OUTER_GRACE_S)
        except Exception as exc:  # TimeoutError, OSError, pymodbus' own exception types
            ok, error = False, f"{type(exc).__name__}: {exc}"
        if not ok or not self._client.connected:
            self.close()
            self._next_connect_at = self._clock() + self._backoff
            self._backoff = min(self._backoff * 2, self.link.reconnect_max_s)
            self.metrics.link_reconnects.labels(self.link.name, "failed").inc()
            self.links_log.failure(self.link.name, error, transport=self.link.transport)
            raise _PollError("connect", f"cannot connect link {self.link.name}: {error}")
        self._backoff = self.link.reconnect_min_s
        self._next_connect_at = 0.0
        self.metrics.link_reconnects.labels(self.link.name, "ok").inc()
        self.metrics.link_connected.labels(self.link.name).set(1)
        self.links_log.success(self.link.name)
        if self.link.quirks.delay_after_connect_s:
            await asyncio.sleep(self.link.quirks.delay_after_connect_s)

    def _reset(self) -> None:
        """Drop the connection; the next request reconnects at once (no backoff)."""
        self.close()
        self._next_connect_at = 0.0

    # -------------------------------------------------------------------------- reads
    async def _pause(self) -> None:
        wait = self._last_request_end + self.link.pause_s - self._clock()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _read(self, request: ReadRequest, attempts: int) -> list[int]:
        last: _PollError | None = None
        for _ in range(attempts):
            await self._ensure_connected()
            await self._pause()
            assert self._client is not None
            self._requests[request.function_code].inc()
            try:
                return await asyncio.wait_for(self._client.read(request),
                                              self.link.timeout_s + _OUTER_GRACE_S)
            except DeviceExceptionError as exc:
                raise _PollError("exception", str(exc)) from None
            except TimeoutError:
                last = _PollError("timeout", f"no answer within {self.link.timeout_s} s")
            except Exception as exc:  # pymodbus ModbusIOException / ConnectionException, OSError
                if "No response" in str(exc) or "timeout" in str(exc).lower():
                    last = _PollError("timeout", f"no answer within {self.link.timeout_s} s")
                else:
                    self._reset()
                    raise _PollError("io", f"{type(exc).__name__}: {exc}") from None
            finally:
                self._last_request_end = self._clock()
            if self.link.reset_on_timeout:
                self._reset()
        assert last is not None
        raise last

    async def poll(self, plan: DevicePlan, tick: int) -> PollResult:
        """Read one device for the cycle that started at ``tick`` (epoch seconds)."""
        dev = plan.device
        async with self._lock:
            started = self._clock()
            if too_late(tick, self._wall(), dev.interval_s):
                self.metrics.polls.labels(dev.id, "skipped").inc()
                return PollResult(dev.id, tick, {}, None, "cycle overrun: skipped", True)
            attempts = 1 if self.devices_log.is_down(dev.id) else self.link.retries + 1
            try:
                responses = []
                for request in plan.requests:
                    responses.append((request, await self._read(request, attempts)))
                read_at = self._wall()
                try:
                    decoded = decode_plan(responses)
                except ValueError as exc:
                    raise _PollError("decode", str(exc)) from None
            except _PollError as exc:
                duration = self._clock() - started
                self.metrics.polls.labels(dev.id, "error").inc()
                self.metrics.device_errors.labels(dev.id, exc.kind).inc()
                self._poll_seconds.observe(duration)
                self.devices_log.failure(dev.id, str(exc), link=self.link.name, kind=exc.kind,
                                         unit_id=dev.unit_id)
                return PollResult(dev.id, tick, {}, None, str(exc), False, duration)
        duration = self._clock() - started
        values, missing = plan.meter_values(decoded)
        if missing:
            self.metrics.not_available.labels(dev.id).inc(len(missing))
        ok = self._polls_ok.get(dev.id)
        if ok is None:
            ok = self._polls_ok[dev.id] = self.metrics.polls.labels(dev.id, "ok")
        ok.inc()
        self._poll_seconds.observe(duration)
        self.devices_log.success(dev.id, link=self.link.name)
        return PollResult(dev.id, tick, values, read_at, None, False, duration)

    async def poll_all(self, plans: list[DevicePlan], tick: int) -> list[PollResult]:
        """Poll devices one after the other (the link carries one request at a time)."""
        results = [await self.poll(plan, tick) for plan in plans]
        if self.link.quirks.close_after_cycle:
            async with self._lock:
                self.close()
        return results
