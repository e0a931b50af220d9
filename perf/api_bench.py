"""API latency (p50/p99) of the intensity, flagged-units and history endpoints, and API time
against the same SQL run directly, in one run.

Issue 7 target: on 100 plants x 1 year of 15-minute data, API time <= 1.3x the same SQL run
directly.

    .venv/bin/python perf/api_bench.py [--plants 100] [--days 365] [--requests 60]

Uses a fresh embedded PostgreSQL unless ENERGYMON_DATABASE_URL is set. Each plant has one
clinker line with an electricity, a coal and a clinker counter (3 meters; 100 plants x 365
days x 96 = 10.5 M readings), spread over four prefectures of one province; its coal use is
drawn so that the plants straddle the benchmark and baseline levels.

`energymon serve` runs in a child process and is called over HTTP/1.1 with keep-alive by a
minimal client (``http.client``; httpx costs about 0.5 ms more per request on its own, which
says nothing about the API). Every request is timed until the whole body is received. Two
direct baselines run the same requests' SQL on one psycopg connection, no HTTP:

- "statements": every statement the API sends for the request, one after another, as the
  API's database role under row-level security: BEGIN, token lookup + scope, the path's
  plant (and meter) lookup, the route's queries (the same functions), COMMIT;
- "bare": only the route's main query (or ``unit_results``), as the table owner (no
  authentication, no row-level security), with a plain fetch instead of JSON rendering.

API, statements and bare alternate request by request, each going first in turn (the first
to read a plant's pages meets them cold), after a warm-up of each (every pooled connection
has prepared its statements). API time /
statements time is the API's own cost (HTTP, FastAPI, rendering in Python); API / bare is the
whole price of serving the query safely over HTTP. Ratios are given from total times (every
request counts, outliers too) and at p50 (a typical request).

The floor, measured in each round: an HTTP round trip to the same server without database
work (``GET /health``) plus the statements of an authenticated request that does nothing
(BEGIN, token + scope, COMMIT). (bare + floor) / bare is the best ratio any API could reach
for that query if serving it safely over HTTP cost nothing more; API / (bare + floor) is what
this API adds beyond it.

``--rounds`` (default 3) repeats every endpoint on freshly drawn plants (runs on a shared VM
vary); the results pool all rounds and list each round's ratio. Results go to
perf/results/api.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from accounting.periods import parse_period
from accounting.store import Accountant
from accounting.verdicts import unit_results
from api import queries
from api.auth import authenticate
from api.config import ApiConfig
from api.db import configure_connection
from api.server import serve_in_thread
from api.tokens import create_token
from app.devservices.embedded_pg import EmbeddedPostgres
from benchmarks.catalogue import Catalogue
from core.settings import Settings
from fleet import parse_fleet
from fleet.registry import load_registry
from perf.clinker_fleet import clinker_fleet
from storage.migrate import migrate

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)
PREFECTURES = ["360100", "360200", "360300", "360400"]


def write_readings(url: str, days: int, start: datetime) -> int:
    """Counters per plant; coal per t of clinker drawn between 0.11 and 0.17 t (about 80 to
    122 kgce/t with electricity: at benchmark, below benchmark, below baseline)."""
    rng = random.Random(7)
    n = 0
    with psycopg.connect(url) as conn:
        meters = conn.execute("SELECT m.id, m.code, m.plant_id FROM meters m ORDER BY m.id"
                              ).fetchall()
        coal_per_t = {pid: rng.uniform(0.11, 0.17) for _, _, pid in meters}
        with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) FROM STDIN "
                                "(FORMAT BINARY)") as cp:
            cp.set_types(["int8", "timestamptz", "float8", "int2"])
            for meter_id, code, plant_id in meters:
                clinker = 5.2
                rate = {"elec": 110.0 * clinker, "coal": coal_per_t[plant_id] * clinker,
                        "clinker": clinker}[code]
                value = 0.0
                for k in range(days * 96 + 1):
                    cp.write_row((meter_id, start + k * Q, value, 0))
                    value += rate * rng.uniform(0.95, 1.05)
                    n += 1
    return n


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[idx]


def server_seconds(client: object, route: str) -> tuple[float, float]:
    """(sum, count) of the API's own latency histogram for ``route`` (time to the first byte
    of the response, measured inside the server)."""
    text = client.get("/metrics").decode()  # type: ignore[attr-defined]
    total = count = 0.0
    for line in text.splitlines():
        if f'route="{route}"' not in line:
            continue
        if line.startswith("energymon_api_request_seconds_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("energymon_api_request_seconds_count"):
            count = float(line.rsplit(" ", 1)[1])
    return total, count


def summarise(times: dict[str, list[float]], server: tuple[float, float] | None) -> dict:
    """p50/p99/totals per side and the ratios (from totals: every request counts)."""
    out: dict[str, float | int] = {"requests": len(times["api"])}
    for side, values in times.items():
        out[f"{side}_p50_ms"] = round(pct(values, 50) * 1000, 2)
        out[f"{side}_p99_ms"] = round(pct(values, 99) * 1000, 2)
        out[f"{side}_total_s"] = round(sum(values), 4)
    api_total = sum(times["api"])
    out["ratio_statements"] = round(api_total / sum(times["statements"]), 3)
    out["ratio_bare"] = round(api_total / sum(times["bare"]), 3)
    for side in ("statements", "bare"):  # a typical request, outliers aside
        out[f"ratio_{side}_p50"] = round(statistics.median(times["api"])
                                         / statistics.median(times[side]), 3)
    out["overhead_p50_ms"] = round((statistics.median(times["api"])
                                    - statistics.median(times["statements"])) * 1000, 2)
    if server is not None and server[1] > 0:
        server_mean = server[0] / server[1]
        out["server_mean_ms"] = round(server_mean * 1000, 2)
        out["ratio_server_statements"] = round(server_mean / statistics.mean(
            times["statements"]), 3)
    return out


def measure(name: str, n: int, api: Callable[[int], None], statements: Callable[[int], None],
            bare: Callable[[int], None], *, client: object = None,
            route: str | None = None, warm: int = 12) -> dict:
    for i in range(warm):  # every pooled connection prepares its statements
        api(i)
        statements(i)
        bare(i)
    times: dict[str, list[float]] = {"api": [], "statements": [], "bare": []}
    before = server_seconds(client, route) if route else (0.0, 0.0)
    sides = [("api", api), ("statements", statements), ("bare", bare)]
    for i in range(n):
        # the side that runs first for a plant meets its pages cold, the others warm: rotate
        for side, call in sides[i % 3:] + sides[:i % 3]:
            t0 = time.perf_counter()
            call(i)
            times[side].append(time.perf_counter() - t0)
    server = None
    if route:
        after = server_seconds(client, route)
        server = (after[0] - before[0], after[1] - before[1])
    out = summarise(times, server)
    print(f"  {name:<36} API p50 {out['api_p50_ms']:>7.2f} p99 {out['api_p99_ms']:>7.2f} ms"
          f" | statements p50 {out['statements_p50_ms']:>7.2f} ms"
          f" | bare p50 {out['bare_p50_ms']:>7.2f} ms"
          f" | API/statements {out['ratio_statements']:.2f}x, API/bare "
          f"{out['ratio_bare']:.2f}x", flush=True)
    return {**out, "_times": times, "_server": server}


def measure_floor(http: Callable[[], object], auth: Callable[[], object], n: int
                  ) -> dict[str, float]:
    """The least any request of this API can cost, in seconds (p50): an HTTP round trip
    through the same server to an endpoint without database work (``GET /health``), and the
    statements of an authenticated request that does nothing (BEGIN, token + scope, COMMIT)."""
    out = {}
    for key, call in (("http", http), ("auth", auth)):
        for _ in range(20):
            call()
        values = []
        for _ in range(n):
            t0 = time.perf_counter()
            call()
            values.append(time.perf_counter() - t0)
        out[key] = statistics.median(values)
    print(f"  floor: HTTP round trip (GET /health) {out['http'] * 1000:.3f} ms, token check "
          f"(BEGIN, token + scope, COMMIT) {out['auth'] * 1000:.3f} ms", flush=True)
    return out


def combine(rounds: list[dict[str, dict]], floor: dict[str, float]) -> dict[str, dict]:
    """All rounds' requests pooled per endpoint, with each round's ratios and the floor.

    ``best_ratio_bare``: (bare + HTTP round trip + token check) / bare at p50, the ratio an API
    would reach if serving the query safely over HTTP added nothing else; ``ratio_over_floor``:
    API / (bare + HTTP round trip + token check) at p50, what the API adds beyond that floor.
    """
    floor_ms = (floor["http"] + floor["auth"]) * 1000
    out: dict[str, dict] = {}
    for key in rounds[0]:
        parts = [r[key] for r in rounds]
        times = {side: [t for p in parts for t in p["_times"][side]]
                 for side in ("api", "statements", "bare")}
        servers = [p["_server"] for p in parts if p["_server"] is not None]
        server = (sum(s[0] for s in servers), sum(s[1] for s in servers)) if servers else None
        entry = summarise(times, server)
        entry["ratio_bare_rounds"] = [p["ratio_bare"] for p in parts]
        entry["ratio_statements_rounds"] = [p["ratio_statements"] for p in parts]
        bare = entry["bare_p50_ms"]
        entry["floor_ms"] = round(floor_ms, 3)
        entry["best_ratio_bare"] = round((bare + floor_ms) / bare, 3)
        entry["ratio_over_floor"] = round(entry["api_p50_ms"] / (bare + floor_ms), 3)
        out[key] = entry
    return out


class Http:
    """HTTP/1.1 keep-alive GETs with the standard library (the leanest client)."""

    def __init__(self, base: str) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)

    def get(self, path: str, token: str | None = None, **params: str) -> bytes:
        from urllib.parse import urlencode

        url = f"{path}?{urlencode(params)}" if params else path
        self.conn.request("GET", url, headers={"Authorization": f"Bearer {token}"}
                          if token else {})
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {url}: {response.status} {body[:300]!r}")
        return body

    def close(self) -> None:
        self.conn.close()


def start_server_process(url: str) -> tuple[subprocess.Popen, str]:
    """`energymon serve` in a child process (its own interpreter, as in production)."""
    import httpx

    from core.ports import free_port

    port = free_port()
    env = {**os.environ, "ENERGYMON_DATABASE_URL": url, "ENERGYMON_API_RATE_PER_SECOND": "0",
           "ENERGYMON_API_PUSH_ENABLED": "false", "ENERGYMON_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                               env=env, cwd=Path(__file__).resolve().parent.parent,
                               stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return process, base
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise RuntimeError("energymon serve exited during start-up")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("energymon serve did not become ready within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--plants", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument("--requests", type=int, default=60, help="per endpoint and round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of every endpoint, each on freshly drawn plants (runs on "
                        "a shared VM vary; the results pool all rounds and list each round's "
                        "ratios)")
    parser.add_argument("--backend", choices=["auto", "postgres", "timescaledb"],
                        default="auto")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "api.json"),
                        help="results file (default perf/results/api.json)")
    parser.add_argument("--reuse", action="store_true",
                        help="with ENERGYMON_DATABASE_URL: keep the data of an earlier run of "
                        "the same size instead of loading it again")
    parser.add_argument("--in-process", action="store_true",
                        help="serve the API in a thread of this process (shares the GIL with "
                        "the client) instead of an `energymon serve` child process")
    args = parser.parse_args()
    start = datetime(args.year, 1, 1, tzinfo=SH)
    url = os.environ.get("ENERGYMON_DATABASE_URL")
    server = None
    scratch = None
    if not url:
        scratch = Path(tempfile.mkdtemp(prefix="energymon-perf-api-"))
        server = EmbeddedPostgres(scratch / "pg")
        url = server.start("perf")
    api_server = None
    api_process = None
    try:
        backend = migrate(url, backend=args.backend).backend.value
        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT count(*) FROM plants WHERE code LIKE 'api-%%'"
                                ).fetchone()[0]
        if args.reuse and have == args.plants:
            n = args.plants * 3 * (args.days * 96 + 1)
            print(f"reusing the {have} plants already in the database", flush=True)
        else:
            print(f"loading {args.plants} plants x {args.days} days ...", flush=True)
            with psycopg.connect(url) as conn:
                fleet = clinker_fleet(args.plants, name="api-perf", id_prefix="api",
                                      uscc_tag="MA3AP", prefectures=PREFECTURES)
                load_registry(conn, parse_fleet(fleet))
            t0 = time.perf_counter()
            n = write_readings(url, args.days, start)
            print(f"  {n:,} readings in {time.perf_counter() - t0:.0f} s", flush=True)
            t0 = time.perf_counter()
            Accountant(url).recompute(
                progress=lambda d, t: print(f"\r  accounting {d}/{t} meters", end="",
                                            flush=True))
            print(f"\n  accounting in {time.perf_counter() - t0:.0f} s", flush=True)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            plants = [r[0] for r in conn.execute("SELECT code FROM plants ORDER BY code")]
            ids = {code: (pid, mid) for code, pid, mid in conn.execute(
                "SELECT p.code, p.id, m.id FROM plants p JOIN meters m ON m.plant_id = p.id "
                "WHERE m.code = 'elec'")}
            conn.execute("DELETE FROM api_tokens WHERE name LIKE 'perf %%'")
            _, admin = create_token(conn, name="perf admin", role="admin")
            _, regulator = create_token(conn, name="perf regulator", role="regulator",
                                        region="360000")
            plant_tokens = {p: create_token(conn, name=f"perf {p}", role="plant", plant=p)[1]
                            for p in plants}
        if args.in_process:
            api_server = serve_in_thread(
                Settings(database_url=url), database_url=url,
                config=ApiConfig(rate_per_second=0, push_enabled=False, pool_max=4))
            base = api_server.url
        else:
            api_process, base = start_server_process(url)
        client = Http(base)
        direct = psycopg.connect(url, autocommit=True)  # "bare": the table owner
        config = ApiConfig()
        same = psycopg.connect(url, prepare_threshold=0)  # "statements": as the API's role
        configure_connection(same, config.db_role)
        catalogue = Catalogue.load()
        year = str(args.year)
        month = f"{args.year}-06"

        def as_api(token: str, work: Callable[[], object]) -> object:
            """The statements of one API request: token + scope, the route's work, commit."""
            authenticate(same, token, statement_timeout_ms=config.statement_timeout_ms,
                         timezone=str(SH))
            try:
                return work()
            finally:
                same.commit()

        def flagged(rows: list) -> list:
            return [r for r in rows if r.status in ("below_benchmark", "below_baseline")]

        def one_round(round_no: int) -> dict[str, dict]:
            """Every endpoint once, API | statements | bare (plants drawn afresh)."""
            rng = random.Random(round_no + 1)
            picks = [rng.choice(plants) for _ in range(max(args.requests, 10) + 12)]
            results: dict[str, dict] = {}
            results["intensity_plant_year"] = measure(
                "intensity: one plant, one year", args.requests,
                lambda i: client.get(f"/api/v1/plants/{picks[i]}/intensity",
                                     plant_tokens[picks[i]], period=year),
                lambda i: as_api(plant_tokens[picks[i]], lambda: (
                    queries.plant(same, picks[i]),
                    unit_results(same, parse_period(year, SH), plant=picks[i],
                                 catalogue=catalogue))),
                lambda i: unit_results(direct, parse_period(year, SH), plant=picks[i],
                                       catalogue=catalogue),
                client=client, route="/api/v1/plants/{plant}/intensity")
            results["flagged_all_month"] = measure(
                f"flagged: {args.plants} plants, one month", max(10, args.requests // 3),
                lambda i: client.get("/api/v1/flagged", regulator, period=month, limit="1000"),
                lambda i: as_api(regulator, lambda: flagged(unit_results(
                    same, parse_period(month, SH), region="360000", catalogue=catalogue))),
                lambda i: flagged(unit_results(direct, parse_period(month, SH), region="360000",
                                               catalogue=catalogue)),
                client=client, route="/api/v1/flagged")
            results["flagged_all_year"] = measure(
                f"flagged: {args.plants} plants, one year", max(10, args.requests // 3),
                lambda i: client.get("/api/v1/flagged", admin, period=year, limit="1000"),
                lambda i: as_api(admin, lambda: flagged(unit_results(
                    same, parse_period(year, SH), catalogue=catalogue))),
                lambda i: flagged(unit_results(direct, parse_period(year, SH),
                                               catalogue=catalogue)),
                client=client, route="/api/v1/flagged")

            def history_args(i: int, level: str, resolution: str, lo: str, hi: str) -> dict:
                pid, mid = ids[picks[i]]
                return dict(level=level, resolution=resolution, plant_pk=pid, unit_pk=None,
                            meter_pk=mid if level == "meter" else None,
                            start=datetime.fromisoformat(lo).replace(tzinfo=SH),
                            end=datetime.fromisoformat(hi).replace(tzinfo=SH))

            def bare_history(i: int, level: str, resolution: str, lo: str, hi: str,
                             limit: int | None) -> None:
                q, params = queries.history_query(
                    limit=limit + 1 if limit else None, **history_args(i, level, resolution, lo,
                                                                       hi))
                direct.execute(q, params).fetchall()

            def json_statements(i: int, resolution: str, lo: str, hi: str, limit: int) -> object:
                def work() -> object:
                    plant = queries.plant(same, picks[i])
                    assert plant is not None
                    page = limit
                    if limit < plant.meters:  # as the API: counted only when it matters
                        page = max(limit, queries.series_count(
                            same, level="plant", plant_pk=plant.pk, unit_pk=None))
                    q, params = queries.history_query(
                        limit=page + 1, **history_args(i, "plant", resolution, lo, hi))
                    # the API's SQL: the page fetched in binary (it then renders it with orjson)
                    return same.cursor(binary=True).execute(q, params).fetchall()
                return as_api(admin, work)

            def csv_statements(i: int, lo: str, hi: str) -> object:
                def work() -> object:
                    plant = queries.plant(same, picks[i])
                    assert plant is not None
                    queries.meter(same, plant.pk, "elec")
                    q, params = queries.history_query(
                        limit=None, **history_args(i, "meter", "15min", lo, hi))
                    return b"".join(queries.history_csv(same, q, params))
                return as_api(admin, work)

            y0, y1 = f"{args.year}-01-01", f"{args.year + 1}-01-01"
            m0, m1 = f"{month}-01", f"{month}-30"
            for key, label, res, lo, hi in (
                    ("history_plant_day_year_json", "day, 1 year", "day", y0, y1),
                    ("history_plant_hour_month_json", "hour, 1 month", "hour", m0, m1)):
                results[key] = measure(
                    f"history: plant, {label}, JSON", args.requests,
                    lambda i, res=res, lo=lo, hi=hi: client.get(
                        f"/api/v1/plants/{picks[i]}/history", admin, resolution=res,
                        limit="10000", **{"from": lo, "to": hi}),
                    lambda i, res=res, lo=lo, hi=hi: json_statements(i, res, lo, hi, 10000),
                    lambda i, res=res, lo=lo, hi=hi: bare_history(i, "plant", res, lo, hi,
                                                                  10000),
                    client=client, route="/api/v1/plants/{plant}/history")
            results["history_meter_15min_year_csv"] = measure(
                "history: meter, 15 min, 1 year, CSV", max(10, args.requests // 3),
                lambda i: client.get(f"/api/v1/plants/{picks[i]}/meters/elec/history", admin,
                                     resolution="15min", format="csv", **{"from": y0, "to": y1}),
                lambda i: csv_statements(i, y0, y1),
                lambda i: bare_history(i, "meter", "15min", y0, y1, None), warm=4)
            return results

        rounds: list[dict[str, dict]] = []
        floors: list[dict[str, float]] = []
        for round_no in range(args.rounds):
            print(f"round {round_no + 1}/{args.rounds} (API over HTTP | the same statements "
                  "as the API role | the bare query as owner):", flush=True)
            floors.append(measure_floor(lambda: client.get("/health"),
                                        lambda: as_api(admin, lambda: None),
                                        max(60, args.requests * 3)))
            rounds.append(one_round(round_no))
        floor = {k: statistics.median(f[k] for f in floors) for k in floors[0]}
        results = combine(rounds, floor)

        def overall(side: str) -> float:
            return round(sum(r["api_total_s"] for r in results.values())
                         / sum(r[f"{side}_total_s"] for r in results.values()), 3)

        summary = {"plants": args.plants, "days": args.days, "readings": n,
                   "backend": backend, "client": "http.client, keep-alive",
                   "rounds": args.rounds, "goal_ratio": 1.3,
                   "floor_http_ms": round(floor["http"] * 1000, 3),
                   "floor_token_check_ms": round(floor["auth"] * 1000, 3),
                   "all_requests_ratio_statements": overall("statements"),
                   "all_requests_ratio_bare": overall("bare"),
                   "worst_ratio_statements": max(r["ratio_statements"]
                                                 for r in results.values()),
                   "worst_ratio_bare": max(r["ratio_bare"] for r in results.values()),
                   "worst_ratio_bare_p50": max(r["ratio_bare_p50"] for r in results.values()),
                   "worst_best_ratio_bare": max(r["best_ratio_bare"]
                                                for r in results.values()),
                   "worst_ratio_over_floor": max(r["ratio_over_floor"]
                                                 for r in results.values()),
                   "endpoints": results}
        print(f"all {args.rounds} rounds pooled (floor = HTTP round trip + token check = "
              f"{(floor['http'] + floor['auth']) * 1000:.2f} ms):")
        for key, r in results.items():
            print(f"  {key:<32} API/statements {r['ratio_statements']:.2f}x (p50 "
                  f"{r['ratio_statements_p50']:.2f}x), API/bare {r['ratio_bare']:.2f}x (p50 "
                  f"{r['ratio_bare_p50']:.2f}x; rounds "
                  f"{', '.join(f'{x:.2f}' for x in r['ratio_bare_rounds'])}); at best "
                  f"(bare + floor) / bare {r['best_ratio_bare']:.2f}x; API / (bare + floor) "
                  f"{r['ratio_over_floor']:.2f}x")
        out = Path(args.out)
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(summary, indent=2) + "\n")
        print("over all measured requests: API/statements "
              f"{summary['all_requests_ratio_statements']:.2f}x (worst endpoint "
              f"{summary['worst_ratio_statements']:.2f}x), API/bare "
              f"{summary['all_requests_ratio_bare']:.2f}x (worst "
              f"{summary['worst_ratio_bare']:.2f}x); goal <= 1.3x; results in {out}")
        client.close()
        direct.close()
        same.close()
    finally:
        if api_server is not None:
            api_server.stop()
        if api_process is not None:
            api_process.terminate()
            api_process.wait(30)
        if server is not None:
            server.stop("immediate")
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
