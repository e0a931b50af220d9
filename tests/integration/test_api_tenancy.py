"""Tenant isolation: every endpoint x another plant's ids x each role yields no success, and
row-level security holds even when the application's checks are skipped."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from api.config import ApiConfig
from api.tokens import Role
from tests.integration.api_support import DAY, MONTH, TOKENS, ApiEnv, api_env, load_dataset

API = "/api/v1"
REGION_SUBTREES = {"360000": {"360000", "360600", "360622", "360700", "360724"},
                   "450000": {"450000", "450200", "450205", "450206"},
                   "500000": {"500000", "500116"}}
QUERY = {"period": MONTH, "from": DAY, "to": "2026-10-31"}


@pytest.fixture(scope="module")
def env(pg_server: object) -> Iterator[ApiEnv]:
    url = pg_server.create_database("api")  # type: ignore[attr-defined]
    try:
        with api_env(url, config=ApiConfig(rate_per_second=0, push_wait_seconds=5)) as e:
            yield e
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


def in_scope(env: ApiEnv, token: str) -> set[str]:
    role, plant, region = TOKENS[token]
    if plant is not None:
        return {plant}
    if region is None:
        return set(env.fleet_plants)
    return {p for p, r in env.fleet_plants.items() if r in REGION_SUBTREES[region]}


def registry(env: ApiEnv) -> dict[str, dict[str, Any]]:
    with psycopg.connect(env.url) as conn:
        units = conn.execute("SELECT p.code, min(u.code) FROM production_units u "
                             "JOIN plants p ON p.id = u.plant_id GROUP BY 1").fetchall()
        meters = conn.execute("SELECT p.code, min(m.code) FROM meters m "
                              "JOIN plants p ON p.id = m.plant_id GROUP BY 1").fetchall()
    out: dict[str, dict[str, Any]] = {p: {} for p in env.fleet_plants}
    for plant, code in units:
        out[plant]["unit"] = code
    for plant, code in meters:
        out[plant]["meter"] = code
    return out


def operations(env: ApiEnv) -> list[tuple[str, str, list[str]]]:
    """(method, path template, required query params) of every /api/v1 operation."""
    spec = env.client.get("/openapi.json").json()
    ops = []
    for path, item in spec["paths"].items():
        if not path.startswith(API):
            continue
        for method, op in item.items():
            required = [p["name"] for p in op.get("parameters", [])
                        if p["in"] == "query" and p.get("required")]
            ops.append((method.upper(), path, required))
    return ops


def body_for(method: str, path: str, plant: str, ids: dict[str, Any]) -> bytes | None:
    if method == "POST":  # readings push: a valid reading of that plant's meter
        return json.dumps({"meter": ids["meter"], "ts": "2026-10-30T12:00:00+08:00",
                           "value": 1.0}).encode()
    if path.endswith("/units/{unit}"):
        return json.dumps({"name": "x", "product": "x", "product_unit": "t",
                           "design_capacity": 1, "capacity_unit": "t/d"}).encode()
    if path.endswith("/meters/{meter}"):
        return json.dumps({"name": "x", "energy_type": "electricity", "kind": "counter",
                           "eng_unit": "kWh"}).encode()
    if path.endswith("/plants/{plant}"):
        return json.dumps({"uscc": "91360622MA35CEM01A", "name": "x", "region": "360622",
                           "industry": "x", "energy_class": "ge_10000_tce",
                           "key_unit": True}).encode()
    return None


def request(env: ApiEnv, token: str, method: str, template: str, required: list[str],
            plant: str, ids: dict[str, Any]) -> Any:
    path = template.replace("{plant}", plant).replace("{unit}", ids.get("unit", "x")) \
        .replace("{meter}", ids.get("meter", "x"))
    params = {name: QUERY[name] for name in required}
    body = body_for(method, template, plant, ids)
    return env.client.request(method, path, params=params, content=body,
                              headers={**env.headers(token),
                                       "Content-Type": "application/json"})


def snapshot(env: ApiEnv) -> tuple:
    with psycopg.connect(env.url) as conn:
        return tuple(conn.execute(q).fetchone() for q in (
            "SELECT count(*), max(updated_at) FROM plants",
            "SELECT count(*), max(updated_at) FROM production_units",
            "SELECT count(*), max(updated_at) FROM meters",
            "SELECT count(*) FROM readings", "SELECT count(*) FROM dead_letters"))


def test_cross_tenant_matrix_yields_no_success(env: ApiEnv) -> None:
    ids = registry(env)
    ops = operations(env)
    assert len([o for o in ops if "{plant}" in o[1]]) >= 17
    before = snapshot(env)
    attempts = successes = 0
    failures = []
    for token in TOKENS:
        mine = in_scope(env, token)
        foreign = sorted(set(env.fleet_plants) - mine)
        for method, template, required in ops:
            if "{plant}" not in template:
                continue
            for plant in foreign:
                r = request(env, token, method, template, required, plant, ids[plant])
                attempts += 1
                if r.status_code < 400:
                    successes += 1
                    failures.append(f"{token} {method} {template} {plant}: {r.status_code}")
                else:
                    assert r.headers["content-type"] == "application/problem+json"
                    # never says more than "not found" about a foreign plant's objects
                    assert r.status_code in (404, 403), (token, method, template, r.text)
                    if r.status_code == 403:  # only for plants the role may see
                        assert plant in mine
    assert attempts > 300
    assert successes == 0, failures
    assert snapshot(env) == before  # nothing was written


def test_the_matrix_requests_work_in_scope(env: ApiEnv) -> None:
    """The same requests on the token's own plant succeed (reads), so the matrix above fails
    for scope and not for a malformed request."""
    ids = registry(env)
    for token in ("plant-cement", "regulator-gx", "auditor-cq"):
        plant = sorted(in_scope(env, token))[0]
        for method, template, required in operations(env):
            if "{plant}" not in template or method != "GET":
                continue
            r = request(env, token, method, template, required, plant, ids[plant])
            assert r.status_code in (200, 404), (token, template, r.text)
            if r.status_code == 404:  # only a unit without meters has no intensity
                assert r.json()["type"].endswith("no-data"), (token, template, r.text)


def test_lists_and_regions_never_show_foreign_plants(env: ApiEnv) -> None:
    for token in TOKENS:
        mine = in_scope(env, token)
        foreign = set(env.fleet_plants) - mine
        bodies = [env.get(token, f"{API}/plants").text,
                  env.get(token, f"{API}/flagged", period=MONTH,
                          status=["at_benchmark", "below_benchmark", "below_baseline",
                                  "no_output", "unmapped", "not_evaluable"]).text]
        for region in REGION_SUBTREES:
            bodies.append(env.get(token, f"{API}/plants", region=region).text)
            r = env.get(token, f"{API}/flagged", period=MONTH, region=region)
            bodies.append(r.text)
            k = env.get(token, f"{API}/regions/{region}/kpis", period=MONTH)
            if TOKENS[token][0] == "plant":
                assert k.status_code == 403
            elif region in {"360000", "450000", "500000"} and not (mine & {
                    p for p, r_ in env.fleet_plants.items() if r_ in REGION_SUBTREES[region]}):
                assert k.status_code == 404, (token, region)
            bodies.append(k.text)
        for text in bodies:
            leaked = [p for p in foreign if re.search(rf'"{re.escape(p)}"', text)]
            assert not leaked, (token, leaked)
        own = env.get(token, f"{API}/plants").json()
        assert {p["id"] for p in own["data"]} == mine


# -- the database backstop -----------------------------------------------------------------------
RLS_TABLES = {
    "plants": "id", "production_units": "plant_id", "meters": "plant_id",
    "measured_calorific_values": "plant_id",
}
METER_TABLES = ("readings", "energy_intervals", "reading_conflicts", "meter_replacements",
                "energy_by_meter_hour", "energy_by_meter_day", "energy_by_meter_month")


def _as_api(conn: psycopg.Connection, plants: list[int], *, everything: bool = False) -> None:
    conn.execute("SET ROLE energymon_api")
    conn.execute("SELECT set_config('search_path', 'energymon_scoped, ' || "
                 "current_setting('search_path'), false)")
    conn.execute("SELECT set_config('energymon.scope_plants', %s, true), "
                 "set_config('energymon.scope_all', %s, true)",
                 (",".join(map(str, plants)), "on" if everything else "off"))


def check_backstop(url: str) -> None:
    with psycopg.connect(url) as owner:
        a, b = (owner.execute("SELECT id FROM plants WHERE code = %s", (c,)).fetchone()[0]
                for c in ("jx-yujiang-cement", "gx-liuzhou-steel"))
        b_meters = [r[0] for r in owner.execute("SELECT id FROM meters WHERE plant_id = %s",
                                                (b,))]
        totals = {t: owner.execute(sql.SQL("SELECT count(*) FROM {} WHERE meter_id = ANY(%s)"
                                           ).format(sql.Identifier(t)),
                                   (b_meters,)).fetchone()[0] for t in METER_TABLES}
        owner.execute("INSERT INTO dead_letters (source, plant_code, reason_code, reason, "
                      "payload) VALUES ('t', 'gx-liuzhou-steel', 'x', 'x', '\\x00')")
        owner.commit()
    assert totals["readings"] > 0 and totals["energy_by_meter_day"] > 0
    with psycopg.connect(url) as conn:
        _as_api(conn, [a])
        # no WHERE on scope at all: the application check is "skipped"
        for table, col in RLS_TABLES.items():
            rows = conn.execute(sql.SQL("SELECT DISTINCT {} FROM {}").format(
                sql.Identifier(col), sql.Identifier(table))).fetchall()
            assert {r[0] for r in rows} <= {a}, table
        for table in METER_TABLES:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE meter_id = ANY(%s)").format(
                sql.Identifier(table)), (b_meters,)).fetchone()[0]
            assert n == 0, table
        assert conn.execute("SELECT count(*) FROM dead_letters WHERE plant_code = "
                            "'gx-liuzhou-steel'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM production_records").fetchone()[0] == 0
        # the accounting's own query sees plant A only
        from accounting.periods import parse_period
        from accounting.verdicts import unit_results
        from tests.integration.api_support import SH

        plants_seen = {r.plant for r in unit_results(conn, parse_period(MONTH, SH))}
        assert plants_seen == {"jx-yujiang-cement"}
        conn.rollback()
    with psycopg.connect(url) as conn:
        _as_api(conn, [], everything=True)
        for table in METER_TABLES:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE meter_id = ANY(%s)").format(
                sql.Identifier(table)), (b_meters,)).fetchone()[0]
            assert n == totals[table], table
        conn.rollback()
    # writes need energymon.scope_write; the token table is out of reach
    with psycopg.connect(url) as conn:
        _as_api(conn, [a], everything=True)
        assert conn.execute("UPDATE plants SET name = 'x' WHERE id = %s RETURNING id",
                            (a,)).fetchall() == []
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # WITH CHECK refuses it
            conn.execute("INSERT INTO plants (code, uscc, name, region_code, industry, "
                         "energy_class, key_unit) SELECT 'x', '91360622MA35CEM01A', 'x', "
                         "'360622', 'x', 'ge_10000_tce', true")
    with psycopg.connect(url) as conn:
        _as_api(conn, [a])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM api_tokens")
    with psycopg.connect(url) as conn:
        _as_api(conn, [a])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO readings VALUES (1, now(), 1, 0)")


def test_row_level_security_backstop_postgres(env: ApiEnv) -> None:
    check_backstop(env.url)


@pytest.mark.timescale
def test_row_level_security_backstop_timescaledb(timescale_db: str) -> None:
    load_dataset(timescale_db, backend="timescaledb")
    with psycopg.connect(timescale_db) as conn:
        assert conn.execute("SELECT value FROM energymon_meta WHERE key = 'backend'"
                            ).fetchone()[0] == "timescaledb"
    check_backstop(timescale_db)
    # a schema-qualified query of a relation without policies is refused, not leaked
    with psycopg.connect(timescale_db) as conn:
        _as_api(conn, [1])
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.energy_by_meter_day")


@pytest.mark.timescale
def test_api_on_timescaledb_equals_accounting(timescale_db: str) -> None:
    from accounting.periods import parse_period
    from accounting.verdicts import unit_results
    from tests.integration.api_support import SH

    with api_env(timescale_db, backend="timescaledb") as e:
        with psycopg.connect(timescale_db) as conn:
            want = {(r.plant, r.unit): r for r in unit_results(conn, parse_period(DAY, SH))}
        body = e.get("regulator-jx", f"{API}/flagged", period=DAY,
                     status=["at_benchmark", "below_benchmark", "below_baseline"]).json()
        assert body["count"] > 0
        for u in body["data"]:
            assert u["plant"] in {"jx-yujiang-cement", "jx-shangyou-glass"}
            assert u["intensity"] == pytest.approx(want[u["plant"], u["unit"]].intensity)
        csv = e.get("plant-cement", f"{API}/plants/jx-yujiang-cement/history",
                    **{"from": DAY, "to": "2026-10-31", "format": "csv"})
        assert csv.status_code == 200 and csv.text.count("\n") > 24
        # the JSON page (binary fetch through the scoped views) holds the same rows
        page = e.get("plant-cement", f"{API}/plants/jx-yujiang-cement/history",
                     **{"from": DAY, "to": "2026-10-31"}).json()
        import csv as csv_module
        import io
        rows = list(csv_module.DictReader(io.StringIO(csv.text)))
        assert len(page["data"]) == len(rows) and page["next"] is None
        assert [r["ts"] for r in page["data"]][:3] == [r["ts"] for r in rows][:3]
        kgce = sum(r["kgce"] or 0.0 for r in page["data"])
        assert kgce > 0 and kgce == pytest.approx(sum(float(r["kgce"] or 0.0) for r in rows),
                                                  rel=1e-12)
        other = e.get("plant-cement", f"{API}/plants/gx-liuzhou-steel/history",
                      **{"from": DAY, "to": "2026-10-31"})
        assert other.status_code == 404


def test_role_enum_covers_the_token_roles() -> None:
    assert {r.value for r in Role} == {t[0] for t in TOKENS.values()}
