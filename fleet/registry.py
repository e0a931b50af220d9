"""Write a validated fleet into the registry tables (upsert, one transaction)."""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from fleet import Fleet


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

    def lines(self) -> list[str]:
        out = [
            f"regions: {self.regions}",
            f"plants: {self.plants_inserted} new, {self.plants_updated} updated",
            f"production units: {self.units_inserted} new, {self.units_updated} updated",
            f"meters: {self.meters_inserted} new, {self.meters_updated} updated",
        ]
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
                    direction, rollover_max, meter_model, interval_s, installed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (plant_id, code) DO UPDATE SET unit_id = EXCLUDED.unit_id, name = EXCLUDED.name,
    energy_type = EXCLUDED.energy_type, kind = EXCLUDED.kind, eng_unit = EXCLUDED.eng_unit,
    multiplier = EXCLUDED.multiplier, direction = EXCLUDED.direction,
    rollover_max = EXCLUDED.rollover_max, meter_model = EXCLUDED.meter_model,
    interval_s = EXCLUDED.interval_s, installed_at = EXCLUDED.installed_at, updated_at = now()
RETURNING id, (xmax = 0)
"""


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
            row = cur.execute(_PLANT, (
                plant.id, plant.uscc, plant.name, plant.region, plant.industry,
                plant.energy_class.value, plant.annual_energy_tce, plant.key_unit,
                plant.timezone or fleet.timezone,
            )).fetchone()
            assert row is not None
            plant_pk, inserted = row
            summary.plants_inserted += inserted
            summary.plants_updated += not inserted
            unit_pk: dict[str, int] = {}
            for unit in plant.units:
                urow = cur.execute(_UNIT, (
                    plant_pk, unit.id, unit.name, unit.catalogue, unit.edition, unit.product,
                    unit.product_unit, unit.design_capacity, unit.capacity_unit,
                )).fetchone()
                assert urow is not None
                unit_pk[unit.id] = urow[0]
                summary.units_inserted += urow[1]
                summary.units_updated += not urow[1]
            for meter in plant.meters:
                mrow = cur.execute(_METER, (
                    plant_pk, unit_pk.get(meter.unit) if meter.unit else None, meter.id,
                    meter.name, meter.energy_type, meter.kind.value, meter.eng_unit,
                    meter.multiplier, meter.direction.value, meter.rollover_max, meter.model,
                    meter.interval_s, meter.installed_at,
                )).fetchone()
                assert mrow is not None
                summary.meters_inserted += mrow[1]
                summary.meters_updated += not mrow[1]
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


def registry_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Row counts of the registry tables (for summaries and health output)."""
    counts: dict[str, int] = {}
    for table in ("regions", "plants", "production_units", "meters"):
        row = conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
