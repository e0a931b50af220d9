"""Heavy history exports (Parquet, XLSX, CSV): memory of the API process, time against the
database's own COPY, and what they cost another tenant's small request, in one run.

    .venv/bin/python perf/exports_bench.py [--rows 2000000] [--xlsx-rows 200000]
                                           [--requests 300]

Security review M2: one 2 M-row Parquet export added about 950 MB to the API process (three at
once: 3.2 GB), and while one XLSX export ran another tenant's request went from 5 ms to 171 ms
at the median. This harness measures, side by side:

1. **Memory, without HTTP**, each in a fresh child process (peak RSS from ``ru_maxrss``, less
   the RSS after imports and connecting): the export as the API writes it
   (:func:`api.exports.write_parquet` / ``write_xlsx`` from a server-side cursor into an
   unlinked file) against building it in memory (every row fetched, one ``pyarrow`` table,
   ``write_table`` into a buffer: the code before 2026-12-04 and what a user would otherwise
   write) and against a bare ``COPY ... TO STDOUT`` of the same rows (the least any export
   can take: PostgreSQL renders, Python only passes bytes on).
2. **Through the API** (``energymon serve`` in a child process, sampled every 20 ms from
   ``/proc/PID/status``): the RSS the server gains during each download, and the time of each
   download against the bare COPY's time (the physical limit of reading those rows).
3. **Another tenant's small request** (``GET /api/v1/plants/{plant}`` with that plant's token)
   p50 / p99: alone, while two CSV downloads run, and while an XLSX and a Parquet export run
   (two is ``exports_at_once``; they are started over and over until the small requests are
   done), with the exports built by worker processes (the default) and, on a second server,
   in a thread of the API process (``api.export_in_worker`` off: what the API did before,
   and what a user would otherwise write).

Uses a fresh embedded PostgreSQL unless ENERGYMON_DATABASE_URL is set; one meter holds
``--rows`` raw readings (one a minute). Results go to perf/results/exports.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import exports, queries
from api.tokens import create_token
from app.devservices.embedded_pg import EmbeddedPostgres
from fleet import parse_fleet
from fleet.registry import load_registry
from perf.api_bench import Http, start_server_process
from perf.clinker_fleet import clinker_fleet
from storage.migrate import migrate

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2022, 1, 1, tzinfo=SH)
PLANT, OTHER, METER = "exp-000", "exp-001", "elec"


def rss_mb(pid: int | str = "self") -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def load(url: str, rows: int) -> None:
    with psycopg.connect(url) as conn:
        load_registry(conn, parse_fleet(clinker_fleet(2, name="exports-perf",
                                                      id_prefix="exp", uscc_tag="MA3EX")))
        (meter,), = conn.execute("SELECT m.id FROM meters m JOIN plants p ON p.id = m.plant_id"
                                 " WHERE p.code = %s AND m.code = %s", (PLANT, METER))
        have = conn.execute("SELECT count(*) FROM readings WHERE meter_id = %s", (meter,)
                            ).fetchone()[0]
        if have == rows:
            print(f"reusing the {rows:,} readings already stored", flush=True)
            return
        conn.execute("DELETE FROM readings WHERE meter_id = %s", (meter,))
        t0 = time.perf_counter()
        with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) FROM STDIN "
                                "(FORMAT BINARY)") as cp:
            cp.set_types(["int8", "timestamptz", "float8", "int2"])
            value = 0.0
            for i in range(rows):
                cp.write_row((meter, START + timedelta(minutes=i), value, 0))
                value += 9.0 + (i * 7919 % 13) / 10
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE readings")
    print(f"  {rows:,} readings in {time.perf_counter() - t0:.0f} s", flush=True)


def history_args(url: str, rows: int) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        (plant_pk, meter_pk), = conn.execute(
            "SELECT p.id, m.id FROM meters m JOIN plants p ON p.id = m.plant_id "
            "WHERE p.code = %s AND m.code = %s", (PLANT, METER))
    return dict(level="meter", resolution="raw", plant_pk=plant_pk, unit_pk=None,
                meter_pk=meter_pk, start=START, end=START + timedelta(minutes=rows))


# -- 1. memory without HTTP, one child process per way -----------------------------------------
def in_memory_parquet(rows: Any, meta: dict[str, str]) -> int:
    """The export as it was built before 2026-12-04: every row in lists, one table, one
    buffer (what a user would otherwise write)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[Any]] = [[] for _ in queries.HISTORY_COLUMNS]
    for row in rows:
        for i, value in enumerate(exports.normalise(row, SH)):
            columns[i].append(value)
    schema = exports.parquet_schema(SH, meta)
    table = pa.table({name: pa.array(col, type=schema.field(name).type)
                      for name, col in zip(queries.HISTORY_COLUMNS, columns, strict=True)},
                     schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return len(out.getvalue())


def child(way: str, url: str, rows: int) -> None:
    """One way of exporting ``rows`` readings; prints a JSON line with its figures."""
    import pyarrow.parquet  # noqa: F401  (imported before the baseline, as in the server)
    from openpyxl import Workbook  # noqa: F401

    args = history_args(url, rows)
    conn = psycopg.connect(url)
    query, params = queries.history_query(limit=None, **args)
    meta = {"plant": PLANT, "meter": METER}
    base = rss_mb()
    t0 = time.perf_counter()
    size = 0
    if way == "copy":
        for block in queries.history_csv(conn, query, params):
            size += len(block)
    elif way == "in-memory-parquet":
        size = in_memory_parquet(queries.history_stream(conn, query, params), meta)
    else:
        out = exports.spool_file(None, way)
        write = exports.write_parquet if way == "parquet" else exports.write_xlsx
        write(queries.history_stream(conn, query, params), SH, meta, out)
        size = out.tell()
        out.close()
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"way": way, "rows": rows, "seconds": seconds, "bytes": size,
                      "rss_base_mb": base, "rss_peak_mb": peak, "rss_added_mb": peak - base}))


def run_child(way: str, url: str, rows: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", way, "--url", url,
                          "--rows", str(rows)], capture_output=True, text=True, check=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# -- 2. and 3. through the API -----------------------------------------------------------------
class RssSampler:
    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def download(base: str, path: str, token: str, **params: str) -> tuple[float, int]:
    client = Http(base)
    try:
        t0 = time.perf_counter()
        body = client.get(path, token, **params)
        return time.perf_counter() - t0, len(body)
    finally:
        client.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def small_requests(base: str, token: str, n: int) -> dict[str, float]:
    client = Http(base)
    times = []
    try:
        client.get(f"/api/v1/plants/{OTHER}", token)
        for _ in range(n):
            t0 = time.perf_counter()
            client.get(f"/api/v1/plants/{OTHER}", token)
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    finally:
        client.close()
    return {"p50_ms": pct(times, 0.5), "p99_ms": pct(times, 0.99), "max_ms": max(times),
            "mean_ms": statistics.fmean(times), "n": len(times)}


def under_load(base: str, small_token: str, n: int,
               loads: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    """The small requests while every load in ``loads`` (token, params) is downloaded over
    and over."""
    done = threading.Event()
    finished: list[float] = []
    path = f"/api/v1/plants/{PLANT}/meters/{METER}/history"

    def loop(token: str, params: dict[str, str]) -> None:
        while not done.is_set():
            seconds, _ = download(base, path, token, **params)
            finished.append(seconds)

    threads = [threading.Thread(target=loop, args=load, daemon=True) for load in loads]
    for t in threads:
        t.start()
    time.sleep(1.0)  # every load under way
    try:
        figures = small_requests(base, small_token, n)
    finally:
        done.set()
        for t in threads:
            t.join()
    return {**figures, "exports_finished": len(finished)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2_000_000,
                        help="raw readings of the exported meter (the Parquet limit)")
    parser.add_argument("--xlsx-rows", type=int, default=200_000,
                        help="rows of the XLSX export (its limit)")
    parser.add_argument("--requests", type=int, default=300,
                        help="small requests per latency case")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "exports.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.url, args.rows)
        return
    url = os.environ.get("ENERGYMON_DATABASE_URL")
    server = scratch = None
    if not url:
        scratch = Path(tempfile.mkdtemp(prefix="energymon-perf-exports-"))
        server = EmbeddedPostgres(scratch / "pg")
        url = server.start("perf")
    api_process = None
    try:
        migrate(url)
        print(f"loading {args.rows:,} raw readings of one meter ...", flush=True)
        load(url, args.rows)
        results: dict[str, Any] = {"rows": args.rows, "xlsx_rows": args.xlsx_rows,
                                   "cores": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}

        print("1. memory without HTTP (a child process each)", flush=True)
        ways = [("copy", args.rows), ("parquet", args.rows), ("in-memory-parquet", args.rows),
                ("copy", args.xlsx_rows), ("xlsx", args.xlsx_rows)]
        results["memory"] = []
        for way, rows in ways:
            r = run_child(way, url, rows)
            results["memory"].append(r)
            print(f"  {way:18} {rows:>9,} rows {r['seconds']:6.1f} s {r['bytes'] / 1e6:7.1f} MB"
                  f"  RSS +{r['rss_added_mb']:6.1f} MB", flush=True)

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM api_tokens WHERE name LIKE 'perf %%'")
            _, auditor = create_token(conn, name="perf auditor", role="auditor")
            _, exporter = create_token(conn, name="perf plant", role="plant", plant=PLANT)
            _, other = create_token(conn, name="perf other", role="plant", plant=OTHER)
        api_process, base = start_server_process(url)
        path = f"/api/v1/plants/{PLANT}/meters/{METER}/history"
        lo = START.date().isoformat()

        def to(rows: int) -> str:
            return (START + timedelta(minutes=rows)).isoformat()

        big = {"from": lo, "to": to(args.rows), "resolution": "raw"}
        small = {"from": lo, "to": to(args.xlsx_rows), "resolution": "raw"}
        copy_s = {r["rows"]: r["seconds"] for r in results["memory"] if r["way"] == "copy"}

        print("2. through the API: the server's RSS during each download", flush=True)
        results["api"] = []
        for fmt, params in (("csv", big), ("parquet", big), ("xlsx", small), ("parquet", big)):
            before = rss_mb(api_process.pid)
            with RssSampler(api_process.pid) as sampler:
                seconds, size = download(base, path, exporter, **params, format=fmt)
            rows = args.rows if params is big else args.xlsx_rows
            r = {"format": fmt, "rows": rows, "seconds": seconds, "bytes": size,
                 "rss_before_mb": before, "rss_peak_mb": sampler.peak,
                 "rss_added_mb": sampler.peak - before,
                 "seconds_over_copy": seconds / copy_s[rows]}
            results["api"].append(r)
            print(f"  {fmt:8} {rows:>9,} rows {seconds:6.1f} s ({r['seconds_over_copy']:.1f}x "
                  f"the bare COPY) {size / 1e6:7.1f} MB  server RSS {before:.0f} -> "
                  f"{sampler.peak:.0f} MB", flush=True)

        print("3. another tenant's small request", flush=True)
        latency = {"alone": small_requests(base, other, args.requests)}
        latency["two_csv"] = under_load(base, other, args.requests,
                                        [(exporter, {**big, "format": "csv"}),
                                         (auditor, {**big, "format": "csv"})])
        latency["xlsx_and_parquet"] = under_load(base, other, args.requests,
                                                 [(exporter, {**small, "format": "xlsx"}),
                                                  (auditor, {**big, "format": "parquet"})])
        latency["rss_after_mb"] = rss_mb(api_process.pid)
        api_process.terminate()
        api_process.wait(10)

        # the same server building in a thread of its own process (api.export_in_worker off)
        os.environ["ENERGYMON_API_EXPORT_IN_WORKER"] = "false"
        try:
            api_process, base = start_server_process(url)
        finally:
            del os.environ["ENERGYMON_API_EXPORT_IN_WORKER"]
        before = rss_mb(api_process.pid)
        with RssSampler(api_process.pid) as sampler:
            seconds, size = download(base, path, exporter, **big, format="parquet")
        results["api"].append({"format": "parquet (in a thread)", "rows": args.rows,
                               "seconds": seconds, "bytes": size, "rss_before_mb": before,
                               "rss_peak_mb": sampler.peak, "rss_added_mb": sampler.peak - before,
                               "seconds_over_copy": seconds / copy_s[args.rows]})
        print(f"  parquet in a thread {seconds:6.1f} s  server RSS {before:.0f} -> "
              f"{sampler.peak:.0f} MB", flush=True)
        latency["xlsx_and_parquet_in_a_thread"] = under_load(
            base, other, args.requests, [(exporter, {**small, "format": "xlsx"}),
                                         (auditor, {**big, "format": "parquet"})])
        latency["rss_after_in_a_thread_mb"] = rss_mb(api_process.pid)
        results["latency"] = latency
        for case, f in latency.items():
            if isinstance(f, dict):
                print(f"  {case:17} p50 {f['p50_ms']:6.1f} ms  p99 {f['p99_ms']:6.1f} ms  "
                      f"max {f['max_ms']:6.1f} ms", flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"results in {args.out}")
    finally:
        if api_process is not None:
            api_process.terminate()
            api_process.wait(10)
        if server is not None:
            server.stop()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
