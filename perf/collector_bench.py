"""Collector polling throughput, measured next to a naive sequential pymodbus loop in one run.

Run manually (about a minute): ``.venv/bin/python perf/collector_bench.py``.

The simulated meters are minimal asyncio Modbus TCP responders (``perf/modbus_stub.py``:
fixed registers encoded with the shared register maps and codec; its docstring says why not the
project's simulator, which costs several times the CPU per request) running in a **separate
process**, so the collector's process does nothing but collect. Each simulated link is one TCP
port (a plant gateway) with unit ids 1..n behind it; every device is an Acrel ADL400 read for
one meter (``energy_import``: one coalesced FC3 request per poll).

Scenarios (each run ``--repeat`` times, median reported):

(a) throughput: ``--devices`` devices (default 2 000) on ``--links`` links, no latency. The
    real :class:`collector.gateway.Collector` runs whole cycles (poll, decode, timestamp,
    spool commit); rate = devices per second of cycle wall time. Target: >= 2 000 devices/s.
(b) latency: 1 000 devices on 50 links, 20 ms simulated device latency. Target: a full cycle
    within 15 s.

Anchor for both: the naive loop most scripts are: one synchronous ``ModbusTcpClient`` per link,
every device polled one after the other, same request, same decoding.

Prints a table and writes ``perf/results/collector.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from collector.config import parse_gateway  # noqa: E402
from collector.gateway import Collector  # noqa: E402
from modbus import decode_plan, load_register_map, plan_reads  # noqa: E402

MODEL = "acrel_adl400"
FIELD = "energy_import"
GOALS = {"throughput_devices_per_s": 2000, "latency_cycle_s": 15.0}


# -- simulated meters (own process) ---------------------------------------------------------
def _serve(links: int, per_link: int, latency_s: float, conn: Any) -> None:
    from perf.modbus_stub import StubGateway, register_image

    async def main() -> None:
        servers = []
        for _ in range(links):
            units = {u: register_image(MODEL, {FIELD: 123_456.78 + u})
                     for u in range(1, per_link + 1)}
            server = StubGateway(units, latency_s=latency_s)
            await server.start()
            servers.append(server)
        conn.send([s.port for s in servers])
        await asyncio.Event().wait()

    asyncio.run(main())


class Simulators:
    def __init__(self, links: int, per_link: int, latency_s: float) -> None:
        parent, child = mp.Pipe()
        self.proc = mp.get_context("fork").Process(
            target=_serve, args=(links, per_link, latency_s, child), daemon=True)
        self.proc.start()
        deadline = time.monotonic() + 60
        while not parent.poll(0.2):
            if not self.proc.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulators did not start")
        self.ports: list[int] = parent.recv()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


# -- the two pollers ------------------------------------------------------------------------
def gateway(ports: list[int], per_link: int, spool: Path) -> Any:
    links = [{"name": f"l{i}", "transport": "tcp", "host": "127.0.0.1", "port": port,
              "timeout_s": 2.0, "retries": 0} for i, port in enumerate(ports)]
    devices = [{"id": f"d{i}-{u}", "link": f"l{i}", "unit_id": u, "model": MODEL,
                "interval_s": 3600, "meters": [{"id": f"m{i}-{u}", "field": FIELD}]}
               for i in range(len(ports)) for u in range(1, per_link + 1)]
    return parse_gateway({"gateway": {"id": "gw-bench", "plant": "bench", "links": links,
                                      "devices": devices,
                                      "spool": {"path": str(spool),
                                                "capacity_readings": 50_000_000}}})


def run_collector(ports: list[int], per_link: int, cycles: int) -> list[dict[str, float]]:
    """Whole collector cycles; returns wall time, CPU time and readings per cycle."""
    with tempfile.TemporaryDirectory() as tmp:
        gw = gateway(ports, per_link, Path(tmp) / "spool.sqlite")
        c = Collector(gw, data_dir=Path(tmp), mqtt=None)
        out: list[dict[str, float]] = []

        async def go() -> None:
            tick = int(time.time()) // 3600 * 3600
            await c.run_cycle(tick)  # warm-up: connects every link
            for _ in range(cycles):
                before = c.spool.stats().depth
                cpu, wall = time.process_time(), time.perf_counter()
                results = await c.run_cycle(tick)
                wall = time.perf_counter() - wall
                cpu = time.process_time() - cpu
                errors = sum(1 for r in results if r.error)
                out.append({"wall_s": wall, "cpu_s": cpu, "devices": len(results),
                            "readings": c.spool.stats().depth - before, "errors": errors})
            for link in c.links.values():
                link.close()

        asyncio.run(go())
        c.spool.close()
        return out


def run_naive(ports: list[int], per_link: int) -> dict[str, float]:
    """One synchronous pymodbus client per link, every device one after the other."""
    from pymodbus.client import ModbusTcpClient

    request = plan_reads(load_register_map(MODEL), 1, select=[FIELD])[0]
    clients = [ModbusTcpClient("127.0.0.1", port=p, timeout=2, retries=0) for p in ports]
    for cl in clients:
        cl.connect()
    values = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for cl in clients:
        for unit in range(1, per_link + 1):
            rr = cl.read_holding_registers(request.address, count=request.count,
                                           device_id=unit)
            decoded = decode_plan([(request, rr.registers)])
            values += decoded[FIELD] is not None
    wall = time.perf_counter() - wall
    cpu = time.process_time() - cpu
    for cl in clients:
        cl.close()
    return {"wall_s": wall, "cpu_s": cpu, "devices": len(ports) * per_link, "readings": values}


def scenario(name: str, links: int, per_link: int, latency_s: float, repeat: int
             ) -> dict[str, Any]:
    sims = Simulators(links, per_link, latency_s)
    try:
        ours = run_collector(sims.ports, per_link, repeat)
        naive = [run_naive(sims.ports, per_link) for _ in range(max(1, repeat // 2))]
    finally:
        sims.stop()
    devices = links * per_link
    wall = statistics.median(r["wall_s"] for r in ours)
    naive_wall = statistics.median(r["wall_s"] for r in naive)
    return {
        "scenario": name, "links": links, "devices": devices, "latency_ms": latency_s * 1000,
        "requests_per_poll": 1,
        "collector_cycle_s": round(wall, 3),
        "collector_devices_per_s": round(devices / wall, 1),
        "collector_cpu_s_per_cycle": round(statistics.median(r["cpu_s"] for r in ours), 3),
        "collector_errors": max(r["errors"] for r in ours),
        "collector_readings_per_cycle": min(r["readings"] for r in ours),
        "naive_cycle_s": round(naive_wall, 3),
        "naive_devices_per_s": round(devices / naive_wall, 1),
        "speedup": round(naive_wall / wall, 2),
        "runs": {"collector": ours, "naive": naive},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--links", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_link = max(1, args.devices // args.links)
    results = [
        scenario("throughput", args.links, per_link, 0.0, args.repeat),
        scenario("latency_20ms", 50, 20, 0.020, args.repeat),
    ]
    print(f"\n{'scenario':<14}{'devices':>8}{'links':>6}{'lat ms':>7}"
          f"{'ours cycle s':>13}{'ours dev/s':>11}{'ours cpu s':>11}"
          f"{'naive cycle s':>14}{'naive dev/s':>12}{'ratio':>7}")
    for r in results:
        print(f"{r['scenario']:<14}{r['devices']:>8}{r['links']:>6}{r['latency_ms']:>7.0f}"
              f"{r['collector_cycle_s']:>13.3f}{r['collector_devices_per_s']:>11.0f}"
              f"{r['collector_cpu_s_per_cycle']:>11.3f}{r['naive_cycle_s']:>14.3f}"
              f"{r['naive_devices_per_s']:>12.0f}{r['speedup']:>7.1f}x")
    through, latency = results
    verdict = {
        "throughput_devices_per_s": through["collector_devices_per_s"],
        "throughput_goal": GOALS["throughput_devices_per_s"],
        "throughput_met": through["collector_devices_per_s"] >= GOALS["throughput_devices_per_s"],
        "latency_cycle_s": latency["collector_cycle_s"],
        "latency_goal_s": GOALS["latency_cycle_s"],
        "latency_met": latency["collector_cycle_s"] <= GOALS["latency_cycle_s"],
    }
    print("\n" + "  ".join(f"{k}={v}" for k, v in verdict.items()))
    out = ROOT / "perf" / "results" / "collector.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "verdict": verdict, "scenarios": results}, indent=2) + "\n")
    print(f"results written to {out.relative_to(ROOT)}")
    return 0 if verdict["throughput_met"] and verdict["latency_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
