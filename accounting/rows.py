"""Typed rows of the accounting read side (:mod:`accounting.queries` fetches them with
``psycopg.rows.class_row``; :mod:`accounting.judge` computes on them without a database).

Field names are the column aliases of the queries: a renamed field must be renamed there too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class UnitMeterTotals:
    """One meter of a production unit with the sums of its rollup rows over a period.

    The unit's columns repeat on every meter row of the unit. Sums are 0 (and the factor sets
    ``None``) for a meter without rollup rows in the period.
    """

    # the production unit
    unit_id: int
    unit_code: str
    plant_code: str
    plant_name: str
    region_code: str
    catalogue_key: str | None
    catalogue_edition: int | None     # the unit's pinned edition (None = not pinned)
    product_unit: str
    design_capacity: float
    capacity_unit: str
    # the meter
    meter_id: int
    meter_code: str
    energy_type: str
    kind: str                         # counter | interval | instantaneous | production
    direction: str                    # consumed | exported
    eng_unit: str
    interval_s: int
    installed_at: datetime | None
    removed_at: datetime | None       # end of service (None = in service)
    # sums over the period
    quantity: float                   # engineering unit x multiplier (product for production)
    estimated: float                  # part of quantity resting on estimation
    kgce: float
    co2_kg: float
    readings: float                   # readings received
    factor_set_min: int | None        # lowest and highest factor set of the intervals
    factor_set_max: int | None


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A production unit in scope (every unit, with or without meters)."""

    unit_id: int
    unit_code: str
    plant_code: str
    plant_name: str
    region_code: str
    catalogue_key: str | None
    catalogue_edition: int | None
    product_unit: str
    design_capacity: float
    capacity_unit: str


@dataclass(frozen=True, slots=True)
class DeclaredOutput:
    """Declared (statistical) production of a unit over a period: the records overlapping it,
    each pro-rated by time to the part inside the period."""

    unit_id: int
    quantity: float                   # pro-rated sum, in the unit's product unit
    records: int                      # records overlapping the period
    prorated: bool                    # some record reaches outside the period
    covered_s: float                  # seconds of the period the records cover


@dataclass(frozen=True, slots=True)
class MeterDay:
    """One meter's readings of one local calendar day (from the daily rollup)."""

    meter_id: int
    day: float                        # the bucket: local midnight, epoch seconds
    readings: float                   # readings received that day


@dataclass(frozen=True, slots=True)
class ConversionIssue:
    """Intervals of a meter in a period whose kgce or CO2 could not be computed."""

    meter_id: int
    issue: str                        # 'kgce: ...' or 'co2: ...'
    intervals: int
    first: datetime
    last: datetime


@dataclass(frozen=True, slots=True)
class FactorSet:
    """The factor table versions an interval was converted with."""

    id: int
    standard_coal_version: str
    emission_version: str
