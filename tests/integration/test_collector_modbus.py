"""Collector against Modbus servers on loopback: decoding, transports, faults, read-only.

Servers: the project's simulator (:mod:`tests.support.sim_gateways`) for timeouts, slow and
exception answers and a gateway going away; fixed register images
(:mod:`tests.support.modbus_image`) where a test needs RTU framing or register contents of
its own choosing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.config import parse_gateway
from collector.gateway import Collector
from modbus import available_models, load_register_map
from modbus.codec import DataType
from tests.support.modbus_image import ModbusTestServer, ServerThread, Unit
from tests.support.sim_gateways import SimMeter, SimulatedGateways


@pytest.fixture
def servers() -> Iterator[ServerThread]:
    thread = ServerThread()
    yield thread
    thread.close()


@pytest.fixture
def simulators() -> Iterator[SimulatedGateways]:
    gateways = SimulatedGateways()
    yield gateways
    gateways.close()


class MinuteClock:
    """Wall time moved back to the minute boundary that has just passed when it was made.

    A cycle run at ``tick`` then reads "on time" whatever second of the minute the test starts
    at; with the real clock a test started at hh:mm:59 reads 59 s late and is ``suspect``.
    """

    def __init__(self) -> None:
        now = time.time()
        self.tick = int(now) // 60 * 60
        self._shift = now - self.tick

    def __call__(self) -> float:
        return time.time() - self._shift


def collector(tmp_path: Path, links: list[dict[str, Any]], devices: list[dict[str, Any]],
              wall: Any = time.time) -> Collector:
    gw = parse_gateway({"gateway": {"id": "gw", "plant": "p1", "links": links,
                                    "devices": devices,
                                    "spool": {"path": str(tmp_path / "spool.sqlite")}}})
    return Collector(gw, data_dir=tmp_path, mqtt=None, wall=wall)


def spooled(c: Collector) -> dict[str, tuple[str, float, str]]:
    """meter -> (ts, value, quality) of everything in the spool."""
    return {m: (ts, v, q) for b in c.spool.pending(10_000) for m, ts, v, q in b.readings}


def all_fields_device(model: str, dev_id: str, link: str, unit_id: int) -> dict[str, Any]:
    rmap = load_register_map(model)
    return {"id": dev_id, "link": link, "unit_id": unit_id, "model": model, "interval_s": 60,
            "meters": [{"id": f"{dev_id}.{f.name}", "field": f.name} for f in rmap.fields]}


def run_cycle(c: Collector, tick: int) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return await c.run_cycle(tick)
        finally:
            for link in c.links.values():
                link.close()
    return asyncio.run(go())


@pytest.mark.parametrize("transport", ["tcp", "rtu_over_tcp", "rtu"])
def test_every_meter_model_decodes_to_the_simulated_values(
        transport: str, servers: ServerThread, tmp_path: Path) -> None:
    """Every field of every shipped register map, over all three transports: the collector
    publishes exactly the engineering values the server encoded (word orders, scale registers,
    64-bit counters, floats, bits)."""
    models = available_models()
    units = [Unit(i, model) for i, model in enumerate(models, start=1)]
    framing = "tcp" if transport == "tcp" else "rtu"
    server = servers.start(ModbusTestServer(units, framing=framing))
    link: dict[str, Any] = {"name": "l", "transport": transport, "timeout_s": 2}
    if transport == "rtu":
        link["port"] = f"socket://127.0.0.1:{server.port}"  # RTU frames over a pyserial URL
    else:
        link.update(host="127.0.0.1", port=server.port)
    clock = MinuteClock()
    c = collector(tmp_path, [link],
                  [all_fields_device(u.model, f"d{u.unit_id}", "l", u.unit_id) for u in units],
                  wall=clock)
    results = run_cycle(c, clock.tick)
    assert [r.error for r in results] == [None] * len(units)
    got = spooled(c)
    checked = 0
    for unit in units:
        rmap = load_register_map(unit.model)
        for f in rmap.fields:
            expected = unit.values[f.name]
            value = got[f"d{unit.unit_id}.{f.name}"][1]
            if f.dtype is DataType.FLOAT32:
                assert value == pytest.approx(float(expected), rel=1e-6), (unit.model, f.name)
            else:
                assert value == float(expected), (unit.model, f.name)
            checked += 1
    assert checked == sum(len(load_register_map(m).fields) for m in models)
    assert server.function_codes <= {1, 2, 3, 4}
    ts, _, quality = next(iter(got.values()))
    assert ts.endswith("+00:00") and quality == "good"
    c.spool.close()


def test_counter_word_order_and_rollover_edges(servers: ServerThread, tmp_path: Path) -> None:
    """Counters near their declared widths decode unsigned and exact (no sign or word mix-up)."""
    flow = Unit(1, "generic_flow_totaliser")
    flow.set_values(flow_total=429496729.4)  # 0xFFFFFFFE × 0.1, one step before the sentinel
    adl = Unit(2, "acrel_adl400")
    adl.set_values(energy_import=42949672.94)  # uint32 max - 1 in 0.01 kWh
    belt = Unit(3, "generic_belt_scale")
    belt.set_values(production_total=9999999999.98)  # just below rollover 999999999999 raw
    server = servers.start(ModbusTestServer([flow, adl, belt]))
    clock = MinuteClock()
    c = collector(tmp_path, [{"name": "l", "transport": "tcp", "host": "127.0.0.1",
                              "port": server.port}],
                  [{"id": "f", "link": "l", "unit_id": 1, "model": "generic_flow_totaliser",
                    "interval_s": 60, "meters": [{"id": "f", "field": "flow_total"}]},
                   {"id": "a", "link": "l", "unit_id": 2, "model": "acrel_adl400",
                    "interval_s": 60, "meters": [{"id": "a", "field": "energy_import"}]},
                   {"id": "b", "link": "l", "unit_id": 3, "model": "generic_belt_scale",
                    "interval_s": 60, "meters": [{"id": "b", "field": "production_total"}]}],
                  wall=clock)
    run_cycle(c, clock.tick)
    got = spooled(c)
    assert got["f"][1] == 429496729.4
    assert got["a"][1] == 42949672.94
    assert got["b"][1] == 9999999999.98
    c.spool.close()


def test_a_device_that_times_out_does_not_delay_the_others(
        simulators: SimulatedGateways, tmp_path: Path) -> None:
    """One silent device (timeout 1 s, 1 retry) on link A; link B's five devices finish well
    within their own 1 s timeout, and A's healthy device waits at most the silent one's
    (retries + 1) × timeout."""
    silent = SimMeter(1, "chint_dtsu666", faults=[{"kind": "offline"}])
    a_ok = SimMeter(2, "chint_dtsu666")
    b_units = [SimMeter(i, "eastron_sdm630", faults=[{"kind": "slow", "delay": 0.02}])
               for i in range(1, 6)]
    server_a = simulators.start([silent, a_ok])
    server_b = simulators.start(b_units)
    links = [{"name": "a", "transport": "tcp", "host": "127.0.0.1", "port": server_a.port,
              "timeout_s": 1.0, "retries": 1},
             {"name": "b", "transport": "tcp", "host": "127.0.0.1", "port": server_b.port,
              "timeout_s": 1.0, "retries": 1}]
    devices = [{"id": "silent", "link": "a", "unit_id": 1, "model": "chint_dtsu666",
                "interval_s": 60, "meters": [{"id": "silent", "field": "energy_import"}]},
               {"id": "a-ok", "link": "a", "unit_id": 2, "model": "chint_dtsu666",
                "interval_s": 60, "meters": [{"id": "a-ok", "field": "energy_import"}]}]
    devices += [{"id": f"b{u.unit_id}", "link": "b", "unit_id": u.unit_id,
                 "model": "eastron_sdm630", "interval_s": 60,
                 "meters": [{"id": f"b{u.unit_id}", "field": "energy_import"}]} for u in b_units]
    c = collector(tmp_path, links, devices)

    async def cycle() -> tuple[list[Any], float]:
        # a cycle started in a minute's last seconds would poll the healthy device (after the
        # silent one's 2 s) past its interval, and skip it as an overrun: not what this test
        # is about, so start each cycle early in a minute
        if time.time() % 60 > 50:
            await asyncio.sleep(60.5 - time.time() % 60)
        started = time.time()
        results = await c.run_cycle(int(started) // 60 * 60)
        return results, started

    async def go() -> list[tuple[list[Any], float]]:
        out = [await cycle(), await cycle()]
        for link in c.links.values():
            link.close()
        return out

    (first, t1), (second, t2) = asyncio.run(go())
    by_id = {r.device: r for r in first}
    assert by_id["silent"].error is not None and by_id["silent"].read_at is None
    for i in range(1, 6):  # link B never waited for link A
        r = by_id[f"b{i}"]
        assert r.error is None and r.read_at - t1 < 1.0, (r.device, r.read_at - t1)
    assert by_id["silent"].duration_s == pytest.approx(2.0, abs=0.6)  # (1 + 1 retry) × 1 s
    assert by_id["a-ok"].error is None and by_id["a-ok"].read_at - t1 < 2.0 + 1.0
    # known down: one attempt next cycle, so its link-mate waits one timeout only
    by_id2 = {r.device: r for r in second}
    assert by_id2["silent"].duration_s == pytest.approx(1.0, abs=0.5)
    assert by_id2["a-ok"].read_at - t2 < 1.0 + 1.0
    assert set(spooled(c)) == {"a-ok", "b1", "b2", "b3", "b4", "b5"}
    c.spool.close()


def test_reconnects_after_the_server_comes_back(simulators: SimulatedGateways, tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    server = simulators.start([SimMeter(1, "acrel_adl400")])
    port = server.port
    c = collector(tmp_path, [{"name": "l", "transport": "tcp", "host": "127.0.0.1",
                              "port": port, "timeout_s": 0.5, "retries": 0,
                              "reconnect_min_s": 0.2, "reconnect_max_s": 0.4}],
                  [{"id": "d", "link": "l", "unit_id": 1, "model": "acrel_adl400",
                    "interval_s": 1, "meters": [{"id": "e", "field": "energy_import"}]}])

    async def go() -> list[str | None]:
        errors: list[str | None] = []
        for step in range(12):
            if step == 2:
                await asyncio.to_thread(server.stop)
            if step == 6:
                await asyncio.to_thread(server.start)  # the same port again
            (r,) = await c.run_cycle(int(time.time()))
            errors.append(r.error)
            await asyncio.sleep(0.25)
        for link in c.links.values():
            link.close()
        return errors

    with caplog.at_level("INFO", logger="energymon.collector"):
        errors = asyncio.run(go())
    assert errors[:2] == [None, None]
    assert all(e is not None for e in errors[2:6])
    assert errors[-1] is None and errors[-2] is None  # back within the capped backoff
    events = [r.getMessage().split()[0] for r in caplog.records]
    assert events.count("event=device_down") == 1 and events.count("event=device_up") == 1
    assert events.count("event=link_down") == 1 and events.count("event=link_up") == 1
    c.spool.close()


def test_exception_responses_and_late_reads(simulators: SimulatedGateways,
                                            tmp_path: Path) -> None:
    broken = SimMeter(1, "chint_dtsu666", faults=[{"kind": "exception", "code": 4}])
    slow = SimMeter(2, "chint_dtsu666", faults=[{"kind": "slow", "delay": 0.3}])
    server = simulators.start([broken, slow])
    c = collector(tmp_path, [{"name": "l", "transport": "tcp", "host": "127.0.0.1",
                              "port": server.port, "timeout_s": 1}],
                  [{"id": "broken", "link": "l", "unit_id": 1, "model": "chint_dtsu666",
                    "interval_s": 1, "meters": [{"id": "x", "field": "energy_import"}]},
                   {"id": "slow", "link": "l", "unit_id": 2, "model": "chint_dtsu666",
                    "interval_s": 1, "late_after_s": 0.2,
                    "meters": [{"id": "y", "field": "energy_import"}]}])
    results = run_cycle(c, int(time.time()))
    assert results[0].error == "FC3 answered with exception code 4"
    assert server.requests.count((1, 3)) == 1  # not retried
    got = spooled(c)
    assert set(got) == {"y"} and got["y"][2] == "suspect"  # read 0.3 s after its boundary
    assert server.function_codes <= {1, 2, 3, 4}
    c.spool.close()


def test_prometheus_metrics_endpoint(simulators: SimulatedGateways, tmp_path: Path) -> None:
    import urllib.request

    from core.ports import free_port

    ok = SimMeter(1, "acrel_adl400")
    silent = SimMeter(2, "acrel_adl400", faults=[{"kind": "offline"}])
    server = simulators.start([ok, silent])
    c = collector(tmp_path, [{"name": "l", "transport": "tcp", "host": "127.0.0.1",
                              "port": server.port, "timeout_s": 0.3, "retries": 0}],
                  [{"id": "ok", "link": "l", "unit_id": 1, "model": "acrel_adl400",
                    "interval_s": 1, "meters": [{"id": "e1", "field": "energy_import"}]},
                   {"id": "silent", "link": "l", "unit_id": 2, "model": "acrel_adl400",
                    "interval_s": 1, "meters": [{"id": "e2", "field": "energy_import"}]}])
    port = free_port()
    http = c.metrics.serve(port)
    try:
        run_cycle(c, int(time.time()))
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read() \
            .decode()
    finally:
        http.shutdown()
        c.spool.close()
    for line in (
        'energymon_collector_polls_total{device="ok",result="ok"} 1.0',
        'energymon_collector_polls_total{device="silent",result="error"} 1.0',
        'energymon_collector_device_errors_total{device="silent",kind="timeout"} 1.0',
        "energymon_collector_spool_depth_readings 1.0",
        'energymon_collector_modbus_requests_total{function_code="3",link="l"} 2.0',
        'energymon_collector_spool_dropped_readings_total{policy="drop_oldest"} 0.0',
        "energymon_collector_published_messages_total 0.0",
        "energymon_collector_acked_messages_total 0.0",
    ):
        assert line in text, line
    age = next(x for x in text.splitlines()
               if x.startswith("energymon_collector_oldest_unsent_age_seconds "))
    assert 0 <= float(age.split()[1]) < 5
