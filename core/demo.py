"""``energymon demo``: the pipeline on embedded defaults, ending with a printed summary.

Stage reached so far: embedded PostgreSQL, schema migration, the example fleet in the
registry. Later stages (simulators, collectors, ingest, API, verdicts) attach here.
"""

from __future__ import annotations

import time
from pathlib import Path

import psycopg

from core.fleet import load_fleet
from core.migrate import migrate
from core.registry import load_registry
from core.runtime import database_url, redact
from core.settings import Settings


def _step(message: str) -> float:
    print(f"==> {message}", flush=True)
    return time.monotonic()


def run_demo(settings: Settings, fleet_path: Path | None = None) -> int:
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
    print()
    print("Next: `energymon db status` shows the embedded database; connect with "
          "`psql \"$(energymon db url)\"`.")
    return 0
