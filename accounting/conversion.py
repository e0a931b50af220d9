"""Interval quantities to standard coal and CO2, with the factor versions recorded.

- Standard coal: GB/T 2589-2020 coefficients (``benchmarks.factors.EnergyFactors``), the
  meter's engineering unit converted to the coefficient's unit; a plant's declared measured
  calorific value overrides the default from its ``valid_from``. An energy type without a
  default (coke-oven gas, converter gas ...) converts only from its first measured value on;
  before it, :meth:`MeterFactors.kgce_per_unit` is None (never backdated).
- CO2: purchased electricity x the grid factor of the plant's province for the interval's year
  (newest year available <= that year; national factor when the province has none), or the
  plant's own declared factor (``plant_grid_factors``) where it has one; fuels and
  heat x the factor per GJ, the energy content taken from their standard-coal equivalent
  (1 kgce = 29.3076 MJ). Energy-carrying working media (water, compressed air, oxygen ...)
  carry no direct CO2 factor here (0).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

from benchmarks.factors import MJ_PER_KGCE, EmissionFactors, EnergyFactors, convert_quantity

# benchmarks' constant (a Decimal) as a float, for the float arithmetic of the intervals
_MJ_PER_KGCE = float(MJ_PER_KGCE)

# GB/T 2260 province prefix -> province key of the emission-factor table
PROVINCES: dict[str, str] = {
    "11": "beijing", "12": "tianjin", "13": "hebei", "14": "shanxi", "15": "inner_mongolia",
    "21": "liaoning", "22": "jilin", "23": "heilongjiang", "31": "shanghai", "32": "jiangsu",
    "33": "zhejiang", "34": "anhui", "35": "fujian", "36": "jiangxi", "37": "shandong",
    "41": "henan", "42": "hubei", "43": "hunan", "44": "guangdong", "45": "guangxi",
    "46": "hainan", "50": "chongqing", "51": "sichuan", "52": "guizhou", "53": "yunnan",
    "54": "tibet", "61": "shaanxi", "62": "gansu", "63": "qinghai", "64": "ningxia",
    "65": "xinjiang",
}

# energy type (GB/T 2589 table key) -> emission factor key (per GJ). Raw coal is taken as
# bituminous coal, the usual default when the coal rank is not declared.
FUEL_EMISSION_KEYS: dict[str, str] = {
    "raw_coal": "fuel/bituminous_coal", "washed_coal": "fuel/washed_coal",
    "middlings": "fuel/other_washed_coal", "coal_slime": "fuel/other_washed_coal",
    "coal_briquette": "fuel/coal_briquette", "coke": "fuel/coke", "crude_oil": "fuel/crude_oil",
    "fuel_oil": "fuel/fuel_oil", "residual_oil": "fuel/fuel_oil", "gasoline": "fuel/gasoline",
    "kerosene": "fuel/kerosene", "diesel": "fuel/diesel", "lpg": "fuel/lpg",
    "refinery_dry_gas": "fuel/refinery_dry_gas", "natural_gas": "fuel/natural_gas",
    "natural_gas_oilfield": "fuel/natural_gas", "coke_oven_gas": "fuel/coke_oven_gas",
    "blast_furnace_gas": "fuel/blast_furnace_gas", "converter_gas": "fuel/converter_gas",
    "coal_tar": "fuel/coal_tar", "crude_benzene": "fuel/crude_benzene",
    "heat": "heat/purchased", "steam_low_pressure": "heat/purchased",
    "steam_by_pressure_class": "heat/purchased",
}
ELECTRICITY_TYPES = frozenset({"electricity", "electricity_equivalent",
                               "electricity_equal_value"})


def province_key(region_code: str) -> str | None:
    return PROVINCES.get(region_code[:2])


@dataclass(frozen=True)
class MeterFactors:
    """Per-meter conversion: kgce per engineering unit (by validity) and CO2."""

    kgce_steps: tuple[tuple[float, float], ...]  # (valid_from epoch s, kgce per eng unit)
    electricity: bool
    co2_per_gj: float | None          # kgCO2 per GJ for fuels and heat
    grid_region: str | None           # province key for electricity
    grid_overrides: tuple[tuple[int, float], ...] = ()  # plant's own (year, kgCO2/kWh)

    def grid_override(self, year: int) -> float | None:
        """The plant's own factor of the newest year <= ``year``, if it declared one."""
        usable = [(y, v) for y, v in self.grid_overrides if y <= year]
        return max(usable)[1] if usable else None

    def kgce_per_unit(self, ts: float) -> float | None:
        """kgce per engineering unit at ``ts``; None before the first measured value of an
        energy type the table has no default for (nothing may be assumed before it)."""
        idx = bisect_right([s[0] for s in self.kgce_steps], ts) - 1
        return None if idx < 0 else self.kgce_steps[idx][1]


class Converter:
    """Builds :class:`MeterFactors` and evaluates kgce / CO2 for interval quantities."""

    def __init__(self, energy: EnergyFactors | None = None,
                 emissions: EmissionFactors | None = None) -> None:
        self.energy = energy or EnergyFactors.load()
        self.emissions = emissions or EmissionFactors.load()

    @property
    def versions(self) -> tuple[str, str]:
        return self.energy.version, self.emissions.version

    def meter_factors(self, energy_type: str, eng_unit: str, region_code: str,
                      measured: list[tuple[datetime, float]] | None = None,
                      grid_overrides: list[tuple[int, float]] | None = None) -> MeterFactors:
        row = self.energy.get(energy_type)
        per_row_unit = float(convert_quantity(1, eng_unit, row.unit))
        steps: list[tuple[float, float]] = []
        try:
            default = float(self.energy.coefficient(energy_type).kgce_per_unit) * per_row_unit
            steps.append((float("-inf"), default))
        except ValueError:
            if not measured:
                raise
        for valid_from, lhv in sorted(measured or []):
            coef = float(self.energy.coefficient(energy_type, Decimal(str(lhv))).kgce_per_unit)
            steps.append((valid_from.timestamp(), coef * per_row_unit))
        electricity = row.key in ELECTRICITY_TYPES or energy_type in ELECTRICITY_TYPES
        co2_per_gj = None
        if not electricity and energy_type in FUEL_EMISSION_KEYS:
            co2_per_gj = float(self.emissions.fuel_factor(FUEL_EMISSION_KEYS[energy_type]).value)
        return MeterFactors(tuple(steps), electricity, co2_per_gj,
                            province_key(region_code) if electricity else None,
                            tuple(sorted(grid_overrides or ())) if electricity else ())

    @lru_cache(maxsize=512)  # noqa: B019 - a handful of (year, region) pairs per process
    def grid_kgco2_per_kwh(self, year: int, region: str | None) -> float:
        known = region if region in self.emissions.regions() else None
        return float(self.emissions.grid_factor(year, known).value)

    def co2_kg(self, factors: MeterFactors, quantity_eng: float, kgce: float,
               year: int, kwh_per_unit: float) -> float:
        if factors.electricity:
            factor = factors.grid_override(year)
            if factor is None:
                factor = self.grid_kgco2_per_kwh(year, factors.grid_region)
            return quantity_eng * kwh_per_unit * factor
        if factors.co2_per_gj is None:
            return 0.0
        return kgce * _MJ_PER_KGCE / 1000.0 * factors.co2_per_gj
