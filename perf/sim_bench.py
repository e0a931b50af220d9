"""Simulator performance harness (not a test): Modbus TCP meters served by one process, and
the MQTT simulator's publish rate to a local Mosquitto.

    .venv/bin/python perf/sim_bench.py                  # both parts, defaults below
    .venv/bin/python perf/sim_bench.py --skip-mqtt --modbus-meters 2000

Modbus: a synthetic fleet of ``--modbus-meters`` meters (``--modbus-ports`` plants, one port
each, one unit id per meter, Acrel / CHINT / Eastron / flow-totaliser / belt-scale maps) served
by ONE child process; the parent polls every meter with the collector's request plan
(``modbus.plan_reads``, 1-3 requests per meter) over ``--clients`` concurrent TCP
connections for ``--seconds`` seconds. Reported: requests/s, meter polls/s, the time of the
first full cycle over all meters, errors, the server's RSS.

MQTT: a synthetic fleet of ``--mqtt-plants`` × ``--mqtt-meters`` meters publishing one batch
per plant per 15-minute interval (QoS 1) for ``--mqtt-intervals`` intervals, as fast as the
broker acknowledges. Reported: readings/s end to end (model + JSON + publish + broker acks),
and the plan (model + JSON) and publish rates separately.

Results are printed and written to perf/results/sim.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RESULTS = ROOT / "perf" / "results" / "sim.json"
READ = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers",
        4: "read_input_registers"}


# ------------------------------------------------------------------------------ Modbus


def _serve(plants: int, per_plant: int, queue: mp.Queue, stop: mp.Event) -> None:
    """Child process: one ModbusFleetServer for the whole synthetic fleet."""
    from simulators.clock import SimClock
    from simulators.modbus_server import ModbusFleetServer
    from simulators.model import FleetModel
    from simulators.synthetic import synthetic_fleet

    model = FleetModel(synthetic_fleet(plants, per_plant))
    server = ModbusFleetServer(model, SimClock(), ports=dict.fromkeys(model.plants, 0))
    endpoints = server.start_in_thread()
    queue.put({p: (e.host, e.port, e.unit_ids) for p, e in endpoints.items()})
    stop.wait()
    stats = server.stats
    queue.put({"requests": stats.requests, "answered": stats.answered,
               "rss_mb": _rss_mb(os.getpid())})
    server.stop()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


async def _poll_loop(host: str, port: int, jobs: list[tuple[int, list]], deadline: float,
                     counters: dict[str, float], polled: set[tuple[int, int]]) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(host, port=port, timeout=5, retries=0)
    await client.connect()
    try:
        while time.perf_counter() < deadline:
            for unit_id, plan in jobs:
                ok = True
                for request in plan:
                    try:
                        rr = await getattr(client, READ[request.function_code])(
                            request.address, count=request.count, device_id=unit_id)
                        counters["requests"] += 1
                        if rr.isError():
                            ok = False
                    except Exception:  # counted; the loop goes on
                        counters["errors"] += 1
                        ok = False
                if ok:
                    counters["polls"] += 1
                    key = (port, unit_id)
                    if key not in polled:
                        polled.add(key)
                        if len(polled) == counters["meters"]:
                            counters["first_cycle_s"] = time.perf_counter() - counters["t0"]
                else:
                    counters["failed_polls"] += 1
                if time.perf_counter() >= deadline:
                    break
    finally:
        client.close()


def bench_modbus(meters: int, ports: int, clients: int, seconds: float) -> dict[str, object]:
    from modbus import load_register_map, plan_reads
    from simulators.synthetic import synthetic_fleet_data

    per_plant = max(2, meters // ports)
    data = synthetic_fleet_data(ports, per_plant)
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_serve, args=(ports, per_plant, queue, stop), daemon=True)
    t_start = time.perf_counter()
    proc.start()
    endpoints = queue.get(timeout=300)
    startup = time.perf_counter() - t_start
    plans: dict[str, list[tuple[int, list]]] = {}
    for plant in data["plants"]:
        host, port, unit_ids = endpoints[plant["id"]]
        jobs = []
        for meter in plant["meters"]:
            rmap = load_register_map(meter["model"])
            uid = unit_ids[meter["id"]]
            jobs.append((uid, list(plan_reads(rmap, uid))))
        plans[plant["id"]] = jobs
    total_meters = sum(len(j) for j in plans.values())
    counters: dict[str, float] = {"requests": 0, "polls": 0, "errors": 0, "failed_polls": 0,
                                  "meters": total_meters, "first_cycle_s": float("nan")}
    per_port = max(1, clients // ports)

    async def run() -> float:
        polled: set[tuple[int, int]] = set()
        counters["t0"] = time.perf_counter()
        deadline = counters["t0"] + seconds
        tasks = []
        for plant_id, jobs in plans.items():
            host, port, _ = endpoints[plant_id]
            size = -(-len(jobs) // per_port)           # contiguous shares: every model mixed
            for c in range(per_port):
                share = jobs[c * size:(c + 1) * size]
                tasks.append(_poll_loop(host, port, share, deadline, counters, polled))
        await asyncio.gather(*tasks)
        return time.perf_counter() - counters["t0"]

    elapsed = asyncio.run(run())
    stop.set()
    server = queue.get(timeout=60)
    proc.join(30)
    requests_per_meter = sum(len(p) for j in plans.values() for _, p in j) / total_meters
    return {
        "meters_served": total_meters,
        "ports": ports,
        "concurrent_connections": per_port * ports,
        "requests_per_meter_poll": round(requests_per_meter, 2),
        "seconds": round(elapsed, 2),
        "requests_per_s": round(counters["requests"] / elapsed, 1),
        "meter_polls_per_s": round(counters["polls"] / elapsed, 1),
        "full_cycles_per_s": round(counters["requests"] / elapsed / requests_per_meter
                                   / total_meters, 2),
        "first_full_cycle_s": round(counters["first_cycle_s"], 2),
        "errors": int(counters["errors"]),
        "failed_polls": int(counters["failed_polls"]),
        "server_requests": server["requests"],
        "server_answered": server["answered"],
        "server_rss_mb": round(server["rss_mb"], 1),
        "server_startup_s": round(startup, 2),
    }


# ------------------------------------------------------------------------------ MQTT


def bench_mqtt(plants: int, per_plant: int, intervals: int, chunk: int) -> dict[str, object]:
    from app.devservices.broker import Mosquitto
    from core.settings import MqttEndpoint
    from simulators.model import STEP_S, FleetModel
    from simulators.mqtt_publisher import MqttPublisher, PlantFeed, merge_plans
    from simulators.synthetic import synthetic_fleet

    t0 = time.perf_counter()
    model = FleetModel(synthetic_fleet(plants, per_plant, transport="mqtt"))
    feeds = [PlantFeed(model, p, faults=False) for p in model.plants]
    build = time.perf_counter() - t0
    k0 = int(time.time() // STEP_S) - intervals - 1
    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        broker = Mosquitto(Path(tmp) / "mosquitto", persistence=False)
        broker.start()
        try:
            publisher = MqttPublisher(MqttEndpoint.parse(broker.url), client_id="sim-bench")
            publisher.connect()
            plan_s = publish_s = 0.0
            readings = messages = payload_bytes = 0
            start = time.perf_counter()
            for c0 in range(k0, k0 + intervals, chunk):
                c1 = min(k0 + intervals, c0 + chunk)
                a = time.perf_counter()
                msgs = merge_plans(feeds, c0, c1)
                b = time.perf_counter()
                for msg in msgs:
                    publisher.publish(msg)
                    readings += msg.readings
                    payload_bytes += len(msg.payload)
                messages += len(msgs)
                plan_s += b - a
                publish_s += time.perf_counter() - b
            a = time.perf_counter()
            publisher.flush()
            publish_s += time.perf_counter() - a
            total = time.perf_counter() - start
            publisher.close()
        finally:
            broker.stop()
    return {
        "plants": plants,
        "meters": plants * per_plant,
        "intervals": intervals,
        "messages": messages,
        "readings": readings,
        "mean_payload_kb": round(payload_bytes / max(messages, 1) / 1024, 1),
        "qos": 1,
        "seconds": round(total, 2),
        "readings_per_s": round(readings / total),
        "plan_readings_per_s": round(readings / plan_s),
        "publish_readings_per_s": round(readings / publish_s),
        "model_build_s": round(build, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modbus-meters", type=int, default=1000)
    parser.add_argument("--modbus-ports", type=int, default=10)
    parser.add_argument("--clients", type=int, default=40, help="concurrent Modbus connections")
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--mqtt-plants", type=int, default=100)
    parser.add_argument("--mqtt-meters", type=int, default=200)
    parser.add_argument("--mqtt-intervals", type=int, default=96)
    parser.add_argument("--mqtt-chunk", type=int, default=8)
    parser.add_argument("--skip-modbus", action="store_true")
    parser.add_argument("--skip-mqtt", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if not args.skip_modbus:
        results["modbus"] = bench_modbus(args.modbus_meters, args.modbus_ports, args.clients,
                                         args.seconds)
        print("modbus:", json.dumps(results["modbus"], indent=2))
    if not args.skip_mqtt:
        results["mqtt"] = bench_mqtt(args.mqtt_plants, args.mqtt_meters, args.mqtt_intervals,
                                     args.mqtt_chunk)
        print("mqtt:", json.dumps(results["mqtt"], indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
