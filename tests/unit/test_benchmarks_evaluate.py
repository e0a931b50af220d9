"""Benchmark evaluation: hand-worked cases, boundaries, negative values, properties."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.catalogue import Catalogue, CatalogueEntry
from benchmarks.evaluate import Status, classify, evaluate, kgce_per_energy_unit
from benchmarks.factors import EnergyFactors, to_kgce

D = Decimal


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


def entry(
    benchmark: str | None,
    baseline: str | None,
    unit: str = "kgce/t",
    lower_is_better: bool = True,
) -> CatalogueEntry:
    return CatalogueEntry(
        key="test/unit",
        edition=2023,
        industry="Test",
        area_zh="测试",
        product="test product",
        metric="unit product comprehensive energy consumption",
        unit=unit,
        benchmark=None if benchmark is None else D(benchmark),
        baseline=None if baseline is None else D(baseline),
        lower_is_better=lower_is_better,
    )


# -- hand-worked cement clinker line ---------------------------------------------------------
#
# 20 000 t clinker in the period; cement/clinker 2021: benchmark 100, baseline 117 kgce/t.
#   coal:        2 000 t raw coal x 1000 kg/t x 0.7143 kgce/kg =  1 428 600 kgce
#   electricity: 1.5 GWh = 1 500 000 kWh x 0.1229 kgce/kWh      =    184 350 kgce
#   total 1 612 950 kgce / 20 000 t = 80.6475 kgce/t  -> at benchmark
#   gap (80.6475 - 100) / 100 x 100 = -19.3525 %; saving 0 tce
#
#   2 600 t coal: 1 857 180 + 184 350 = 2 041 530 kgce / 20 000 t = 102.0765 kgce/t
#   -> below benchmark; gap +2.0765 %; saving (102.0765 - 100) x 20 000 / 1000 = 41.53 tce
#
#   3 000 t coal: 2 142 900 + 184 350 = 2 327 250 kgce / 20 000 t = 116.3625 -> below benchmark
#   3 100 t coal: 2 214 330 + 184 350 = 2 398 680 kgce / 20 000 t = 119.934  -> below baseline
#   gap 19.934 %; saving 19.934 x 20 000 / 1000 = 398.68 tce


@pytest.mark.parametrize(
    ("coal_t", "intensity", "status", "gap_pct", "saving_tce"),
    [
        (2000, "80.6475", Status.AT_BENCHMARK, "-19.3525", "0"),
        (2600, "102.0765", Status.BELOW_BENCHMARK, "2.0765", "41.53"),
        (3000, "116.3625", Status.BELOW_BENCHMARK, "16.3625", "327.25"),
        (3100, "119.934", Status.BELOW_BASELINE, "19.934", "398.68"),
    ],
)
def test_cement_clinker_line_hand_worked(
    catalogue: Catalogue,
    coal_t: int,
    intensity: str,
    status: Status,
    gap_pct: str,
    saving_tce: str,
) -> None:
    clinker_t = D(20_000)
    kgce = to_kgce("raw_coal", coal_t, "t") + to_kgce("electricity_equivalent", D("1.5"), "GWh")
    computed = kgce / clinker_t
    assert computed == D(intensity)

    verdict = evaluate(catalogue.resolve("cement/clinker"), computed, clinker_t)
    assert (verdict.key, verdict.edition, verdict.unit) == ("cement/clinker", 2021, "kgce/t")
    assert verdict.status is status
    assert verdict.gap_to_benchmark_pct == D(gap_pct)
    assert verdict.saving_potential_tce == D(saving_tce)
    assert (verdict.benchmark, verdict.baseline) == (D(100), D(117))
    assert verdict.factors_version is not None and "GB/T 2589-2020" in verdict.factors_version


# -- boundaries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("intensity", "status"),
    [
        ("99.999", Status.AT_BENCHMARK),
        ("100", Status.AT_BENCHMARK),  # exactly at benchmark: at benchmark
        ("100.000", Status.AT_BENCHMARK),
        ("100.001", Status.BELOW_BENCHMARK),
        ("116.999", Status.BELOW_BENCHMARK),
        ("117", Status.BELOW_BENCHMARK),  # exactly at baseline: still (only) below benchmark
        ("117.001", Status.BELOW_BASELINE),
        ("0", Status.AT_BENCHMARK),
    ],
)
def test_boundaries_lower_is_better(intensity: str, status: Status) -> None:
    assert evaluate(entry("100", "117"), D(intensity), 1).status is status


@pytest.mark.parametrize(
    ("intensity", "status", "gap_pct", "saving_tce"),
    [
        # converter steelmaking: benchmark -30, baseline -10 kgce/t; 1 000 t steel
        ("-35", Status.AT_BENCHMARK, "-16.66666666666666666666666667", "0"),
        ("-30", Status.AT_BENCHMARK, "0", "0"),
        # -24 is 6 kgce/t worse than -30: gap 6/|-30| = +20 %, saving 6 x 1000 / 1000 = 6 tce
        ("-24", Status.BELOW_BENCHMARK, "20", "6"),
        ("-10", Status.BELOW_BENCHMARK, "66.66666666666666666666666667", "20"),
        ("-5", Status.BELOW_BASELINE, "83.33333333333333333333333333", "25"),
        ("3", Status.BELOW_BASELINE, "110", "33"),
    ],
)
def test_converter_steelmaking_negative_values(
    catalogue: Catalogue, intensity: str, status: Status, gap_pct: str, saving_tce: str
) -> None:
    verdict = evaluate(catalogue.resolve("steel/converter"), D(intensity), 1000)
    assert verdict.edition == 2023
    assert verdict.status is status
    assert verdict.gap_to_benchmark_pct == D(gap_pct)
    assert verdict.saving_potential_tce == D(saving_tce)


@pytest.mark.parametrize(
    ("intensity", "status", "gap_pct"),
    [
        ("130", Status.AT_BENCHMARK, "-30"),
        ("100", Status.AT_BENCHMARK, "0"),
        ("90", Status.BELOW_BENCHMARK, "10"),
        ("80", Status.BELOW_BENCHMARK, "20"),
        ("79.9", Status.BELOW_BASELINE, "20.1"),
    ],
)
def test_higher_is_better_is_mirrored(intensity: str, status: Status, gap_pct: str) -> None:
    verdict = evaluate(entry("100", "80", lower_is_better=False), D(intensity), 10)
    assert verdict.status is status
    assert verdict.gap_to_benchmark_pct == D(gap_pct)


# -- units: saving potential in tce ------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "intensity", "output", "saving_tce"),
    [
        # electrolytic aluminium: (13 100 - 13 000) kWh/t x 1 000 t x 0.1229 kgce/kWh / 1000
        ("aluminium/electrolysis", "13100", "1000", "12.29"),
        # ethylene: (600 - 590) kgoe/t x 500 000 t x 1.4286 kgce/kgoe / 1000
        ("petrochem/ethylene", "600", "500000", "7143"),
        # float glass > 800 t/d: (9 - 8) kgce/weight-box x 2 000 000 boxes / 1000
        ("flat_glass/float_gt800", "9", "2000000", "2000"),
        # ceramic tiles <= 0.5 %: (4.5 - 4) kgce/m2 x 10 000 000 m2 / 1000
        ("ceramics/tiles_absorption_le_0_5", "4.5", "10000000", "5000"),
        # refinery: (8 - 7.5) kgoe/(t·energy factor) x 10 000 000 t·EF x 1.4286 / 1000
        ("refining/whole_refinery", "8", "10000000", "7143"),
    ],
)
def test_saving_potential_converts_each_unit_to_tce(
    catalogue: Catalogue, key: str, intensity: str, output: str, saving_tce: str
) -> None:
    verdict = evaluate(catalogue.resolve(key), D(intensity), D(output))
    assert verdict.saving_potential_tce == D(saving_tce)


@pytest.mark.parametrize(
    ("unit", "kgce"),
    [
        ("kgce/t", "1"),
        ("kgce/weight-box", "1"),
        ("kgce/m2", "1"),
        ("kWh/t", "0.1229"),
        ("kgoe/t", "1.4286"),
        ("kgoe/(t·energy factor)", "1.4286"),
    ],
)
def test_kgce_per_energy_unit(unit: str, kgce: str) -> None:
    assert kgce_per_energy_unit(unit) == D(kgce)


@pytest.mark.parametrize("unit", ["MJ/t", "tce/t", "kgce", ""])
def test_unknown_unit_raises(unit: str) -> None:
    with pytest.raises(ValueError, match="unit"):
        kgce_per_energy_unit(unit)


def test_kwh_coefficient_comes_from_the_given_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarks import _csvdata

    data, _ = _csvdata.package_bytes("energy_conversion.csv")
    changed = data.decode("utf-8").replace(",kWh,0.1229,", ",kWh,0.2000,")
    path = tmp_path / "energy_conversion.csv"
    path.write_text(changed, encoding="utf-8")
    factors = EnergyFactors.from_path(path)
    verdict = evaluate(entry("100", "200", unit="kWh/t"), 110, 1000, factors=factors)
    assert verdict.saving_potential_tce == D("2")  # 10 x 1000 x 0.2 / 1000
    assert verdict.factors_version == factors.version


# -- not evaluable, zero benchmark, inputs ----------------------------------------------------


@pytest.mark.parametrize(
    ("key", "edition"),
    [
        ("cement/clinker", 2023),
        ("steel/sintering", None),
        ("urea/urea", None),
        ("textiles/woven_fabric", None),  # no unit either
    ],
)
def test_blank_rows_give_not_evaluable(catalogue: Catalogue, key: str, edition: int | None) -> None:
    verdict = evaluate(catalogue.resolve(key, edition), D("123.4"), 1000)
    assert verdict.status is Status.NOT_EVALUABLE
    assert verdict.benchmark is None and verdict.baseline is None
    assert verdict.gap_to_benchmark_pct is None and verdict.saving_potential_tce is None
    assert verdict.intensity == D("123.4")


def test_zero_benchmark_has_no_relative_gap() -> None:
    verdict = evaluate(entry("0", "10"), 4, 100)
    assert verdict.status is Status.BELOW_BENCHMARK
    assert verdict.gap_to_benchmark_pct is None
    assert verdict.saving_potential_tce == D("0.4")


def test_float_inputs_are_taken_at_their_decimal_repr() -> None:
    verdict = evaluate(entry("100", "117"), 100.1, 0.5)
    assert verdict.intensity == D("100.1")
    assert verdict.output == D("0.5")
    assert verdict.saving_potential_tce == D("0.00005")


@pytest.mark.parametrize(
    ("intensity", "output", "error"),
    [
        (float("nan"), 1, ValueError),
        (float("inf"), 1, ValueError),
        (D("NaN"), 1, ValueError),
        (100, -1, ValueError),
        ("100", 1, TypeError),
        (True, 1, TypeError),
    ],
)
def test_bad_inputs_are_rejected(intensity: object, output: object, error: type) -> None:
    with pytest.raises(error):
        evaluate(entry("100", "117"), intensity, output)  # type: ignore[arg-type]


# -- properties ------------------------------------------------------------------------------

_values = st.decimals(min_value=-1000, max_value=20000, places=3, allow_nan=False)
_RANK = {Status.AT_BENCHMARK: 0, Status.BELOW_BENCHMARK: 1, Status.BELOW_BASELINE: 2}


@given(a=_values, b=_values, x=_values, y=_values)
def test_status_is_monotonic_in_intensity(a: D, b: D, x: D, y: D) -> None:
    benchmark, baseline = min(a, b), max(a, b)
    low, high = min(x, y), max(x, y)
    assert _RANK[classify(low, benchmark, baseline)] <= _RANK[classify(high, benchmark, baseline)]


@given(a=_values, b=_values, x=_values)
def test_higher_is_better_mirrors_lower_is_better_on_negated_values(a: D, b: D, x: D) -> None:
    benchmark, baseline = min(a, b), max(a, b)
    assert classify(x, benchmark, baseline) is classify(-x, -benchmark, -baseline, False)


@given(
    a=_values,
    b=_values,
    x=_values,
    output=st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False),
)
def test_saving_is_zero_exactly_at_benchmark_and_positive_otherwise(
    a: D, b: D, x: D, output: D
) -> None:
    benchmark, baseline = min(a, b), max(a, b)
    verdict = evaluate(entry(str(benchmark), str(baseline)), x, output)
    assert verdict.saving_potential_tce is not None and verdict.saving_potential_tce >= 0
    if verdict.status is Status.AT_BENCHMARK or output == 0:
        assert verdict.saving_potential_tce == 0
    else:
        assert verdict.saving_potential_tce == (x - benchmark) * output / 1000
    if benchmark != 0:
        gap = verdict.gap_to_benchmark_pct
        assert gap is not None
        assert (gap > 0) == (x > benchmark)
