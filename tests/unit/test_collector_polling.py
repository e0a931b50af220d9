"""LinkPoller against scripted fake clients: retries, timeouts, backoff, resets, skipping."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import pytest

from collector.config import parse_gateway
from collector.guard import ReadOnlyModbus
from collector.observability import CollectorMetrics, OutageLog
from collector.polling import DevicePlan, LinkPoller
from modbus import load_register_map
from tests.support.modbus_image import Unit


class FakeModbus:
    """A pymodbus-like client whose answers come from simulated units (or a behaviour)."""

    def __init__(self, units: dict[int, Unit], behaviour: str = "ok") -> None:
        self.units = units
        self.behaviour = behaviour  # ok | timeout | hang | refuse | exception
        self.connected = False
        self.connects = 0
        self.closes = 0
        self.reads: list[tuple[int, int, int]] = []

    async def connect(self) -> bool:
        self.connects += 1
        self.connected = self.behaviour != "refuse"
        return self.connected

    def close(self) -> None:
        self.closes += 1
        self.connected = False

    async def _read(self, fc: int, address: int, count: int, device_id: int) -> Any:
        self.reads.append((device_id, fc, address))
        if self.behaviour == "timeout":
            await asyncio.sleep(0.01)
            raise RuntimeError("No response received after 0 retries")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        if self.behaviour == "exception":
            return SimpleNamespace(isError=lambda: True, exception_code=2)
        data = self.units[device_id].read(fc, address, count)
        return SimpleNamespace(isError=lambda: False, registers=data, bits=data)

    async def read_holding_registers(self, address: int, *, count: int, device_id: int) -> Any:
        return await self._read(3, address, count, device_id)

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> Any:
        return await self._read(4, address, count, device_id)


def setup(link: dict[str, Any], devices: list[dict[str, Any]], fake: FakeModbus,
          clock: Any = time.monotonic) -> tuple[LinkPoller, list[DevicePlan], OutageLog]:
    gw = parse_gateway({"gateway": {"id": "gw", "plant": "p", "links": [link],
                                    "devices": devices}})
    devices_log = OutageLog("device")
    poller = LinkPoller(gw.links[0], CollectorMetrics(), devices_log, OutageLog("link"),
                        client_factory=lambda _link: ReadOnlyModbus(fake), clock=clock)
    return poller, [DevicePlan.build(d, gw.links[0]) for d in gw.devices], devices_log


def dev(id_: str, unit: int, model: str = "chint_dtsu666", field: str = "energy_import",
        **extra: Any) -> dict[str, Any]:
    return {"id": id_, "link": "l", "unit_id": unit, "model": model,
            "meters": [{"id": f"{id_}-m", "field": field}], **extra}


TCP = {"name": "l", "transport": "tcp", "host": "h", "timeout_s": 0.2, "retries": 2}


def test_reads_and_decodes() -> None:
    units = {1: Unit(1, "chint_dtsu666"), 2: Unit(2, "eastron_sdm630")}
    fake = FakeModbus(units)
    poller, plans, _ = setup(TCP, [dev("a", 1), dev("b", 2, "eastron_sdm630")], fake)
    results = asyncio.run(poller.poll_all(plans, int(time.time())))
    assert [r.values for r in results] == [
        {"a-m": units[1].values["energy_import"]}, {"b-m": units[2].values["energy_import"]}]
    assert all(r.error is None and r.read_at for r in results)
    assert fake.connects == 1  # one connection for the link, reused


def test_timeouts_are_retried_then_the_device_gets_one_attempt_per_cycle(
        caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")}, behaviour="timeout")
    poller, plans, devices_log = setup(TCP, [dev("a", 1)], fake)
    with caplog.at_level("INFO", logger="energymon.collector"):
        first = asyncio.run(poller.poll(plans[0], int(time.time())))
        assert first.error and "no answer" in first.error
        assert len(fake.reads) == 3  # 1 + retries
        assert devices_log.is_down("a")
        fake.reads.clear()
        asyncio.run(poller.poll(plans[0], int(time.time())))
        assert len(fake.reads) == 1  # known down: no retries to spare its link-mates
        fake.behaviour = "ok"
        ok = asyncio.run(poller.poll(plans[0], int(time.time())))
    assert ok.error is None and not devices_log.is_down("a")
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events == ["event=device_down", "event=device_up"]  # once down, once up
    assert fake.closes == 0  # TCP has transaction ids: no reset on timeout


def test_rtu_links_reset_after_a_timeout() -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")}, behaviour="timeout")
    link = {**TCP, "transport": "rtu_over_tcp", "retries": 1}
    poller, plans, _ = setup(link, [dev("a", 1)], fake)
    asyncio.run(poller.poll(plans[0], int(time.time())))
    assert fake.closes == 2 and fake.connects == 2  # reconnected at once for the retry


def test_exception_responses_are_not_retried() -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")}, behaviour="exception")
    poller, plans, _ = setup(TCP, [dev("a", 1)], fake)
    result = asyncio.run(poller.poll(plans[0], int(time.time())))
    assert result.error == "FC3 answered with exception code 2" and len(fake.reads) == 1


def test_a_hung_client_is_cut_off_by_the_outer_timeout() -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")}, behaviour="hang")
    poller, plans, _ = setup({**TCP, "retries": 0}, [dev("a", 1)], fake)
    started = time.monotonic()
    result = asyncio.run(poller.poll(plans[0], int(time.time())))
    assert result.error is not None
    assert time.monotonic() - started < 0.2 + 0.5 + 0.3


def test_reconnect_backoff_is_exponential_and_capped() -> None:
    now = [1000.0]
    fake = FakeModbus({}, behaviour="refuse")
    link = {**TCP, "reconnect_min_s": 1, "reconnect_max_s": 4}
    poller, plans, _ = setup(link, [dev("a", 1)], fake, clock=lambda: now[0])
    attempts_at = []
    for _ in range(40):  # one poll every 0.5 s for 20 s
        before = fake.connects
        result = asyncio.run(poller.poll(plans[0], int(time.time())))
        assert result.error is not None
        if fake.connects > before:
            attempts_at.append(now[0] - 1000.0)
        now[0] += 0.5
    gaps = [b - a for a, b in zip(attempts_at, attempts_at[1:], strict=False)]
    assert gaps[:3] == [1.0, 2.0, 4.0] and set(gaps[3:]) == {4.0}


def test_pause_between_requests() -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")})
    poller, plans, _ = setup({**TCP, "pause_s": 0.05}, [dev("a", 1)], fake)
    started = time.monotonic()
    for _ in range(4):
        asyncio.run(poller.poll(plans[0], int(time.time())))
    assert time.monotonic() - started >= 3 * 0.05


def test_a_poll_a_whole_interval_late_is_skipped() -> None:
    fake = FakeModbus({1: Unit(1, "chint_dtsu666")})
    poller, plans, _ = setup(TCP, [dev("a", 1, interval_s=60)], fake)
    result = asyncio.run(poller.poll(plans[0], int(time.time()) - 61))
    assert result.skipped and result.values == {} and fake.reads == []


def test_not_available_values_are_left_out() -> None:
    unit = Unit(1, "generic_flow_totaliser")
    rmap = load_register_map("generic_flow_totaliser")
    assert rmap.field("flow_total").sentinels
    unit.set_values(flow_total=None)
    fake = FakeModbus({1: unit})
    poller, plans, _ = setup(TCP, [dev("a", 1, "generic_flow_totaliser", "flow_total")], fake)
    result = asyncio.run(poller.poll(plans[0], int(time.time())))
    assert result.error is None and result.values == {}
