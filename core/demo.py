"""``energymon demo``: the pipeline on embedded defaults, ending with the verdicts.

Stages: embedded PostgreSQL (or ENERGYMON_DATABASE_URL), schema migration, the example fleet
in the registry, a week of simulated history (simulators backfill, COPY path), accounting
(interval energy, rollups) and the verdicts of every production unit against the benchmark
and baseline levels.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from core.fleet import Fleet, load_fleet
from core.migrate import migrate
from core.registry import load_registry
from core.runtime import database_url, redact
from core.settings import Settings


def _step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.monotonic()


def run_demo(settings: Settings, fleet_path: Path | None = None, days: int = 7) -> int:
    from core.cli import example_fleet_path

    fleet_path = fleet_path or example_fleet_path()
    start = _step("database: " + ("configured ENERGYMON_DATABASE_URL" if settings.database_url
                                  else f"embedded PostgreSQL under {settings.data_dir / 'pg'}"))
    url = database_url(settings)
    print(f"    {redact(url)} ({time.monotonic() - start:.1f} s)")

    _step("migrating the schema")
    result = migrate(url, timezone=settings.timezone, progress=lambda m: print(f"    {m}"))
    print(f"    backend: {result.backend.value}; {len(result.applied)} applied, "
          f"{result.already} already present")

    _step(f"loading the fleet {fleet_path}")
    fleet = load_fleet(fleet_path)
    with psycopg.connect(url) as conn:
        summary = load_registry(conn, fleet)
        for line in summary.lines():
            print(f"    {line}")
        rows = conn.execute(
            """
            SELECT p.code, p.name, r.name, p.industry,
                   count(DISTINCT u.id), count(DISTINCT m.id),
                   string_agg(DISTINCT u.catalogue_key, ', ')
            FROM plants p JOIN regions r ON r.code = p.region_code
            LEFT JOIN production_units u ON u.plant_id = p.id
            LEFT JOIN meters m ON m.plant_id = p.id
            GROUP BY p.code, p.name, r.name, p.industry ORDER BY p.code
            """
        ).fetchall()
    print()
    print(f"{'plant':<24} {'region':<8} {'units':>5} {'meters':>6}  catalogue entries")
    for code, _name, region, _industry, units, meters, keys in rows:
        print(f"{code:<24} {region:<8} {units:>5} {meters:>6}  {keys or '-'}")
    _history(url, fleet, days)
    print()
    print("Next: `energymon db status` shows the embedded database; connect with "
          "`psql \"$(energymon db url)\"`; `energymon verdicts --period ytd:YYYY-MM` "
          "judges any period.")
    return 0


def _history(url: str, fleet: Fleet, days: int) -> None:
    """Backfill ``days`` of simulated history, account for it and print the verdicts."""
    from datetime import UTC, datetime, timedelta

    from accounting.periods import Period
    from accounting.report import print_verdicts
    from accounting.store import Accountant
    from accounting.verdicts import area_kpis, unit_results
    from core.migrate import calendar_timezone
    from simulators.backfill import backfill_copy
    from simulators.model import FleetModel

    with psycopg.connect(url) as conn:
        tz = calendar_timezone(conn)
    from zoneinfo import ZoneInfo

    local = ZoneInfo(tz)
    today = datetime.now(UTC).astimezone(local).replace(hour=0, minute=0, second=0,
                                                        microsecond=0)
    start = today - timedelta(days=days)
    k0, k1 = int(start.timestamp()) // 900, int(today.timestamp()) // 900
    _step(f"simulating {days} days of history ({start:%Y-%m-%d} to {today:%Y-%m-%d}, "
          f"local {tz}) with the fleet's declared faults")
    result = backfill_copy(FleetModel(fleet), url, k0, k1 + 1)
    print(f"    {result.inserted} readings stored ({result.rows - result.inserted} already "
          f"present, {result.dropped} lost to simulated communication faults)")
    began = _step("accounting: interval energy, standard coal, CO2, rollups")
    stats = Accountant(url).process_dirty(limit=1_000_000)
    print(f"    {stats.meters} meters, {stats.intervals} intervals, {stats.rollovers} "
          f"rollovers, {stats.resets} resets, {stats.spikes} spikes set aside "
          f"({time.monotonic() - began:.1f} s)")
    print()
    with psycopg.connect(url) as conn:
        results = unit_results(conn, Period(f"{start:%Y-%m-%d}..{today:%Y-%m-%d}", "custom",
                                            start, today))
    print_verdicts(results, area_kpis(results), f"{start:%Y-%m-%d} to {today:%Y-%m-%d}")
