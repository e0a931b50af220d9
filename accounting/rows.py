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
    # sums over the period
    quantity: float                   # engineering unit x multiplier (product for production)
    estimated: float                  # part of quantity resting on estimation
    kgce: float
    co2_kg: float
    readings: float                   # readings received
    factor_set_min: int | None        # lowest and highest factor set of the intervals
    factor_set_max: int | None


@dataclass(frozen=True, slots=True)
class DeclaredOutput:
    """Declared production of a unit summed over the records inside a period."""

    unit_id: int
    quantity: float


@dataclass(frozen=True, slots=True)
class FactorSet:
    """The factor table versions an interval was converted with."""

    id: int
    standard_coal_version: str
    emission_version: str
