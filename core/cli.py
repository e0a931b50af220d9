"""The ``energymon`` command line: one composition root for every process.

Each subcommand builds its settings, wires what it needs and runs; nothing is created at
import time. Exit codes: 0 success, 1 runtime failure, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

from pydantic import ValidationError

from core.settings import Settings, load_settings

log = logging.getLogger("energymon")

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def example_fleet_path() -> Path:
    """Path of the example fleet shipped with the package."""
    return Path(str(resources.files("core.examples") / "fleet.yaml"))


# -- subcommands -------------------------------------------------------------------------------
def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from core.migrate import migrate
    from core.runtime import database_url, redact

    url = database_url(settings)
    result = migrate(url, backend=args.backend, timezone=settings.timezone, progress=print)
    print(f"database {redact(url)}: backend {result.backend.value}, "
          f"{len(result.applied)} migration(s) applied, {result.already} already present")
    return EXIT_OK


def _load_fleet_or_report(path: str) -> object:
    from core.checks import cross_check
    from core.fleet import FleetError, load_fleet

    try:
        fleet = load_fleet(path)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    problems = cross_check(fleet)
    if problems:
        print(f"error: {FleetError(path, problems)}", file=sys.stderr)
        return None
    return fleet


def _is_gateway_file(path: str) -> bool:
    """A YAML mapping with a top-level ``gateway`` key is a collector gateway file."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # reported by the fleet loader
    return isinstance(data, dict) and "gateway" in data


def _check_gateway(path: str) -> int:
    from collector.config import GatewayConfigError, load_gateway

    try:
        gw = load_gateway(path)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: valid gateway {gw.id!r} for plant {gw.plant!r}: {len(gw.links)} links, "
          f"{len(gw.devices)} devices, {gw.meter_count} meters, spool "
          f"{gw.spool.capacity_readings} readings ({gw.spool.when_full})")
    return EXIT_OK


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    if _is_gateway_file(args.file):
        return _check_gateway(args.file)
    fleet = _load_fleet_or_report(args.file)
    if fleet is None:
        return EXIT_CONFIG
    from core.fleet import Fleet

    assert isinstance(fleet, Fleet)
    units = sum(len(p.units) for p in fleet.plants)
    meters = sum(len(p.meters) for p in fleet.plants)
    print(f"{args.file}: valid fleet {fleet.fleet!r}: {len(fleet.regions)} regions, "
          f"{len(fleet.plants)} plants, {units} production units, {meters} meters")
    return EXIT_OK


def cmd_collect(settings: Settings, args: argparse.Namespace) -> int:
    from collector.config import GatewayConfigError, load_gateway

    try:
        gateway = load_gateway(args.gateway_file)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.mqtt is None and not args.spool_only:
        print("error: ENERGYMON_MQTT_URL is not set: the collector has no broker to publish to "
              "(use --spool-only to collect into the local spool without publishing)",
              file=sys.stderr)
        return EXIT_CONFIG
    from collector.gateway import run_collector

    return run_collector(gateway, data_dir=settings.data_dir,
                         mqtt=None if args.spool_only else settings.mqtt)


def cmd_registry_load(settings: Settings, args: argparse.Namespace) -> int:
    fleet = _load_fleet_or_report(args.file)
    if fleet is None:
        return EXIT_CONFIG
    import psycopg

    from core.fleet import Fleet
    from core.registry import RegistryConflict, load_registry
    from core.runtime import database_url

    assert isinstance(fleet, Fleet)
    with psycopg.connect(database_url(settings)) as conn:
        _require_schema(conn)
        try:
            summary = load_registry(conn, fleet)
        except RegistryConflict as exc:
            print(f"error: {args.file}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    print(f"{args.file}: registry updated")
    for line in summary.lines():
        print(f"  {line}")
    return EXIT_OK


def _require_schema(conn: object) -> None:
    from core.migrate import current_backend

    if current_backend(conn) is None:  # type: ignore[arg-type]
        raise SystemExit("error: the database has no energymon schema yet: "
                         "run `energymon migrate` first")


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    from core.runtime import embedded_postgres, redact

    if settings.database_url:
        print(f"using the configured database {redact(settings.database_url)} "
              "(ENERGYMON_DATABASE_URL); no embedded server is managed")
        return EXIT_OK
    pg = embedded_postgres(settings)
    if args.action == "start":
        print(f"embedded PostgreSQL running: {redact(pg.start())}")
    elif args.action == "stop":
        pg.stop()
        print(f"embedded PostgreSQL in {pg.datadir} stopped")
    elif args.action == "url":
        if not pg.initialised:
            print("error: the embedded PostgreSQL was never started "
                  "(run `energymon db start`)", file=sys.stderr)
            return EXIT_FAILURE
        print(pg.url())
    else:  # status
        state = "running" if pg.is_running() else ("stopped" if pg.initialised else "absent")
        print(f"embedded PostgreSQL in {pg.datadir}: {state}")
        if pg.initialised:
            print(f"  url: {redact(pg.url())}  (password in {pg.secret_file})")
    return EXIT_OK


def cmd_accounting(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from accounting.store import Accountant
    from core.runtime import database_url

    accountant = Accountant(database_url(settings))
    if args.action == "rebuild":
        def progress(done: int, total: int) -> None:
            print(f"\r  recomputing meters: {done}/{total}", end="", file=sys.stderr,
                  flush=True)

        stats = accountant.recompute(progress=progress)
        print(file=sys.stderr)
        print(f"recomputed {stats.meters} meters: {stats.readings} readings -> "
              f"{stats.intervals} intervals ({stats.rollovers} rollovers, {stats.resets} "
              f"resets, {stats.spikes} spikes set aside)")
        return EXIT_OK
    while True:
        stats = accountant.process_dirty()
        if stats.meters:
            log.info("accounting: %d meters, %d intervals recomputed", stats.meters,
                     stats.intervals)
        if args.action == "once":
            print(f"processed the queue: {stats.meters} meters, {stats.intervals} intervals")
            return EXIT_OK
        if not stats.meters:
            time.sleep(args.poll_seconds)


def cmd_verdicts(settings: Settings, args: argparse.Namespace) -> int:
    import json
    from zoneinfo import ZoneInfo

    import psycopg

    from accounting.periods import parse_period
    from accounting.report import print_verdicts
    from accounting.verdicts import area_kpis, unit_results
    from core.migrate import calendar_timezone
    from core.runtime import database_url

    with psycopg.connect(database_url(settings)) as conn:
        _require_schema(conn)
        tz = ZoneInfo(calendar_timezone(conn))
        try:
            period = parse_period(args.period, tz)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        results = unit_results(conn, period, region=args.region, plant=args.plant,
                               edition=args.edition or settings.catalogue_edition)
    if args.format == "json":
        print(json.dumps({"period": period.label,
                          "units": [r.as_dict() for r in results],
                          "kpis": [k.__dict__ for k in area_kpis(results)]},
                         ensure_ascii=False, indent=2, default=str))
    else:
        print_verdicts(results, area_kpis(results), period.label)
    return EXIT_OK


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> int:
    from simulators.cli import run

    return run(settings, args)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from core.demo import run_demo

    serve = sys.stdin.isatty() if args.serve is None else args.serve
    return run_demo(settings, fleet_path=Path(args.fleet) if args.fleet else None,
                    days=args.days, live=args.live, serve=serve, api_port=args.api_port)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ingest.service import options_from_args, run_ingest

    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_ingest(settings, options)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from api.config import ApiConfig
    from api.server import serve

    try:
        config = ApiConfig()
    except ValidationError as exc:
        print(f"error: invalid ENERGYMON_API_* settings: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    base = f"http://{args.host}:{args.port}"
    print(f"energymon API on {base}/api/v1 (docs: {base}/docs, metrics: {base}/metrics)",
          flush=True)
    return serve(settings, host=args.host, port=args.port, config=config,
                 log_level="debug" if args.verbose else "info")


def _expiry(text: str | None, tz: object) -> object:
    from datetime import date, datetime

    if text is None:
        return None
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=tz)  # type: ignore[arg-type]
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("--expires needs a UTC offset, e.g. 2027-01-01T00:00:00+08:00")
    return value


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg

    from api.tokens import TokenError, create_token, list_tokens, revoke_token
    from core.runtime import database_url

    with psycopg.connect(database_url(settings)) as conn:
        _require_schema(conn)
        if conn.execute("SELECT to_regclass('api_tokens')").fetchone() == (None,):
            print("error: the database has no api_tokens table yet: run `energymon migrate`",
                  file=sys.stderr)
            return EXIT_FAILURE
        if args.token_command == "create":
            try:
                expires = _expiry(args.expires, settings.tz)
                token_id, secret = create_token(conn, name=args.name, role=args.role,
                                                plant=args.plant, region=args.region,
                                                expires_at=expires)  # type: ignore[arg-type]
            except (TokenError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            scope = (f"plant {args.plant}" if args.plant else
                     f"region {args.region}" if args.region else "all plants")
            print(f"token {token_id} created: role {args.role}, scope {scope}"
                  + (f", expires {expires}" if expires else ""), file=sys.stderr)
            print("the secret is shown once; only its SHA-256 is stored:", file=sys.stderr)
            print(secret)
            return EXIT_OK
        if args.token_command == "revoke":
            if revoke_token(conn, args.id):
                print(f"token {args.id} revoked")
                return EXIT_OK
            print(f"error: no active token with id {args.id} (see `energymon token list`)",
                  file=sys.stderr)
            return EXIT_FAILURE
        tokens = list_tokens(conn)
        print(f"{'id':>4}  {'state':<8} {'role':<9} {'scope':<28} {'name':<24} "
              f"{'expires':<16} last used")
        for t in tokens:
            print(f"{t.id:>4}  {t.state:<8} {t.role:<9} {t.scope:<28} {t.name[:24]:<24} "
                  f"{f'{t.expires_at:%Y-%m-%d %H:%M}' if t.expires_at else '-':<16} "
                  f"{f'{t.last_used_at:%Y-%m-%d %H:%M}' if t.last_used_at else 'never'}")
        return EXIT_OK


# -- parser ------------------------------------------------------------------------------------
Handler = Callable[[Settings, argparse.Namespace], int]


def _add_simulate_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``energymon simulate modbus|mqtt|backfill|truth`` (handlers in simulators.cli)."""
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
    sim.set_defaults(handler=cmd_simulate)


def _clock_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="simulated start time, ISO 8601 with offset (default now)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="simulated seconds per wall second (default 1; 60 = a minute per second)")
    p.add_argument("--duration", type=float,
                   help="stop after this many wall seconds (default: run until interrupted)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energymon",
        description="Online energy monitoring for key energy-using units.",
    )
    parser.add_argument("--config", metavar="FILE",
                        help="settings YAML (same keys as the ENERGYMON_* variables, lower case)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    p.add_argument("--backend", choices=["auto", "timescaledb", "postgres"], default="auto",
                   help="storage backend for a new database (default: TimescaleDB if available)")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("check-config", help="validate a fleet or gateway file without writing "
                       "anything")
    p.add_argument("file")
    p.set_defaults(handler=cmd_check_config)

    p = sub.add_parser("collect", help="run a plant's collector gateway: poll Modbus meters, "
                       "spool, publish to ENERGYMON_MQTT_URL")
    p.add_argument("--config", dest="gateway_file", required=True, metavar="GATEWAY_YAML",
                   help="gateway file (links, devices, spool; see collector/config.py)")
    p.add_argument("--spool-only", action="store_true",
                   help="collect into the local spool without publishing")
    p.set_defaults(handler=cmd_collect)

    reg = sub.add_parser("registry", help="plants, production units and meters")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    p = reg_sub.add_parser("load", help="upsert a fleet file into the registry")
    p.add_argument("file")
    p.set_defaults(handler=cmd_registry_load)

    p = sub.add_parser("db", help="manage the embedded PostgreSQL (when no URL is configured)")
    p.add_argument("action", choices=["status", "start", "stop", "url"], nargs="?",
                   default="status")
    p.set_defaults(handler=cmd_db)

    p = sub.add_parser("ingest", help="consume readings from MQTT into the database "
                       "(needs ENERGYMON_MQTT_URL)")
    p.add_argument("--group", "--workers-group", dest="group", default="ingest",
                   help="MQTT 5 shared-subscription group; workers of one group split the "
                   "stream (default: ingest)")
    p.add_argument("--client-id", help="stable MQTT client id of this worker, unique per worker "
                   "(default: energymon-<group>-<hostname>); a restarted worker with the same id "
                   "gets its unacknowledged messages again")
    p.add_argument("--batch-size", type=int, default=20_000,
                   help="readings per database transaction (default: 20000)")
    p.add_argument("--flush-interval", type=float, default=0.2,
                   help="seconds a queued reading may wait for its batch (default: 0.2)")
    p.add_argument("--max-pending", type=int, default=200_000,
                   help="bound of the queue in readings; receiving waits when full "
                   "(default: 200000)")
    p.add_argument("--future-tolerance", type=float, default=300,
                   help="seconds a reading may be ahead of its receive time (default: 300)")
    p.add_argument("--metrics-port", type=int, default=None,
                   help="serve Prometheus metrics on this port (default: off)")
    p.add_argument("--metrics-addr", default="127.0.0.1",
                   help="address of the metrics endpoint (default: 127.0.0.1)")
    p.add_argument("--receive-maximum", type=int, default=20_000,
                   help="unacknowledged messages the broker may send at once (default: 20000)")
    p.add_argument("--session-expiry", type=int, default=3600,
                   help="seconds the broker keeps this worker's session and unacknowledged "
                   "messages while it is away (default: 3600)")
    p.add_argument("--drain-timeout", type=float, default=30,
                   help="seconds to commit what was received at shutdown (default: 30)")
    p.set_defaults(handler=cmd_ingest)

    p = sub.add_parser("accounting", help="turn readings into interval energy and rollups")
    p.add_argument("action", choices=["run", "once", "rebuild"], nargs="?", default="run",
                   help="run: keep processing the recompute queue; once: process it and exit; "
                        "rebuild: recompute every meter from all readings")
    p.add_argument("--poll-seconds", type=float, default=5.0)
    p.set_defaults(handler=cmd_accounting)

    p = sub.add_parser("verdicts", help="units' intensity against benchmark and baseline")
    p.add_argument("--period", required=True,
                   help="2026-10-05, 2026-10, 2026, ytd:2026-10 or r12:2026-10 (local calendar)")
    p.add_argument("--region", help="administrative division code (includes sub-regions)")
    p.add_argument("--plant", help="plant id")
    p.add_argument("--edition", type=int, help="catalogue edition (default: newest with values)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=cmd_verdicts)

    _add_simulate_parser(sub)

    p = sub.add_parser("serve", help="serve the HTTP API (docs at /docs)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    p.set_defaults(handler=cmd_serve)

    tok = sub.add_parser("token", help="API tokens: create, revoke, list")
    tok_sub = tok.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = tok_sub.add_parser("create", help="create a token and print its secret once")
    p.add_argument("--role", required=True, choices=["plant", "regulator", "auditor", "admin"])
    p.add_argument("--plant", help="plant id (role plant)")
    p.add_argument("--region", help="region code whose subtree the token sees (regulator; "
                   "optional for auditor)")
    p.add_argument("--name", required=True, help="who or what uses the token")
    p.add_argument("--expires", help="expiry: a date (local midnight) or ISO 8601 with offset")
    p.set_defaults(handler=cmd_token)
    p = tok_sub.add_parser("revoke", help="revoke a token at once")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_token)
    p = tok_sub.add_parser("list", help="list tokens (never their secrets)")
    p.set_defaults(handler=cmd_token)

    p = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    p.add_argument("--fleet", help="fleet file (default: the example fleet)")
    p.add_argument("--days", type=int, default=7, help="days of simulated history (default 7)")
    p.add_argument("--live", type=float, default=45,
                   help="seconds to run the live pipeline before the verdicts (default 45; "
                   "0 skips it)")
    p.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the pipeline and API running until Ctrl-C (default: when run "
                   "from a terminal)")
    p.add_argument("--api-port", type=int, default=8000,
                   help="API port (default 8000; 0 = any free port)")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config) if args.config else Settings()
    except (ValidationError, FileNotFoundError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from core.runtime import setup_logging

    setup_logging("DEBUG" if args.verbose else settings.log_level)
    handler: Handler = args.handler
    from core.embedded_pg import EmbeddedPostgresError
    from core.migrate import MigrationError

    try:
        return handler(settings, args)
    except (EmbeddedPostgresError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
