"""The API's numbers against the accounting module, on simulator data in a real PostgreSQL."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator

import anyio
import pandas as pd
import psycopg
import pytest

from accounting.periods import parse_period
from accounting.verdicts import area_kpis, unit_results
from benchmarks.catalogue import Catalogue
from tests.integration.api_support import DAY, MONTH, SH, ApiEnv, api_env

API = "/api/v1"
FIELDS = ("status", "intensity", "intensity_unit", "benchmark", "baseline",
          "gap_to_benchmark_pct", "saving_potential_tce", "output", "energy_kgce",
          "electricity_kwh", "co2_kg", "carbon_intensity", "estimated_share", "completeness",
          "output_source", "metered_output", "declared_output", "estimated_output_share")


@pytest.fixture(scope="module")
def env(pg_server: object) -> Iterator[ApiEnv]:
    url = pg_server.create_database("api")  # type: ignore[attr-defined]
    try:
        with api_env(url) as e:
            yield e
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


def expected(env: ApiEnv, period: str, **scope: str) -> list:
    with psycopg.connect(env.url) as conn:
        return unit_results(conn, parse_period(period, SH), catalogue=Catalogue.load(), **scope)


def same(api_unit: dict, result: object) -> None:
    for name in FIELDS:
        want = getattr(result, name)
        got = api_unit[name]
        if isinstance(want, float):
            assert got == pytest.approx(want, rel=1e-12, abs=1e-12), name
        else:
            assert got == want, name
    assert api_unit["energy_tce"] == pytest.approx(result.energy_kgce / 1000)  # type: ignore[attr-defined]
    assert [r["code"] for r in api_unit["reasons"]] == [
        r.code for r in result.reasons]  # type: ignore[attr-defined]
    assert [m["completeness"] for m in api_unit["meters"]] == pytest.approx(
        [m.completeness for m in result.meters])  # type: ignore[attr-defined]
    prov = api_unit["provenance"]
    assert prov["edition"] == result.edition  # type: ignore[attr-defined]
    assert prov["catalogue_version"] == result.catalogue_version  # type: ignore[attr-defined]
    assert tuple(prov["factor_versions"]) == result.factor_versions  # type: ignore[attr-defined]


@pytest.mark.parametrize("period", [DAY, MONTH])
def test_plant_and_unit_intensity_equal_unit_results(env: ApiEnv, period: str) -> None:
    for plant in env.fleet_plants:
        want = {r.unit: r for r in expected(env, period, plant=plant)}
        body = env.get("admin", f"{API}/plants/{plant}/intensity", period=period).json()
        assert {u["unit"] for u in body["units"]} == set(want)
        for unit in body["units"]:
            same(unit, want[unit["unit"]])
        assert body["energy_kgce"] == pytest.approx(sum(r.energy_kgce for r in want.values()))
        for code, result in want.items():
            one = env.get("admin", f"{API}/plants/{plant}/units/{code}/intensity",
                          period=period).json()
            same(one, result)
    # the data holds every verdict the fleet was built for (on a complete day)
    statuses = {r.status for r in expected(env, DAY)}
    assert {"at_benchmark", "below_benchmark", "below_baseline"} <= statuses


def test_unit_energy_equals_the_unit_results(env: ApiEnv) -> None:
    for result in expected(env, MONTH):
        body = env.get("plant-cement" if result.plant == "jx-yujiang-cement" else "admin",
                       f"{API}/plants/{result.plant}/units/{result.unit}/energy",
                       period=MONTH).json()
        assert body["comprehensive_kgce"] == pytest.approx(result.energy_kgce, rel=1e-12)
        assert body["comprehensive_tce"] == pytest.approx(result.energy_kgce / 1000)
        assert body["co2_kg"] == pytest.approx(result.co2_kg, rel=1e-12)
        kwh = sum(r["quantity"] * (1000 if r["quantity_unit"] == "MWh" else 1)
                  * (-1 if r["flow"] == "exported" else 1)
                  for r in body["rows"] if r["energy_type"].startswith("electricity"))
        assert kwh == pytest.approx(result.electricity_kwh, rel=1e-12)
        output = sum(r["quantity"] for r in body["rows"] if r["flow"] == "production")
        if output:
            assert output == pytest.approx(result.output, rel=1e-12)


def test_plant_energy_equals_the_plant_rollup_view(env: ApiEnv) -> None:
    period = parse_period(MONTH, SH)
    with psycopg.connect(env.url) as conn:
        view = dict(conn.execute(
            "SELECT p.code, sum(v.net_kgce) FROM energy_by_plant_month v "
            "JOIN plants p ON p.id = v.plant_id WHERE v.bucket >= %s AND v.bucket < %s "
            "GROUP BY p.code", (period.start, period.end)).fetchall())
    for plant, net in view.items():
        body = env.get("admin", f"{API}/plants/{plant}/energy", period=MONTH).json()
        assert body["comprehensive_kgce"] == pytest.approx(net, rel=1e-9)
        assert body["from"] == "2026-10-01T00:00:00+08:00"
        by_flow = sum(r["kgce"] * (-1 if r["flow"] == "exported" else 1)
                      for r in body["rows"] if r["kgce"] is not None)
        assert by_flow == pytest.approx(net, rel=1e-9)


def test_flagged_units_and_regional_kpis(env: ApiEnv) -> None:
    want = [r for r in expected(env, DAY, region="360000")
            if r.status in ("below_benchmark", "below_baseline")]
    body = env.get("regulator-jx", f"{API}/flagged", period=DAY).json()
    assert body["count"] == len(want) > 0
    got = {(u["plant"], u["unit"]): u for u in body["data"]}
    for r in want:
        same(got[r.plant, r.unit], r)
    savings = [u["saving_potential_tce"] for u in body["data"]]
    assert savings == sorted(savings, reverse=True)
    # filters: status, area, region
    only = env.get("admin", f"{API}/flagged", period=DAY, status="below_baseline").json()
    assert only["data"] and all(u["status"] == "below_baseline" for u in only["data"])
    cement = env.get("admin", f"{API}/flagged", period=DAY, area="cement",
                     status=["at_benchmark", "below_benchmark", "below_baseline"]).json()
    assert {u["catalogue_key"] for u in cement["data"]} == {"cement/clinker"}
    gx = env.get("admin", f"{API}/flagged", period=DAY, region="450000").json()
    assert gx["data"] and {u["region"][:2] for u in gx["data"]} == {"45"}
    # pagination: limit 1 walks every flagged unit through `next` and the Link header
    seen, url = [], f"{API}/flagged?period={DAY}&limit=1"
    while url:
        r = env.client.get(url, headers=env.headers("admin"))
        page = r.json()
        seen += [(u["plant"], u["unit"]) for u in page["data"]]
        url = page["next"]
        assert (url is None) == ("link" not in r.headers)
    everything = env.get("admin", f"{API}/flagged", period=DAY).json()
    assert seen == [(u["plant"], u["unit"]) for u in everything["data"]]
    # KPIs of a region = area_kpis over the same unit results
    kpis = env.get("regulator-jx", f"{API}/regions/360000/kpis", period=DAY).json()
    results = expected(env, DAY, region="360000")
    assert kpis["units"] == len(results)
    for api_kpi, kpi in zip(kpis["areas"], area_kpis(results), strict=True):
        for name, value in kpi.__dict__.items():
            assert api_kpi[name] == (pytest.approx(value) if isinstance(value, float)
                                     else value), name


def test_a_month_with_four_days_of_data_is_not_judged(env: ApiEnv) -> None:
    # the data cover 29 October - 1 November: October is 10 % complete, so no unit is
    # flagged and the KPIs put all capacity under "unknown", with the reasons
    assert env.get("regulator-jx", f"{API}/flagged", period=MONTH).json()["count"] == 0
    kpis = env.get("regulator-jx", f"{API}/regions/360000/kpis", period=MONTH).json()
    assert kpis["areas"] and all(a["share_capacity_unknown"] == 1.0 for a in kpis["areas"])
    unit = env.get("plant-cement", f"{API}/plants/jx-yujiang-cement/units/kiln-1/intensity",
                   period=MONTH).json()
    assert unit["status"] == "not_evaluable" and unit["intensity"] is None
    assert {r["code"] for r in unit["reasons"]} == {"meter_incomplete"}
    assert all(m["completeness"] < 0.15 for m in unit["meters"])
    assert unit["meters"][0]["incomplete_days"][:2] == ["2026-10-01", "2026-10-02"]


def test_meter_status_counts_the_readings(env: ApiEnv) -> None:
    body = env.get("plant-cement", f"{API}/plants/jx-yujiang-cement/status",
                   **{"from": "2026-10-30", "to": "2026-10-31"}).json()
    with psycopg.connect(env.url) as conn:
        counts = dict(conn.execute(
            "SELECT m.code, count(r.*) FROM meters m JOIN plants p ON p.id = m.plant_id "
            "LEFT JOIN readings r ON r.meter_id = m.id AND r.ts >= '2026-10-30T00:00+08' "
            "AND r.ts < '2026-10-31T00:00+08' WHERE p.code = 'jx-yujiang-cement' "
            "GROUP BY 1").fetchall())
        last = dict(conn.execute(
            "SELECT m.code, max(r.ts) FROM meters m JOIN readings r ON r.meter_id = m.id "
            "JOIN plants p ON p.id = m.plant_id WHERE p.code = 'jx-yujiang-cement' "
            "GROUP BY 1").fetchall())
    assert {m["meter"]: m["received"] for m in body["meters"]} == counts
    for m in body["meters"]:
        assert m["expected"] == 96
        assert m["completeness"] == pytest.approx(min(1, counts[m["meter"]] / 96))
        assert pd.Timestamp(m["last_seen"]) == pd.Timestamp(last[m["meter"]])
        assert m["online"] is False  # the data ends weeks before now
    one = env.get("plant-cement", f"{API}/plants/jx-yujiang-cement/meters/k2-elec/status",
                  **{"from": "2026-10-30", "to": "2026-10-31"}).json()
    assert one["received"] == counts["k2-elec"] < 96  # offline 30 minutes a day


def _history(env: ApiEnv, path: str, **params: object) -> list[dict]:
    rows: list[dict] = []
    url: str | None = path
    for page in range(500):
        if url is None:
            return rows
        r = env.client.get(url, params=None if page else params,
                           headers=env.headers("auditor-all"))
        assert r.status_code == 200, r.text
        rows += r.json()["data"]
        url = r.json()["next"]
    raise AssertionError(f"history paging did not end after 500 pages (stuck at {url})")


def test_history_sums_to_the_period_totals_at_every_resolution(env: ApiEnv) -> None:
    plant = "jx-yujiang-cement"
    day = env.get("admin", f"{API}/plants/{plant}/energy", period=DAY).json()
    for resolution in ("15min", "hour", "day"):
        rows = _history(env, f"{API}/plants/{plant}/history", resolution=resolution,
                        limit=50, **{"from": DAY, "to": "2026-10-31"})
        keys = [(r["ts"], r["energy_type"], r["flow"], r["quantity_unit"]) for r in rows]
        assert len(keys) == len(set(keys))  # keyset pages neither repeat nor skip
        net = sum(r["kgce"] * (-1 if r["flow"] == "exported" else 1) for r in rows
                  if r["kgce"] is not None)
        assert net == pytest.approx(day["comprehensive_kgce"], rel=1e-9), resolution
        if resolution == "hour":  # a page smaller than one bucket's series still holds the
            # whole bucket (the series are counted only when the limit is below the meters)
            tiny = _history(env, f"{API}/plants/{plant}/history", resolution=resolution,
                            limit=1, **{"from": DAY, "to": "2026-10-31"})
            assert tiny == rows and len({r["energy_type"] for r in rows}) > 1
    month_rows = _history(env, f"{API}/plants/{plant}/units/kiln-1/history",
                          resolution="month", **{"from": "2026-10-01", "to": "2026-11-01"})
    unit = env.get("admin", f"{API}/plants/{plant}/units/kiln-1/energy", period=MONTH).json()
    assert sum(r["kgce"] or 0 for r in month_rows) == pytest.approx(unit["consumed_kgce"])


def test_raw_history_is_the_stored_readings(env: ApiEnv) -> None:
    rows = _history(env, f"{API}/plants/jx-yujiang-cement/meters/k1-elec/history",
                    resolution="raw", limit=40, **{"from": DAY, "to": "2026-10-31"})
    with psycopg.connect(env.url) as conn:
        stored = conn.execute(
            "SELECT r.ts, r.value FROM readings r JOIN meters m ON m.id = r.meter_id "
            "WHERE m.code = 'k1-elec' AND r.ts >= '2026-10-30T00:00+08' "
            "AND r.ts < '2026-10-31T00:00+08' ORDER BY r.ts").fetchall()
    assert [(pd.Timestamp(r["ts"]), r["value"]) for r in rows] == \
        [(pd.Timestamp(ts), v) for ts, v in stored]
    assert all(r["quality"] == "good" and r["flow"] == "reading" for r in rows)


def read_export(fmt: str, content: bytes) -> pd.DataFrame:
    data = io.BytesIO(content)
    if fmt == "csv":
        return pd.read_csv(data)
    if fmt == "xlsx":
        return pd.read_excel(data, sheet_name="history")
    return pd.read_parquet(data)


@pytest.mark.parametrize("level", ["plant", "unit", "meter"])
def test_exports_read_back_in_pandas_with_the_json_numbers(env: ApiEnv, level: str) -> None:
    path = {"plant": f"{API}/plants/jx-yujiang-cement/history",
            "unit": f"{API}/plants/jx-yujiang-cement/units/kiln-2/history",
            "meter": f"{API}/plants/jx-yujiang-cement/meters/k2-elec/history"}[level]
    params = {"from": "2026-10-29", "to": "2026-11-02", "resolution": "hour"}
    frame = pd.DataFrame(_history(env, path, **params))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    numeric = ["quantity", "estimated", "kgce", "co2_kg", "readings"]
    for fmt in ("csv", "xlsx", "parquet"):
        r = env.client.get(path, params={**params, "format": fmt},
                           headers=env.headers("auditor-all"))
        assert r.status_code == 200, r.text
        assert "attachment" in r.headers["content-disposition"]
        got = read_export(fmt, r.content)
        got["ts"] = pd.to_datetime(got["ts"], utc=True)
        assert len(got) == len(frame) > 90, fmt
        assert list(got["ts"]) == list(frame["ts"]), fmt
        assert list(got["energy_type"]) == list(frame["energy_type"])
        for col in numeric:
            pd.testing.assert_series_equal(got[col].astype(float), frame[col].astype(float),
                                           check_names=False, rtol=1e-12, obj=f"{fmt} {col}")



def test_an_export_built_in_the_api_process_is_the_same_as_the_workers(env: ApiEnv) -> None:
    # api.export_in_worker = false builds in a thread of the API process: same rows, same
    # numbers as the worker process's file
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.config import ApiConfig
    from core.settings import Settings

    path = f"{API}/plants/jx-yujiang-cement/history"
    params = {"from": "2026-10-29", "to": "2026-11-02", "resolution": "hour"}
    app = create_app(Settings(database_url=env.url),
                     ApiConfig(rate_per_second=0, push_enabled=False, export_in_worker=False),
                     database_url=env.url)
    with TestClient(app) as in_process:
        for fmt in ("xlsx", "parquet"):
            a = in_process.get(path, params={**params, "format": fmt},
                               headers=env.headers("auditor-all"))
            b = env.client.get(path, params={**params, "format": fmt},
                               headers=env.headers("auditor-all"))
            assert a.status_code == b.status_code == 200, (a.text, b.text)
            pd.testing.assert_frame_equal(read_export(fmt, a.content),
                                          read_export(fmt, b.content))


def test_export_limits_are_enforced_up_front(pg_server: object) -> None:
    from api.config import ApiConfig

    url = pg_server.create_database("api")  # type: ignore[attr-defined]
    try:
        with api_env(url, config=ApiConfig(rate_per_second=0, push_enabled=False,
                                           xlsx_max_rows=50, history_json_max_rows=20)) as e:
            path = f"{API}/plants/jx-yujiang-cement/meters/k1-elec/history"
            r = e.get("admin", path, **{"from": DAY, "to": "2026-10-31", "format": "xlsx",
                                        "resolution": "hour"})
            assert r.status_code == 200  # 24 + 1 possible buckets
            r = e.get("admin", path, **{"from": DAY, "to": "2026-10-31", "format": "xlsx",
                                        "resolution": "15min"})
            assert r.status_code == 422
            assert r.headers["content-type"] == "application/problem+json"
            problem = r.json()
            assert problem["type"].endswith("export-too-large") and problem["limit"] == 50
            assert "narrow the range" in problem["detail"]
            r = e.get("admin", path, **{"from": DAY, "to": "2026-10-31", "format": "xlsx",
                                        "resolution": "raw"})
            assert r.status_code == 422  # 96 readings counted
            r = e.get("admin", path, **{"from": DAY, "to": "2026-10-31", "limit": 21})
            assert r.status_code == 422 and "at most 20" in r.json()["detail"]
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


def test_registry_reads_and_pagination(env: ApiEnv) -> None:
    all_plants = env.get("admin", f"{API}/plants").json()
    assert all_plants["count"] == len(env.fleet_plants) == 6
    page = env.client.get(f"{API}/plants", params={"limit": 4},
                          headers=env.headers("admin"))
    assert len(page.json()["data"]) == 4 and 'rel="next"' in page.headers["link"]
    rest = env.client.get(page.json()["next"], headers=env.headers("admin")).json()
    assert [p["id"] for p in page.json()["data"] + rest["data"]] == \
        [p["id"] for p in all_plants["data"]]
    assert rest["next"] is None
    jx = env.get("admin", f"{API}/plants", region="360000").json()
    assert {p["id"] for p in jx["data"]} == {"jx-yujiang-cement", "jx-shangyou-glass",
                                             "jx-yujiang-copper"}
    meters = env.get("plant-cement", f"{API}/plants/jx-yujiang-cement/meters",
                     unit="kiln-1").json()
    assert {m["id"] for m in meters["data"]} == {"k1-elec", "k1-coal", "k1-clinker"}
    meter = env.get("plant-cement", f"{API}/plants/jx-yujiang-cement/meters/k2-elec").json()
    assert meter["multiplier"] == 60 and meter["unit"] == "kiln-2"
    regions = env.get("plant-cement", f"{API}/regions").json()
    assert regions["count"] == 11


def test_problems_are_rfc9457_with_actionable_messages(env: ApiEnv) -> None:
    r = env.get("admin", f"{API}/plants/jx-yujiang-cement/intensity", period="2026-13")
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail", "instance"}
    assert "use 2026-10-05, 2026-10" in body["detail"]
    r = env.get("admin", f"{API}/plants/jx-yujiang-cement/history",
                **{"from": "2026-10-30T00:00", "to": "2026-10-31"})
    assert r.status_code == 422 and "no UTC offset" in r.json()["detail"]
    r = env.get("admin", f"{API}/plants/jx-yujiang-cement/history", to="2026-10-31")
    assert r.status_code == 422 and r.json()["errors"][0]["location"] == "query parameter from"
    r = env.client.get(f"{API}/nothing-here", headers=env.headers("admin"))
    assert r.status_code == 404 and "no such endpoint" in r.json()["detail"]


def test_every_request_gives_its_connection_back(env: ApiEnv) -> None:
    """db_route: after streamed downloads, abandoned streams, errors raised inside a route and
    failed authentication, every pooled connection is idle again and outside a transaction
    (nothing holds a connection, nothing leaks a scope into the next request)."""
    pool = env.client.app.state.api.database.pool
    csv = f"{API}/plants/jx-yujiang-cement/meters/k1-elec/history"
    params = {"from": "2026-10-29", "to": "2026-11-02", "resolution": "15min",
              "format": "csv"}
    for _ in range(3):
        r = env.client.get(csv, params=params, headers=env.headers("plant-cement"))
        assert r.status_code == 200 and r.text.count("\n") > 300
        with env.client.stream("GET", csv, params=params,
                               headers=env.headers("plant-cement")) as stream:
            next(stream.iter_bytes())  # read a little, then hang up
        assert env.client.get(f"{API}/plants/gx-liuzhou-steel",
                              headers=env.headers("plant-cement")).status_code == 404
        assert env.client.get(f"{API}/plants/jx-yujiang-cement/intensity",
                              params={"period": "2026-13"},
                              headers=env.headers("plant-cement")).status_code == 422
        assert env.client.get(f"{API}/plants", headers={
            "Authorization": "Bearer emk_" + "x" * 43}).status_code == 401
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stats = pool.get_stats()
        if stats["pool_available"] == stats["pool_size"]:
            break
        time.sleep(0.05)
    stats = pool.get_stats()
    assert stats["pool_available"] == stats["pool_size"] > 0, stats
    # and the next request on any of them starts with no scope: a plant token sees only its own
    for _ in range(stats["pool_size"] + 1):
        r = env.client.get(f"{API}/plants", headers=env.headers("plant-glass"))
        assert [p["id"] for p in r.json()["data"]] == ["jx-shangyou-glass"]


def _wait_all_idle(pool: object, seconds: float = 5.0) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        stats = pool.get_stats()  # type: ignore[attr-defined]
        if stats["pool_available"] == stats["pool_size"] or time.monotonic() > deadline:
            return stats
        time.sleep(0.02)


def test_a_streamed_body_holds_its_connection_until_it_ends(env: ApiEnv) -> None:
    """The mechanism behind the test above, where garbage collection would hide a fault:
    db_route's worker (``_serve``) keeps the request's connection (and its transaction, with
    the principal's scope) for a streamed body while the body is read, and gives it back as
    soon as the body ends or the reader hangs up, not when the objects are collected."""
    from fastapi import Response
    from fastapi.responses import StreamingResponse
    from starlette.requests import Request

    from api.deps import Db, _serve

    state = env.client.app.state.api
    pool = state.database.pool
    request = Request({"type": "http", "method": "GET", "path": "/", "headers": [],
                       "query_string": b"", "client": ("127.0.0.1", 1)})

    def route(db: Db, chunks: int) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            for _ in range(chunks):  # reads through the request's own connection
                yield db.conn.execute("SELECT current_setting('energymon.scope_plants', true)"
                                      ).fetchone()[0].encode() + b"\n"
        return StreamingResponse(body())

    async def read(response: StreamingResponse, hang_up_after: int | None) -> list[bytes]:
        out: list[bytes] = []
        iterator = response.body_iterator
        async for chunk in iterator:
            out.append(chunk if isinstance(chunk, bytes) else chunk.encode())
            if hang_up_after is not None and len(out) == hang_up_after:
                await iterator.aclose()  # type: ignore[attr-defined]
                break
        return out

    with psycopg.connect(env.url) as conn:
        cement = str(conn.execute("SELECT id FROM plants WHERE code = 'jx-yujiang-cement'"
                                  ).fetchone()[0])
    for hang_up_after in (None, 1):
        stats = _wait_all_idle(pool)
        assert stats["pool_available"] == stats["pool_size"] > 0, stats
        # ``response`` stays referenced, so collection cannot give anything back meanwhile
        response = _serve(state, request, env.tokens["plant-cement"], route, {"chunks": 3},
                          Response())
        stats = pool.get_stats()
        assert stats["pool_size"] - stats["pool_available"] == 1, (
            "the streamed body's connection went back to the pool before the body was read",
            stats)
        chunks = anyio.run(read, response, hang_up_after)
        assert chunks == [cement.encode() + b"\n"] * (hang_up_after or 3)  # scope still set
        stats = pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"], (
            "the connection was not given back when the body ended", hang_up_after, stats)


def test_heavy_exports_are_bounded_at_once(env: ApiEnv) -> None:
    # security review M2: XLSX and Parquet are built in the API process; while the slots are
    # held (exports running), another is answered 429 at once instead of piling up
    path = f"{API}/plants/jx-yujiang-cement/meters/k2-elec/history"
    params = {"from": "2026-10-29", "to": "2026-11-02", "resolution": "hour"}
    slots = env.client.app.state.api.exports  # type: ignore[attr-defined]
    assert slots.acquire("token:running-1") and slots.acquire("token:running-2")
    try:
        for fmt in ("xlsx", "parquet"):
            r = env.client.get(path, params={**params, "format": fmt},
                               headers=env.headers("auditor-all"))
            assert r.status_code == 429, r.text
            assert r.json()["type"].endswith("exports-busy") and r.headers["retry-after"]
        # CSV streams in constant memory and is not bounded this way
        csv = env.client.get(path, params={**params, "format": "csv"},
                             headers=env.headers("auditor-all"))
        assert csv.status_code == 200
    finally:
        slots.release("token:running-1")
        slots.release("token:running-2")
    r = env.client.get(path, params={**params, "format": "xlsx"},
                       headers=env.headers("auditor-all"))
    assert r.status_code == 200 and slots.held == 0
