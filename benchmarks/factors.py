"""Standard-coal coefficients (GB/T 2589-2020) and CO2 emission factors, as versioned data.

Standard coal
-------------
Data: ``benchmarks/data/energy_conversion.csv`` (copy of the shared reference, every original
column kept, plus a leading ``key`` column). 1 kgce = 29 307.6 kJ low calorific value (LHV);
a coefficient is kgce per unit of the energy carrier (kgce/kg, kgce/m3, kgce/kWh, kgce/MJ,
kgce/t for water). Energy-type keys are stable ascii names of the rows, e.g. ``raw_coal``,
``natural_gas`` (the GB/T 2589 gas-field row, 气田天然气, 1.2143 kgce/m3; the oilfield row is
``natural_gas_oilfield``), ``diesel``, ``steam_low_pressure``, ``electricity_equivalent``
(当量值, 0.1229 kgce/kWh, the default for electricity) and ``electricity_equal_value`` (等价值,
no fixed coefficient). See :meth:`EnergyFactors.keys` for all of them.

Rows with no single coefficient (range only, or not confirmed: ``coal_slime``,
``coal_mine_methane``, ``coke_oven_gas``, ``converter_gas``, ``coal_briquette``,
``coal_gangue``, ``steam_by_pressure_class``, ``electricity_equal_value``) are NOT given a
midpoint: the plant must declare a measured value, otherwise :class:`MeasuredValueRequired`
is raised. A declared measured low calorific value (kJ per the row's unit) always overrides the
default: kgce = quantity x LHV / 29 307.6.

Emission factors
----------------
Data: ``benchmarks/data/emission_factors.csv`` (copy with a leading ``key`` column):
``grid/<region>`` purchased-electricity factors by year (``grid/national`` = national average
electricity factor, ``grid/national_reporting`` = the MEE enterprise-reporting default,
``grid/north_china`` ... regional grids, ``grid/shandong`` ... provinces), ``heat/purchased``,
``fuel/<fuel>`` (Chinese guideline defaults per GJ) and ``ipcc2006/<fuel>`` (IPCC defaults).
Factors are normalised to kgCO2/kWh (grid) and kgCO2/GJ (fuels, heat); tCO2/MWh equals
kgCO2/kWh numerically. A plant-declared factor overrides the table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from os import PathLike
from typing import Literal

from benchmarks import _csvdata
from benchmarks._csvdata import DataFileError
from benchmarks._units import as_decimal

STANDARD = "GB/T 2589-2020"
ENERGY_FILE = "energy_conversion.csv"
EMISSION_FILE = "emission_factors.csv"
#: low calorific value of 1 kgce (7000 kcal), kJ
KJ_PER_KGCE = Decimal("29307.6")
#: MJ per kgce (for energy in GJ = kgce x 29.3076 / 1000)
MJ_PER_KGCE = Decimal("29.3076")

ENERGY_COLUMNS = (
    "key",
    "energy_type",
    "name_zh",
    "unit",
    "kgce_per_unit",
    "range_low",
    "range_high",
    "notes",
    "source",
)
EMISSION_COLUMNS = ("key", "scope", "item", "unit", "factor", "year", "source", "notes")

_ENERGY_KEY = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_EMISSION_KEY = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*/[a-z0-9]+(?:_[a-z0-9]+)*$")

# quantity units accepted by to_kgce, as (dimension base unit, multiplier to the base unit)
_QUANTITY_UNITS: dict[str, tuple[str, Decimal]] = {
    "kg": ("kg", Decimal(1)),
    "t": ("kg", Decimal(1000)),
    "m3": ("m3", Decimal(1)),
    "kWh": ("kWh", Decimal(1)),
    "MWh": ("kWh", Decimal(1000)),
    "GWh": ("kWh", Decimal(1_000_000)),
    "MJ": ("MJ", Decimal(1)),
    "GJ": ("MJ", Decimal(1000)),
}
# rows whose coefficient is a definition, not an average of a fuel: no measured override
_DEFINITIONAL = frozenset({"electricity_equivalent", "heat"})

# emission units -> (normalised unit, multiplier)
_EMISSION_UNITS: dict[str, tuple[str, Decimal]] = {
    "kgCO2/kWh": ("kgCO2/kWh", Decimal(1)),
    "tCO2/MWh": ("kgCO2/kWh", Decimal(1)),
    "tCO2/GJ": ("kgCO2/GJ", Decimal(1000)),
    "kgCO2/GJ": ("kgCO2/GJ", Decimal(1)),
    "kgCO2/TJ": ("kgCO2/GJ", Decimal("0.001")),
}
GRID_PREFIX = "grid/"
NATIONAL_GRID = "grid/national"


class UnknownFactorError(KeyError):
    """An energy type, emission factor key or grid region that the table does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class MeasuredValueRequired(ValueError):
    """The table has no single coefficient for this energy type; declare a measured value."""


# =========================================================================================
# standard coal
# =========================================================================================


@dataclass(frozen=True, slots=True)
class EnergyType:
    """One row of the GB/T 2589-2020 table: a coefficient in kgce per ``unit``, or none."""

    key: str
    name: str
    name_zh: str
    unit: str
    kgce_per_unit: Decimal | None
    range_low: Decimal | None
    range_high: Decimal | None
    notes: str
    source: str

    @property
    def requires_measured_value(self) -> bool:
        """True when the table gives no single coefficient (range only or not confirmed)."""
        return self.kgce_per_unit is None


@dataclass(frozen=True, slots=True)
class Coefficient:
    """The coefficient actually used: kgce per ``unit`` and whether it was measured."""

    energy_type: str
    unit: str
    kgce_per_unit: Decimal
    basis: Literal["default", "measured"]
    measured_lhv_kj_per_unit: Decimal | None
    version: str


# Names a fleet file may use for a table key. Electricity counts at the equivalent value
# (当量值, 0.1229 kgce/kWh) unless a rule says otherwise (DESIGN.md, domain rule 2).
ALIASES: dict[str, str] = {"electricity": "electricity_equivalent"}


class EnergyFactors:
    """The standard-coal coefficient table; ``version`` names the standard and the data hash."""

    def __init__(self, types: Iterable[EnergyType], *, version: str) -> None:
        self._types = {t.key: t for t in types}
        self.version = version

    @classmethod
    def load(cls) -> EnergyFactors:
        """The table shipped as package data (``benchmarks/data/energy_conversion.csv``)."""
        return cls.from_bytes(*_csvdata.package_bytes(ENERGY_FILE))

    @classmethod
    def from_path(cls, path: str | PathLike[str]) -> EnergyFactors:
        """A table from a CSV file with the package file's columns."""
        return cls.from_bytes(*_csvdata.path_bytes(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> EnergyFactors:
        """Parse and validate CSV bytes; ``source`` names the file in error messages."""
        table = _csvdata.read_table(data, source, ENERGY_COLUMNS)
        types: dict[str, EnergyType] = {}
        lines: dict[str, int] = {}
        for row in table.rows:
            key = row["key"]
            if not _ENERGY_KEY.match(key):
                raise DataFileError(source, row.line, "key", f"{key!r} is not an ascii key")
            if key in types:
                raise DataFileError(
                    source, row.line, "key", f"duplicate key {key!r} (first on line {lines[key]})"
                )
            unit = row["unit"]
            if unit not in _QUANTITY_UNITS:
                raise DataFileError(
                    source,
                    row.line,
                    "unit",
                    f"unknown unit {unit!r}; known: {list(_QUANTITY_UNITS)}",
                )
            coefficient = _csvdata.parse_decimal(row, "kgce_per_unit", source)
            low = _csvdata.parse_decimal(row, "range_low", source)
            high = _csvdata.parse_decimal(row, "range_high", source)
            for field, value in (
                ("kgce_per_unit", coefficient),
                ("range_low", low),
                ("range_high", high),
            ):
                if value is not None and value <= 0:
                    raise DataFileError(source, row.line, field, f"must be > 0, got {value}")
            if (low is None) != (high is None):
                field = "range_high" if high is None else "range_low"
                raise DataFileError(
                    source, row.line, field, "give both ends of the range or neither"
                )
            if low is not None and high is not None:
                if low > high:
                    raise DataFileError(source, row.line, "range_low", f"{low} > range_high {high}")
                if coefficient is not None and not low <= coefficient <= high:
                    raise DataFileError(
                        source, row.line, "kgce_per_unit", f"{coefficient} outside [{low}, {high}]"
                    )
            lines[key] = row.line
            types[key] = EnergyType(
                key=key,
                name=row["energy_type"],
                name_zh=row["name_zh"],
                unit=unit,
                kgce_per_unit=coefficient,
                range_low=low,
                range_high=high,
                notes=row["notes"],
                source=row["source"],
            )
        name = source.rsplit("/", 1)[-1]
        return cls(types.values(), version=f"{STANDARD} ({name} {table.short_hash})")

    def keys(self) -> list[str]:
        """All energy-type keys in table order."""
        return list(self._types)

    def has(self, energy_type: str) -> bool:
        """Whether ``energy_type`` (a key or an alias in :data:`ALIASES`) is in the table."""
        return ALIASES.get(energy_type, energy_type) in self._types

    def get(self, energy_type: str) -> EnergyType:
        """The row for ``energy_type`` (key or alias); :class:`UnknownFactorError` lists the
        known keys."""
        try:
            return self._types[ALIASES.get(energy_type, energy_type)]
        except KeyError:
            raise UnknownFactorError(
                f"unknown energy type {energy_type!r}; known: {', '.join(self._types)}"
            ) from None

    def coefficient(
        self, energy_type: str, measured_lhv_kj_per_unit: Decimal | float | int | None = None
    ) -> Coefficient:
        """kgce per unit of ``energy_type``: the measured LHV / 29 307.6 when declared (kJ per
        the row's unit, e.g. kJ/kg), else the table default; raises
        :class:`MeasuredValueRequired` when the table has no single default."""
        row = self.get(energy_type)
        energy_type = row.key
        if measured_lhv_kj_per_unit is not None:
            if energy_type in _DEFINITIONAL:
                raise ValueError(
                    f"{energy_type!r} is converted by definition ({row.kgce_per_unit} kgce/"
                    f"{row.unit}); a measured calorific value does not apply"
                )
            lhv = as_decimal(measured_lhv_kj_per_unit, "measured_lhv_kj_per_unit")
            if lhv <= 0:
                raise ValueError(f"measured_lhv_kj_per_unit must be > 0, got {lhv}")
            return Coefficient(
                energy_type, row.unit, lhv / KJ_PER_KGCE, "measured", lhv, self.version
            )
        if row.kgce_per_unit is None:
            hint = (
                f"the standard gives only the range {row.range_low}-{row.range_high} "
                f"kgce/{row.unit}"
                if row.range_low is not None
                else "no coefficient is confirmed in the standard"
            )
            raise MeasuredValueRequired(
                f"energy type {energy_type!r} ({row.name}): {hint}; the plant must declare a "
                f"measured low calorific value (measured_lhv_kj_per_unit, kJ/{row.unit})"
            )
        return Coefficient(energy_type, row.unit, row.kgce_per_unit, "default", None, self.version)

    def to_kgce(
        self,
        energy_type: str,
        quantity: Decimal | float | int,
        unit: str,
        measured_lhv_kj_per_unit: Decimal | float | int | None = None,
    ) -> Decimal:
        """``quantity`` (in ``unit``: kg/t, m3, kWh/MWh/GWh, MJ/GJ) of ``energy_type`` in kgce.

        ``unit`` must have the dimension of the table row (mass for coal, volume for gas ...);
        ``measured_lhv_kj_per_unit`` is per the row's unit (kJ/kg, kJ/m3 ...).
        """
        coefficient = self.coefficient(energy_type, measured_lhv_kj_per_unit)
        return convert_quantity(quantity, unit, coefficient.unit) * coefficient.kgce_per_unit


def convert_quantity(quantity: Decimal | float | int, unit: str, to_unit: str) -> Decimal:
    """``quantity`` in ``unit`` expressed in ``to_unit`` (same dimension: t->kg, MWh->kWh)."""
    q = as_decimal(quantity, "quantity")
    try:
        base, factor = _QUANTITY_UNITS[unit]
        to_base, to_factor = _QUANTITY_UNITS[to_unit]
    except KeyError as exc:
        raise ValueError(
            f"unknown quantity unit {exc.args[0]!r}; known: {list(_QUANTITY_UNITS)}"
        ) from None
    if base != to_base:
        raise ValueError(f"cannot convert {unit!r} to {to_unit!r} (different dimensions)")
    return q * factor / to_factor


def kgce_to_gj(kgce: Decimal | float | int) -> Decimal:
    """Energy content in GJ of ``kgce`` kilograms of standard coal (29.3076 MJ/kgce)."""
    return as_decimal(kgce, "kgce") * MJ_PER_KGCE / 1000


@lru_cache(maxsize=1)
def default_energy_factors() -> EnergyFactors:
    """The packaged GB/T 2589-2020 table, loaded once on first use."""
    return EnergyFactors.load()


def to_kgce(
    energy_type: str,
    quantity: Decimal | float | int,
    unit: str,
    measured_lhv_kj_per_unit: Decimal | float | int | None = None,
) -> Decimal:
    """``quantity`` of ``energy_type`` in kgce with the packaged table (see
    :meth:`EnergyFactors.to_kgce`); record :func:`default_energy_factors` ``.version``."""
    return default_energy_factors().to_kgce(energy_type, quantity, unit, measured_lhv_kj_per_unit)


# =========================================================================================
# emission factors
# =========================================================================================


@dataclass(frozen=True, slots=True)
class EmissionFactor:
    """One row of the emission-factor table (``factor`` in ``unit`` as published)."""

    key: str
    scope: str
    item: str
    unit: str
    factor: Decimal | None
    year: int | None
    notes: str
    source: str

    @property
    def normalised(self) -> tuple[Decimal | None, str]:
        """The factor in kgCO2/kWh (electricity) or kgCO2/GJ (fuels, heat)."""
        unit, multiplier = _EMISSION_UNITS[self.unit]
        return (None if self.factor is None else self.factor * multiplier), unit


@dataclass(frozen=True, slots=True)
class FactorUsed:
    """The emission factor applied to a quantity, with where it came from.

    ``value`` is in ``unit``: kgCO2/kWh for electricity, kgCO2/GJ for fuels and heat.
    ``key`` is the table row used (may differ from ``requested_key`` after a fallback to the
    national grid factor); ``year`` is the factor's year actually used.
    """

    key: str
    requested_key: str
    value: Decimal
    unit: str
    year: int | None
    requested_year: int | None
    basis: Literal["table", "plant_declared"]
    version: str

    @property
    def fallback(self) -> bool:
        """True when another row than the requested one was used."""
        return self.key != self.requested_key


class EmissionFactors:
    """CO2 emission factors: fuels (per GJ), purchased heat, grid electricity by region/year."""

    def __init__(self, rows: Iterable[EmissionFactor], *, version: str) -> None:
        by_key: dict[str, list[EmissionFactor]] = {}
        for r in rows:
            by_key.setdefault(r.key, []).append(r)
        self._by_key = {k: sorted(v, key=lambda r: r.year or 0) for k, v in by_key.items()}
        self.version = version

    @classmethod
    def load(cls) -> EmissionFactors:
        """The table shipped as package data (``benchmarks/data/emission_factors.csv``)."""
        return cls.from_bytes(*_csvdata.package_bytes(EMISSION_FILE))

    @classmethod
    def from_path(cls, path: str | PathLike[str]) -> EmissionFactors:
        """A table from a CSV file with the package file's columns."""
        return cls.from_bytes(*_csvdata.path_bytes(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> EmissionFactors:
        """Parse and validate CSV bytes; ``source`` names the file in error messages."""
        table = _csvdata.read_table(data, source, EMISSION_COLUMNS)
        rows: list[EmissionFactor] = []
        seen: dict[tuple[str, int | None], int] = {}
        unit_of: dict[str, str] = {}
        for row in table.rows:
            key = row["key"]
            if not _EMISSION_KEY.match(key):
                raise DataFileError(source, row.line, "key", f"{key!r} is not a 'kind/name' key")
            if row["scope"] not in ("scope1", "scope2"):
                raise DataFileError(source, row.line, "scope", f"{row['scope']!r} not scope1/2")
            unit = row["unit"]
            if unit not in _EMISSION_UNITS:
                raise DataFileError(
                    source,
                    row.line,
                    "unit",
                    f"unknown unit {unit!r}; known: {list(_EMISSION_UNITS)}",
                )
            normalised_unit = _EMISSION_UNITS[unit][0]
            if key.startswith(GRID_PREFIX) != (normalised_unit == "kgCO2/kWh"):
                raise DataFileError(
                    source, row.line, "unit", f"unit {unit!r} does not fit key {key!r}"
                )
            if key in unit_of and _EMISSION_UNITS[unit_of[key]][0] != normalised_unit:
                raise DataFileError(source, row.line, "unit", f"key {key!r} changes unit")
            unit_of.setdefault(key, unit)
            factor = _csvdata.parse_decimal(row, "factor", source)
            if factor is not None and factor < 0:
                raise DataFileError(source, row.line, "factor", f"must be >= 0, got {factor}")
            year = _csvdata.parse_year(row, "year", source, blank_ok=True)
            if (key, year) in seen:
                raise DataFileError(
                    source,
                    row.line,
                    "key",
                    f"duplicate key {key!r} for year {year} (first on line {seen[key, year]})",
                )
            seen[key, year] = row.line
            rows.append(
                EmissionFactor(
                    key, row["scope"], row["item"], unit, factor, year, row["notes"], row["source"]
                )
            )
        name = source.rsplit("/", 1)[-1]
        return cls(rows, version=f"{name} {table.short_hash}")

    def keys(self) -> list[str]:
        """All factor keys (``grid/...``, ``heat/...``, ``fuel/...``, ``ipcc2006/...``)."""
        return list(self._by_key)

    def regions(self) -> list[str]:
        """Grid regions with factors (``national``, ``north_china`` ..., ``shandong`` ...)."""
        return [k.removeprefix(GRID_PREFIX) for k in self._by_key if k.startswith(GRID_PREFIX)]

    def rows(self, key: str) -> list[EmissionFactor]:
        """Every row (every year) of ``key``, oldest first."""
        try:
            return list(self._by_key[key])
        except KeyError:
            raise UnknownFactorError(
                f"unknown emission factor {key!r}; known: {', '.join(self._by_key)}"
            ) from None

    def fuel_factor(
        self, key: str, *, override_kgco2_per_gj: Decimal | float | int | None = None
    ) -> FactorUsed:
        """kgCO2 per GJ for a fuel or heat key (``fuel/coke``, ``ipcc2006/natural_gas``,
        ``heat/purchased``); a plant-declared factor overrides the table."""
        rows = self.rows(key)
        if key.startswith(GRID_PREFIX):
            raise ValueError(f"{key!r} is a grid factor; use grid_factor()")
        if override_kgco2_per_gj is not None:
            value = as_decimal(override_kgco2_per_gj, "override_kgco2_per_gj")
            if value < 0:
                raise ValueError(f"override_kgco2_per_gj must be >= 0, got {value}")
            return FactorUsed(
                key, key, value, "kgCO2/GJ", None, None, "plant_declared", self.version
            )
        for r in reversed(rows):
            factor, unit = r.normalised
            if factor is not None:
                return FactorUsed(key, key, factor, unit, r.year, None, "table", self.version)
        raise LookupError(f"emission factor {key!r} has no value in {self.version}")

    def grid_factor(
        self,
        year: int,
        region: str | None = None,
        *,
        override_kgco2_per_kwh: Decimal | float | int | None = None,
    ) -> FactorUsed:
        """kgCO2 per kWh of purchased electricity for ``region`` in ``year``.

        ``region`` is a grid region or province key (see :meth:`regions`; ``None`` =
        ``national``). The factor is that of the newest year <= ``year`` that has a value, from
        the region's own rows, else (for a region with no such year) from ``grid/national``;
        ``FactorUsed.key`` and ``.year`` report what was used. An unknown region raises
        :class:`UnknownFactorError` (no silent fallback on a typo). A plant-declared factor
        overrides the table.
        """
        name = "national" if region is None else region.strip().lower().replace(" ", "_")
        name = name.removeprefix(GRID_PREFIX).replace("-", "_")
        requested = GRID_PREFIX + name
        if requested not in self._by_key:
            raise UnknownFactorError(
                f"unknown grid region {region!r}; known: {', '.join(self.regions())}"
            )
        if override_kgco2_per_kwh is not None:
            value = as_decimal(override_kgco2_per_kwh, "override_kgco2_per_kwh")
            if value < 0:
                raise ValueError(f"override_kgco2_per_kwh must be >= 0, got {value}")
            return FactorUsed(
                requested, requested, value, "kgCO2/kWh", year, year, "plant_declared", self.version
            )
        candidates = [requested]
        if requested != NATIONAL_GRID and requested != GRID_PREFIX + "national_reporting":
            candidates.append(NATIONAL_GRID)
        for key in candidates:
            for r in reversed(self._by_key.get(key, [])):
                factor, unit = r.normalised
                if factor is not None and r.year is not None and r.year <= year:
                    return FactorUsed(
                        key, requested, factor, unit, r.year, year, "table", self.version
                    )
        years = sorted(
            {
                r.year
                for k in candidates
                for r in self._by_key.get(k, [])
                if r.factor is not None and r.year is not None
            }
        )
        raise LookupError(
            f"no grid factor for {requested!r} in or before {year} "
            f"(years with values: {years}) in {self.version}"
        )


@lru_cache(maxsize=1)
def default_emission_factors() -> EmissionFactors:
    """The packaged emission-factor table, loaded once on first use."""
    return EmissionFactors.load()


def co2_kg(amount: Decimal | float | int, factor: FactorUsed) -> Decimal:
    """kgCO2 for ``amount`` in the factor's denominator: kWh for a grid factor (kgCO2/kWh),
    GJ for a fuel or heat factor (kgCO2/GJ; fuel GJ = :func:`kgce_to_gj` of its kgce)."""
    return as_decimal(amount, "amount") * factor.value


def co2_kg_electricity(
    kwh: Decimal | float | int,
    year: int,
    region: str | None = None,
    *,
    override_kgco2_per_kwh: Decimal | float | int | None = None,
) -> tuple[Decimal, FactorUsed]:
    """kgCO2 of ``kwh`` purchased electricity with the packaged grid factor for ``region`` and
    ``year`` (see :meth:`EmissionFactors.grid_factor`), and the factor used (record it)."""
    factor = default_emission_factors().grid_factor(
        year, region, override_kgco2_per_kwh=override_kgco2_per_kwh
    )
    return co2_kg(kwh, factor), factor


def co2_kg_fuel(
    fuel_key: str,
    energy_gj: Decimal | float | int,
    *,
    override_kgco2_per_gj: Decimal | float | int | None = None,
) -> tuple[Decimal, FactorUsed]:
    """kgCO2 of burning ``energy_gj`` GJ (low calorific value) of fuel ``fuel_key`` (e.g.
    ``fuel/natural_gas``), and the factor used (record it)."""
    factor = default_emission_factors().fuel_factor(
        fuel_key, override_kgco2_per_gj=override_kgco2_per_gj
    )
    return co2_kg(energy_gj, factor), factor
