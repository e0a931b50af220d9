"""Verdicts only from sufficient data, and accounting one bad meter cannot stop: one scenario
per failure, from readings in a real PostgreSQL through the accountant to the verdict, each
with the other unit of the plant still judged.

Kiln-1 and kiln-2 of the example cement plant, one local day (2026-10-08) unless said:
kiln-1 100 kWh, 0.8 t coal, 5 t clinker per 15 minutes (116.7 kgce/t, below benchmark);
kiln-2 60 kWh (1 kWh x CT 60), 0.25 t coal, 2.5 t clinker (74.4 kgce/t, at benchmark).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from accounting.judge import UnitResult
from accounting.periods import parse_period
from accounting.store import Accountant
from accounting.verdicts import unit_results
from app.cli import main
from fleet.registry import upsert_meter
from tests.integration.test_accounting import SH, setup_db, write_counter

DAY = datetime(2026, 10, 8, tzinfo=SH)
STEPS = 96
KILN1 = {"k1-elec": 100.0, "k1-coal": 0.8, "k1-clinker": 5.0}
KILN2 = {"k2-elec": 1.0, "k2-coal": 0.25, "k2-clinker": 2.5}


def write(url: str, ids: dict[str, int], meters: dict[str, float], start: datetime = DAY,
          steps: int = STEPS) -> None:
    with psycopg.connect(url) as conn:
        for code, per_step in meters.items():
            write_counter(conn, ids[code], start, steps, per_step, first=1_000.0)


def verdicts(url: str, period: str = "2026-10-08") -> dict[str, UnitResult]:
    with psycopg.connect(url) as conn:
        return {r.unit: r for r in unit_results(conn, parse_period(period, SH),
                                                plant="jx-yujiang-cement")}


def reasons(r: UnitResult) -> list[tuple[str, str | None]]:
    return [(x.code, x.meter) for x in r.reasons]


def assert_kiln2_judged(results: dict[str, UnitResult]) -> None:
    kiln2 = results["kiln-2"]
    assert kiln2.status == "at_benchmark" and kiln2.reasons == ()
    assert kiln2.intensity == pytest.approx((96 * 60 * 0.1229 + 24_000 * 0.7143) / 240)


def test_a_dead_coal_scale(migrated_db: str, example_fleet_path: Path,
                           monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    write(migrated_db, ids, {"k1-elec": 100.0, "k1-clinker": 5.0, **KILN2})
    Accountant(migrated_db).recompute()
    results = verdicts(migrated_db)
    kiln1 = results["kiln-1"]
    # electricity alone would give 9 600 kWh x 0.1229 / 480 t = 2.46 kgce/t, "at benchmark"
    assert kiln1.status == "not_evaluable" and kiln1.intensity is None
    assert reasons(kiln1) == [("meter_incomplete", "k1-coal")]
    assert kiln1.reasons[0].value == 0.0 and kiln1.reasons[0].days == ("2026-10-08",)
    assert kiln1.completeness == pytest.approx(2 / 3)   # 2 of 3 meter-days complete
    assert_kiln2_judged(results)
    # the CLI says why, under the table; the JSON carries the reasons
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", migrated_db)
    assert main(["verdicts", "--period", "2026-10-08", "--plant", "jx-yujiang-cement"]) == 0
    out = capsys.readouterr().out
    assert "Why (data sufficiency" in out
    assert ("jx-yujiang-cement/kiln-1: energy meter k1-coal sent no readings in the period "
            "(96 expected) (2026-10-08)") in out
    assert main(["verdicts", "--period", "2026-10-08", "--format", "json"]) == 0
    units = {u["unit"]: u for u in json.loads(capsys.readouterr().out)["units"]}
    assert units["kiln-1"]["reasons"][0]["code"] == "meter_incomplete"
    assert units["kiln-1"]["meters"][1]["meter"] == "k1-coal"


def test_dead_energy_meters_beside_a_live_production_meter(migrated_db: str,
                                                           example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    write(migrated_db, ids, {"k1-clinker": 5.0, **KILN2})
    Accountant(migrated_db).recompute()
    results = verdicts(migrated_db)
    kiln1 = results["kiln-1"]
    # intensity 0 "at benchmark, gap -100 %" before: now not evaluable
    assert kiln1.status == "not_evaluable" and kiln1.intensity is None
    assert reasons(kiln1) == [("meter_incomplete", "k1-coal"), ("meter_incomplete", "k1-elec")]
    assert kiln1.output == pytest.approx(480.0) and kiln1.energy_kgce == 0.0
    assert_kiln2_judged(results)


def test_a_meter_reporting_every_minute_beside_a_dead_one(migrated_db: str,
                                                          example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    write(migrated_db, ids, {"k1-clinker": 5.0, **KILN2})
    with psycopg.connect(migrated_db) as conn:   # 1 440 readings of k1-elec in the day
        with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) FROM STDIN") as cp:
            for i in range(24 * 60 + 1):
                cp.write_row((ids["k1-elec"], DAY + timedelta(minutes=i), i * 100 / 15, 0))
    Accountant(migrated_db).recompute()
    kiln1 = verdicts(migrated_db)["kiln-1"]
    # pooled, (1 440 + 96) / (3 x 96) would have read 100 %; per meter, the coal scale is 0 %
    by_meter = {m.meter: m for m in kiln1.meters}
    assert by_meter["k1-elec"].completeness == 1.0
    assert by_meter["k1-elec"].received == pytest.approx(96.0)   # capped at the expectation
    assert by_meter["k1-coal"].completeness == 0.0
    assert kiln1.status == "not_evaluable"
    assert reasons(kiln1) == [("meter_incomplete", "k1-coal")]


def test_an_unconvertible_meter_beside_good_ones(migrated_db: str,
                                                 example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    with psycopg.connect(migrated_db) as conn:
        plant_pk, unit_pk = conn.execute(
            "SELECT p.id, u.id FROM production_units u JOIN plants p ON p.id = u.plant_id "
            "WHERE u.code = 'kiln-1'").fetchone()
        # coke-oven gas has no default coefficient: it needs the plant's measured value
        gas = upsert_meter(conn, plant_pk=plant_pk, unit_pk=unit_pk, code="k1-cog",
                           name="coke-oven gas to the precalciner", energy_type="coke_oven_gas",
                           kind="counter", eng_unit="m3", multiplier=Decimal(1),
                           direction="consumed", rollover_max=None, model=None, interval_s=900,
                           installed_at=None).pk
    ids["k1-cog"] = gas
    write(migrated_db, ids, {**KILN1, **KILN2, "k1-cog": 50.0})
    stats = Accountant(migrated_db).recompute()    # no exception: the batch goes through
    assert stats.failed == {}
    assert "coke_oven_gas" in stats.issues["jx-yujiang-cement/k1-cog"]
    assert stats.issues["jx-yujiang-cement/k1-cog"].startswith("kgce:")
    with psycopg.connect(migrated_db) as conn:
        stored = conn.execute(
            "SELECT count(*), count(kgce), count(co2_kg), min(conversion_issue) "
            "FROM energy_intervals WHERE meter_id = %s", (gas,)).fetchone()
        converted = conn.execute(
            "SELECT count(*) FROM energy_intervals WHERE meter_id = %s AND kgce IS NOT NULL",
            (ids["k1-coal"],)).fetchone()
    assert stored[0] == 96 and stored[1:3] == (0, 0) and stored[3].startswith("kgce:")
    assert converted == (96,)
    results = verdicts(migrated_db)
    kiln1 = results["kiln-1"]
    assert kiln1.status == "not_evaluable" and reasons(kiln1) == [("unconvertible", "k1-cog")]
    assert "96 interval(s)" in kiln1.reasons[0].message
    assert_kiln2_judged(results)

    # the plant declares its measured value; the queued recompute makes kiln-1 judgeable
    with psycopg.connect(migrated_db) as conn:
        conn.execute("INSERT INTO measured_calorific_values (plant_id, energy_type, "
                     "lhv_kj_per_unit, valid_from, source) VALUES (%s, 'coke_oven_gas', "
                     "17000, '2026-01-01T00:00+08', 'lab')", (plant_pk,))
        conn.execute("SELECT energymon_mark_dirty(%s, %s, %s)",
                     ([gas], [DAY], [DAY + timedelta(days=1)]))
    Accountant(migrated_db).process_dirty()
    kiln1 = verdicts(migrated_db)["kiln-1"]
    # coke-oven gas: 96 x 50 m3 x 17 000 kJ/m3 / 29 307.6 kJ/kgce = 2 784.2 kgce on top
    cog = 4_800 * 17_000 / 29_307.6
    plain = 9_600 * 0.1229 + 76_800 * 0.7143
    assert kiln1.reasons == () and kiln1.status in ("below_benchmark", "below_baseline")
    assert kiln1.energy_kgce == pytest.approx(plain + cog)


def test_electricity_before_the_first_grid_factor_year(migrated_db: str,
                                                       example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    day = datetime(2020, 10, 8, tzinfo=SH)      # the grid factor table starts in 2021
    write(migrated_db, ids, {**KILN1, **KILN2}, start=day)
    stats = Accountant(migrated_db).recompute()
    assert stats.failed == {}
    assert stats.issues["jx-yujiang-cement/k1-elec"].startswith("co2:")
    results = verdicts(migrated_db, "2020-10-08")
    for unit in ("kiln-1", "kiln-2"):
        r = results[unit]
        # the energy verdict stands; CO2 is unknown and says why
        assert r.status in ("at_benchmark", "below_benchmark") and r.reasons == ()
        assert r.co2_kg is None and r.carbon_intensity is None
        assert [w.code for w in r.warnings] == ["co2_incomplete"]
        assert "2020" in r.warnings[0].message
    assert results["kiln-2"].status == "at_benchmark"


def test_a_month_of_one_day_is_not_judged(migrated_db: str, example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    write(migrated_db, ids, {**KILN1, **KILN2})
    Accountant(migrated_db).recompute()
    month = verdicts(migrated_db, "2026-10")
    for r in month.values():
        assert r.status == "not_evaluable"
        assert {x.code for x in r.reasons} == {"meter_incomplete"}
        assert all(m.complete_days == 1 and m.days == 31 for m in r.meters)


def test_a_meter_whose_recompute_fails_is_retried_later_and_stops_nothing(
        migrated_db: str, example_fleet_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    write(migrated_db, ids, {**KILN1, **KILN2})
    with psycopg.connect(migrated_db) as conn:
        conn.execute("SELECT energymon_mark_dirty(%s, %s, %s)",
                     ([ids[c] for c in (*KILN1, *KILN2)], [DAY] * 6,
                      [DAY + timedelta(days=1)] * 6))
    original = Accountant._recompute_meter

    def broken(self: Accountant, conn: psycopg.Connection, meter_id: int, *args: object
               ) -> object:
        if meter_id == ids["k1-coal"]:
            raise RuntimeError("disk on fire")   # anything unforeseen in one meter
        return original(self, conn, meter_id, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(Accountant, "_recompute_meter", broken)
    stats = Accountant(migrated_db).process_dirty()
    assert stats.meters == 5 and list(stats.failed) == [ids["k1-coal"]]
    assert "disk on fire" in stats.failed[ids["k1-coal"]]
    with psycopg.connect(migrated_db) as conn:
        (due,), = conn.execute("SELECT queued_at > now() + INTERVAL '4 minutes' "
                               "FROM accounting_dirty WHERE meter_id = %s",
                               (ids["k1-coal"],)).fetchall()
    assert due                                          # re-queued, due in five minutes
    assert verdicts(migrated_db)["kiln-2"].status == "at_benchmark"   # the rest went on
    # not due yet: nothing to do, no hot loop
    assert Accountant(migrated_db).process_dirty().meters == 0
    # once due and mended, the meter is recomputed and its unit judged
    monkeypatch.setattr(Accountant, "_recompute_meter", original)
    with psycopg.connect(migrated_db) as conn:
        conn.execute("UPDATE accounting_dirty SET queued_at = now()")
    assert Accountant(migrated_db).process_dirty().meters == 1
    assert verdicts(migrated_db)["kiln-1"].status == "below_benchmark"
