"""The pure verdict step of the accounting (``accounting.judge``): tables of hand-computed cases.

Rules as built (``accounting/judge.py``, DESIGN rules 3-6 and 10): comprehensive energy =
consumed kgce - exported kgce; intensity = energy / output in the catalogue entry's unit
(kgce, kgoe = kgce / 1.4286, or the unit's net kWh); output from declared statistics for
month/year periods they cover, else production meters, else declared records pro-rated;
a verdict only from sufficient data (each energy meter >= 90 % complete per period, per-day
capped; at most 10 % of energy and of output estimated; no unconvertible meter), else
``not_evaluable`` with reasons; a unit without a catalogue entry is ``unmapped``, one with
complete data and no output ``no_output``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.judge import (
    AreaKpi,
    Evidence,
    UnitResult,
    annual_capacity,
    area_kpis,
    judge_units,
)
from accounting.periods import Period, parse_period
from accounting.report import STATUS_TEXT
from accounting.rows import ConversionIssue, DeclaredOutput, MeterDay, UnitInfo, UnitMeterTotals
from api.schemas import StatusValue
from benchmarks.catalogue import Catalogue, CatalogueEntry
from benchmarks.evaluate import FLAGGED, JUDGED, Status
from core.settings import VerdictSettings

SH = ZoneInfo("Asia/Shanghai")
DAY = parse_period("2026-10-05", SH)          # 96 readings expected per 15-minute meter
LATER = datetime(2027, 1, 1, tzinfo=SH)        # "now": long after the period
VERSIONS = {1: ("GB/T 2589-2020", "emissions 2023"), 2: ("GB/T 2589-2020", "emissions 2024")}


def _entry(key: str, edition: int, unit: str, benchmark: str | None,
           baseline: str | None) -> CatalogueEntry:
    return CatalogueEntry(key=key, edition=edition, industry="Test", area_zh="测试",
                          product=key, metric="comprehensive energy per unit of product",
                          unit=unit, benchmark=None if benchmark is None else Decimal(benchmark),
                          baseline=None if baseline is None else Decimal(baseline))


CATALOGUE = Catalogue([
    _entry("cement/clinker", 2021, "kgce/t", "100", "117"),
    _entry("test/editions", 2021, "kgce/t", "100", "117"),
    _entry("test/editions", 2024, "kgce/t", "90", "110"),
    _entry("test/power", 2021, "kWh/t", "50", "60"),
    _entry("test/oil", 2021, "kgoe/t", "90", "95"),
    _entry("glass/box", 2021, "kgce/weight-box", "12", "13.5"),
    _entry("test/blank", 2021, "kgce/t", None, None),
], version="test-catalogue@0")
_METER_IDS = itertools.count(1)


def meter(code: str, *, unit_id: int = 1, unit: str = "kiln-1", key: str | None =
          "cement/clinker", pinned: int | None = None, product_unit: str = "t",
          capacity: float = 5000.0, kind: str = "counter", direction: str = "consumed",
          energy_type: str = "raw_coal", eng_unit: str = "t", quantity: float = 0.0,
          estimated: float = 0.0, kgce: float = 0.0, co2_kg: float = 0.0,
          readings: float = 96.0, installed_at: datetime | None = None,
          removed_at: datetime | None = None,
          factor_sets: tuple[int, int] | None = (1, 1), interval_s: int = 900,
          plant: str = "jx-test-cement", capacity_unit: str = "t/d") -> UnitMeterTotals:
    """One meter row of a unit (the unit's columns repeat on each of its meter rows)."""
    return UnitMeterTotals(
        unit_id=unit_id, unit_code=unit, plant_code=plant, plant_name="测试水泥",
        region_code="360622", catalogue_key=key, catalogue_edition=pinned,
        product_unit=product_unit, design_capacity=capacity, capacity_unit=capacity_unit,
        meter_id=next(_METER_IDS), meter_code=code, energy_type=energy_type,
        kind=kind, direction=direction, eng_unit=eng_unit, interval_s=interval_s,
        installed_at=installed_at, removed_at=removed_at, quantity=quantity,
        estimated=estimated, kgce=kgce, co2_kg=co2_kg, readings=readings,
        factor_set_min=None if factor_sets is None else factor_sets[0],
        factor_set_max=None if factor_sets is None else factor_sets[1])


def production(quantity: float, readings: float = 96.0, **unit: Any) -> UnitMeterTotals:
    return meter("output", kind="production", energy_type="clinker", quantity=quantity,
                 readings=readings, factor_sets=None, **unit)


def unit_of(row: UnitMeterTotals) -> UnitInfo:
    return UnitInfo(unit_id=row.unit_id, unit_code=row.unit_code, plant_code=row.plant_code,
                    plant_name=row.plant_name, region_code=row.region_code,
                    catalogue_key=row.catalogue_key, catalogue_edition=row.catalogue_edition,
                    product_unit=row.product_unit, design_capacity=row.design_capacity,
                    capacity_unit=row.capacity_unit)


def one_day(row: UnitMeterTotals, period: Period) -> list[MeterDay]:
    """The meter's readings all on the period's first day (the default for one-day cases)."""
    return [MeterDay(row.meter_id, period.start.timestamp(), row.readings)]


def declared_full(quantity: float, period: Period = DAY, unit_id: int = 1) -> DeclaredOutput:
    seconds = (period.end - period.start).total_seconds()
    return DeclaredOutput(unit_id, quantity, 1, False, seconds)


def judge(*rows: UnitMeterTotals, declared: dict[int, float | DeclaredOutput] | None = None,
          edition: int | None = None, now: datetime = LATER, period: Period = DAY,
          days: dict[str, list[float]] | None = None,
          issues: dict[str, list[str]] | None = None,
          units: list[UnitInfo] | None = None,
          rules: VerdictSettings | None = None,
          default_edition: int | None = None) -> list[UnitResult]:
    """Judge ``rows``; ``days`` gives a meter's readings per local day of the period (by
    meter code), otherwise all of its readings fall on the first day; ``issues`` gives
    conversion issues by meter code (one interval each)."""
    units = units if units is not None else list(
        {r.unit_id: unit_of(r) for r in rows}.values())
    by_code = {r.meter_code: r for r in rows}
    day_rows: dict[int, list[MeterDay]] = {r.meter_id: one_day(r, period) for r in rows}
    for code, counts in (days or {}).items():
        r = by_code[code]
        day_rows[r.meter_id] = [
            MeterDay(r.meter_id, datetime.combine(period.start.date() + timedelta(days=i),
                                                  time(), tzinfo=SH).timestamp(), n)
            for i, n in enumerate(counts)]
    issue_rows = {by_code[code].meter_id: [ConversionIssue(by_code[code].meter_id, text, 1,
                                                           period.start, period.start)
                                           for text in texts]
                  for code, texts in (issues or {}).items()}
    evidence = Evidence(
        declared={k: v if isinstance(v, DeclaredOutput) else declared_full(v, period, k)
                  for k, v in (declared or {}).items()},
        versions=VERSIONS, days=day_rows, issues=issue_rows)
    return judge_units(units, rows, evidence, CATALOGUE, period, now=now, edition=edition,
                       rules=rules, default_edition=default_edition)


def one(*rows: UnitMeterTotals, **kwargs: Any) -> UnitResult:
    (result,) = judge(*rows, **kwargs)
    return result


def codes(r: UnitResult) -> list[str]:
    return [x.code for x in r.reasons]


# -- intensity and the boundary ------------------------------------------------------------

# coal 120 000 kgce + electricity 100 000 kWh (12 290 kgce) - exported waste heat 2 290 kgce
# = 130 000 kgce over 1 200 t of clinker = 108.333... kgce/t: benchmark 100 < 108.33 <= 117
KILN = (
    meter("coal", quantity=200.0, kgce=120_000.0, co2_kg=300_000.0),
    meter("grid", energy_type="electricity", eng_unit="kWh", quantity=100_000.0,
          kgce=12_290.0, co2_kg=57_520.0),
    meter("waste-heat", energy_type="heat", eng_unit="GJ", direction="exported",
          quantity=67.0, kgce=2_290.0, co2_kg=5_000.0),
    production(1_200.0),
)


def test_intensity_is_consumed_minus_exported_over_output() -> None:
    r = one(*KILN)
    assert r.status == Status.BELOW_BENCHMARK
    assert r.energy_kgce == pytest.approx(130_000.0)
    assert r.output == 1_200.0 and r.output_unit == "t"
    assert r.intensity == pytest.approx(130_000 / 1_200)        # 108.333 kgce/t
    assert r.intensity_unit == "kgce/t"
    assert (r.benchmark, r.baseline, r.edition) == (100.0, 117.0, 2021)
    assert r.gap_to_benchmark_pct == pytest.approx(8.333333333333)  # (108.33 - 100) / 100
    assert r.saving_potential_tce == pytest.approx(10.0)            # 8.333 x 1 200 t / 1000
    assert r.electricity_kwh == pytest.approx(100_000.0)
    assert r.co2_kg == pytest.approx(352_520.0)                      # 300 000 + 57 520 - 5 000
    assert r.carbon_intensity == pytest.approx(352_520 / 1_200)
    assert r.completeness == 1.0 and r.estimated_share == 0.0


def test_an_exported_meter_is_subtracted_a_consumed_one_added() -> None:
    exported = one(*KILN)
    as_consumed = one(*(dataclasses.replace(m, direction="consumed")
                        if m.meter_code == "waste-heat" else m for m in KILN))
    assert exported.energy_kgce == pytest.approx(130_000.0)
    assert as_consumed.energy_kgce == pytest.approx(134_580.0)      # + 2 x 2 290
    assert as_consumed.intensity == pytest.approx(134_580 / 1_200)   # 112.15 kgce/t
    assert as_consumed.co2_kg == pytest.approx(362_520.0)


@pytest.mark.parametrize(
    ("rows", "status", "intensity", "unit", "gap", "saving"),
    [
        # exactly at benchmark: 100 000 kgce / 1 000 t = 100 kgce/t -> at benchmark, saving 0
        ([meter("coal", kgce=100_000.0, quantity=150.0), production(1_000.0)],
         Status.AT_BENCHMARK, 100.0, "kgce/t", 0.0, 0.0),
        # exactly at baseline: 117 kgce/t is still only below benchmark
        ([meter("coal", kgce=117_000.0, quantity=170.0), production(1_000.0)],
         Status.BELOW_BENCHMARK, 117.0, "kgce/t", 17.0, 17.0),
        # 118 kgce/t > baseline 117: below baseline; saving (118 - 100) x 1 000 / 1000
        ([meter("coal", kgce=118_000.0, quantity=171.0), production(1_000.0)],
         Status.BELOW_BASELINE, 118.0, "kgce/t", 18.0, 18.0),
        # kWh/t: net electricity 60 MWh - 6 000 kWh exported = 54 000 kWh over 1 000 t = 54;
        # saving (54 - 50) x 1 000 t x 0.1229 kgce/kWh / 1000 = 0.4916 tce
        ([meter("grid", key="test/power", energy_type="electricity", eng_unit="MWh",
                quantity=60.0, kgce=7_374.0),
          meter("pv-export", key="test/power", energy_type="electricity", eng_unit="kWh",
                direction="exported", quantity=6_000.0, kgce=737.4),
          production(1_000.0, key="test/power")],
         Status.BELOW_BENCHMARK, 54.0, "kWh/t", 8.0, 0.4916),
        # kgoe/t: 14 286 kgce = 10 000 kgoe over 100 t = 100 kgoe/t > baseline 95;
        # saving (100 - 90) x 100 t x 1.4286 kgce/kgoe / 1000 = 1.4286 tce
        ([meter("oil", key="test/oil", energy_type="crude_oil", kgce=14_286.0, quantity=10.0),
          production(100.0, key="test/oil")],
         Status.BELOW_BASELINE, 100.0, "kgoe/t", 100 / 9, 1.4286),
        # the product unit matches the entry's denominator after normalisation (weight_box)
        ([meter("gas", key="glass/box", product_unit="weight_box", energy_type="natural_gas",
                kgce=24_000.0, quantity=18_000.0),
          production(2_000.0, key="glass/box", product_unit="weight_box")],
         Status.AT_BENCHMARK, 12.0, "kgce/weight-box", 0.0, 0.0),
    ],
    ids=["at-benchmark", "at-baseline", "below-baseline", "kwh-per-t", "kgoe-per-t",
         "weight-box"],
)
def test_intensity_in_the_entry_unit(rows: list[UnitMeterTotals], status: Status,
                                     intensity: float, unit: str, gap: float,
                                     saving: float) -> None:
    r = one(*rows)
    assert r.status == status
    assert r.intensity == pytest.approx(intensity, rel=1e-12)
    assert r.intensity_unit == unit
    assert r.gap_to_benchmark_pct == pytest.approx(gap, rel=1e-12, abs=1e-12)
    assert r.saving_potential_tce == pytest.approx(saving, rel=1e-12, abs=1e-12)


# -- output: declared statistics, production meters, declared records --------------------

MONTH = parse_period("2026-10", SH)


@pytest.mark.parametrize(
    ("rows", "declared", "period", "output", "source", "status", "why"),
    [
        # a day: the production meter's quantity; a declared record of the day is compared
        ([production(1_000.0)], {1: 1_020.0}, DAY, 1_000.0, "meter", Status.AT_BENCHMARK, []),
        # a month the declared records cover: statistical output is used over the meter
        ([production(1_000.0, readings=96.0 * 31)], {1: 800.0}, MONTH, 800.0, "declared",
         Status.BELOW_BASELINE, []),
        # no production meter at all: declared production
        ([], {1: 800.0}, DAY, 800.0, "declared", Status.BELOW_BASELINE, []),
        # a production meter in service that sent nothing on a day: the declared record of
        # the day stands in (with a warning); without one, not evaluable
        ([production(0.0, readings=0.0)], {1: 800.0}, DAY, 800.0, "declared",
         Status.BELOW_BASELINE, []),
        ([production(0.0, readings=0.0)], {}, DAY, 0.0, "meter",
         Status.NOT_EVALUABLE, ["meter_incomplete"]),
        # a complete production meter that counted nothing: no output (complete data)
        ([production(0.0, readings=96.0)], {}, DAY, 0.0, "meter", Status.NO_OUTPUT,
         ["no_output"]),
        # neither meter nor record: not evaluable, never "no output"
        ([], {}, DAY, 0.0, None, Status.NOT_EVALUABLE, ["no_output_data"]),
        # declared production of another unit does not count
        ([], {2: 800.0}, DAY, 0.0, None, Status.NOT_EVALUABLE, ["no_output_data"]),
        # a record covering half of the day, no meter: partial, not evaluable
        ([], {1: DeclaredOutput(1, 400.0, 1, True, 43_200.0)}, DAY, 400.0, "declared",
         Status.NOT_EVALUABLE, ["declared_output_partial"]),
    ],
    ids=["meter-day", "declared-month", "declared-only", "meter-silent-declared",
         "meter-silent", "meter-zero",
         "nothing", "other-unit", "declared-partial"],
)
def test_output_source(rows: list[UnitMeterTotals], declared: dict[int, Any], period: Period,
                       output: float, source: str | None, status: Status,
                       why: list[str]) -> None:
    # 100 000 kgce: 100 kgce/t at 1 000 t, 125 kgce/t at 800 t
    coal = meter("coal", kgce=100_000.0, quantity=150.0,
                 readings=96.0 * (31 if period is MONTH else 1))
    r = one(coal, *rows, declared=declared, period=period,
            days={"coal": [96.0] * 31, "output": [96.0] * 31} if period is MONTH else None)
    assert (r.output, r.output_source, r.status, codes(r)) == (output, source, status, why)
    if status in JUDGED:
        assert r.intensity == pytest.approx(100_000.0 / output)
    else:
        assert r.intensity is None and r.gap_to_benchmark_pct is None


def test_metered_and_declared_output_that_disagree_are_both_shown() -> None:
    # the month: meter 1 000 t, statistics 800 t: 25 % apart (> 5 %); statistics are used
    coal = meter("coal", kgce=100_000.0, quantity=150.0, readings=96.0 * 31)
    r = one(coal, production(1_000.0, readings=96.0 * 31), declared={1: 800.0},
            period=MONTH, days={"coal": [96.0] * 31, "output": [96.0] * 31})
    assert (r.metered_output, r.declared_output, r.output) == (1_000.0, 800.0, 800.0)
    (w,) = r.warnings
    assert w.code == "output_deviation" and w.value == pytest.approx(0.25)
    assert "declared output used" in w.message
    # within the tolerance: no warning
    close = one(coal, production(820.0, readings=96.0 * 31), declared={1: 800.0},
                period=MONTH, days={"coal": [96.0] * 31, "output": [96.0] * 31})
    assert close.warnings == () and close.output == 800.0


def test_no_output_gives_no_intensity_but_keeps_the_entry() -> None:
    r = one(meter("coal", kgce=50_000.0, quantity=80.0, co2_kg=1_000.0),
            production(0.0, readings=96.0))
    assert r.status == Status.NO_OUTPUT
    assert (r.catalogue_key, r.edition, r.intensity_unit) == ("cement/clinker", 2021, "kgce/t")
    assert r.intensity is None and r.saving_potential_tce is None
    assert r.carbon_intensity is None
    assert r.energy_kgce == 50_000.0 and r.co2_kg == 1_000.0


# -- no catalogue entry, not evaluable, editions ---------------------------------------------

@pytest.mark.parametrize(
    ("key", "pinned", "requested", "status", "edition", "intensity_unit"),
    [
        (None, None, None, Status.UNMAPPED, None, None),
        ("cement/unknown", None, None, Status.UNMAPPED, None, None),
        ("test/editions", 2019, None, Status.UNMAPPED, 2019, None),   # no such edition
        ("test/editions", None, 2019, Status.UNMAPPED, 2019, None),
        # 100 kgce/t: at the 2021 benchmark 100, between 90 and 110 of 2024
        ("test/editions", None, None, Status.BELOW_BENCHMARK, 2024, "kgce/t"),  # newest
        ("test/editions", None, 2021, Status.AT_BENCHMARK, 2021, "kgce/t"),     # requested
        ("test/editions", 2021, 2024, Status.AT_BENCHMARK, 2021, "kgce/t"),     # pinned wins
        ("test/editions", 2024, 2021, Status.BELOW_BENCHMARK, 2024, "kgce/t"),
        ("test/blank", None, None, Status.NOT_EVALUABLE, 2021, "kgce/t"),       # no values
    ],
)
def test_catalogue_entry_and_edition(key: str | None, pinned: int | None,
                                     requested: int | None, status: Status,
                                     edition: int | None, intensity_unit: str | None) -> None:
    r = one(meter("coal", key=key, pinned=pinned, kgce=100_000.0, quantity=150.0),
            production(1_000.0, key=key, pinned=pinned), edition=requested)
    assert r.status == status
    assert r.catalogue_key == key
    assert r.edition == edition
    assert r.intensity_unit == intensity_unit
    if status in JUDGED:
        assert r.intensity == pytest.approx(100.0) and r.benchmark is not None
    else:
        assert r.benchmark is None and r.baseline is None and r.gap_to_benchmark_pct is None
        assert r.saving_potential_tce is None
    if status == Status.UNMAPPED:
        assert r.intensity is None
    assert r.energy_kgce == 100_000.0 and r.output == 1_000.0   # reported all the same


def test_newest_edition_values_are_used() -> None:
    # 100 000 kgce / 900 t = 111.1 kgce/t: 2024 levels 90 / 110 -> below baseline,
    # saving (111.11 - 90) x 900 / 1000 = 19 tce, gap 23.46 %
    r = one(meter("coal", key="test/editions", kgce=100_000.0, quantity=150.0),
            production(900.0, key="test/editions"))
    assert (r.edition, r.benchmark, r.baseline) == (2024, 90.0, 110.0)
    assert r.status == Status.BELOW_BASELINE
    assert r.saving_potential_tce == pytest.approx(19.0)
    assert r.gap_to_benchmark_pct == pytest.approx((100_000 / 900 - 90) / 90 * 100)


def test_an_entry_without_values_still_reports_the_intensity() -> None:
    r = one(meter("coal", key="test/blank", kgce=100_000.0, quantity=150.0),
            production(800.0, key="test/blank"))
    assert r.status == Status.NOT_EVALUABLE
    assert r.intensity == pytest.approx(125.0)
    assert r.benchmark is None and r.gap_to_benchmark_pct is None


def test_output_in_another_unit_than_the_entry_is_not_evaluable() -> None:
    r = one(meter("coal", product_unit="m2", kgce=100_000.0, quantity=150.0),
            production(1_000.0, product_unit="m2"))
    assert r.status == Status.NOT_EVALUABLE
    assert r.intensity is None and r.intensity_unit == "kgce/t"
    assert r.output == 1_000.0 and r.output_unit == "m2"


# -- data sufficiency ------------------------------------------------------------------------

COAL = {"kgce": 100_000.0, "quantity": 150.0}


@pytest.mark.parametrize(
    ("coal", "grid", "now", "meter_completeness", "completeness", "why"),
    [
        # all there
        ({}, {}, LATER, (1.0, 1.0), 1.0, []),
        # the grid meter sent half a day: 50 % complete, 2 of 3 meter-days complete
        ({}, {"readings": 48.0}, LATER, (1.0, 0.5), 2 / 3, ["meter_incomplete"]),
        # 87 of 96 readings (90.6 %): enough; 86 (89.6 %): not
        ({}, {"readings": 87.0}, LATER, (1.0, 87 / 96), 1.0, []),
        ({}, {"readings": 86.0}, LATER, (1.0, 86 / 96), 2 / 3, ["meter_incomplete"]),
        # the grid meter was installed at noon: 48 expected from it
        ({}, {"readings": 48.0, "installed_at": datetime(2026, 10, 5, 12, tzinfo=SH)}, LATER,
         (1.0, 1.0), 1.0, []),
        # removed at noon: 48 expected from it
        ({}, {"readings": 48.0, "removed_at": datetime(2026, 10, 5, 12, tzinfo=SH)}, LATER,
         (1.0, 1.0), 1.0, []),
        # at 06:00 of the day 23 readings are due (the running interval is not): 12 of 23
        ({"readings": 12.0}, {"readings": 23.0}, datetime(2026, 10, 5, 6, tzinfo=SH),
         (12 / 23, 1.0), 2 / 3, ["meter_incomplete"]),
        # a meter reporting every minute (1 440 a day) beside a dead one: capped, the dead
        # one is seen (pooled completeness would have said 100 %)
        ({"readings": 1_440.0}, {"readings": 0.0}, LATER, (1.0, 0.0), 2 / 3,
         ["meter_incomplete"]),
        # hourly grid meter: 24 expected, 22 received (91.7 %)
        ({}, {"readings": 22.0, "interval_s": 3600}, LATER, (1.0, 22 / 24), 1.0, []),
    ],
    ids=["complete", "half-a-meter", "90.6-pct", "89.6-pct", "installed-at-noon",
         "removed-at-noon", "now-in-the-day", "minute-meter-beside-dead", "hourly"],
)
def test_sufficiency_per_meter(coal: dict[str, Any], grid: dict[str, Any], now: datetime,
                               meter_completeness: tuple[float, float], completeness: float,
                               why: list[str]) -> None:
    r = one(meter("coal", **{**COAL, **coal}),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=10.0,
                  kgce=1.229, **grid),
            production(1_010.0, readings=96.0 if now == LATER else 23.0), now=now)
    by_meter = {m.meter: m.completeness for m in r.meters}
    assert (by_meter["coal"], by_meter["grid"]) == pytest.approx(meter_completeness)
    assert r.completeness == pytest.approx(completeness)
    assert codes(r) == why
    assert r.status == (Status.NOT_EVALUABLE if why else Status.AT_BENCHMARK)
    if why:
        (reason,) = r.reasons
        assert reason.meter in ("coal", "grid") and reason.limit == 0.9
        assert r.intensity is None and r.saving_potential_tce is None


def test_a_dead_coal_scale_withholds_the_verdict() -> None:
    # finding 1: the coal scale dead all day, electricity alone gives 8 kgce/t
    r = one(meter("coal", readings=0.0),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=65_000.0,
                  kgce=7_988.5),
            production(1_000.0))
    assert r.status == Status.NOT_EVALUABLE and r.intensity is None
    (reason,) = r.reasons
    assert (reason.code, reason.meter, reason.value) == ("meter_incomplete", "coal", 0.0)
    assert "sent no readings" in reason.message
    assert reason.days == ("2026-10-05",) and reason.day_count == 1


def test_dead_energy_meters_and_a_live_production_meter() -> None:
    r = one(meter("coal", readings=0.0),
            meter("grid", energy_type="electricity", eng_unit="kWh", readings=0.0),
            production(1_000.0))
    assert r.status == Status.NOT_EVALUABLE and r.energy_kgce == 0.0
    assert [(x.code, x.meter) for x in r.reasons] == [("meter_incomplete", "coal"),
                                                      ("meter_incomplete", "grid")]


def test_complete_meters_reporting_no_energy_beside_output_are_not_judged() -> None:
    r = one(meter("coal", readings=96.0), production(1_000.0))
    assert r.status == Status.NOT_EVALUABLE and codes(r) == ["no_energy_data"]


def test_a_unit_with_only_a_production_meter_or_no_meters() -> None:
    r = one(production(1_000.0))
    assert r.status == Status.NOT_EVALUABLE and codes(r) == ["no_energy_meters"]
    bare = UnitInfo(9, "kiln-9", "jx-test-cement", "测试水泥", "360622", "cement/clinker",
                    None, "t", 2_000.0, "t/d")
    (r,) = judge(units=[bare])
    assert r.status == Status.NOT_EVALUABLE and codes(r)[0] == "no_output_data"
    assert "no_meters" in codes(r)


def test_days_below_90_percent_are_listed() -> None:
    # a week: the grid meter is dead on Tuesday and Wednesday, 5 of 7 days complete = 71 %
    week = Period("week", "custom", datetime(2026, 10, 5, tzinfo=SH),
                  datetime(2026, 10, 12, tzinfo=SH))
    r = one(meter("coal", **COAL, readings=96.0 * 7),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=1.0, kgce=1.0),
            production(7_000.0, readings=96.0 * 7), period=week,
            days={"coal": [96.0] * 7, "grid": [96, 0, 0, 96, 96, 96, 96],
                  "output": [96.0] * 7})
    (reason,) = r.reasons
    assert reason.days == ("2026-10-06", "2026-10-07") and reason.day_count == 2
    assert reason.value == pytest.approx(5 / 7)
    assert r.completeness == pytest.approx(19 / 21)


@pytest.mark.parametrize(
    ("rows", "share", "output_share", "why"),
    [
        # coal: 25 of 100 t estimated -> 250 of 1 000 kgce; grid 3 000 kgce exact; the
        # export's estimate counts too: (250 + 500) / (1 000 + 3 000 + 500) = 16.7 % > 10 %
        ([meter("coal", quantity=100.0, estimated=25.0, kgce=1_000.0),
          meter("grid", energy_type="electricity", eng_unit="kWh", quantity=24_410.0,
                kgce=3_000.0),
          meter("steam-out", energy_type="heat", eng_unit="GJ", direction="exported",
                quantity=10.0, estimated=10.0, kgce=500.0),
          production(40.0)], 750 / 4_500, 0.0, ["energy_estimated"]),
        # 10 % exactly: allowed
        ([meter("coal", quantity=100.0, estimated=10.0, kgce=1_000.0), production(40.0)],
         0.1, 0.0, []),
        # output: 5 of 40 t estimated (12.5 %) > 10 %
        ([meter("coal", quantity=100.0, kgce=1_000.0),
          production(40.0) and dataclasses.replace(production(40.0), estimated=5.0)],
         0.0, 0.125, ["output_estimated"]),
    ],
    ids=["energy-incl-export", "energy-at-limit", "output"],
)
def test_estimated_shares(rows: list[UnitMeterTotals], share: float, output_share: float,
                          why: list[str]) -> None:
    r = one(*rows)
    assert r.estimated_share == pytest.approx(share)
    assert r.estimated_output_share == pytest.approx(output_share)
    assert codes(r) == why


def test_sufficiency_rules_are_configurable() -> None:
    rows = (meter("coal", **COAL, readings=80.0), production(1_000.0))
    assert one(*rows).status == Status.NOT_EVALUABLE          # 83 % < 90 %
    lenient = VerdictSettings(meter_min_completeness=0.8)
    assert one(*rows, rules=lenient).status == Status.AT_BENCHMARK


def test_an_unconvertible_meter_makes_its_unit_not_evaluable_not_the_others() -> None:
    gas = meter("coke-gas", energy_type="coke_oven_gas", eng_unit="m3", quantity=5_000.0)
    results = judge(meter("coal", **COAL), gas, production(1_000.0),
                    meter("coal", unit_id=2, unit="kiln-2", **COAL),
                    production(1_000.0, unit_id=2, unit="kiln-2"),
                    issues={"coke-gas": ["kgce: coke_oven_gas needs a measured calorific "
                                         "value"]})
    bad, good = results
    assert bad.status == Status.NOT_EVALUABLE and codes(bad) == ["unconvertible"]
    assert "measured calorific value" in bad.reasons[0].message
    assert bad.meters[1].conversion_issues == ("kgce: coke_oven_gas needs a measured "
                                               "calorific value",)
    assert good.status == Status.AT_BENCHMARK


def test_missing_co2_keeps_the_energy_verdict_and_says_so() -> None:
    r = one(meter("coal", **COAL, co2_kg=10.0),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=1.0, kgce=0.0),
            production(1_000.0),
            issues={"grid": ["co2: no grid factor for 2020 (grid/jiangxi)"]})
    assert r.status == Status.AT_BENCHMARK
    assert r.co2_kg is None and r.carbon_intensity is None
    assert [w.code for w in r.warnings] == ["co2_incomplete"]


def test_factor_and_catalogue_versions() -> None:
    r = one(meter("coal", kgce=100_000.0, quantity=150.0, factor_sets=(1, 2)),
            meter("gas", energy_type="natural_gas", kgce=1.0, quantity=1.0, factor_sets=(2, 2)),
            meter("idle", factor_sets=None, readings=0.0),
            production(1_000.0))
    assert r.factor_versions == ("GB/T 2589-2020", "emissions 2023", "emissions 2024")
    assert r.catalogue_version == "test-catalogue@0"
    idle = one(meter("idle", factor_sets=None, readings=0.0), production(1_000.0))
    assert idle.factor_versions == ()


def test_units_are_grouped_in_row_order_and_carry_the_period() -> None:
    rows = [meter("coal", unit_id=7, unit="kiln-2", kgce=90_000.0, quantity=140.0),
            meter("coal", unit_id=3, unit="kiln-1", kgce=100_000.0, quantity=150.0),
            production(1_000.0, unit_id=7, unit="kiln-2"),
            production(1_000.0, unit_id=3, unit="kiln-1")]
    results = judge(*rows)
    assert [(r.unit, r.energy_kgce) for r in results] == [("kiln-2", 90_000.0),
                                                          ("kiln-1", 100_000.0)]
    assert all(r.period is DAY for r in results)
    assert judge() == []


def test_as_dict_has_the_wire_values_in_field_order() -> None:
    d = one(*KILN).as_dict()
    assert list(d) == [f.name for f in dataclasses.fields(UnitResult)]
    assert d["period"] == "2026-10-05"
    assert d["status"] == "below_benchmark" and type(d["status"]) is str


# -- area KPIs --------------------------------------------------------------------------------

def _result(plant: str, key: str | None, status: Status, capacity: float,
            completeness: float = 1.0, capacity_unit: str = "t/d") -> UnitResult:
    return UnitResult(
        plant=plant, plant_name=plant, region="360622", unit=f"u-{plant}-{capacity:g}",
        period=DAY, catalogue_key=key, edition=2021, status=status, intensity=None,
        intensity_unit=None, benchmark=None, baseline=None, gap_to_benchmark_pct=None,
        saving_potential_tce=None, output=1.0, output_unit="t", energy_kgce=1.0,
        electricity_kwh=0.0, co2_kg=0.0, carbon_intensity=None, estimated_share=0.0,
        completeness=completeness, design_capacity=capacity, capacity_unit=capacity_unit,
        catalogue_version="x", factor_versions=())


def test_area_kpis_use_all_registered_capacity() -> None:
    results = [
        _result("a", "cement/clinker", Status.AT_BENCHMARK, 5_000.0, 1.0),
        _result("b", "cement/clinker", Status.BELOW_BASELINE, 2_500.0, 0.9),
        _result("c", "cement/clinker", Status.NO_OUTPUT, 1_000.0, 0.2),
        _result("d", "cement/clinker", Status.BELOW_BENCHMARK, 2_500.0, 0.5),
        # a 10 000 t/d line without data: in the denominator, as unknown (finding 15)
        _result("g", "cement/clinker", Status.NOT_EVALUABLE, 10_000.0, 0.0),
        _result("e", None, Status.UNMAPPED, 9_999.0),
        _result("f", "glass/box", Status.NOT_EVALUABLE, 600.0, 0.8),
    ]
    clinker, glass = area_kpis(results)
    # all capacity 21 000 t/d = 7 665 000 t/a: 5 000 at benchmark (23.8 %), 2 500 below
    # benchmark, 2 500 below baseline (11.9 % each), 11 000 unknown (52.4 %)
    assert clinker.completeness == pytest.approx((1 + 0.9 + 0.2 + 0.5 + 0) / 5)
    assert dataclasses.replace(clinker, completeness=0.0) == AreaKpi(
        catalogue_key="cement/clinker", units=5, capacity_unit="t/a",
        capacity_total=21_000.0 * 365, share_capacity_at_benchmark=5 / 21,
        share_capacity_below_benchmark=2.5 / 21, share_capacity_below_baseline=2.5 / 21,
        share_capacity_unknown=11 / 21,
        counts={"at_benchmark": 1, "below_baseline": 1, "no_output": 1, "below_benchmark": 1,
                "not_evaluable": 1},
        plants_below_benchmark=["b", "d"], completeness=0.0)
    assert all(type(k) is str for k in clinker.counts)
    # nothing judged: all unknown
    assert glass == AreaKpi(
        catalogue_key="glass/box", units=1, capacity_unit="t/a", capacity_total=600.0 * 365,
        share_capacity_at_benchmark=0, share_capacity_below_benchmark=0,
        share_capacity_below_baseline=0, share_capacity_unknown=1.0,
        counts={"not_evaluable": 1}, plants_below_benchmark=[], completeness=0.8)
    assert area_kpis([]) == []


def test_area_capacity_is_normalised_to_a_year() -> None:
    # 1 000 t/d (365 000 t/a) at benchmark beside a 365 000 t/a line below baseline and a
    # 36.5 万t/a line below benchmark: a third each (summed raw, t/d + t/a would be nonsense)
    results = [_result("a", "cement/clinker", Status.AT_BENCHMARK, 1_000.0, capacity_unit="t/d"),
               _result("b", "cement/clinker", Status.BELOW_BASELINE, 365_000.0,
                       capacity_unit="t/a"),
               _result("c", "cement/clinker", Status.BELOW_BENCHMARK, 36.5,
                       capacity_unit="万t/a"),
               _result("d", "cement/clinker", Status.AT_BENCHMARK, 3.0,
                       capacity_unit="furnaces")]
    (k,) = area_kpis(results)
    assert k.capacity_unit == "t/a" and k.capacity_total == pytest.approx(1_095_000.0)
    assert k.share_capacity_at_benchmark == pytest.approx(1 / 3)
    assert k.share_capacity_below_baseline == pytest.approx(1 / 3)
    assert k.capacity_not_normalised == ["d/u-d-3 (furnaces)"]


@pytest.mark.parametrize(("value", "unit", "expected"), [
    (1.0, "t/d", (365.0, "t/a")), (2.0, "t/a", (2.0, "t/a")), (1.0, "万t/a", (1e4, "t/a")),
    (1.0, "10^4 t/a", (1e4, "t/a")), (1.0, "kt/a", (1e3, "t/a")), (1.0, "Mt/a", (1e6, "t/a")),
    (2.0, "weight_box/d", (730.0, "weight_box/a")), (1.0, "t/h", (8_760.0, "t/a")),
    (1.0, "t", None), (1.0, "t/week", None),
])
def test_annual_capacity(value: float, unit: str, expected: tuple[float, str] | None) -> None:
    assert annual_capacity(value, unit) == expected


# -- editions and provenance ------------------------------------------------------------------

def test_edition_policy_per_area_or_key() -> None:
    rows = (meter("coal", key="test/editions", kgce=100_000.0, quantity=150.0),
            production(1_000.0, key="test/editions"))
    assert one(*rows).edition == 2024                                # newest with values
    by_area = VerdictSettings(editions={"test": 2021})
    assert one(*rows, rules=by_area).edition == 2021
    by_key = VerdictSettings(editions={"test": 2024, "test/editions": 2021})
    assert one(*rows, rules=by_key).edition == 2021                  # the key beats the area
    assert one(*rows, rules=by_area, edition=2024).edition == 2024   # asked beats the policy
    assert one(*rows, default_edition=2021).edition == 2021           # the server default
    assert one(*rows, rules=VerdictSettings(editions={"test": 2024}),
               default_edition=2021).edition == 2024                 # policy beats default


def test_confidence_and_source_travel_with_the_verdict() -> None:
    entry = CatalogueEntry(key="cement/clinker", edition=2021, industry="Cement",
                           area_zh="水泥", product="clinker", metric="m", unit="kgce/t",
                           benchmark=Decimal(100), baseline=Decimal(117),
                           notes="confidence: medium-high (guide). Lower is better.",
                           source="NDRC 2021 notice")
    catalogue = Catalogue([entry], version="c@1")
    rows = [meter("coal", kgce=100_000.0, quantity=150.0), production(1_000.0)]
    (r,) = judge_units([unit_of(rows[0])], rows, Evidence(days={
        m.meter_id: one_day(m, DAY) for m in rows}), catalogue, DAY, now=LATER)
    assert (r.catalogue_confidence, r.catalogue_source) == ("medium-high", "NDRC 2021 notice")


# -- one status vocabulary ----------------------------------------------------------------------

def test_one_status_vocabulary() -> None:
    assert [s.value for s in Status] == ["at_benchmark", "below_benchmark", "below_baseline",
                                         "not_evaluable", "no_output", "unmapped"]
    assert set(JUDGED) == {Status.AT_BENCHMARK} | set(FLAGGED)
    assert set(STATUS_TEXT) == set(Status)
    assert get_args(StatusValue) == tuple(s.value for s in Status)


# -- review cases: no path to a verdict from insufficient or implausible data -------------------

def test_a_running_month_counts_declared_output_only_up_to_now() -> None:
    # 8 October, midnight: a month record of 31 000 t stands for the 7 days passed (7 000 t),
    # pro-rated, never against the energy of 7 days alone
    now = datetime(2026, 10, 8, tzinfo=SH)
    seven = DeclaredOutput(1, 7_000.0, 1, True, 7 * 86_400.0)     # as the query returns it
    coal = meter("coal", kgce=700_000.0, quantity=1_000.0, readings=96.0 * 7)
    r = one(coal, declared={1: seven}, period=MONTH, now=now,
            days={"coal": [96.0] * 7})
    assert (r.output, r.output_source, r.declared_prorated) == (7_000.0, "declared", True)
    assert r.intensity == pytest.approx(100.0) and r.status == Status.AT_BENCHMARK


def test_a_pro_rated_record_never_outranks_complete_production_meters() -> None:
    # a month: the annual record pro-rated to October says 1 000 t, the complete meters 100 t
    annual = DeclaredOutput(1, 1_000.0, 1, True, 31 * 86_400.0)
    month = {"coal": [96.0] * 31, "output": [96.0] * 31}
    r = one(meter("coal", kgce=20_000.0, quantity=30.0, readings=96.0 * 31),
            production(100.0, readings=96.0 * 31), declared={1: annual}, period=MONTH,
            days=month)
    assert (r.output, r.output_source) == (100.0, "meter")
    assert r.status == Status.BELOW_BASELINE                       # 200 kgce/t
    (w,) = r.warnings
    assert w.code == "output_deviation" and "pro-rated" in w.message


@pytest.mark.parametrize(("rows", "key"), [
    # a kWh/t entry and no electricity meter at all: 0 kWh/t is no verdict
    ([meter("coal", key="test/power", kgce=1_000.0, quantity=2.0),
      production(100.0, key="test/power")], "test/power"),
    # exports above consumption: negative net energy for an entry that assumes consumption
    ([meter("coal", kgce=1_000.0, quantity=2.0),
      meter("steam-out", energy_type="heat", eng_unit="GJ", direction="exported",
            quantity=50.0, kgce=5_000.0),
      production(100.0)], "cement/clinker"),
], ids=["kwh-entry-without-electricity", "negative-net-energy"])
def test_no_or_negative_net_energy_is_not_judged(rows: list[UnitMeterTotals],
                                                 key: str) -> None:
    r = one(*rows)
    assert r.status == Status.NOT_EVALUABLE and codes(r) == ["energy_not_positive"]
    assert r.intensity is None and r.catalogue_key == key


def test_a_net_producer_entry_may_be_negative() -> None:
    # converter steelmaking has negative levels: a negative intensity is judged there
    catalogue = Catalogue([_entry("steel/converter", 2021, "kgce/t", "-30", "-10")],
                          version="c@2")
    rows = [meter("o2", key="steel/converter", kgce=1_000.0, quantity=1.0),
            meter("gas-out", key="steel/converter", energy_type="converter_gas",
                  eng_unit="m3", direction="exported", quantity=1.0, kgce=5_000.0),
            production(100.0, key="steel/converter")]
    (r,) = judge_units([unit_of(rows[0])], rows, Evidence(days={
        m.meter_id: one_day(m, DAY) for m in rows}), catalogue, DAY, now=LATER)
    assert r.status == Status.AT_BENCHMARK and r.intensity == pytest.approx(-40.0)


def test_capacity_unit_choice_does_not_depend_on_hashing() -> None:
    # equal capacity in t/a and m2/a: t/a is kept, the other listed; the same every run
    results = [_result("a", "x/y", Status.AT_BENCHMARK, 1_000.0, capacity_unit="t/a"),
               _result("b", "x/y", Status.BELOW_BASELINE, 1_000.0, capacity_unit="m2/a")]
    (k,) = area_kpis(results)
    assert k.capacity_unit == "t/a" and k.share_capacity_at_benchmark == 1.0
    assert k.capacity_not_normalised == ["b/u-b-1000 (m2/a)"]
    # more capacity in m2/a: m2/a is kept
    results.append(_result("c", "x/y", Status.BELOW_BASELINE, 5.0, capacity_unit="m2/d"))
    assert area_kpis(results)[0].capacity_unit == "m2/a"


def test_chinese_capacity_units() -> None:
    assert annual_capacity(1.0, "万吨/年") == (1e4, "t/a")
    assert annual_capacity(2.0, "吨/日") == (730.0, "t/a")
    assert annual_capacity(1.0, "重量箱/天") == (365.0, "weight_box/a")


def test_a_measured_calorific_value_is_never_backdated() -> None:
    from accounting.conversion import Converter

    valid_from = datetime(2026, 6, 1, tzinfo=SH)
    factors = Converter().meter_factors("coke_oven_gas", "m3", "360622",
                                        [(valid_from, 17_000.0)])
    assert factors.kgce_per_unit(valid_from.timestamp() - 1) is None
    assert factors.kgce_per_unit(valid_from.timestamp()) == pytest.approx(17_000 / 29_307.6)
    # a type with a default: the default before the measured value, the measured one after
    coal = Converter().meter_factors("raw_coal", "t", "360622", [(valid_from, 23_000.0)])
    assert coal.kgce_per_unit(valid_from.timestamp() - 1) == pytest.approx(714.3)
    assert coal.kgce_per_unit(valid_from.timestamp()) == pytest.approx(23_000_000 / 29_307.6)


# -- the property: no verdict from insufficient data ------------------------------------------

@settings(max_examples=int(os.environ.get("ENERGYMON_HYPOTHESIS_EXAMPLES", "200")),
          deadline=None)
@given(
    daily=st.lists(st.lists(st.floats(0, 200), min_size=7, max_size=7), min_size=1,
                   max_size=4),
    output_days=st.lists(st.floats(0, 200), min_size=7, max_size=7),
    estimated=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    output_estimated=st.floats(0, 1),
)
def test_no_verdict_from_insufficient_data(daily: list[list[float]], output_days: list[float],
                                           estimated: list[float],
                                           output_estimated: float) -> None:
    week = Period("week", "custom", datetime(2026, 10, 5, tzinfo=SH),
                  datetime(2026, 10, 12, tzinfo=SH))
    rows = [meter(f"m{i}", kgce=20_000.0, quantity=100.0, estimated=100.0 * estimated[i],
                  readings=sum(days)) for i, days in enumerate(daily)]
    out = dataclasses.replace(production(1_000.0, readings=sum(output_days)),
                              estimated=1_000.0 * output_estimated)
    r = one(*rows, out, period=week,
            days={**{f"m{i}": d for i, d in enumerate(daily)}, "output": output_days})
    complete = [sum(min(n, 96.0) for n in days) / (7 * 96) for days in [*daily, output_days]]
    energy_estimated = sum(estimated[: len(daily)]) / len(daily)
    sufficient = (all(c >= 0.9 for c in complete) and energy_estimated <= 0.1 + 1e-12
                  and output_estimated <= 0.1 + 1e-12)
    if r.status in JUDGED:
        assert sufficient, (complete, energy_estimated, output_estimated)
    elif sufficient:
        # judgeable data that is not judged: only for a reason of the catalogue or the
        # numbers, never a data one
        assert not {x.code for x in r.reasons} & {"meter_incomplete", "energy_estimated",
                                                   "output_estimated"}
    else:
        assert r.status == Status.NOT_EVALUABLE and r.reasons and r.intensity is None
