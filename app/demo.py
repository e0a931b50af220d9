"""``energymon demo``: the whole pipeline on embedded defaults, ending with the verdicts.

Stages: embedded PostgreSQL (or ENERGYMON_DATABASE_URL), schema migration, the example fleet
in the registry, a week of simulated history (simulators backfill, COPY path), accounting;
then the live pipeline (app.demo_live: broker, simulated plants, collectors, ingest,
accounting, API) for ``live`` seconds; then the verdicts of every production unit against the
benchmark and baseline levels, the API's docs URL and example queries. With ``serve`` it keeps
running until Ctrl-C.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from accounting.periods import Period
from accounting.report import print_verdicts
from accounting.store import Accountant
from accounting.verdicts import area_kpis, unit_results
from app.demo_live import LivePipeline, watch
from app.runtime import database_url, redact
from core.exitcodes import EXIT_OK
from core.settings import Settings
from fleet import Fleet, load_fleet
from fleet.examples import example_fleet_path
from fleet.registry import load_registry
from simulators.backfill import backfill_copy
from simulators.model import FleetModel
from storage.meta import calendar_timezone
from storage.migrate import migrate


def _step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.monotonic()


def run_demo(settings: Settings, fleet_path: Path | None = None, days: int = 7,
             live: float = 45, serve: bool = False, api_port: int = 0) -> int:
    fleet_path = fleet_path or example_fleet_path()
    began = _step("database: " + ("configured ENERGYMON_DATABASE_URL" if settings.database_url
                                  else f"embedded PostgreSQL under {settings.data_dir / 'pg'}"))
    url = database_url(settings)
    print(f"    {redact(url)} ({time.monotonic() - began:.1f} s)")

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
    start, today = _history(url, fleet, days)
    pipeline = None
    try:
        if live > 0 or serve:
            _step("starting the live pipeline: broker, simulated plants, collectors, ingest, "
                  "API")
            pipeline = LivePipeline(settings, url, fleet, api_port=api_port).start()
            if live > 0:
                _step(f"watching the pipeline for {live:.0f} s")
                added, dead, _ = watch(url, live)
                print(f"    {added} live readings stored; {dead} messages dead-lettered with "
                      "their reason (see the dead_letters table)")
        _verdicts(url, start, today)
        if pipeline is not None and pipeline.api_url:
            print()
            print(f"API docs: {pipeline.api_url}/docs   (token: {pipeline.api_token})")
            yesterday = today - timedelta(days=1)
            for line in example_queries(pipeline.api_url, pipeline.api_token or "",
                                        period=f"{yesterday:%Y-%m}",
                                        day=f"{yesterday:%Y-%m-%d}"):
                print(f"  {line}")
        print()
        print("Next: `energymon db status` shows the embedded database; connect with "
              "`psql \"$(energymon db url)\"`; `energymon verdicts --period ytd:YYYY-MM` "
              "judges any period.")
        if serve and pipeline is not None:
            print("The pipeline and the API keep running; press Ctrl-C to stop.", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("\nstopping ...")
    finally:
        if pipeline is not None:
            pipeline.stop()
    return EXIT_OK


def _verdicts(url: str, start: datetime, end: datetime) -> None:
    Accountant(url).process_dirty(limit=1_000_000)
    print()
    with psycopg.connect(url) as conn:
        results = unit_results(conn, Period(f"{start:%Y-%m-%d}..{end:%Y-%m-%d}", "custom",
                                            start, end))
    print_verdicts(results, area_kpis(results), f"{start:%Y-%m-%d} to {end:%Y-%m-%d}")


def _history(url: str, fleet: Fleet, days: int) -> tuple[datetime, datetime]:
    """Backfill ``days`` of simulated history up to local midnight today and account for it;
    returns the period it covers."""
    with psycopg.connect(url) as conn:
        tz = calendar_timezone(conn)
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
    return start, today


def example_queries(base_url: str, token: str, *, plant: str = "jx-yujiang-cement",
                    unit: str = "kiln-1", meter: str = "k1-elec", region: str = "360000",
                    period: str | None = None, day: str | None = None) -> list[str]:
    """A few ready-to-paste curl commands (for the demo's closing summary)."""
    last = date.today().replace(day=1) - timedelta(days=1)
    period = period or f"{last:%Y-%m}"
    day = day or f"{last:%Y-%m-%d}"
    auth = f"-H 'Authorization: Bearer {token}'"
    api = f"{base_url}/api/v1"
    return [
        f"curl -s {auth} '{api}/plants'",
        f"curl -s {auth} '{api}/plants/{plant}/intensity?period={period}'",
        f"curl -s {auth} '{api}/flagged?period={period}&region={region}'",
        f"curl -s {auth} '{api}/regions/{region}/kpis?period={period}'",
        f"curl -s {auth} '{api}/plants/{plant}/status'",
        f"curl -s {auth} '{api}/plants/{plant}/units/{unit}/energy?period={period}'",
        f"curl -s {auth} -o history.csv '{api}/plants/{plant}/meters/{meter}/history"
        f"?from={day}&to={date.fromisoformat(day) + timedelta(days=1):%Y-%m-%d}"
        "&resolution=15min&format=csv'",
    ]
