"""SQL of the accounting read side (one module; values only as parameters)."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg import sql

GRANULARITIES = {"hour": "energy_by_meter_hour", "day": "energy_by_meter_day",
                 "month": "energy_by_meter_month"}

REGION_SUBTREE = """
WITH RECURSIVE subtree AS (
    SELECT code FROM regions WHERE code = %(region)s
    UNION ALL
    SELECT r.code FROM regions r JOIN subtree s ON r.parent_code = s.code
)
"""


def unit_meter_totals(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    granularity: str,
    *,
    region: str | None = None,
    plant: str | None = None,
) -> list[tuple]:
    """Per unit and meter: sums of the rollup rows in ``[start, end)``.

    Columns: unit id, unit code, plant code, plant name, region code, catalogue key, pinned
    edition, product unit, design capacity, capacity unit, meter id, meter code, energy type,
    kind, direction, eng unit, interval seconds, quantity, estimated, kgce, co2 kg, readings,
    meter installed at, lowest and highest factor set of the intervals.
    """
    view = sql.Identifier(GRANULARITIES[granularity])
    filters = [sql.SQL("TRUE")]
    prefix = sql.SQL("")
    if region is not None:
        prefix = sql.SQL(REGION_SUBTREE)
        filters.append(sql.SQL("p.region_code IN (SELECT code FROM subtree)"))
    if plant is not None:
        filters.append(sql.SQL("p.code = %(plant)s"))
    query = sql.SQL("""{prefix}
        SELECT u.id, u.code, p.code, p.name, p.region_code, u.catalogue_key,
               u.catalogue_edition, u.product_unit, u.design_capacity::float8, u.capacity_unit,
               m.id, m.code, m.energy_type, m.kind, m.direction, m.eng_unit, m.interval_s,
               coalesce(sum(r.quantity), 0), coalesce(sum(r.estimated), 0),
               coalesce(sum(r.kgce), 0), coalesce(sum(r.co2_kg), 0),
               coalesce(sum(r.readings), 0)::float8, m.installed_at,
               min(r.factor_set_min), max(r.factor_set_max)
        FROM production_units u
        JOIN plants p ON p.id = u.plant_id
        JOIN meters m ON m.unit_id = u.id
        LEFT JOIN {view} r ON r.meter_id = m.id AND r.bucket >= %(start)s AND r.bucket < %(end)s
        WHERE {filters}
        GROUP BY u.id, p.id, m.id
        ORDER BY p.code, u.code, m.code
    """).format(prefix=prefix, view=view, filters=sql.SQL(" AND ").join(filters))
    return conn.execute(query, {"start": start, "end": end, "region": region,
                                "plant": plant}).fetchall()


def declared_output(conn: psycopg.Connection, unit_ids: list[int], start: datetime,
                    end: datetime) -> dict[int, float]:
    """Declared production records lying wholly inside ``[start, end)``, per unit."""
    rows = conn.execute(
        "SELECT unit_id, sum(quantity) FROM production_records WHERE unit_id = ANY(%s) "
        "AND period_start >= %s AND period_end <= %s GROUP BY unit_id",
        (unit_ids, start, end)).fetchall()
    return {int(u): float(q) for u, q in rows}


def factor_versions(conn: psycopg.Connection) -> dict[int, tuple[str, str]]:
    return {int(i): (c, e) for i, c, e in conn.execute(
        "SELECT id, standard_coal_version, emission_version FROM factor_sets")}
