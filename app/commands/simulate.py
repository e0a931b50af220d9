"""``energymon simulate modbus | mqtt | backfill | truth`` .

- ``modbus``: serve every Modbus-simulated plant of the fleet (one port per plant, one unit id
  per meter) at simulated time ``--start`` (default now) running ``--speed`` times real time;
- ``mqtt``: publish the MQTT-pushing plants' readings to the broker (``--url`` or
  ``ENERGYMON_MQTT_URL``); ``--all-plants`` publishes every plant as gateway batches;
- ``backfill --days N``: history up to ``--end`` (default now) by binary COPY into the
  database (``--via copy``, default) or published to the broker (``--via mqtt``);
- ``truth``: write the ground truth of a period and print each unit's true intensity and
  verdict.

Every subcommand accepts ``--truth FILE`` (``truth`` calls it ``--out``) to write what it
generated.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.commands import Subparsers
from app.runtime import database_url
from core.contract import NaiveTimestampError, aware_datetime
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from core.settings import MqttEndpoint, Settings
from fleet import FleetError, load_fleet
from fleet.checks import cross_check
from fleet.examples import example_fleet_path
from simulators.backfill import RegistryMissing, backfill_copy, backfill_mqtt
from simulators.clock import SimClock
from simulators.modbus_server import ModbusFleetServer
from simulators.model import FleetModel, SimulationError
from simulators.mqtt_publisher import MqttPublisher, feeds_for
from simulators.truth import compute_truth, summarise, write_summary, write_truth


def _parse_time(text: str | None, default: datetime | None = None) -> datetime:
    if text is None:
        return default or datetime.now(UTC)
    try:
        return aware_datetime(text)
    except NaiveTimestampError:
        raise ValueError(f"{text!r}: give a UTC offset, e.g. 2026-01-01T08:00:00+08:00") from None


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of ``energymon simulate``."""
    path = args.fleet or str(example_fleet_path())
    try:
        fleet = load_fleet(path)
        problems = cross_check(fleet)
        if problems:
            raise FleetError(path, problems)
        plants = args.plants.split(",") if args.plants else None
        model = FleetModel(fleet, seed=args.seed, plants=plants)
    except (FleetError, SimulationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not model.plants:
        print(f"error: {path}: no plant has a simulation block", file=sys.stderr)
        return EXIT_CONFIG
    handler = {"modbus": _modbus, "mqtt": _mqtt, "backfill": _backfill,
               "truth": _truth}[args.simulate_command]
    try:
        return handler(settings, args, model)
    except (SimulationError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


def _write_truth(model: FleetModel, path: str | None, start: float, end: float,
                 plants: list[str] | None = None) -> None:
    if not path:
        return

    k0, k1 = model.k_range(start, end)
    truth = compute_truth(model, k0, k1, plants)
    rows = write_truth(model, truth, path)
    print(f"ground truth: {rows} rows, {k1 - k0} interval(s) -> {path}")


def _wait(duration: float | None) -> None:
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait(duration) if duration is not None else stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _modbus(settings: Settings, args: argparse.Namespace, model: FleetModel) -> int:
    start = _parse_time(args.start)
    clock = SimClock(start, speed=args.speed)
    names = [p for p, pm in model.plants.items() if pm.transport.type == "modbus"]
    if not names:
        print("error: no plant of the fleet is simulated over Modbus", file=sys.stderr)
        return EXIT_CONFIG
    ports = dict.fromkeys(names, 0) if args.free_ports else None
    server = ModbusFleetServer(model, clock, plants=names, host=args.host, ports=ports,
                               faults=not args.no_faults)
    try:
        endpoints = server.start_in_thread()
    except OSError as exc:
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    meters = sum(len(e.unit_ids) for e in endpoints.values())
    print(f"simulating {meters} Modbus meters of {len(endpoints)} plants from "
          f"{start.isoformat()} at {args.speed:g}x real time")
    for ep in endpoints.values():
        units = ", ".join(f"{m}={u}" for m, u in ep.unit_ids.items())
        print(f"  {ep.plant:<24} {ep.host}:{ep.port}  unit ids: {units}")
    if args.endpoints:
        Path(args.endpoints).write_text(json.dumps(
            {p: {"host": e.host, "port": e.port, "unit_ids": e.unit_ids}
             for p, e in endpoints.items()}, indent=2) + "\n")
    sys.stdout.flush()
    t0 = clock.now()
    try:
        _wait(args.duration)
    finally:
        server.stop()
    st = server.stats
    print(f"served {st.answered} of {st.requests} requests; faults: {dict(st.faults) or 'none'}; "
          f"writes refused: {st.writes_refused}")
    _write_truth(model, args.truth, t0, clock.now(), names)
    return EXIT_OK


def _endpoint(settings: Settings, url: str | None) -> MqttEndpoint | None:
    if url:
        return MqttEndpoint.parse(url)
    return settings.mqtt


def _mqtt(settings: Settings, args: argparse.Namespace, model: FleetModel) -> int:
    endpoint = _endpoint(settings, args.url)
    if endpoint is None:
        print("error: no broker: give --url or set ENERGYMON_MQTT_URL", file=sys.stderr)
        return EXIT_CONFIG
    names = list(model.plants) if args.all_plants else [
        p for p, pm in model.plants.items() if pm.transport.type == "mqtt"]
    if not names:
        print("error: no plant of the fleet pushes MQTT (use --all-plants)", file=sys.stderr)
        return EXIT_CONFIG
    start = _parse_time(args.start)
    clock = SimClock(start, speed=args.speed)
    feeds = feeds_for(model, names, faults=not args.no_faults, mode=args.mode)
    publisher = MqttPublisher(endpoint, client_id=f"energymon-sim-{int(time.time())}")
    try:
        publisher.connect()
    except (OSError, ConnectionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"publishing {len(names)} plant(s) to {endpoint.host}:{endpoint.port} from "
          f"{start.isoformat()} at {args.speed:g}x real time: {', '.join(names)}")
    sys.stdout.flush()
    stop = threading.Event()
    t0 = clock.now()
    until = t0 + args.duration * args.speed if args.duration is not None else None
    try:
        publisher.run(feeds, clock, until=until, stop=stop)
    except KeyboardInterrupt:
        stop.set()
    finally:
        publisher.close()
    st = publisher.stats
    print(f"published {st.messages} messages, {st.readings} readings; faults: "
          f"{st.faults or 'none'}")
    _write_truth(model, args.truth, t0, clock.now(), names)
    return EXIT_OK


def _backfill(settings: Settings, args: argparse.Namespace, model: FleetModel) -> int:
    end = _parse_time(args.end)
    start = end - timedelta(days=args.days)
    k0, k1 = model.k_range(start, end)
    names = list(model.plants)
    if args.via == "mqtt":
        endpoint = _endpoint(settings, args.url)
        if endpoint is None:
            print("error: no broker: give --url or set ENERGYMON_MQTT_URL", file=sys.stderr)
            return EXIT_CONFIG
        result = backfill_mqtt(model, endpoint, k0, k1, plants=names,
                               faults=not args.no_faults, progress=not args.no_progress)
        print(f"published {result.messages} messages with {result.rows} readings in "
              f"{result.seconds:.1f} s")
    else:
        try:
            result = backfill_copy(model, database_url(settings), k0, k1, plants=names,
                                   faults=not args.no_faults, progress=not args.no_progress)
        except RegistryMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"backfill {start.isoformat()} .. {end.isoformat()}: {result.rows} readings "
              f"generated, {result.inserted} stored, {result.dropped} left out by faults, "
              f"{result.seconds:.1f} s ({result.rows / max(result.seconds, 1e-9):,.0f} rows/s)")
    _write_truth(model, args.truth, start.timestamp(), end.timestamp(), names)
    return EXIT_OK


def _truth(settings: Settings, args: argparse.Namespace, model: FleetModel) -> int:
    end = _parse_time(args.end)
    start = _parse_time(args.start) if args.start else end - timedelta(days=args.days)
    k0, k1 = model.k_range(start, end)
    truth = compute_truth(model, k0, k1)
    if args.out:
        rows = write_truth(model, truth, args.out)
        print(f"ground truth: {rows} rows, {k1 - k0} interval(s) -> {args.out}")
    summary = summarise(truth)
    print(f"{'plant':<22} {'unit':<10} {'output':>12} {'intensity':>12} {'unit':<16} "
          f"{'verdict':<16} declared")
    for s in summary:
        intensity = f"{s.intensity:,.2f}" if s.intensity is not None else "-"
        print(f"{s.plant:<22} {s.unit:<10} {s.output:>12,.0f} {intensity:>12} "
              f"{s.intensity_unit:<16} {s.status or '-':<16} {s.declared}")
    if args.summary:
        write_summary(summary, args.summary)
    return EXIT_OK


def register(sub: Subparsers) -> None:
    """``energymon simulate modbus|mqtt|backfill|truth``."""
    sim = sub.add_parser("simulate", help="simulated plants and meters over Modbus TCP and "
                                          "MQTT, backfill, ground truth")
    modes = sim.add_subparsers(dest="simulate_command", required=True, metavar="MODE")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--fleet", help="fleet file (default: the example fleet)")
        p.add_argument("--plants", help="comma-separated plant ids (default: all simulated)")
        p.add_argument("--seed", type=int, help="override the fleet's simulation seed")
        p.add_argument("--no-faults", action="store_true", help="ignore declared faults")

    p = modes.add_parser("modbus", help="serve the Modbus-simulated plants over Modbus TCP")
    common(p)
    _clock_args(p)
    p.add_argument("--host", help="listen address for every plant (default: the fleet's)")
    p.add_argument("--free-ports", action="store_true",
                   help="listen on free ports instead of the fleet's ports")
    p.add_argument("--endpoints", metavar="FILE",
                   help="write plant -> host, port, unit ids as JSON (for collector configs)")
    p.add_argument("--truth", metavar="FILE", help="write the ground truth of the run at exit")

    p = modes.add_parser("mqtt", help="publish the MQTT-pushing plants to the broker")
    common(p)
    _clock_args(p)
    p.add_argument("--url", help="broker URL (default ENERGYMON_MQTT_URL)")
    p.add_argument("--all-plants", action="store_true",
                   help="publish every simulated plant (Modbus plants as gateway batches)")
    p.add_argument("--mode", choices=["batch", "single"], help="override the payload shape")
    p.add_argument("--truth", metavar="FILE", help="write the ground truth of the run at exit")

    p = modes.add_parser("backfill", help="generate history fast (COPY, or via MQTT)")
    common(p)
    p.add_argument("--days", type=float, required=True, help="days of history")
    p.add_argument("--end", help="end of the history, ISO 8601 with offset (default now)")
    p.add_argument("--via", choices=["copy", "mqtt"], default="copy",
                   help="copy: binary COPY into readings (default); mqtt: publish to the broker")
    p.add_argument("--url", help="broker URL for --via mqtt (default ENERGYMON_MQTT_URL)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--truth", metavar="FILE", help="write the ground truth of the period")

    p = modes.add_parser("truth", help="write the ground truth of a period and print verdicts")
    common(p)
    p.add_argument("--from", dest="start", help="start, ISO 8601 with offset")
    p.add_argument("--to", dest="end", help="end, ISO 8601 with offset (default now)")
    p.add_argument("--days", type=float, default=1.0, help="days before --to when --from is "
                                                            "not given (default 1)")
    p.add_argument("--out", metavar="FILE", help="truth table (CSV, or .parquet)")
    p.add_argument("--summary", metavar="FILE", help="per-unit summary as JSON")
    sim.set_defaults(handler=run)


def _clock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="simulated start time, ISO 8601 with offset (default now)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second (default 1; 60 = a minute per second)")
    p.add_argument("--duration", type=float,
                   help="stop after this many wall seconds (default: run until interrupted)")
