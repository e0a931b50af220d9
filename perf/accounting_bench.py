"""Monthly intensity of every unit from rollups vs. the same from raw readings in pandas.

Issue 6 target: for 100 plants over one year of 15-minute data, monthly intensity of every
unit answered from the rollups, compared with computing it from raw readings in pandas in the
same run: same numbers, >= 20x faster.

    .venv/bin/python perf/accounting_bench.py [--plants 100] [--days 365]

Uses the embedded PostgreSQL (a fresh database) unless ENERGYMON_DATABASE_URL is set. Each
plant has one clinker line with an electricity counter, a coal counter and a clinker counter
(3 meters; 100 plants x 365 days x 96 = 10.5 M readings). Results go to
perf/results/accounting.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accounting.periods import parse_period
from accounting.store import Accountant
from accounting.verdicts import unit_results
from app.devservices.embedded_pg import EmbeddedPostgres
from fleet import parse_fleet
from fleet.registry import load_registry
from perf.clinker_fleet import clinker_fleet
from storage.migrate import migrate

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)


def write_readings(url: str, days: int, start: datetime) -> int:
    rng = random.Random(42)
    with psycopg.connect(url) as conn:
        meters = conn.execute("SELECT id, code FROM meters ORDER BY id").fetchall()
        n = 0
        with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) FROM STDIN "
                                "(FORMAT BINARY)") as cp:
            cp.set_types(["int8", "timestamptz", "float8", "int2"])
            for meter_id, code in meters:
                rate = {"elec": 900.0, "coal": 0.55, "clinker": 5.2}[code] * rng.uniform(0.8, 1.2)
                value = 0.0
                for k in range(days * 96 + 1):
                    cp.write_row((meter_id, start + k * Q, value, 0))
                    value += rate * rng.uniform(0.9, 1.1)
                    n += 1
    return n


def from_rollups(url: str, year: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = {}
    with psycopg.connect(url) as conn:
        for month in range(1, 13):
            period = parse_period(f"{year}-{month:02d}", SH)
            for r in unit_results(conn, period):
                out[(r.plant, month)] = r.intensity
    return out, time.perf_counter() - t0


def from_pandas(url: str) -> tuple[dict, float]:
    """What an analyst would otherwise do: raw readings -> diffs -> local months."""
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        meta = pd.DataFrame(conn.execute(
            "SELECT m.id, p.code, m.code FROM meters m JOIN plants p ON p.id = m.plant_id"
        ).fetchall(), columns=["meter_id", "plant", "meter"])
        cur = conn.cursor(binary=True)
        cur.execute("SELECT meter_id, ts, value FROM readings ORDER BY meter_id, ts")
        raw = pd.DataFrame(cur.fetchall(), columns=["meter_id", "ts", "value"])
    raw["ts"] = pd.to_datetime(raw["ts"], utc=True)
    raw["delta"] = raw.groupby("meter_id")["value"].diff().clip(lower=0)
    raw["start"] = raw.groupby("meter_id")["ts"].shift(1)
    raw = raw.dropna(subset=["delta"])
    raw["month"] = raw["start"].dt.tz_convert("Asia/Shanghai").dt.month
    raw = raw.merge(meta, on="meter_id")
    coef = {"elec": 0.1229, "coal": 714.3}
    pivot = raw.pivot_table(index=["plant", "month"], columns="meter", values="delta",
                            aggfunc="sum")
    kgce = pivot["elec"] * coef["elec"] + pivot["coal"] * coef["coal"]
    intensity = kgce / pivot["clinker"]
    out = {(plant, int(month)): float(v) for (plant, month), v in intensity.items()}
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plants", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--year", type=int, default=2025)
    args = parser.parse_args()
    start = datetime(args.year, 1, 1, tzinfo=SH)
    url = os.environ.get("ENERGYMON_DATABASE_URL")
    server = None
    if not url:
        server = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix="energymon-perf-")) / "pg")
        url = server.start("perf")
    try:
        print(f"migrating and loading {args.plants} plants ...", flush=True)
        migrate(url)
        with psycopg.connect(url) as conn:
            fleet = clinker_fleet(args.plants, name="perf", id_prefix="perf", uscc_tag="MA3CE")
            load_registry(conn, parse_fleet(fleet))
        t0 = time.perf_counter()
        n = write_readings(url, args.days, start)
        t_copy = time.perf_counter() - t0
        print(f"  {n:,} readings written in {t_copy:.1f} s", flush=True)
        t0 = time.perf_counter()
        stats = Accountant(url).recompute(
            progress=lambda d, t: print(f"\r  accounting {d}/{t} meters", end="", flush=True))
        t_acc = time.perf_counter() - t0
        print(f"\n  {stats.intervals:,} intervals computed in {t_acc:.1f} s "
              f"({stats.readings / t_acc:,.0f} readings/s)", flush=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        rollup_numbers, t_rollup = from_rollups(url, args.year)
        pandas_numbers, t_pandas = from_pandas(url)
        common = sorted(set(rollup_numbers) & set(pandas_numbers))
        worst = max(abs(rollup_numbers[k] - pandas_numbers[k]) / abs(pandas_numbers[k])
                    for k in common if rollup_numbers[k] is not None)
        speedup = t_pandas / t_rollup
        result = {
            "plants": args.plants, "days": args.days, "readings": n,
            "unit_months": len(common),
            "rollups_seconds": round(t_rollup, 3), "pandas_seconds": round(t_pandas, 3),
            "speedup": round(speedup, 1), "goal_speedup": 20,
            "max_relative_difference": worst,
            "accounting_seconds": round(t_acc, 1),
            "accounting_readings_per_s": round(stats.readings / t_acc),
        }
        print(json.dumps(result, indent=2))
        print(f"monthly intensity of {len(common)} unit-months: rollups {t_rollup:.2f} s, "
              f"pandas on raw readings {t_pandas:.2f} s -> {speedup:.1f}x (goal >= 20x); "
              f"max relative difference {worst:.2e}")
        out = Path(__file__).parent / "results" / "accounting.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    finally:
        if server is not None:
            server.stop("immediate")


if __name__ == "__main__":
    main()
