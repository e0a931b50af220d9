"""The pure verdict step of the accounting (``accounting.judge``): tables of hand-computed cases.

Rules as built (``accounting/judge.py``, DESIGN rules 3-6 and 10): comprehensive energy =
consumed kgce - exported kgce; intensity = energy / output in the catalogue entry's unit
(kgce, kgoe = kgce / 1.4286, or the unit's net kWh); output from production meters with data,
else declared production; completeness = received / expected readings (capped at 1); a unit
without a catalogue entry is ``unmapped``, one without output ``no_output``.
"""

from __future__ import annotations

import dataclasses
import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any, get_args
from zoneinfo import ZoneInfo

import pytest

from accounting.judge import AreaKpi, UnitResult, area_kpis, judge_units
from accounting.periods import Period, parse_period
from accounting.report import STATUS_TEXT
from accounting.rows import UnitMeterTotals
from api.schemas import StatusValue
from benchmarks.catalogue import Catalogue, CatalogueEntry
from benchmarks.evaluate import FLAGGED, JUDGED, Status

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
          factor_sets: tuple[int, int] | None = (1, 1), interval_s: int = 900,
          plant: str = "jx-test-cement") -> UnitMeterTotals:
    """One meter row of a unit (the unit's columns repeat on each of its meter rows)."""
    return UnitMeterTotals(
        unit_id=unit_id, unit_code=unit, plant_code=plant, plant_name="测试水泥",
        region_code="360622", catalogue_key=key, catalogue_edition=pinned,
        product_unit=product_unit, design_capacity=capacity, capacity_unit="t/d",
        meter_id=next(_METER_IDS), meter_code=code, energy_type=energy_type,
        kind=kind, direction=direction, eng_unit=eng_unit, interval_s=interval_s,
        installed_at=installed_at, quantity=quantity, estimated=estimated, kgce=kgce,
        co2_kg=co2_kg, readings=readings,
        factor_set_min=None if factor_sets is None else factor_sets[0],
        factor_set_max=None if factor_sets is None else factor_sets[1])


def production(quantity: float, readings: float = 96.0, **unit: Any) -> UnitMeterTotals:
    return meter("output", kind="production", energy_type="clinker", quantity=quantity,
                 readings=readings, factor_sets=None, **unit)


def judge(*rows: UnitMeterTotals, declared: dict[int, float] | None = None,
          edition: int | None = None, now: datetime = LATER,
          period: Period = DAY) -> list[UnitResult]:
    return judge_units(rows, declared or {}, VERSIONS, CATALOGUE, period, now=now,
                       edition=edition)


def one(*rows: UnitMeterTotals, **kwargs: Any) -> UnitResult:
    (result,) = judge(*rows, **kwargs)
    return result


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


# -- output: production meters, else declared production -----------------------------------

@pytest.mark.parametrize(
    ("rows", "declared", "output", "status"),
    [
        # production meter with data: its quantity, declared records ignored
        ([production(1_000.0)], {1: 5_000.0}, 1_000.0, Status.AT_BENCHMARK),
        # production meter without data in the period: declared production
        ([production(0.0, readings=0.0)], {1: 800.0}, 800.0, Status.BELOW_BASELINE),
        # no production meter at all: declared production
        ([], {1: 800.0}, 800.0, Status.BELOW_BASELINE),
        # a production meter that reported but counted nothing: output 0 (no fallback)
        ([production(0.0, readings=96.0)], {1: 800.0}, 0.0, Status.NO_OUTPUT),
        # neither: no output
        ([production(0.0, readings=0.0)], {}, 0.0, Status.NO_OUTPUT),
        # declared production of another unit does not count
        ([], {2: 800.0}, 0.0, Status.NO_OUTPUT),
    ],
    ids=["meter", "meter-silent-declared", "declared-only", "meter-zero", "nothing",
         "other-unit"],
)
def test_output_source(rows: list[UnitMeterTotals], declared: dict[int, float], output: float,
                       status: Status) -> None:
    # 100 000 kgce: 100 kgce/t at 1 000 t, 125 kgce/t at 800 t
    r = one(meter("coal", kgce=100_000.0, quantity=150.0), *rows, declared=declared)
    assert r.output == output
    assert r.status == status
    if output:
        assert r.intensity == pytest.approx(100_000.0 / output)


def test_no_output_gives_no_intensity_but_keeps_the_entry() -> None:
    r = one(meter("coal", kgce=50_000.0, quantity=80.0, co2_kg=1_000.0),
            production(0.0, readings=0.0))
    assert r.status == Status.NO_OUTPUT
    assert (r.catalogue_key, r.edition, r.intensity_unit) == ("cement/clinker", 2021, "kgce/t")
    assert r.intensity is None and r.benchmark is None and r.saving_potential_tce is None
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


# -- completeness, estimated share, provenance ------------------------------------------------

@pytest.mark.parametrize(
    ("coal", "grid", "now", "completeness"),
    [
        # 96 + 48 received of 2 x 96 expected
        ({}, {"readings": 48.0}, LATER, 0.75),
        # the grid meter was installed at noon: 48 expected from it
        ({}, {"readings": 48.0, "installed_at": datetime(2026, 10, 5, 12, tzinfo=SH)}, LATER,
         1.0),
        # at 06:00 of the day only 24 readings are due per meter: 12 + 12 of 48
        ({"readings": 12.0}, {"readings": 12.0}, datetime(2026, 10, 5, 6, tzinfo=SH), 0.5),
        # more received than expected (duplicates at the edges): capped at 1
        ({"readings": 120.0}, {"readings": 96.0}, LATER, 1.0),
        # hourly grid meter: 24 expected; 96 + 12 of 96 + 24
        ({}, {"readings": 12.0, "interval_s": 3600}, LATER, 0.9),
        # before the period starts nothing is due: 0
        ({"readings": 0.0}, {"readings": 0.0}, datetime(2026, 10, 1, tzinfo=SH), 0.0),
    ],
    ids=["half-a-meter", "installed-at-noon", "now-in-the-day", "capped", "hourly",
         "not-yet"],
)
def test_completeness(coal: dict[str, Any], grid: dict[str, Any], now: datetime,
                      completeness: float) -> None:
    r = one(meter("coal", kgce=100_000.0, quantity=150.0, **coal),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=10.0,
                  kgce=1.229, **grid),
            now=now, declared={1: 1_000.0})   # no production meter: its readings don't count
    assert r.completeness == pytest.approx(completeness)


def test_a_production_meter_counts_towards_completeness() -> None:
    r = one(meter("coal", kgce=100_000.0, quantity=150.0), production(1_000.0, readings=0.0))
    assert r.completeness == pytest.approx(0.5)   # 96 + 0 of 2 x 96
    assert r.output == 1_000.0                    # a quantity without readings is data


def test_estimated_share_of_consumed_energy() -> None:
    # coal: 25 of 100 t estimated -> 250 of 1 000 kgce; grid 3 000 kgce exact; the export's
    # estimate does not count: 250 / 4 000 = 0.0625
    r = one(meter("coal", quantity=100.0, estimated=25.0, kgce=1_000.0),
            meter("grid", energy_type="electricity", eng_unit="kWh", quantity=24_410.0,
                  kgce=3_000.0),
            meter("steam-out", energy_type="heat", eng_unit="GJ", direction="exported",
                  quantity=10.0, estimated=10.0, kgce=500.0),
            production(40.0))
    assert r.estimated_share == pytest.approx(0.0625)
    assert r.energy_kgce == pytest.approx(3_500.0)


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
            completeness: float = 1.0) -> UnitResult:
    return UnitResult(
        plant=plant, plant_name=plant, region="360622", unit=f"u-{plant}-{capacity:g}",
        period=DAY, catalogue_key=key, edition=2021, status=status, intensity=None,
        intensity_unit=None, benchmark=None, baseline=None, gap_to_benchmark_pct=None,
        saving_potential_tce=None, output=1.0, output_unit="t", energy_kgce=1.0,
        electricity_kwh=0.0, co2_kg=0.0, carbon_intensity=None, estimated_share=0.0,
        completeness=completeness, design_capacity=capacity, capacity_unit="t/d",
        catalogue_version="x", factor_versions=())


def test_area_kpis() -> None:
    results = [
        _result("a", "cement/clinker", Status.AT_BENCHMARK, 5_000.0, 1.0),
        _result("b", "cement/clinker", Status.BELOW_BASELINE, 2_500.0, 0.9),
        _result("c", "cement/clinker", Status.NO_OUTPUT, 1_000.0, 0.2),
        _result("d", "cement/clinker", Status.BELOW_BENCHMARK, 2_500.0, 0.5),
        _result("e", None, Status.UNMAPPED, 9_999.0),
        _result("f", "glass/box", Status.NOT_EVALUABLE, 600.0, 0.8),
    ]
    clinker, glass = area_kpis(results)
    # judged capacity 5 000 + 2 500 + 2 500 = 10 000: 50 % at benchmark, 25 % below baseline;
    # completeness (1 + 0.9 + 0.2 + 0.5) / 4
    assert clinker.completeness == pytest.approx(0.65)
    assert dataclasses.replace(clinker, completeness=0.0) == AreaKpi(
        catalogue_key="cement/clinker", units=4, capacity_unit="t/d", capacity_total=11_000.0,
        share_capacity_at_benchmark=0.5, share_capacity_below_baseline=0.25,
        counts={"at_benchmark": 1, "below_baseline": 1, "no_output": 1, "below_benchmark": 1},
        plants_below_benchmark=["b", "d"], completeness=0.0)
    assert all(type(k) is str for k in clinker.counts)
    # nothing judged: shares 0
    assert glass == AreaKpi(
        catalogue_key="glass/box", units=1, capacity_unit="t/d", capacity_total=600.0,
        share_capacity_at_benchmark=0, share_capacity_below_baseline=0,
        counts={"not_evaluable": 1}, plants_below_benchmark=[], completeness=0.8)
    assert area_kpis([]) == []


# -- one status vocabulary ----------------------------------------------------------------------

def test_one_status_vocabulary() -> None:
    assert [s.value for s in Status] == ["at_benchmark", "below_benchmark", "below_baseline",
                                         "not_evaluable", "no_output", "unmapped"]
    assert set(JUDGED) == {Status.AT_BENCHMARK} | set(FLAGGED)
    assert set(STATUS_TEXT) == set(Status)
    assert get_args(StatusValue) == tuple(s.value for s in Status)
