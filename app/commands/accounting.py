"""``energymon accounting`` and ``energymon verdicts``: interval energy, rollups, verdicts."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from zoneinfo import ZoneInfo

import psycopg

from accounting.periods import parse_period
from accounting.report import print_verdicts
from accounting.store import Accountant, RecomputeStats
from accounting.verdicts import area_kpis, unit_results
from app.commands import Subparsers
from app.commands.database import require_schema
from app.runtime import database_url
from core.exitcodes import EXIT_CONFIG, EXIT_OK
from core.settings import Settings
from storage.meta import calendar_timezone

log = logging.getLogger("energymon")


def cmd_accounting(settings: Settings, args: argparse.Namespace) -> int:
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
        _print_problems(stats)
        return EXIT_OK
    while True:
        stats = accountant.process_dirty()
        if stats.meters:
            log.info("accounting: %d meters, %d intervals recomputed", stats.meters,
                     stats.intervals)
        for name, issue in stats.issues.items():
            log.warning("accounting: meter %s: %s", name, issue)
        if args.action == "once":
            print(f"processed the queue: {stats.meters} meters, {stats.intervals} intervals")
            _print_problems(stats)
            return EXIT_OK
        if not stats.meters:
            time.sleep(args.poll_seconds)


def _print_problems(stats: RecomputeStats) -> None:
    """Meters stored without kgce or CO2 (and why), and meters whose recompute failed."""
    if stats.issues:
        print(f"{stats.unconverted} interval(s) stored without kgce or CO2 (their units are "
              "not evaluable until fixed, e.g. with `energymon declare calorific-value`):")
        for name, issue in sorted(stats.issues.items()):
            print(f"  {name}: {issue}")
    for error in stats.failed.values():
        print(f"  recompute failed (re-queued): {error}", file=sys.stderr)


def cmd_verdicts(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(database_url(settings)) as conn:
        require_schema(conn)
        tz = ZoneInfo(calendar_timezone(conn))
        try:
            period = parse_period(args.period, tz)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        results = unit_results(conn, period, region=args.region, plant=args.plant,
                               edition=args.edition, default_edition=settings.catalogue_edition,
                               rules=settings.verdicts)
    if args.format == "json":
        print(json.dumps({"period": period.label,
                          "units": [r.as_dict() for r in results],
                          "kpis": [k.__dict__ for k in area_kpis(results)]},
                         ensure_ascii=False, indent=2, default=str))
    else:
        print_verdicts(results, area_kpis(results), period.label)
    return EXIT_OK


def register(sub: Subparsers) -> None:
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
    p.add_argument("--edition", type=int,
                   help="catalogue edition (default: the edition policy of the settings' "
                        "verdicts.editions, else catalogue_edition, else the newest with "
                        "values; a unit's pinned edition wins)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.set_defaults(handler=cmd_verdicts)
