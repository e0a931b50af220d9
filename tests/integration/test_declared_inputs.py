"""Declared data through the CLI and the HTTP API (issue 13), on a real PostgreSQL.

Each kind (production records, measured calorific values, meter replacements, multiplier
changes, plant grid factors): a plant token writes its own plant's (201), another plant's is
404, a regulator's or auditor's write is 403, an admin writes any plant's; every validation
error names the field and writes nothing (table and audit log unchanged); audit rows carry
actor and time; each write queues the right meters in accounting_dirty. The database
backstop: as ``energymon_api`` with declare off (regulator) or for a plant outside the scope,
direct writes are refused by row-level security. End to end: a declared production record and
a measured calorific value entered through the API change the unit's intensity and verdict.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from accounting.declared import (
    OPEN_END,
    DeclaredInputError,
    add_calorific_value,
    add_production_record,
    queue_via_api,
)
from accounting.store import Accountant
from api.tokens import create_token, hash_secret
from app.cli import main
from fleet.registry import upsert_meter, upsert_plant, upsert_unit
from storage.dirty import mark_dirty
from storage.migrate import migrate
from tests.integration.api_support import SH, ApiEnv, api_env, make_tokens
from tests.integration.ingest_support import load_example_fleet

API = "/api/v1"
CEMENT, STEEL = "jx-yujiang-cement", "gx-liuzhou-steel"
TABLES = ("production_records", "measured_calorific_values", "meter_replacements",
          "meter_multipliers", "plant_grid_factors", "declared_input_log", "accounting_dirty")


# -- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture
def env(migrated_db: str, example_fleet_path: Path) -> Iterator[ApiEnv]:
    load_example_fleet(migrated_db, example_fleet_path)
    with api_env(migrated_db, load=False) as e:
        yield e


def q(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
                                ).fetchone()[0] for t in TABLES}


def dirty(url: str) -> set[tuple[str, datetime, datetime]]:
    return set(q(url, "SELECT m.code, d.from_ts, d.to_ts FROM accounting_dirty d "
                      "JOIN meters m ON m.id = d.meter_id"))


def clear_dirty(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM accounting_dirty")


def log(url: str) -> list[dict[str, Any]]:
    rows = q(url, "SELECT l.actor, l.at, p.code, l.kind, l.action, l.key, l.old, l.new "
                  "FROM declared_input_log l LEFT JOIN plants p ON p.id = l.plant_id "
                  "ORDER BY l.id")
    names = ("actor", "at", "plant", "kind", "action", "key", "old", "new")
    return [dict(zip(names, r, strict=True)) for r in rows]


def actor(url: str, token: str) -> str:
    (token_id,), = q(url, "SELECT id FROM api_tokens WHERE name = %s", token)
    return f"token:{token_id} ({token})"


def post(env: ApiEnv, token: str, path: str, body: dict[str, Any]) -> Any:
    return env.client.post(API + path, json=body, headers=env.headers(token))


def put(env: ApiEnv, token: str, path: str, body: dict[str, Any]) -> Any:
    return env.client.put(API + path, json=body, headers=env.headers(token))


def refused(env: ApiEnv, response: Any, status: int, field: str, before: dict[str, int]
            ) -> dict[str, Any]:
    """The answer is ``status`` naming ``field``, and nothing was written."""
    assert response.status_code == status, response.text
    body = response.json()
    assert field in body["detail"], body
    if status in (409, 422):
        assert any(field in e["location"] or field in e["message"] for e in body["errors"]), body
    assert counts(env.url) == before
    return body


def local(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- production records ----------------------------------------------------------------------
def test_production_records_through_the_api(env: ApiEnv) -> None:
    started = datetime.now(UTC)
    path = f"/plants/{CEMENT}/production-records"
    r = post(env, "plant-cement", path, {"unit": "kiln-1", "period": "2026-10",
                                         "quantity": 138000, "source": "统计报表 2026-10"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["action"] == "insert" and body["replaced"] is None and body["recompute"] == []
    record = body["record"]
    assert record["period_start"] == "2026-10-01T00:00:00+08:00"
    assert record["period_end"] == "2026-11-01T00:00:00+08:00"
    assert record["quantity"] == 138000 and record["quantity_unit"] == "t"
    assert record["entered_by"] == actor(env.url, "plant-cement")
    # other plants: 404; read-only roles: 403; admin: any plant
    assert post(env, "plant-cement", f"/plants/{STEEL}/production-records",
                {"unit": "bf-1", "period": "2026-10", "quantity": 1, "source": "x"}
                ).status_code == 404
    for token in ("regulator-jx", "auditor-all"):
        r = post(env, token, path, {"unit": "kiln-2", "period": "2026-10", "quantity": 1,
                                    "source": "x"})
        assert r.status_code == 403, r.text
        # the role is refused before the body is read: 403 whatever it holds
        assert post(env, token, path, {"junk": True}).status_code == 403
    assert post(env, "plant-cement", f"/plants/{STEEL}/production-records",
                {"junk": True}).status_code == 404
    r = post(env, "admin", f"/plants/{STEEL}/production-records",
             {"unit": "bf-1", "period_start": "2026-10-01T00:00:00+08:00",
              "period_end": "2026-10-16T00:00:00+08:00", "quantity": 95000, "quantity_unit": "t",
              "source": "half month"})
    assert r.status_code == 201, r.text
    # exactly the same period replaces the record; the old values go to the audit log
    r = post(env, "plant-cement", path, {"unit": "kiln-1", "period": "2026-10",
                                         "quantity": 140000, "source": "revised"})
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "replace" and r.json()["replaced"]["quantity"] == 138000
    # reads: every role within its scope
    listed = env.get("regulator-jx", API + path).json()
    assert [(d["unit"], d["quantity"]) for d in listed["data"]] == [("kiln-1", 140000)]
    assert env.get("regulator-jx", f"{API}/plants/{STEEL}/production-records").status_code == 404
    assert env.get("plant-cement", API + path, unit="kiln-9").status_code == 404

    before = counts(env.url)
    good = {"unit": "kiln-1", "quantity": 1, "source": "x"}
    body = refused(env, post(env, "plant-cement", path, {**good, "period": "2026-10-15"}), 409,
                   "period", before)
    assert "overlaps" in body["detail"]
    refused(env, post(env, "plant-cement", path, {**good, "period": "2026-09",
                                                  "quantity": -5}), 422, "quantity", before)
    refused(env, post(env, "plant-cement", path, {**good, "period_start": "2026-09-01T00:00:00",
                                                  "period_end": "2026-09-02T00:00:00+08:00"}),
            422, "period_start", before)
    refused(env, post(env, "plant-cement", path, {**good, "unit": "kiln-9", "period": "2026-09"}),
            422, "unit", before)
    refused(env, post(env, "plant-cement", path, {**good, "period": "2026-09",
                                                  "quantity_unit": "kg"}),
            422, "quantity_unit", before)
    refused(env, post(env, "plant-cement", path, {**good, "period": "ytd:2026-09"}), 422,
            "period", before)
    refused(env, post(env, "plant-cement", path, {**good, "period": "2026-13"}), 422,
            "period", before)
    refused(env, post(env, "plant-cement", path, {**good, "period": "2026-09",
                                                  "period_start": "2026-09-01T00:00:00+08:00"}),
            422, "period", before)
    refused(env, post(env, "plant-cement", path, {**good, "period_start": "2026-09-02T00:00+08:00",
                                                  "period_end": "2026-09-01T00:00+08:00"}),
            422, "period_end", before)
    refused(env, post(env, "plant-cement", path, {**good, "period": "2099-01"}), 422, "period",
            before)

    entries = log(env.url)
    assert [(e["plant"], e["kind"], e["action"]) for e in entries] == [
        (CEMENT, "production_record", "insert"), (STEEL, "production_record", "insert"),
        (CEMENT, "production_record", "replace")]
    assert entries[0]["actor"] == entries[2]["actor"] == actor(env.url, "plant-cement")
    assert entries[1]["actor"] == actor(env.url, "admin")
    assert all(started - timedelta(seconds=5) <= e["at"] <= datetime.now(UTC) for e in entries)
    assert entries[2]["key"] == {"plant": CEMENT, "unit": "kiln-1",
                                 "period_start": "2026-10-01T00:00:00+08:00",
                                 "period_end": "2026-11-01T00:00:00+08:00"}
    assert entries[2]["old"]["quantity"] == 138000 and entries[2]["new"]["quantity"] == 140000
    assert dirty(env.url) == set()  # production records need no recompute


# -- measured calorific values ---------------------------------------------------------------------
def test_calorific_values_through_the_api(env: ApiEnv) -> None:
    path = f"/plants/{CEMENT}/calorific-values"
    oct1 = local("2026-10-01T00:00:00+08:00")
    r = post(env, "plant-cement", path, {"energy_type": "raw_coal",
                                         "valid_from": oct1.isoformat(),
                                         "lhv_kj_per_unit": 23000, "source": "lab 2026-09"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["record"]["kgce_per_unit"] == pytest.approx(23000 / 29307.6)
    assert body["record"]["lhv_unit"] == "kg"
    assert body["record"]["entered_by"] == actor(env.url, "plant-cement")
    assert {(x["meter"], x["to"]) for x in body["recompute"]} == {("k1-coal", None),
                                                                   ("k2-coal", None)}
    assert dirty(env.url) == {("k1-coal", oct1, OPEN_END), ("k2-coal", oct1, OPEN_END)}
    # a later value bounds an earlier one's recompute range: to the next valid_from
    clear_dirty(env.url)
    nov1, oct15 = local("2026-11-01T00:00:00+08:00"), local("2026-10-15T00:00:00+08:00")
    assert post(env, "plant-cement", path, {"energy_type": "raw_coal",
                                            "valid_from": nov1.isoformat(),
                                            "lhv_kj_per_unit": 24000, "source": "lab"}
                ).status_code == 201
    assert post(env, "plant-cement", path, {"energy_type": "raw_coal",
                                            "valid_from": oct15.isoformat(),
                                            "lhv_kj_per_unit": 22000, "source": "lab"}
                ).status_code == 201
    assert dirty(env.url) == {("k1-coal", nov1, OPEN_END), ("k2-coal", nov1, OPEN_END),
                              ("k1-coal", oct15, nov1), ("k2-coal", oct15, nov1)}
    # the same key replaces
    r = post(env, "plant-cement", path, {"energy_type": "raw_coal", "valid_from": oct15.isoformat(),
                                         "lhv_kj_per_unit": 22500, "source": "lab, corrected"})
    assert r.status_code == 200 and r.json()["replaced"]["lhv_kj_per_unit"] == 22000
    # roles and scope
    assert post(env, "regulator-jx", path, {"energy_type": "raw_coal",
                                            "valid_from": oct1.isoformat(),
                                            "lhv_kj_per_unit": 1, "source": "x"}
                ).status_code == 403
    assert post(env, "plant-cement", f"/plants/{STEEL}/calorific-values",
                {"energy_type": "coke", "valid_from": oct1.isoformat(),
                 "lhv_kj_per_unit": 28000, "source": "x"}).status_code == 404
    clear_dirty(env.url)
    r = post(env, "admin", f"/plants/{STEEL}/calorific-values",
             {"energy_type": "coke", "valid_from": oct1.isoformat(), "lhv_kj_per_unit": 28000,
              "source": "lab"})
    assert r.status_code == 201 and {m for m, _, _ in dirty(env.url)} == {"bf1-coke"}
    listed = env.get("regulator-jx", API + path, energy_type="raw_coal").json()
    assert [d["lhv_kj_per_unit"] for d in listed["data"]] == [23000, 22500, 24000]

    before = counts(env.url)
    good = {"energy_type": "coke_oven_gas", "valid_from": oct1.isoformat(),
            "lhv_kj_per_unit": 17000, "source": "lab"}
    body = refused(env, post(env, "plant-cement", path, {**good, "energy_type": "unobtainium"}),
                   422, "energy_type", before)
    assert "coke_oven_gas" in body["detail"]  # the types that take a measured value are listed
    refused(env, post(env, "plant-cement", path, {**good, "energy_type": "electricity"}), 422,
            "energy_type", before)
    refused(env, post(env, "plant-cement", path, {**good, "energy_type": "heat"}), 422,
            "energy_type", before)
    refused(env, post(env, "plant-cement", path, {**good, "lhv_kj_per_unit": 17_000_000}), 422,
            "lhv_kj_per_unit", before)
    refused(env, post(env, "plant-cement", path, {**good, "lhv_kj_per_unit": 0}), 422,
            "lhv_kj_per_unit", before)
    refused(env, post(env, "plant-cement", path, {**good, "valid_from": "2026-10-01T00:00:00"}),
            422, "valid_from", before)
    # a type that needs a measured value is accepted (no meter of that type: nothing queued)
    r = post(env, "plant-cement", path, good)
    assert r.status_code == 201 and r.json()["recompute"] == []


# -- meter replacements ----------------------------------------------------------------------------
def test_meter_replacements_through_the_api(env: ApiEnv) -> None:
    with psycopg.connect(env.url) as conn:
        (plant_pk,), = conn.execute("SELECT id FROM plants WHERE code = %s", (CEMENT,))
        upsert_meter(conn, plant_pk=plant_pk, unit_pk=None, code="site-water", name="water",
                     energy_type="fresh_water", kind="interval", eng_unit="t",
                     multiplier=Decimal(1), direction="consumed", rollover_max=None,
                     model=None, interval_s=900, installed_at=None)
    path = f"/plants/{CEMENT}/meters/k1-elec/replacements"
    at = local("2026-10-30T10:00:00+08:00")
    r = post(env, "plant-cement", path, {"ts": at.isoformat(), "old_final": 123456.5,
                                         "new_initial": 0, "note": "swapped after a fault"})
    assert r.status_code == 201, r.text
    assert r.json()["record"]["eng_unit"] == "kWh"
    assert dirty(env.url) == {("k1-elec", at - timedelta(days=1), at + timedelta(days=1))}
    (stored,) = q(env.url, "SELECT old_final, new_initial, note, entered_by FROM "
                            "meter_replacements")
    assert stored == (123456.5, 0.0, "swapped after a fault", actor(env.url, "plant-cement"))
    assert post(env, "regulator-jx", path, {"ts": at.isoformat(), "old_final": 1,
                                            "new_initial": 0}).status_code == 403
    assert post(env, "plant-cement", f"/plants/{STEEL}/meters/bf1-coke/replacements",
                {"ts": at.isoformat(), "old_final": 1, "new_initial": 0}).status_code == 404
    assert post(env, "plant-cement", f"/plants/{CEMENT}/meters/nope/replacements",
                {"ts": at.isoformat(), "old_final": 1, "new_initial": 0}).status_code == 404
    assert post(env, "admin", f"/plants/{STEEL}/meters/bf1-coke/replacements",
                {"ts": at.isoformat(), "old_final": 1, "new_initial": 0}).status_code == 201
    page = env.get("auditor-all", API + path).json()
    assert page["count"] == 1 and page["data"][0]["old_final"] == 123456.5

    before = counts(env.url)
    good = {"ts": "2026-10-29T10:00:00+08:00", "old_final": 10, "new_initial": 0}
    refused(env, post(env, "plant-cement", f"/plants/{CEMENT}/meters/site-water/replacements",
                      good), 422, "meter", before)
    refused(env, post(env, "plant-cement", path, {**good, "old_final": -1}), 422, "old_final",
            before)
    refused(env, post(env, "plant-cement", path, {**good, "new_initial": 1e9}), 422,
            "new_initial", before)  # above the meter's rollover_max 99999999
    refused(env, post(env, "plant-cement", path, {**good, "ts": "2026-10-29T10:00:00"}), 422,
            "ts", before)
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    refused(env, post(env, "plant-cement", path, {**good, "ts": future}), 422, "ts", before)


# -- CT x PT multiplier changes --------------------------------------------------------------------
def test_multiplier_changes_through_the_api(env: ApiEnv) -> None:
    path = f"/plants/{CEMENT}/meters/k2-elec/multipliers"
    oct30, oct20 = local("2026-10-30T08:00:00+08:00"), local("2026-10-20T08:00:00+08:00")
    r = post(env, "plant-cement", path, {"valid_from": oct30.isoformat(), "multiplier": 120,
                                         "source": "CT 300/5 → 600/5"})
    assert r.status_code == 201, r.text
    history = q(env.url, "SELECT isfinite(valid_from), multiplier, source FROM "
                         "meter_multipliers ORDER BY valid_from")
    assert history == [(False, Decimal(60), "registry"), (True, Decimal(120), "CT 300/5 → 600/5")]
    assert q(env.url, "SELECT multiplier FROM meters WHERE code = 'k2-elec'") == [(Decimal(120),)]
    assert dirty(env.url) == {("k2-elec", oct30, OPEN_END)}
    # an earlier change: recompute up to the next one; the multiplier in force now stays
    clear_dirty(env.url)
    assert post(env, "admin", path, {"valid_from": oct20.isoformat(), "multiplier": "90",
                                     "source": "CT 450/5"}).status_code == 201
    assert dirty(env.url) == {("k2-elec", oct20, oct30)}
    assert q(env.url, "SELECT multiplier FROM meters WHERE code = 'k2-elec'") == [(Decimal(120),)]
    page = env.get("regulator-jx", API + path).json()
    assert [(d["valid_from"], d["multiplier"]) for d in page["data"]] == [
        (None, 60), ("2026-10-20T08:00:00+08:00", 90), ("2026-10-30T08:00:00+08:00", 120)]
    (entry,) = [e for e in log(env.url) if e["kind"] == "meter_multiplier"][:1]
    assert entry["new"]["registry_base"] == {"valid_from": "-infinity", "multiplier": 60}
    assert post(env, "auditor-all", path, {"valid_from": oct30.isoformat(), "multiplier": 1,
                                           "source": "x"}).status_code == 403
    assert post(env, "plant-cement", f"/plants/{STEEL}/meters/bf1-elec/multipliers",
                {"valid_from": oct30.isoformat(), "multiplier": 2, "source": "x"}
                ).status_code == 404

    before = counts(env.url)
    good = {"valid_from": oct30.isoformat(), "source": "x"}
    refused(env, post(env, "plant-cement", path, {**good, "multiplier": 0}), 422, "multiplier",
            before)
    refused(env, post(env, "plant-cement", path, {**good, "multiplier": -40}), 422, "multiplier",
            before)
    refused(env, post(env, "plant-cement", path, {**good, "multiplier": 2,
                                                  "valid_from": "2026-10-30T08:00"}),
            422, "valid_from", before)


# -- plant grid factors ----------------------------------------------------------------------------
def test_grid_factors_through_the_api(env: ApiEnv) -> None:
    y2025, y2024 = local("2025-01-01T00:00:00+08:00"), local("2024-01-01T00:00:00+08:00")
    elec = {"k1-elec", "k2-elec", "whr-export"}
    r = put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/2025",
            {"kgco2_per_kwh": 0.5366, "source": "省生态环境厅 2025"})
    assert r.status_code == 201, r.text
    assert r.json()["record"]["year"] == 2025
    assert dirty(env.url) == {(m, y2025, OPEN_END) for m in elec}
    r = put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/2025",
            {"kgco2_per_kwh": 0.55, "source": "revised"})
    assert r.status_code == 200 and r.json()["replaced"]["kgco2_per_kwh"] == 0.5366
    clear_dirty(env.url)
    assert put(env, "admin", f"/plants/{CEMENT}/grid-factors/2024",
               {"kgco2_per_kwh": 0.58, "source": "x"}).status_code == 201
    assert dirty(env.url) == {(m, y2024, y2025) for m in elec}
    replaced = [e for e in log(env.url) if e["action"] == "replace"]
    assert replaced[0]["old"]["kgco2_per_kwh"] == 0.5366 and replaced[0]["new"] == {
        "kgco2_per_kwh": 0.55, "source": "revised"}
    assert put(env, "regulator-jx", f"/plants/{CEMENT}/grid-factors/2025",
               {"kgco2_per_kwh": 0.5, "source": "x"}).status_code == 403
    assert put(env, "plant-cement", f"/plants/{STEEL}/grid-factors/2025",
               {"kgco2_per_kwh": 0.5, "source": "x"}).status_code == 404
    page = env.get("regulator-jx", f"{API}/plants/{CEMENT}/grid-factors").json()
    assert [(d["year"], d["kgco2_per_kwh"]) for d in page["data"]] == [(2024, 0.58), (2025, 0.55)]

    before = counts(env.url)
    good = {"kgco2_per_kwh": 0.5, "source": "x"}
    refused(env, put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/1999", good), 422,
            "year", before)
    refused(env, put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/2101", good), 422,
            "year", before)
    refused(env, put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/2026",
                     {**good, "kgco2_per_kwh": 2.5}), 422, "kgco2_per_kwh", before)
    refused(env, put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/2026",
                     {**good, "kgco2_per_kwh": -0.1}), 422, "kgco2_per_kwh", before)


# -- the CLI -----------------------------------------------------------------------------------
def test_cli_declares_every_kind_audited_and_queued(
        migrated_db: str, example_fleet_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = migrated_db
    load_example_fleet(url, example_fleet_path)
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", url)
    with psycopg.connect(url) as conn:
        (plant_pk,), = conn.execute("SELECT id FROM plants WHERE code = %s", (CEMENT,))
        upsert_meter(conn, plant_pk=plant_pk, unit_pk=None, code="site-water", name="water",
                     energy_type="fresh_water", kind="interval", eng_unit="t",
                     multiplier=Decimal(1), direction="consumed", rollover_max=None,
                     model=None, interval_s=900, installed_at=None)
    me = f"cli:{getpass.getuser()}"
    base = ["declare"]

    def ok(*argv: str) -> str:
        code = main([*base, *argv])
        out, err = capsys.readouterr()
        assert code == 0, err
        return out

    def fails(*argv: str, field: str) -> str:
        before = counts(url)
        code = main([*base, *argv])
        out, err = capsys.readouterr()
        assert code == 2, (out, err)
        assert err.startswith("error: ") and field in err, err
        assert counts(url) == before
        return err

    out = ok("production", "--plant", CEMENT, "--unit", "kiln-1", "--period", "2026-10",
             "--quantity", "1234.5", "--source", "统计报表")
    assert "production record stored" in out and "no recompute needed" in out
    out = ok("calorific-value", "--plant", CEMENT, "--energy-type", "raw_coal",
             "--valid-from", "2026-01-01T00:00+08:00", "--lhv", "23000", "--source", "lab")
    assert "queued for recompute: meter k1-coal from 2026-01-01T00:00+08:00" in out
    ok("replacement", "--plant", CEMENT, "--meter", "k1-elec", "--at", "2026-10-30T10:00+08:00",
       "--old-final", "123456", "--new-initial", "0", "--note", "swap")
    out = ok("multiplier", "--plant", CEMENT, "--meter", "k2-elec", "--valid-from",
             "2026-10-30", "--multiplier", "120", "--source", "CT 300/5 → 600/5")
    assert "k2-elec from 2026-10-30T00:00+08:00 to open-ended" in out
    ok("grid-factor", "--plant", CEMENT, "--year", "2025", "--kgco2-per-kwh", "0.5366",
       "--source", "省生态环境厅 2025")
    entries = log(url)
    assert [e["kind"] for e in entries] == ["production_record", "calorific_value",
                                            "meter_replacement", "meter_multiplier",
                                            "grid_factor"]
    assert {e["actor"] for e in entries} == {me}
    for table in ("production_records", "measured_calorific_values", "meter_replacements",
                  "plant_grid_factors", "meter_multipliers"):
        assert {r[0] for r in q(url, sql.SQL("SELECT entered_by FROM {}").format(
            sql.Identifier(table)).as_string())} == {me}, table  # type: ignore[arg-type]
    oct30 = local("2026-10-30T10:00:00+08:00")
    assert dirty(url) == {
        ("k1-coal", local("2026-01-01T00:00:00+08:00"), OPEN_END),
        ("k2-coal", local("2026-01-01T00:00:00+08:00"), OPEN_END),
        ("k1-elec", oct30 - timedelta(days=1), oct30 + timedelta(days=1)),
        ("k2-elec", local("2026-10-30T00:00:00+08:00"), OPEN_END),
        *{(m, local("2025-01-01T00:00:00+08:00"), OPEN_END)
          for m in ("k1-elec", "k2-elec", "whr-export")}}

    # errors: exit 2, `error: ...` naming the field, nothing written
    fails("production", "--plant", CEMENT, "--unit", "kiln-1", "--period", "2026-09",
          "--quantity", "-1", "--source", "x", field="field 'quantity'")
    err = fails("production", "--plant", CEMENT, "--unit", "kiln-1", "--period", "2026-10-05",
                "--quantity", "1", "--source", "x", field="field 'period'")
    assert "overlaps" in err
    fails("production", "--plant", CEMENT, "--unit", "kiln-1", "--from", "2026-09-01T00:00",
          "--to", "2026-09-02T00:00+08:00", "--quantity", "1", "--source", "x", field="--from")
    fails("production", "--plant", CEMENT, "--unit", "kiln-1", "--quantity", "1",
          "--source", "x", field="--period")
    fails("calorific-value", "--plant", CEMENT, "--energy-type", "unobtainium",
          "--valid-from", "2026-01-01", "--lhv", "1", "--source", "x",
          field="field 'energy_type'")
    fails("calorific-value", "--plant", CEMENT, "--energy-type", "raw_coal",
          "--valid-from", "2026-01-01T00:00", "--lhv", "23000", "--source", "x",
          field="--valid-from")
    fails("calorific-value", "--plant", CEMENT, "--energy-type", "raw_coal",
          "--valid-from", "2026-01-01", "--lhv", "-3", "--source", "x",
          field="field 'lhv_kj_per_unit'")
    fails("replacement", "--plant", CEMENT, "--meter", "site-water", "--at",
          "2026-10-30T10:00+08:00", "--old-final", "1", "--new-initial", "0",
          field="meter 'site-water' > field 'meter'")
    fails("replacement", "--plant", CEMENT, "--meter", "k1-elec", "--at",
          "2026-10-30T10:00+08:00", "--old-final", "-1", "--new-initial", "0",
          field="field 'old_final'")
    fails("multiplier", "--plant", CEMENT, "--meter", "k2-elec", "--valid-from", "2026-10-31",
          "--multiplier", "0", "--source", "x", field="field 'multiplier'")
    fails("grid-factor", "--plant", CEMENT, "--year", "1999", "--kgco2-per-kwh", "0.5",
          "--source", "x", field="field 'year'")
    fails("grid-factor", "--plant", CEMENT, "--year", "2026", "--kgco2-per-kwh", "2.5",
          "--source", "x", field="field 'kgco2_per_kwh'")
    fails("grid-factor", "--plant", "no-such-plant", "--year", "2026", "--kgco2-per-kwh", "0.5",
          "--source", "x", field="plant 'no-such-plant'")

    # list: a table per kind, or JSON
    out = ok("list", "--plant", CEMENT)
    assert "production records: 1" in out and "meter multipliers: 2" in out
    assert "since always" in out and "统计报表" in out
    data = json.loads(ok("list", "--plant", CEMENT, "--kind", "multiplier", "--format", "json"))
    assert [(m["valid_from"], m["multiplier"]) for m in data["meter_multiplier"]] == [
        (None, 60.0), ("2026-10-30T00:00:00+08:00", 120.0)]
    data = json.loads(ok("list", "--plant", CEMENT, "--format", "json"))
    assert data["production_record"][0]["quantity"] == 1234.5
    assert data["grid_factor"][0]["entered_by"] == me


def test_a_failing_write_leaves_nothing_behind(env: ApiEnv) -> None:
    """One transaction: a failure after the row was written (here: in the recompute queue)
    rolls back the row, its audit log entry and whatever was queued."""
    def broken_queue(conn: psycopg.Connection, ranges: Any) -> None:
        mark_dirty(conn, ranges)
        raise RuntimeError("queue failed")

    before = counts(env.url)
    with psycopg.connect(env.url) as conn:
        with pytest.raises(RuntimeError, match="queue failed"):
            add_calorific_value(conn, plant=CEMENT, energy_type="raw_coal",
                                valid_from=local("2026-10-01T00:00:00+08:00"),
                                lhv_kj_per_unit=23000, source="lab", actor="test",
                                queue=broken_queue)
        conn.commit()
    assert counts(env.url) == before
    with psycopg.connect(env.url) as conn, pytest.raises(DeclaredInputError) as caught:
        add_production_record(conn, plant=CEMENT, unit="kiln-1",
                              start=datetime(2026, 10, 1), end=datetime(2026, 11, 1, tzinfo=SH),
                              quantity=1, source="x", actor="test")
    assert caught.value.field == "period_start"
    assert "plant 'jx-yujiang-cement' > unit 'kiln-1' > field 'period_start'" in str(caught.value)


# -- the migration ---------------------------------------------------------------------------------
def test_migration_pins_its_security_definer_functions(migrated_db: str) -> None:
    """The SECURITY DEFINER functions of 0031 (and the re-created authenticate) resolve names
    on a pinned search path, and only the API role may execute the API's ones."""
    rows = q(migrated_db,
             "SELECT p.proname, p.prosecdef, array_to_string(p.proconfig, ' '), "
             "EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a "
             "        WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE'), "
             "has_function_privilege('energymon_api', p.oid, 'EXECUTE') "
             "FROM pg_proc p WHERE p.proname IN ('energymon_api_authenticate', "
             "'energymon_api_queue_recompute', 'energymon_meter_multiplier_follow') ORDER BY 1")
    assert [(r[0], r[4]) for r in rows] == [("energymon_api_authenticate", True),
                                            ("energymon_api_queue_recompute", True),
                                            ("energymon_meter_multiplier_follow", False)]
    for name, definer, config, public, _ in rows:
        assert definer and config.startswith("search_path=") and "pg_temp" in config, name
        assert not public, name


def test_rows_entered_before_the_migration_keep_null_audit_columns(
        fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.migrate as migrator

    every = migrator.available_migrations
    monkeypatch.setattr(migrator, "available_migrations",  # a database as of 0030
                        lambda backend: [m for m in every(backend) if m.version < 31])
    migrate(fresh_db, backend="postgres")
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO regions (code, name, level) VALUES ('360000', 'x', "
                     "'province')")
        (plant,), = conn.execute(
            "INSERT INTO plants (code, uscc, name, region_code, industry, energy_class, "
            "key_unit) VALUES ('old', '91360622MA35CEM01A', 'x', '360000', 'x', "
            "'ge_10000_tce', true) RETURNING id")
        conn.execute("INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, source) "
                     "VALUES (%s, 2024, 0.5, 'old')", (plant,))
    monkeypatch.setattr(migrator, "available_migrations", every)
    applied = migrate(fresh_db, backend="postgres").applied
    assert applied[:2] == ["0031_declared_inputs", "0032_declared_integrity"]
    assert q(fresh_db, "SELECT entered_by, entered_at FROM plant_grid_factors") == [(None, None)]
    with psycopg.connect(fresh_db) as conn:
        conn.execute("INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, source) "
                     "VALUES (%s, 2025, 0.5, 'new')", (plant,))
    (entered_at,), = q(fresh_db, "SELECT entered_at FROM plant_grid_factors WHERE year = 2025")
    assert entered_at is not None


# -- the database backstop -------------------------------------------------------------------------
def _as_token(url: str, secret: str, statement: str, *params: Any) -> Any:
    """Run ``statement`` as the API role with the scope energymon_api_authenticate sets for
    the token (one transaction, rolled back); returns the rows or the exception."""
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE energymon_api")
        conn.execute("SELECT set_config('search_path', 'energymon_scoped, ' || "
                     "current_setting('search_path'), false)")
        conn.execute("SELECT * FROM energymon_api_authenticate(%s)", (hash_secret(secret),))
        try:
            cur = conn.execute(statement, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else cur.rowcount
        except psycopg.Error as exc:
            return exc
        finally:
            conn.rollback()


def check_backstop(url: str, tokens: dict[str, str]) -> None:
    ids = dict(q(url, "SELECT code, id FROM plants"))
    cement, steel = ids[CEMENT], ids[STEEL]
    (k1,), = q(url, "SELECT id FROM meters WHERE plant_id = %s AND code = 'k1-elec'", cement)
    (bf1,), = q(url, "SELECT id FROM meters WHERE plant_id = %s AND code = 'bf1-coke'", steel)
    (kiln,), = q(url, "SELECT id FROM production_units WHERE plant_id = %s AND code = 'kiln-1'",
                 cement)
    (bf,), = q(url, "SELECT id FROM production_units WHERE plant_id = %s AND code = 'bf-1'",
               steel)
    settings = "SELECT current_setting('energymon.scope_declare')"
    assert _as_token(url, tokens["regulator-jx"], settings) == [("off",)]
    assert _as_token(url, tokens["auditor-all"], settings) == [("off",)]
    assert _as_token(url, tokens["plant-cement"], settings) == [("on",)]
    assert _as_token(url, tokens["admin"], settings) == [("on",)]

    writes = {
        "production_records": ("INSERT INTO production_records (unit_id, period_start, "
                               "period_end, quantity, source, entered_by) VALUES (%s, "
                               "'2026-10-01+08', '2026-11-01+08', 1, 'x', 'x')"),
        "measured_calorific_values": ("INSERT INTO measured_calorific_values (plant_id, "
                                      "energy_type, lhv_kj_per_unit, valid_from, source) "
                                      "VALUES (%s, 'raw_coal', 23000, '2026-10-01+08', 'x')"),
        "plant_grid_factors": ("INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, "
                               "source) VALUES (%s, 2025, 0.5, 'x')"),
        "meter_replacements": ("INSERT INTO meter_replacements (meter_id, ts, old_final, "
                               "new_initial) VALUES (%s, '2026-10-30+08', 1, 0)"),
        "meter_multipliers": ("INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, "
                              "source, entered_by) VALUES (%s, '2026-10-30+08', 2, 'x', 'x')"),
        "declared_input_log": ("INSERT INTO declared_input_log (actor, plant_id, kind, action, "
                               "key, new) VALUES ('x', %s, 'grid_factor', 'insert', '{}', "
                               "'{}')"),
    }
    own = {"production_records": kiln, "meter_replacements": k1, "meter_multipliers": k1}
    foreign = {"production_records": bf, "meter_replacements": bf1, "meter_multipliers": bf1}
    for table, statement in writes.items():
        mine, theirs = own.get(table, cement), foreign.get(table, steel)
        # declare off (a regulator of the plant's region): refused by row-level security
        denied = _as_token(url, tokens["regulator-jx"], statement, mine)
        assert isinstance(denied, psycopg.errors.InsufficientPrivilege), (table, denied)
        assert "row-level security" in str(denied), table
        # declare on, but another plant: refused too
        denied = _as_token(url, tokens["plant-cement"], statement, theirs)
        assert isinstance(denied, psycopg.errors.InsufficientPrivilege), (table, denied)
        # its own plant: admitted (and rolled back); an admin: any plant
        assert _as_token(url, tokens["plant-cement"], statement, mine) == 1, table
        assert _as_token(url, tokens["admin"], statement, theirs) == 1, table
    # updates of another plant's rows find nothing to update
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, source) "
                     "VALUES (%s, 2025, 0.5, 'x')", (steel,))
    assert _as_token(url, tokens["plant-cement"],
                     "UPDATE plant_grid_factors SET kgco2_per_kwh = 0 WHERE plant_id = %s",
                     steel) == 0
    assert _as_token(url, tokens["regulator-gx"],
                     "UPDATE plant_grid_factors SET kgco2_per_kwh = 0 WHERE plant_id = %s",
                     steel) == 0
    # the recompute queue: never directly; through the function only with declare on and for
    # meters in scope
    denied = _as_token(url, tokens["admin"], "INSERT INTO accounting_dirty (meter_id, from_ts, "
                       "to_ts) VALUES (%s, now(), now())", k1)
    assert isinstance(denied, psycopg.errors.InsufficientPrivilege)
    queue = "SELECT energymon_api_queue_recompute(%s, %s, %s)"
    now = datetime.now(UTC)
    for token, meter in (("regulator-jx", k1), ("plant-cement", bf1)):
        denied = _as_token(url, tokens[token], queue, [meter], [now], [now])
        assert isinstance(denied, psycopg.errors.InsufficientPrivilege), (token, denied)
    assert _as_token(url, tokens["plant-cement"], queue, [k1], [now], [now]) == [(1,)]
    assert _as_token(url, tokens["admin"], queue, [k1, bf1], [now, now], [now, now]) == [(2,)]
    # the API role may not touch the registry multiplier itself (plant token)
    assert _as_token(url, tokens["plant-cement"],
                     "UPDATE meters SET multiplier = 7 WHERE id = %s", k1) == 0
    # and the writer works whole as the API role: row, log, queue (rolled back)
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE energymon_api")
        conn.execute("SELECT set_config('search_path', 'energymon_scoped, ' || "
                     "current_setting('search_path'), false)")
        conn.execute("SELECT * FROM energymon_api_authenticate(%s)",
                     (hash_secret(tokens["plant-cement"]),))
        result = add_calorific_value(conn, plant=CEMENT, energy_type="raw_coal",
                                     valid_from=local("2026-10-01T00:00:00+08:00"),
                                     lhv_kj_per_unit=23000, source="lab", actor="test",
                                     queue=queue_via_api)
        assert {r.meter for r in result.queued} == {"k1-coal", "k2-coal"}
        with pytest.raises(DeclaredInputError) as caught:  # RLS hides the other plant
            add_calorific_value(conn, plant=STEEL, energy_type="coke",
                                valid_from=local("2026-10-01T00:00:00+08:00"),
                                lhv_kj_per_unit=28000, source="lab", actor="test",
                                queue=queue_via_api)
        assert caught.value.field == "plant"
        conn.rollback()


def test_row_level_security_backstop_postgres(env: ApiEnv) -> None:
    check_backstop(env.url, env.tokens)


@pytest.mark.timescale
def test_row_level_security_backstop_timescaledb(timescale_db: str,
                                                 example_fleet_path: Path) -> None:
    migrate(timescale_db, backend="timescaledb")
    load_example_fleet(timescale_db, example_fleet_path)
    (backend,), = q(timescale_db, "SELECT value FROM energymon_meta WHERE key = 'backend'")
    assert backend == "timescaledb"
    check_backstop(timescale_db, make_tokens(timescale_db))


def _as_api(url: str, secret: str, *statements: tuple[str, tuple[Any, ...]]) -> Any:
    """Run ``statements`` as the API role the way a request does (scope and actor from the
    token) and COMMIT; returns None, or the exception (deferred checks raise at commit)."""
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE energymon_api")
        conn.execute("SELECT set_config('energymon.actor', 'token:' || a.token_id || ' (' || "
                     "a.token_name || ')', true) FROM energymon_api_authenticate(%s) a",
                     (hash_secret(secret),))
        try:
            for statement, params in statements:
                conn.execute(statement, params)  # type: ignore[arg-type]
            conn.commit()
        except psycopg.Error as exc:
            conn.rollback()
            return exc
    return None


def test_the_database_enforces_what_the_writer_checks(env: ApiEnv) -> None:
    """Application mistakes under the API role cannot store non-finite numbers, overlapping
    records, declared rows without their audit row, or a chosen actor or time."""
    url, plant_token = env.url, env.tokens["plant-cement"]
    (cement,), = q(url, "SELECT id FROM plants WHERE code = %s", CEMENT)
    (k1,), = q(url, "SELECT id FROM meters WHERE plant_id = %s AND code = 'k1-elec'", cement)
    (kiln,), = q(url, "SELECT id FROM production_units WHERE plant_id = %s AND code = 'kiln-1'",
                 cement)
    log_row = ("INSERT INTO declared_input_log (actor, at, plant_id, kind, action, key, new) "
               "VALUES ('cli:root', '2020-01-01+08', %s, %s, 'insert', '{}', '{}')")
    before = counts(url)
    # NaN and infinity pass "> 0" in PostgreSQL; the bounds refuse them
    for statement in [
        ("INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, source, entered_by) "
         "VALUES (%s, '-infinity', 'NaN', 'x', 'x')", (k1,)),
        ("INSERT INTO production_records (unit_id, period_start, period_end, quantity, "
         "source) VALUES (%s, '2026-10-01+08', '2026-11-01+08', 'Infinity', 'x')", (kiln,)),
        ("INSERT INTO meter_replacements (meter_id, ts, old_final, new_initial) VALUES "
         "(%s, '2026-10-30+08', -1, 0)", (k1,)),
        ("INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, source) VALUES "
         "(%s, 2025, 'NaN', 'x')", (cement,)),
    ]:
        assert isinstance(_as_api(url, plant_token, statement), psycopg.errors.CheckViolation)
    # a declared row without its audit row: refused at commit
    record = ("INSERT INTO production_records (unit_id, period_start, period_end, quantity, "
              "source, entered_by, entered_at) VALUES (%s, '2026-10-01+08', '2026-11-01+08', "
              "100, 'x', 'token:9 (admin)', '2001-01-01+08')", (kiln,))
    denied = _as_api(url, plant_token, record)
    assert isinstance(denied, psycopg.errors.IntegrityConstraintViolation), denied
    assert "without its declared_input_log row" in str(denied)
    assert counts(url) == before
    # with its audit row: stored, but who and when are the database's, not the writer's
    assert _as_api(url, plant_token, record, (log_row, (cement, "production_record"))) is None
    me = actor(url, "plant-cement")
    (entered_by, entered_at), = q(url, "SELECT entered_by, entered_at FROM production_records")
    assert entered_by == me and entered_at.year >= 2026
    (logged_by, logged_at), = q(url, "SELECT actor, at FROM declared_input_log")
    assert logged_by == me and logged_at.year >= 2026
    # an overlapping record is refused whoever writes it (here the owner, past the writer)
    with psycopg.connect(url) as conn, pytest.raises(psycopg.errors.ExclusionViolation):
        conn.execute("INSERT INTO production_records (unit_id, period_start, period_end, "
                     "quantity, source) VALUES (%s, '2026-10-15+08', '2026-11-15+08', 1, 'x')",
                     (kiln,))


def test_the_writer_refuses_reserved_sources_and_odd_years(env: ApiEnv) -> None:
    before = counts(env.url)
    r = post(env, "plant-cement", f"/plants/{CEMENT}/meters/k1-elec/multipliers",
             {"valid_from": "2026-11-01T00:00:00+08:00", "multiplier": 2,
              "source": "registry load"})
    refused(env, r, 422, "source", before)
    for year in ("２０２５", "2_025", "25"):
        r = put(env, "plant-cement", f"/plants/{CEMENT}/grid-factors/{year}",
                {"kgco2_per_kwh": 0.5, "source": "x"})
        assert r.status_code == 422 and "year" in r.json()["detail"], (year, r.text)
    assert counts(env.url) == before


# -- end to end: declared data changes the verdict -----------------------------------------------
E2E_PLANT, E2E_UNIT = "e2e-kiln-works", "kiln-x"
DAY = "2026-11-10"
GAS_PER_INTERVAL, KWH_PER_INTERVAL = 100.0, 500.0     # m3 and kWh per 15 minutes


def _e2e_plant(url: str) -> None:
    """A plant with one clinker unit and no production meter (its output is declared), a
    natural-gas and an electricity counter reporting every 15 minutes over the whole day."""
    with psycopg.connect(url) as conn:
        plant = upsert_plant(conn, code=E2E_PLANT, uscc="91360622MA35E2E01X",
                             name="declared-data e2e", region="360622", industry="cement",
                             energy_class="ge_10000_tce", annual_energy_tce=Decimal(50000),
                             key_unit=True, timezone="Asia/Shanghai").pk
        unit = upsert_unit(conn, plant_pk=plant, code=E2E_UNIT, name="clinker line",
                           catalogue="cement/clinker", edition=None, product="cement clinker",
                           product_unit="t", design_capacity=Decimal(2000),
                           capacity_unit="t/d").pk
        meters = {}
        for code, energy_type, eng_unit in (("x-gas", "natural_gas", "m3"),
                                            ("x-elec", "electricity", "kWh")):
            upsert_meter(conn, plant_pk=plant, unit_pk=unit, code=code, name=code,
                         energy_type=energy_type, kind="counter", eng_unit=eng_unit,
                         multiplier=Decimal(1), direction="consumed",
                         rollover_max=Decimal(999_999_999), model=None, interval_s=900,
                         installed_at=None)
            (meters[code],), = conn.execute("SELECT id FROM meters WHERE plant_id = %s AND "
                                            "code = %s", (plant, code))
        start = datetime.fromisoformat(f"{DAY}T00:00:00+08:00") - timedelta(hours=2)
        rows = []
        for k in range(4 * 28 + 1):  # 22:00 the day before .. 02:00 the day after
            ts = start + timedelta(minutes=15 * k)
            rows.append((meters["x-gas"], ts, 10_000 + GAS_PER_INTERVAL * k, 0))
            rows.append((meters["x-elec"], ts, 50_000 + KWH_PER_INTERVAL * k, 0))
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO readings (meter_id, ts, value, quality) "
                            "VALUES (%s, %s, %s, %s)", rows)


def test_declared_production_and_calorific_value_change_the_verdict(
        migrated_db: str, example_fleet_path: Path) -> None:
    url = migrated_db
    load_example_fleet(url, example_fleet_path)  # regions, and the plants of the role tokens
    _e2e_plant(url)
    Accountant(url).recompute()
    with psycopg.connect(url) as conn:
        _, secret = create_token(conn, name="e2e-plant", role="plant", plant=E2E_PLANT)
    with api_env(url, load=False) as e:
        e.tokens["e2e-plant"] = secret
        intensity = f"{API}/plants/{E2E_PLANT}/units/{E2E_UNIT}/intensity"
        gas_m3, kwh = 96 * GAS_PER_INTERVAL, 96 * KWH_PER_INTERVAL
        energy_default = gas_m3 * 1.2143 + kwh * 0.1229          # GB/T 2589 defaults

        before = e.get("e2e-plant", intensity, period=DAY).json()
        assert before["output"] == 0 and before["intensity"] is None
        assert before["energy_kgce"] == pytest.approx(energy_default, rel=1e-9)

        r = post(e, "e2e-plant", f"/plants/{E2E_PLANT}/production-records",
                 {"unit": E2E_UNIT, "period": DAY, "quantity": 155, "source": "日报"})
        assert r.status_code == 201, r.text
        declared = e.get("e2e-plant", intensity, period=DAY).json()
        assert declared["output"] == 155                     # no recompute needed
        assert declared["energy_kgce"] == pytest.approx(energy_default, rel=1e-9)
        assert declared["intensity"] == pytest.approx(energy_default / 155, rel=1e-9)
        assert declared["status"] == "below_benchmark"       # 100 < 113.3 <= 117 kgce/t

        r = post(e, "e2e-plant", f"/plants/{E2E_PLANT}/calorific-values",
                 {"energy_type": "natural_gas", "valid_from": "2026-11-01T00:00:00+08:00",
                  "lhv_kj_per_unit": 38000, "source": "lab report"})
        assert r.status_code == 201, r.text
        assert [x["meter"] for x in r.json()["recompute"]] == ["x-gas"]
        queued = e.get("e2e-plant", intensity, period=DAY).json()
        assert queued["energy_kgce"] == pytest.approx(energy_default, rel=1e-9)  # not yet
        Accountant(url).process_dirty()
        after = e.get("e2e-plant", intensity, period=DAY).json()
        energy_measured = gas_m3 * 38000 / 29307.6 + kwh * 0.1229
        assert after["energy_kgce"] == pytest.approx(energy_measured, rel=1e-9)
        assert after["intensity"] == pytest.approx(energy_measured / 155, rel=1e-9)
        assert after["output"] == 155
        assert after["status"] == "below_baseline"           # 118.4 > 117 kgce/t

