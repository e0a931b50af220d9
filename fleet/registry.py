"""The registry writer: the one upsert of plants, production units and meters.

:func:`upsert_plant`, :func:`upsert_unit` and :func:`upsert_meter` insert or replace one row
(keyed by plant code, (plant, unit code), (plant, meter code)) and say whether it was new;
``energymon registry load`` writes a whole validated fleet with :func:`load_registry` (one
transaction), the API's PUT endpoints write one object at a time. Validation is the callers'
(fleet models and ``fleet.checks``); these functions write what they are given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import psycopg

from core.contract import REGISTRY_MULTIPLIER_SOURCES
from fleet import Fleet
from modbus.registermap import counter_rollover


@dataclass
class RegistrySummary:
    regions: int = 0
    plants_inserted: int = 0
    plants_updated: int = 0
    units_inserted: int = 0
    units_updated: int = 0
    meters_inserted: int = 0
    meters_updated: int = 0
    not_in_file: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"regions: {self.regions}",
            f"plants: {self.plants_inserted} new, {self.plants_updated} updated",
            f"production units: {self.units_inserted} new, {self.units_updated} updated",
            f"meters: {self.meters_inserted} new, {self.meters_updated} updated",
        ]
        out += [f"note: {n}" for n in self.notes]
        for plant, meters in sorted(self.not_in_file.items()):
            out.append(f"plant {plant}: {len(meters)} meter(s) in the registry but not in this "
                       f"file (kept, with their history): {', '.join(sorted(meters))}")
        return out


# RETURNING (xmax = 0) tells an insert from an update in an upsert.
_REGION = """
INSERT INTO regions (code, name, parent_code, level) VALUES (%s, %s, %s, %s)
ON CONFLICT (code) DO UPDATE SET name = EXCLUDED.name, parent_code = EXCLUDED.parent_code,
    level = EXCLUDED.level, updated_at = now()
"""
_PLANT = """
INSERT INTO plants (code, uscc, name, region_code, industry, energy_class, annual_energy_tce,
                    key_unit, timezone)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (code) DO UPDATE SET uscc = EXCLUDED.uscc, name = EXCLUDED.name,
    region_code = EXCLUDED.region_code, industry = EXCLUDED.industry,
    energy_class = EXCLUDED.energy_class, annual_energy_tce = EXCLUDED.annual_energy_tce,
    key_unit = EXCLUDED.key_unit, timezone = EXCLUDED.timezone, updated_at = now()
RETURNING id, (xmax = 0)
"""
_UNIT = """
INSERT INTO production_units (plant_id, code, name, catalogue_key, catalogue_edition, product,
                              product_unit, design_capacity, capacity_unit)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (plant_id, code) DO UPDATE SET name = EXCLUDED.name,
    catalogue_key = EXCLUDED.catalogue_key, catalogue_edition = EXCLUDED.catalogue_edition,
    product = EXCLUDED.product, product_unit = EXCLUDED.product_unit,
    design_capacity = EXCLUDED.design_capacity, capacity_unit = EXCLUDED.capacity_unit,
    updated_at = now()
RETURNING id, (xmax = 0)
"""
_METER = """
INSERT INTO meters (plant_id, unit_id, code, name, energy_type, kind, eng_unit, multiplier,
                    direction, rollover_max, meter_model, interval_s, installed_at, removed_at,
                    rollover_step)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (plant_id, code) DO UPDATE SET unit_id = EXCLUDED.unit_id, name = EXCLUDED.name,
    energy_type = EXCLUDED.energy_type, kind = EXCLUDED.kind, eng_unit = EXCLUDED.eng_unit,
    multiplier = EXCLUDED.multiplier, direction = EXCLUDED.direction,
    rollover_max = EXCLUDED.rollover_max, meter_model = EXCLUDED.meter_model,
    interval_s = EXCLUDED.interval_s, installed_at = EXCLUDED.installed_at,
    removed_at = EXCLUDED.removed_at, rollover_step = EXCLUDED.rollover_step, updated_at = now()
RETURNING id, (xmax = 0)
"""

# A changed CT x PT multiplier never rewrites history: the old ratio stays in force up to now
# (a base row from -infinity when the meter has no history yet), the new one from now on.
# Rows the registry writes carry core.contract.REGISTRY_MULTIPLIER_SOURCES; any other source
# is a declared change (``energymon declare multiplier``), which a fleet file does not overrule.
_MULTIPLIER_NOW = """
SELECT m.multiplier,
       (SELECT h.source FROM meter_multipliers h WHERE h.meter_id = m.id
        ORDER BY h.valid_from DESC LIMIT 1)
FROM meters m WHERE m.plant_id = %s AND m.code = %s
"""
_MULTIPLIER_HISTORY = """
WITH meter AS (
    SELECT id, multiplier FROM meters WHERE plant_id = %(plant)s AND code = %(code)s
), base AS (
    INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, source, entered_by)
    SELECT id, '-infinity', multiplier, 'registry', %(actor)s FROM meter m
    WHERE NOT EXISTS (SELECT 1 FROM meter_multipliers h WHERE h.meter_id = m.id)
)
INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, source, entered_by)
SELECT id, now(), %(multiplier)s, 'registry load', %(actor)s FROM meter
ON CONFLICT (meter_id, valid_from) DO UPDATE SET multiplier = EXCLUDED.multiplier
"""

# the change goes to the audit of declared data like a declared one (kind meter_multiplier)
_MULTIPLIER_LOG = """
INSERT INTO declared_input_log (actor, plant_id, kind, action, key, old, new)
SELECT %(actor)s, p.id, 'meter_multiplier', 'insert',
       jsonb_build_object('plant', p.code, 'meter', %(code)s::text, 'valid_from', now()),
       jsonb_build_object('multiplier', %(old)s::numeric),
       jsonb_build_object('multiplier', %(multiplier)s::numeric, 'source', 'registry load')
FROM plants p WHERE p.id = %(plant)s
"""


class Upserted(NamedTuple):
    """The row an upsert wrote: its primary key, and whether it was inserted (not updated)."""

    pk: int
    inserted: bool
    note: str | None = None       # what else the write did (or refused), for people


def _upsert(conn: psycopg.Connection, statement: str, params: tuple[object, ...]) -> Upserted:
    row = conn.execute(statement, params).fetchone()
    assert row is not None  # an upsert returns its row
    return Upserted(int(row[0]), bool(row[1]))


def upsert_plant(conn: psycopg.Connection, *, code: str, uscc: str, name: str, region: str,
                 industry: str, energy_class: str, annual_energy_tce: Decimal | None,
                 key_unit: bool, timezone: str) -> Upserted:
    """Insert or replace the plant ``code`` (the caller checks the USCC is not another's)."""
    return _upsert(conn, _PLANT, (code, uscc, name, region, industry, energy_class,
                                  annual_energy_tce, key_unit, timezone))


def upsert_unit(conn: psycopg.Connection, *, plant_pk: int, code: str, name: str,
                catalogue: str | None, edition: int | None, product: str, product_unit: str,
                design_capacity: Decimal, capacity_unit: str) -> Upserted:
    """Insert or replace the production unit ``code`` of the plant ``plant_pk``."""
    return _upsert(conn, _UNIT, (plant_pk, code, name, catalogue, edition, product,
                                 product_unit, design_capacity, capacity_unit))


def upsert_meter(conn: psycopg.Connection, *, plant_pk: int, unit_pk: int | None, code: str,
                 name: str, energy_type: str, kind: str, eng_unit: str, multiplier: Decimal,
                 direction: str, rollover_max: Decimal | None, model: str | None,
                 interval_s: int, installed_at: datetime | str | None,
                 removed_at: datetime | str | None = None,
                 rollover_step: Decimal | None = None,
                 actor: str = "registry") -> Upserted:
    """Insert or replace the meter ``code`` of the plant ``plant_pk`` (``installed_at``,
    ``removed_at``: a datetime or ISO 8601 text with offset).

    A counter without a declared ``rollover_max`` takes its register map's (``model``) width
    and resolution; one with a maximum but no step takes the map's resolution. A changed
    multiplier is recorded in ``meter_multipliers`` from now on (history keeps the old one).
    """
    if kind in ("counter", "production") and model is not None:
        from_map = counter_rollover(model)
        if from_map is not None:
            if rollover_max is None:
                rollover_max = Decimal(repr(from_map[0]))
            if rollover_step is None and from_map[1] > 0:   # a float register has no step
                rollover_step = Decimal(repr(from_map[1]))
    note = None
    current = conn.execute(_MULTIPLIER_NOW, (plant_pk, code)).fetchone()
    if current is not None and Decimal(current[0]) != Decimal(multiplier):
        if current[1] is not None and current[1] not in REGISTRY_MULTIPLIER_SOURCES:
            note = (f"meter {code!r}: multiplier {multiplier} in the file, {current[0]} from "
                    f"its declared history (kept; declare a change with `energymon declare "
                    f"multiplier`)")
            multiplier = Decimal(current[0])
        else:
            params = {"plant": plant_pk, "code": code, "multiplier": multiplier,
                      "old": current[0], "actor": actor}
            conn.execute(_MULTIPLIER_HISTORY, params)
            conn.execute(_MULTIPLIER_LOG, params)
            note = (f"meter {code!r}: multiplier {current[0]} -> {multiplier} from now on "
                    "(history kept)")
    row = _upsert(conn, _METER, (plant_pk, unit_pk, code, name, energy_type, kind, eng_unit,
                                 multiplier, direction, rollover_max, model, interval_s,
                                 installed_at, removed_at, rollover_step))
    return Upserted(row.pk, row.inserted, note)


class RegistryConflict(ValueError):
    """The fleet clashes with what the registry already holds (e.g. a USCC of another plant)."""


def load_registry(conn: psycopg.Connection, fleet: Fleet) -> RegistrySummary:
    """Upsert regions, plants, units and meters of ``fleet`` in one transaction."""
    summary = RegistrySummary()
    with conn.transaction(), conn.cursor() as cur:
        # parents before children so parent_code references resolve
        depth = {"province": 0, "prefecture": 1, "county": 2}
        for region in sorted(fleet.regions, key=lambda r: depth[r.level.value]):
            cur.execute(_REGION, (region.code, region.name, region.parent, region.level.value))
            summary.regions += 1
        for plant in fleet.plants:
            clash = cur.execute(
                "SELECT code FROM plants WHERE uscc = %s AND code <> %s", (plant.uscc, plant.id)
            ).fetchone()
            if clash:
                raise RegistryConflict(
                    f"plant {plant.id!r} > field 'uscc': {plant.uscc} already belongs to "
                    f"registered plant {clash[0]!r}"
                )
            plant_pk, inserted, _ = upsert_plant(
                conn, code=plant.id, uscc=plant.uscc, name=plant.name, region=plant.region,
                industry=plant.industry, energy_class=plant.energy_class.value,
                annual_energy_tce=plant.annual_energy_tce, key_unit=plant.key_unit,
                timezone=plant.timezone or fleet.timezone)
            summary.plants_inserted += inserted
            summary.plants_updated += not inserted
            unit_pk: dict[str, int] = {}
            for unit in plant.units:
                urow = upsert_unit(
                    conn, plant_pk=plant_pk, code=unit.id, name=unit.name,
                    catalogue=unit.catalogue, edition=unit.edition, product=unit.product,
                    product_unit=unit.product_unit, design_capacity=unit.design_capacity,
                    capacity_unit=unit.capacity_unit)
                unit_pk[unit.id] = urow.pk
                summary.units_inserted += urow.inserted
                summary.units_updated += not urow.inserted
            for meter in plant.meters:
                mrow = upsert_meter(
                    conn, plant_pk=plant_pk,
                    unit_pk=unit_pk.get(meter.unit) if meter.unit else None, code=meter.id,
                    name=meter.name, energy_type=meter.energy_type, kind=meter.kind.value,
                    eng_unit=meter.eng_unit, multiplier=meter.multiplier,
                    direction=meter.direction.value, rollover_max=meter.rollover_max,
                    model=meter.model, interval_s=meter.interval_s,
                    installed_at=meter.installed_at, removed_at=meter.removed_at,
                    rollover_step=meter.rollover_step, actor="registry load")
                if mrow.note:
                    summary.notes.append(f"plant {plant.id!r} > {mrow.note}")
                summary.meters_inserted += mrow.inserted
                summary.meters_updated += not mrow.inserted
            in_file = {m.id for m in plant.meters}
            extra = [
                code for (code,) in cur.execute(
                    "SELECT code FROM meters WHERE plant_id = %s", (plant_pk,)
                )
                if code not in in_file
            ]
            if extra:
                summary.not_in_file[plant.id] = extra
    return summary

