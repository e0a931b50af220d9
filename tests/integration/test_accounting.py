"""Accounting against a real PostgreSQL: hand-worked cases with the arithmetic written out."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from accounting.periods import parse_period
from accounting.store import Accountant
from accounting.verdicts import area_kpis, unit_results
from fleet import load_fleet
from fleet.registry import load_registry
from storage.dirty import mark_dirty
from storage.migrate import migrate

SH = ZoneInfo("Asia/Shanghai")
Q = timedelta(minutes=15)


def meter_ids(conn: psycopg.Connection) -> dict[str, int]:
    return {code: mid for code, mid in conn.execute("SELECT code, id FROM meters")}


def write_counter(conn: psycopg.Connection, meter_id: int, start: datetime, steps: int,
                  per_step: float, first: float = 0.0) -> None:
    with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) FROM STDIN") as cp:
        for i in range(steps + 1):
            cp.write_row((meter_id, start + i * Q, first + i * per_step, 0))


def setup_db(url: str, fleet_path: Path) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        load_registry(conn, load_fleet(fleet_path))
        return meter_ids(conn)


OCT = datetime(2026, 10, 1, tzinfo=SH)
STEPS = 31 * 96  # every 15 minutes of October 2026, local calendar


def load_clinker_month(url: str, ids: dict[str, int]) -> None:
    with psycopg.connect(url) as conn:
        write_counter(conn, ids["k1-elec"], OCT, STEPS, 100.0, first=5_000.0)   # kWh
        write_counter(conn, ids["k1-coal"], OCT, STEPS, 0.8, first=10.0)        # t
        write_counter(conn, ids["k1-clinker"], OCT, STEPS, 5.0)                # t


def test_clinker_line_month_hand_worked(migrated_db: str, example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    load_clinker_month(migrated_db, ids)
    stats = Accountant(migrated_db).recompute()
    assert stats.spikes == 0 and stats.resets == 0
    with psycopg.connect(migrated_db) as conn:
        (result,) = [r for r in unit_results(conn, parse_period("2026-10", SH),
                                             plant="jx-yujiang-cement") if r.unit == "kiln-1"]
    # electricity: 2976 intervals x 100 kWh = 297 600 kWh x 0.1229 kgce/kWh = 36 575.04 kgce
    # raw coal:    2976 x 0.8 t = 2 380.8 t = 2 380 800 kg x 0.7143 kgce/kg = 1 700 605.44 kgce
    # clinker:     2976 x 5 t = 14 880 t
    # intensity = (36 575.04 + 1 700 605.44) / 14 880 = 116.7460 kgce/t
    # cement/clinker (2021 edition): benchmark 100, baseline 117 -> below benchmark
    assert result.output == pytest.approx(14_880)
    assert result.electricity_kwh == pytest.approx(297_600)
    assert result.energy_kgce == pytest.approx(36_575.04 + 1_700_605.44)
    assert result.intensity == pytest.approx(1_737_180.48 / 14_880)
    assert result.intensity_unit == "kgce/t"
    assert (result.edition, result.benchmark, result.baseline) == (2021, 100, 117)
    assert result.status == "below_benchmark"
    # gap = (116.7460 - 100) / 100 = 16.746 %; saving = 16.7460 kgce/t x 14 880 t = 249.18 tce
    assert result.gap_to_benchmark_pct == pytest.approx(16.74600, abs=1e-4)
    assert result.saving_potential_tce == pytest.approx(249.18048, abs=1e-4)
    assert result.estimated_share == 0
    assert result.completeness == pytest.approx(1.0, abs=1 / STEPS)
    assert any("GB/T 2589-2020" in v for v in result.factor_versions)
    # CO2: electricity x Jiangxi grid factor (2022, newest <= 2026: 0.5752 kg/kWh)
    #      + coal 1 700 605.44 kgce x 29.3076 MJ/kgce / 1000 x 89.27 kgCO2/GJ (bituminous)
    expected_co2 = 297_600 * 0.5752 + 1_700_605.44 * 29.3076 / 1000 * 89.27
    assert result.co2_kg == pytest.approx(expected_co2, rel=1e-9)


def test_day_boundary_is_local_midnight_not_utc(migrated_db: str,
                                                example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    # 23:45-24:00 local on 5 October = 15:45-16:00 UTC; 00:00-00:15 local on 6 October
    t0 = datetime(2026, 10, 5, 23, 30, tzinfo=SH)
    with psycopg.connect(migrated_db) as conn, conn.cursor().copy(
            "COPY readings (meter_id, ts, value, quality) FROM STDIN") as cp:
        for ts, value in [(t0, 0.0), (t0 + Q, 10.0), (t0 + 2 * Q, 1010.0),
                          (t0 + 3 * Q, 1011.0)]:
            cp.write_row((ids["k1-elec"], ts, value, 0))
    Accountant(migrated_db).recompute()
    with psycopg.connect(migrated_db) as conn:
        days = conn.execute(
            "SELECT bucket, quantity FROM energy_by_meter_day WHERE meter_id = %s ORDER BY 1",
            (ids["k1-elec"],)).fetchall()
    assert [(b.astimezone(SH).date().isoformat(), q) for b, q in days] == [
        ("2026-10-05", 1010.0),  # 23:30-23:45 (10) and 23:45-24:00 (1000)
        ("2026-10-06", 1.0),
    ]
    assert days[1][0] == datetime(2026, 10, 5, 16, 0, tzinfo=UTC)


def test_late_reading_recomputes_the_intervals_it_touches(migrated_db: str,
                                                          example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    m = ids["k1-elec"]
    t0 = datetime(2026, 10, 10, tzinfo=SH)
    with psycopg.connect(migrated_db) as conn:
        write_counter(conn, m, t0, 8, 10.0)
        conn.execute("DELETE FROM readings WHERE meter_id = %s AND ts IN (%s, %s)",
                     (m, t0 + 3 * Q, t0 + 4 * Q))
    acc = Accountant(migrated_db)
    acc.recompute([m])
    with psycopg.connect(migrated_db) as conn:
        before = conn.execute("SELECT ts, quantity, estimated FROM energy_intervals "
                              "WHERE meter_id = %s ORDER BY ts", (m,)).fetchall()
        assert [round(q, 6) for _, q, _ in before] == [10, 10, 10, 10, 10, 10, 10, 10]
        assert [e > 0 for _, _, e in before] == [False, False, True, True, True, False,
                                                 False, False]
        # the late readings arrive; the writer queues their range
        conn.execute("INSERT INTO readings VALUES (%s, %s, 30, 0), (%s, %s, 45, 0)",
                     (m, t0 + 3 * Q, m, t0 + 4 * Q))
        mark_dirty(conn, [(m, t0 + 3 * Q, t0 + 4 * Q)])
    stats = acc.process_dirty()
    assert stats.meters == 1
    with psycopg.connect(migrated_db) as conn:
        after = conn.execute("SELECT quantity, estimated FROM energy_intervals "
                             "WHERE meter_id = %s ORDER BY ts", (m,)).fetchall()
        assert [round(q, 6) for q, _ in after] == [10, 10, 10, 15, 5, 10, 10, 10]
        assert all(e == 0 for _, e in after)
        assert conn.execute("SELECT count(*) FROM accounting_dirty").fetchone() == (0,)
        day = conn.execute("SELECT quantity, intervals FROM energy_by_meter_day "
                           "WHERE meter_id = %s", (m,)).fetchone()
        assert day == (80.0, 8)


def test_exported_energy_is_subtracted_and_rollover_absorbed(migrated_db: str,
                                                             example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    day = datetime(2026, 10, 7, tzinfo=SH)
    with psycopg.connect(migrated_db) as conn:
        # converter: natural gas 100 m3 per interval, recovered steam 3 GJ exported, 20 t steel
        write_counter(conn, ids["bof1-o2-gas"], day, 96, 100.0)
        write_counter(conn, ids["bof1-steam-rec"], day, 96, 3.0)
        write_counter(conn, ids["bof1-steel"], day, 96, 20.0)
        # electricity register (modbus rollover declared by the fleet? not for bof1-elec):
        write_counter(conn, ids["bof1-elec"], day, 96, 50.0 / 80, first=0)
    Accountant(migrated_db).recompute()
    with psycopg.connect(migrated_db) as conn:
        (r,) = [x for x in unit_results(conn, parse_period("2026-10-07", SH),
                                        plant="gx-liuzhou-steel") if x.unit == "bof-1"]
    # gas 9 600 m3 x 1.2143 = 11 657.28 kgce; electricity 96 x 50/80 x 80 (CT/PT) = 4 800 kWh
    # x 0.1229 = 589.92 kgce; steam 288 GJ = 288 000 MJ x 0.03412 = 9 826.56 kgce exported
    # net = 11 657.28 + 589.92 - 9 826.56 = 2 420.64 kgce over 1 920 t -> 1.26075 kgce/t
    assert r.energy_kgce == pytest.approx(11_657.28 + 589.92 - 9_826.56)
    assert r.intensity == pytest.approx(2_420.64 / 1_920)
    assert r.status == "below_baseline"  # converter levels: benchmark -30, baseline -10 kgce/t


def test_region_kpis(migrated_db: str, example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    load_clinker_month(migrated_db, ids)
    with psycopg.connect(migrated_db) as conn:
        # kiln-2: 60 kWh (x60 CT) and 0.25 t coal per interval, 2.5 t clinker -> at benchmark
        write_counter(conn, ids["k2-elec"], OCT, STEPS, 1.0)
        write_counter(conn, ids["k2-coal"], OCT, STEPS, 0.25)
        write_counter(conn, ids["k2-clinker"], OCT, STEPS, 2.5)
    Accountant(migrated_db).recompute()
    with psycopg.connect(migrated_db) as conn:
        results = unit_results(conn, parse_period("2026-10", SH), region="360000")
    assert {r.plant for r in results} == {"jx-yujiang-cement", "jx-shangyou-glass"}
    kiln2 = next(r for r in results if r.unit == "kiln-2")
    # (2976 x 60 kWh x 0.1229 + 744 t x 714.3) / 7440 t = (21 944.64 + 531 439.2) / 7440
    assert kiln2.intensity == pytest.approx((21_944.64 + 531_439.2) / 7_440)
    assert kiln2.status == "at_benchmark"
    (clinker,) = [k for k in area_kpis(results) if k.catalogue_key == "cement/clinker"]
    # capacity 5000 t/d below benchmark, 2500 t/d at benchmark -> 1/3 at benchmark
    assert clinker.share_capacity_at_benchmark == pytest.approx(2500 / 7500)
    assert clinker.share_capacity_below_baseline == 0
    assert clinker.counts == {"at_benchmark": 1, "below_benchmark": 1}
    glass = next(r for r in results if r.unit == "float-1")
    # no data at all: not evaluable (never "no output", which needs complete data)
    assert glass.status == "not_evaluable"
    assert {r.code for r in glass.reasons} == {"meter_incomplete"}


@pytest.mark.timescale
def test_timescaledb_and_postgres_rollups_agree(migrated_db: str, timescale_db: str,
                                                example_fleet_path: Path) -> None:
    migrate(timescale_db)
    results = {}
    for url in (migrated_db, timescale_db):
        ids = setup_db(url, example_fleet_path)
        load_clinker_month(url, ids)
        with psycopg.connect(url) as conn:
            # a gap, a reset and a spike so the rollups carry estimated shares too
            conn.execute("DELETE FROM readings WHERE meter_id = %s AND ts > %s AND ts < %s",
                         (ids["k1-elec"], OCT + 100 * Q, OCT + 110 * Q))
            conn.execute("UPDATE readings SET value = value + 1e6 WHERE meter_id = %s "
                         "AND ts = %s", (ids["k1-coal"], OCT + 500 * Q))
        Accountant(url).recompute()
        with psycopg.connect(url) as conn:
            rollups = {
                view: conn.execute(
                    f"SELECT m.code, bucket, quantity, estimated, kgce, co2_kg, readings, "  # noqa: S608
                    f"intervals FROM {view} r JOIN meters m ON m.id = r.meter_id "
                    "ORDER BY 1, 2").fetchall()
                for view in ("energy_by_meter_hour", "energy_by_meter_day",
                             "energy_by_meter_month")
            }
            verdicts = unit_results(conn, parse_period("2026-10", SH),
                                    plant="jx-yujiang-cement")
        results[url] = (rollups, verdicts)
    (pg_rollups, pg_verdicts), (ts_rollups, ts_verdicts) = results.values()
    for view in pg_rollups:
        assert len(pg_rollups[view]) == len(ts_rollups[view]) > 0
        for a, b in zip(pg_rollups[view], ts_rollups[view], strict=True):
            assert a[:2] == b[:2]
            for x, y in zip(a[2:], b[2:], strict=True):
                assert (x is None and y is None) or x == pytest.approx(y, rel=1e-9)
    assert [(v.unit, v.status) for v in pg_verdicts] == [(v.unit, v.status) for v in ts_verdicts]
    for a, b in zip(pg_verdicts, ts_verdicts, strict=True):
        assert (a.intensity is None and b.intensity is None) or \
            a.intensity == pytest.approx(b.intensity, rel=1e-9)
        assert a.estimated_share == pytest.approx(b.estimated_share, rel=1e-9)
    kiln1 = next(v for v in ts_verdicts if v.unit == "kiln-1")
    assert kiln1.intensity is not None and 0 < kiln1.estimated_share < 1


def test_cli_accounting_and_verdicts(migrated_db: str, example_fleet_path: Path,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    ids = setup_db(migrated_db, example_fleet_path)
    load_clinker_month(migrated_db, ids)
    with psycopg.connect(migrated_db) as conn:
        mark_dirty(conn, [(ids[c], OCT, OCT + STEPS * Q)
                          for c in ("k1-elec", "k1-coal", "k1-clinker")])
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", migrated_db)
    assert main(["accounting", "once"]) == 0
    assert "3 meters" in capsys.readouterr().out
    assert main(["verdicts", "--period", "2026-10", "--region", "360600"]) == 0
    out = capsys.readouterr().out
    assert "kiln-1" in out and "below benchmark: improve" in out and "116.7" in out
    assert "jx-shangyou-glass" not in out  # Ganzhou is outside Yingtan (360600)
    assert main(["verdicts", "--period", "2026-13"]) == 2
    assert "not understood" in capsys.readouterr().err
    assert main(["accounting", "rebuild"]) == 0
    assert "recomputed" in capsys.readouterr().out


def test_declared_output_and_measured_calorific_value(migrated_db: str,
                                                      example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    day = datetime(2026, 10, 8, tzinfo=SH)
    with psycopg.connect(migrated_db) as conn:
        # kiln-2 without its clinker meter: output comes from a declared production record
        write_counter(conn, ids["k2-coal"], day, 96, 0.25)
        write_counter(conn, ids["k2-elec"], day, 96, 1.0)      # x 60 CT: 5 760 kWh
        plant_id, unit_id = conn.execute(
            "SELECT p.id, u.id FROM production_units u JOIN plants p ON p.id = u.plant_id "
            "WHERE u.code = 'kiln-2'").fetchone()
        conn.execute("INSERT INTO production_records (unit_id, period_start, period_end, "
                     "quantity, source) VALUES (%s, %s, %s, 300, 'shift report')",
                     (unit_id, day, day + timedelta(days=1)))
        # the plant measured its coal at 23 000 kJ/kg instead of the default 20 908 kJ/kg
        conn.execute("INSERT INTO measured_calorific_values VALUES (%s, 'raw_coal', 23000, "
                     "'2026-01-01Z', 'lab report 2026-01')", (plant_id,))
    Accountant(migrated_db).recompute()
    with psycopg.connect(migrated_db) as conn:
        (r,) = [x for x in unit_results(conn, parse_period("2026-10-08", SH),
                                        plant="jx-yujiang-cement") if x.unit == "kiln-2"]
    # 96 x 0.25 t = 24 t = 24 000 kg x 23 000 kJ/kg / 29 307.6 kJ/kgce = 18 834.63 kgce,
    # plus 5 760 kWh x 0.1229 = 707.904 kgce
    energy = 24_000 * 23_000 / 29_307.6 + 5_760 * 0.1229
    assert r.energy_kgce == pytest.approx(energy)
    assert (r.output, r.output_source) == (300, "declared")
    assert [w.code for w in r.warnings] == ["production_meter_incomplete"]
    assert r.intensity == pytest.approx(energy / 300)


@pytest.mark.parametrize(("spec", "granularity"), [
    ("2026-10", "month"), ("ytd:2026-10", "month"), ("r12:2026-10", "month"),
    ("2026", "month"), ("2026-10-05", "day"),
])
def test_period_granularity(spec: str, granularity: str) -> None:
    period = parse_period(spec, SH)
    assert period.granularity == granularity
    assert period.start.tzinfo is SH and period.start.hour == 0


def test_custom_periods_use_the_finest_rollup_that_tiles_them() -> None:
    from accounting.periods import Period

    week = Period("w", "custom", datetime(2026, 11, 14, tzinfo=SH),
                  datetime(2026, 11, 21, tzinfo=SH))
    assert week.granularity == "day"
    hours = Period("h", "custom", datetime(2026, 11, 14, 6, tzinfo=SH),
                   datetime(2026, 11, 14, 9, tzinfo=SH))
    assert hours.granularity == "hour"


def test_ingested_readings_are_queued_for_accounting(migrated_db: str,
                                                     example_fleet_path: Path) -> None:
    import json

    from ingest.pipeline import IngestPipeline

    setup_db(migrated_db, example_fleet_path)
    pipeline = IngestPipeline.for_database(migrated_db).start()
    try:
        t0 = datetime(2026, 10, 9, tzinfo=SH)
        body = {"gateway": "gw-1", "seq": 1, "readings": [
            {"meter": "k1-elec", "ts": (t0 + i * Q).isoformat(), "value": 100.0 + 10 * i}
            for i in range(5)]}
        receipt = pipeline.submit("jx-yujiang-cement", json.dumps(body).encode(), "test")
        receipt.wait(10)
        assert receipt.accepted == 5
    finally:
        pipeline.close()
    with psycopg.connect(migrated_db) as conn:
        queued = conn.execute("SELECT from_ts, to_ts FROM accounting_dirty").fetchall()
    assert queued == [(t0, t0 + 4 * Q)]
    stats = Accountant(migrated_db).process_dirty()
    assert stats.intervals == 4
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT sum(quantity) FROM energy_intervals").fetchone() == (40.0,)


def test_plant_grid_factor_overrides_the_provincial_factor(migrated_db: str,
                                                           example_fleet_path: Path) -> None:
    ids = setup_db(migrated_db, example_fleet_path)
    day = datetime(2026, 10, 12, tzinfo=SH)
    with psycopg.connect(migrated_db) as conn:
        write_counter(conn, ids["k1-elec"], day, 96, 100.0)
        plant_id = conn.execute("SELECT id FROM plants WHERE code = 'jx-yujiang-cement'"
                                ).fetchone()[0]
        conn.execute("INSERT INTO plant_grid_factors VALUES (%s, 2025, 0.42, 'contract')",
                     (plant_id,))
    Accountant(migrated_db).recompute()
    with psycopg.connect(migrated_db) as conn:
        co2, kwh = conn.execute("SELECT sum(co2_kg), sum(quantity) FROM energy_intervals "
                                "WHERE meter_id = %s", (ids["k1-elec"],)).fetchone()
    # 9 600 kWh x 0.42 kg/kWh (the plant's 2025 factor, newest <= 2026), not Jiangxi's 0.5752
    assert kwh == pytest.approx(9_600)
    assert co2 == pytest.approx(9_600 * 0.42)
