"""Standard-coal coefficients (GB/T 2589-2020) and CO2 emission factors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks import _csvdata
from benchmarks.factors import (
    KJ_PER_KGCE,
    EmissionFactors,
    EnergyFactors,
    MeasuredValueRequired,
    UnknownFactorError,
    co2_kg,
    co2_kg_electricity,
    co2_kg_fuel,
    convert_quantity,
    kgce_to_gj,
    to_kgce,
)

D = Decimal


@pytest.fixture(scope="module")
def factors() -> EnergyFactors:
    return EnergyFactors.load()


@pytest.fixture(scope="module")
def emissions() -> EmissionFactors:
    return EmissionFactors.load()


# -- standard coal ---------------------------------------------------------------------------


def test_energy_table_version_names_the_standard_and_hash(factors: EnergyFactors) -> None:
    assert factors.version.startswith("GB/T 2589-2020 (energy_conversion.csv sha256:")
    assert len(factors.keys()) == 46


@pytest.mark.parametrize(
    ("key", "unit", "kgce_per_unit"),
    [
        ("raw_coal", "kg", "0.7143"),
        ("washed_coal", "kg", "0.9000"),
        ("coke", "kg", "0.9714"),
        ("crude_oil", "kg", "1.4286"),
        ("diesel", "kg", "1.4571"),
        ("gasoline", "kg", "1.4714"),
        ("lpg", "kg", "1.7143"),
        ("natural_gas", "m3", "1.2143"),
        ("natural_gas_oilfield", "m3", "1.3300"),
        ("blast_furnace_gas", "m3", "0.1286"),
        ("heat", "MJ", "0.03412"),
        ("steam_low_pressure", "kg", "0.1286"),
        ("electricity_equivalent", "kWh", "0.1229"),
        ("fresh_water", "t", "0.2571"),
        ("oxygen", "m3", "0.4000"),
    ],
)
def test_default_coefficients(
    factors: EnergyFactors, key: str, unit: str, kgce_per_unit: str
) -> None:
    c = factors.coefficient(key)
    assert (c.unit, c.kgce_per_unit, c.basis) == (unit, D(kgce_per_unit), "default")
    assert c.version == factors.version


@pytest.mark.parametrize(
    ("key", "quantity", "unit", "kgce"),
    [
        ("raw_coal", 2000, "t", "1428600"),  # 2 000 000 kg x 0.7143
        ("raw_coal", 1, "kg", "0.7143"),
        ("electricity_equivalent", D("1.5"), "GWh", "184350"),  # 1 500 000 kWh x 0.1229
        ("electricity_equivalent", 10, "MWh", "1229"),
        ("electricity_equivalent", 1000, "kWh", "122.9"),
        ("natural_gas", 10000, "m3", "12143"),
        ("diesel", D("2.5"), "t", "3642.75"),  # 2 500 kg x 1.4571
        ("heat", 1, "GJ", "34.12"),  # 1 000 MJ x 0.03412
        ("fresh_water", 1000, "kg", "0.2571"),  # 1 t x 0.2571 kgce/t
    ],
)
def test_to_kgce_with_unit_scaling(key: str, quantity: object, unit: str, kgce: str) -> None:
    assert to_kgce(key, quantity, unit) == D(kgce)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "quantity", "unit", "lhv", "kgce"),
    [
        # coal with measured LHV 23 000 kJ/kg: 1 000 kg x 23 000 / 29 307.6
        ("raw_coal", 1, "t", 23000, D(23_000_000) / KJ_PER_KGCE),
        # exactly 29 307.6 kJ/kg -> 1 kgce per kg
        ("raw_coal", 5, "kg", D("29307.6"), D(5)),
        # coke-oven gas has a range only; declared 17 500 kJ/m3
        ("coke_oven_gas", 1000, "m3", 17500, D(17_500_000) / KJ_PER_KGCE),
        # natural gas supplier LHV 35 588 kJ/m3 overrides 1.2143
        ("natural_gas", 100, "m3", 35588, D(3_558_800) / KJ_PER_KGCE),
        # equal-value electricity: plant declares 300 gce/kWh = 8 792.28 kJ/kWh
        ("electricity_equal_value", 1000, "kWh", D("8792.28"), D(300)),
    ],
)
def test_measured_calorific_value_overrides_the_default(
    key: str, quantity: int, unit: str, lhv: object, kgce: Decimal
) -> None:
    assert to_kgce(key, quantity, unit, measured_lhv_kj_per_unit=lhv) == kgce  # type: ignore[arg-type]
    c = EnergyFactors.load().coefficient(key, lhv)  # type: ignore[arg-type]
    assert c.basis == "measured" and c.measured_lhv_kj_per_unit == D(str(lhv))


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("coal_slime", "range 0.2857-0.4286"),
        ("coal_mine_methane", "range 0.5000-0.5714"),
        ("coke_oven_gas", "range 0.5714-0.6143"),
        ("converter_gas", "no coefficient is confirmed"),
        ("coal_briquette", "no coefficient is confirmed"),
        ("coal_gangue", "no coefficient is confirmed"),
        ("steam_by_pressure_class", "no coefficient is confirmed"),
        ("electricity_equal_value", "no coefficient is confirmed"),
    ],
)
def test_rows_without_a_single_coefficient_require_a_declared_value(
    factors: EnergyFactors, key: str, hint: str
) -> None:
    assert factors.get(key).requires_measured_value
    with pytest.raises(MeasuredValueRequired, match="must declare") as info:
        factors.to_kgce(key, 1, factors.get(key).unit)
    assert hint in str(info.value)


@pytest.mark.parametrize("key", ["electricity_equivalent", "heat"])
def test_definitional_coefficients_reject_a_measured_value(
    factors: EnergyFactors, key: str
) -> None:
    with pytest.raises(ValueError, match="by definition"):
        factors.coefficient(key, 3700)


@pytest.mark.parametrize(
    ("key", "quantity", "unit", "lhv", "error", "match"),
    [
        ("no_such_fuel", 1, "kg", None, UnknownFactorError, "known: raw_coal"),
        ("raw_coal", 1, "m3", None, ValueError, "different dimensions"),
        ("raw_coal", 1, "lb", None, ValueError, "unknown quantity unit 'lb'"),
        ("raw_coal", 1, "kg", 0, ValueError, "must be > 0"),
        ("raw_coal", 1, "kg", -5, ValueError, "must be > 0"),
        ("raw_coal", float("nan"), "kg", None, ValueError, "finite"),
    ],
)
def test_to_kgce_errors(
    key: str, quantity: object, unit: str, lhv: object, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        to_kgce(key, quantity, unit, lhv)  # type: ignore[arg-type]


def test_kgce_to_gj() -> None:
    assert kgce_to_gj(1000) == D("29.3076")


@given(
    q=st.decimals(min_value=0, max_value=10**9, places=3, allow_nan=False),
    key=st.sampled_from(["raw_coal", "coke", "diesel", "lpg", "crude_oil"]),
)
def test_tonnes_and_kilograms_agree(q: Decimal, key: str) -> None:
    assert to_kgce(key, q, "t") == to_kgce(key, q * 1000, "kg")


@given(
    q=st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False),
    lhv=st.decimals(min_value=1000, max_value=60000, places=1, allow_nan=False),
)
def test_measured_conversion_is_linear(q: Decimal, lhv: Decimal) -> None:
    assert to_kgce("raw_coal", q, "kg", lhv) == q * (lhv / KJ_PER_KGCE)


def test_convert_quantity() -> None:
    assert convert_quantity(3, "GWh", "kWh") == D(3_000_000)
    assert convert_quantity(500, "kg", "t") == D("0.5")


# -- energy table validation -----------------------------------------------------------------


def _energy_copy(tmp_path: Path, old: str, new: str) -> Path:
    data, _ = _csvdata.package_bytes("energy_conversion.csv")
    text = data.decode("utf-8")
    assert old in text, old
    path = tmp_path / "energy_conversion.csv"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        (
            "raw_coal,raw coal,原煤,kg,0.7143",
            "raw_coal,raw coal,原煤,kg,0.71x3",
            2,
            "kgce_per_unit",
            "not a number",
        ),
        ("raw_coal,raw coal,原煤,kg,", "raw_coal,raw coal,原煤,lb,", 2, "unit", "unknown unit"),
        ("coal_slime,", "raw_coal,", 5, "key", "duplicate key"),
        (",0.2857,0.4286,", ",0.4286,0.2857,", 5, "range_low", "> range_high"),
        (",0.2857,0.4286,", ",0.2857,,", 5, "range_high", "both ends"),
        (
            "raw_coal,raw coal,原煤,kg,0.7143",
            "raw_coal,raw coal,原煤,kg,-1",
            2,
            "kgce_per_unit",
            "must be > 0",
        ),
        ("washed_coal,", "Washed Coal,", 3, "key", "not an ascii key"),
    ],
)
def test_corrupted_energy_table_names_file_line_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    path = _energy_copy(tmp_path, old, new)
    with pytest.raises(ValueError) as info:
        EnergyFactors.from_path(path)
    text = str(info.value)
    assert str(path) in text and f"line {line}," in text and f"field {field!r}" in text
    assert message in text


# -- emission factors ------------------------------------------------------------------------


def test_emission_table_loads(emissions: EmissionFactors) -> None:
    assert emissions.version.startswith("emission_factors.csv sha256:")
    regions = emissions.regions()
    assert {"national", "national_reporting", "north_china", "shandong", "beijing"} <= set(regions)
    assert len(regions) == 39


@pytest.mark.parametrize(
    ("year", "region", "key", "used_year", "value"),
    [
        (2021, None, "grid/national", 2021, "0.5568"),
        (2022, None, "grid/national", 2022, "0.5366"),
        (2023, None, "grid/national", 2022, "0.5366"),  # 2023 blank -> newest year <= 2023
        (2030, "national", "grid/national", 2022, "0.5366"),
        (2023, "national_reporting", "grid/national_reporting", 2022, "0.5703"),  # tCO2/MWh
        (2021, "north_china", "grid/north_china", 2021, "0.7120"),
        (2024, "North China", "grid/north_china", 2022, "0.6776"),
        (2022, "shandong", "grid/shandong", 2022, "0.6410"),
        (2023, "grid/yunnan", "grid/yunnan", 2022, "0.1073"),
        (2021, "inner-mongolia", "grid/inner_mongolia", 2021, "0.7025"),
    ],
)
def test_grid_factor_by_region_and_year(
    emissions: EmissionFactors,
    year: int,
    region: str | None,
    key: str,
    used_year: int,
    value: str,
) -> None:
    f = emissions.grid_factor(year, region)
    assert (f.key, f.year, f.value, f.unit) == (key, used_year, D(value), "kgCO2/kWh")
    assert f.requested_year == year and f.basis == "table" and not f.fallback


def test_grid_factor_errors(emissions: EmissionFactors) -> None:
    with pytest.raises(UnknownFactorError, match="unknown grid region 'shangdong'.*shandong"):
        emissions.grid_factor(2022, "shangdong")
    with pytest.raises(LookupError, match=r"in or before 2020.*\[2021, 2022\]"):
        emissions.grid_factor(2020, "shandong")


def test_grid_factor_falls_back_to_national_when_the_region_has_no_year(tmp_path: Path) -> None:
    data, _ = _csvdata.package_bytes("emission_factors.csv")
    lines = data.decode("utf-8").splitlines(keepends=True)
    kept = [ln for ln in lines if not (ln.startswith("grid/beijing,") and ",2022," in ln)]
    kept = [
        ln.replace(",0.5688,2021,", ",0.5688,2023,") if ln.startswith("grid/beijing,") else ln
        for ln in kept
    ]
    path = tmp_path / "ef.csv"
    path.write_text("".join(kept), encoding="utf-8")
    f = EmissionFactors.from_path(path).grid_factor(2022, "beijing")
    assert (f.key, f.requested_key, f.year, f.value, f.fallback) == (
        "grid/national",
        "grid/beijing",
        2022,
        D("0.5366"),
        True,
    )


def test_plant_declared_factors_override(emissions: EmissionFactors) -> None:
    g = emissions.grid_factor(2023, "east_china", override_kgco2_per_kwh=D("0.3"))
    assert (g.value, g.basis, g.key) == (D("0.3"), "plant_declared", "grid/east_china")
    f = emissions.fuel_factor("fuel/natural_gas", override_kgco2_per_gj=50)
    assert (f.value, f.basis) == (D(50), "plant_declared")
    with pytest.raises(ValueError, match=">= 0"):
        emissions.fuel_factor("fuel/coke", override_kgco2_per_gj=-1)


@pytest.mark.parametrize(
    ("key", "kgco2_per_gj"),
    [
        ("fuel/natural_gas", "55.54"),  # 0.05554 tCO2/GJ
        ("fuel/bituminous_coal", "89.27"),
        ("fuel/coke", "100.25"),
        ("heat/purchased", "110"),
        ("ipcc2006/natural_gas", "56.1"),  # 56 100 kgCO2/TJ
        ("ipcc2006/lignite", "101"),
    ],
)
def test_fuel_factors_normalised_to_kg_per_gj(
    emissions: EmissionFactors, key: str, kgco2_per_gj: str
) -> None:
    f = emissions.fuel_factor(key)
    assert (f.value, f.unit) == (D(kgco2_per_gj), "kgCO2/GJ")


def test_fuel_factor_rejects_unknown_and_grid_keys(emissions: EmissionFactors) -> None:
    with pytest.raises(UnknownFactorError, match="known: grid/national_reporting"):
        emissions.fuel_factor("fuel/unobtainium")
    with pytest.raises(ValueError, match="grid_factor"):
        emissions.fuel_factor("grid/national")


def test_co2_helpers_hand_worked() -> None:
    # 1 000 000 kWh in Shandong, 2023 -> 2022 factor 0.6410 kgCO2/kWh = 641 000 kgCO2
    kg, factor = co2_kg_electricity(1_000_000, 2023, "shandong")
    assert kg == D("641000") and factor.year == 2022
    # 10 000 m3 natural gas: 12 143 kgce x 29.3076 MJ/kgce = 355.8821868 GJ x 55.54 kgCO2/GJ
    gj = kgce_to_gj(to_kgce("natural_gas", 10_000, "m3"))
    assert gj == D("355.8821868")
    kg, factor = co2_kg_fuel("fuel/natural_gas", gj)
    assert kg == D("355.8821868") * D("55.54")
    assert co2_kg(gj, factor) == kg


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        (",kgCO2/kWh,0.5568,2021,", ",kgCO2/kWh,0.55x8,2021,", "factor", "not a number"),
        (",kgCO2/kWh,0.5568,2021,", ",kgCO2/kWh,0.5568,21,", "year", "not a year"),
        (",kgCO2/kWh,0.5568,2021,", ",kgCO2/kWh,0.5568,2022,", "key", "duplicate key"),
        (",kgCO2/kWh,0.5568,2021,", ",gCO2/kWh,0.5568,2021,", "unit", "unknown unit"),
        (",kgCO2/kWh,0.5568,2021,", ",tCO2/GJ,0.5568,2021,", "unit", "does not fit"),
        ("grid/national,scope2", "grid/national,scope9", "scope", "not scope1/2"),
    ],
)
def test_corrupted_emission_table_names_file_line_field(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    data, _ = _csvdata.package_bytes("emission_factors.csv")
    text = data.decode("utf-8")
    assert old in text
    path = tmp_path / "ef.csv"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ValueError) as info:
        EmissionFactors.from_path(path)
    msg = str(info.value)
    assert str(path) in msg and f"field {field!r}" in msg and message in msg
    assert "line " in msg
