"""SQL of the accounting read side (one module; values only as parameters)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from accounting.rows import (
    ConversionIssue,
    DeclaredOutput,
    FactorSet,
    MeterDay,
    UnitInfo,
    UnitMeterTotals,
)

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
    conn: psycopg.Connection[Any],
    start: datetime,
    end: datetime,
    granularity: str,
    *,
    region: str | None = None,
    plant: str | None = None,
) -> list[UnitMeterTotals]:
    """Per unit and meter: sums of the rollup rows in ``[start, end)``, ordered by plant, unit
    and meter code (see :class:`accounting.rows.UnitMeterTotals` for the columns)."""
    view = sql.Identifier(GRANULARITIES[granularity])
    prefix, filters = _scope(region, plant)
    query = sql.SQL("""{prefix}
        SELECT u.id AS unit_id, u.code AS unit_code, p.code AS plant_code,
               p.name AS plant_name, p.region_code, u.catalogue_key, u.catalogue_edition,
               u.product_unit, u.design_capacity::float8 AS design_capacity, u.capacity_unit,
               m.id AS meter_id, m.code AS meter_code, m.energy_type, m.kind, m.direction,
               m.eng_unit, m.interval_s,
               coalesce(sum(r.quantity), 0) AS quantity,
               coalesce(sum(r.estimated), 0) AS estimated,
               coalesce(sum(r.kgce), 0) AS kgce, coalesce(sum(r.co2_kg), 0) AS co2_kg,
               coalesce(sum(r.readings), 0)::float8 AS readings, m.installed_at, m.removed_at,
               min(r.factor_set_min) AS factor_set_min, max(r.factor_set_max) AS factor_set_max
        FROM production_units u
        JOIN plants p ON p.id = u.plant_id
        JOIN meters m ON m.unit_id = u.id
        LEFT JOIN {view} r ON r.meter_id = m.id AND r.bucket >= %(start)s AND r.bucket < %(end)s
        WHERE {filters}
        GROUP BY u.id, p.id, m.id
        ORDER BY p.code, u.code, m.code
    """).format(prefix=prefix, view=view, filters=filters)
    with conn.cursor(row_factory=class_row(UnitMeterTotals)) as cur:
        cur.execute(query, {"start": start, "end": end, "region": region, "plant": plant})
        return cur.fetchall()


def _scope(region: str | None, plant: str | None) -> tuple[sql.Composable, sql.Composable]:
    filters = [sql.SQL("TRUE")]
    prefix: sql.Composable = sql.SQL("")
    if region is not None:
        prefix = sql.SQL(REGION_SUBTREE)
        filters.append(sql.SQL("p.region_code IN (SELECT code FROM subtree)"))
    if plant is not None:
        filters.append(sql.SQL("p.code = %(plant)s"))
    return prefix, sql.SQL(" AND ").join(filters)


def units(conn: psycopg.Connection[Any], *, region: str | None = None,
          plant: str | None = None) -> list[UnitInfo]:
    """Every production unit in scope, with or without meters, by plant and unit code."""
    prefix, filters = _scope(region, plant)
    query = sql.SQL("""{prefix}
        SELECT u.id AS unit_id, u.code AS unit_code, p.code AS plant_code,
               p.name AS plant_name, p.region_code, u.catalogue_key, u.catalogue_edition,
               u.product_unit, u.design_capacity::float8 AS design_capacity, u.capacity_unit
        FROM production_units u JOIN plants p ON p.id = u.plant_id
        WHERE {filters}
        ORDER BY p.code, u.code
    """).format(prefix=prefix, filters=filters)
    with conn.cursor(row_factory=class_row(UnitInfo)) as cur:
        cur.execute(query, {"region": region, "plant": plant})
        return cur.fetchall()


def declared_output(conn: psycopg.Connection[Any], unit_ids: list[int], start: datetime,
                    end: datetime) -> dict[int, DeclaredOutput]:
    """Declared production records overlapping ``[start, end)`` per unit, each pro-rated by
    the share of its period that lies inside (records of a unit never overlap each other)."""
    with conn.cursor(row_factory=class_row(DeclaredOutput)) as cur:
        cur.execute(
            """
            SELECT unit_id,
                   sum(quantity * extract(epoch FROM least(period_end, %(end)s)
                                                   - greatest(period_start, %(start)s))
                       / extract(epoch FROM period_end - period_start))::float8 AS quantity,
                   count(*)::int AS records,
                   bool_or(period_start < %(start)s OR period_end > %(end)s) AS prorated,
                   sum(extract(epoch FROM least(period_end, %(end)s)
                                        - greatest(period_start, %(start)s)))::float8
                       AS covered_s
            FROM production_records
            WHERE unit_id = ANY(%(units)s) AND period_start < %(end)s AND period_end > %(start)s
            GROUP BY unit_id
            """,
            {"units": unit_ids, "start": start, "end": end})
        return {int(r.unit_id): r for r in cur}


def meter_days(conn: psycopg.Connection[Any], meter_ids: list[int], start: datetime,
               end: datetime) -> dict[int, list[MeterDay]]:
    """Readings per local day (the daily rollup buckets) of ``meter_ids`` in ``[start, end)``,
    per meter: one row per meter with the days as arrays (a year of a province is millions
    of meter-days; rows per day would cost more to fetch than to judge)."""
    out: dict[int, list[MeterDay]] = {}
    rows = conn.execute(
        "SELECT meter_id, array_agg(extract(epoch FROM bucket)::float8 ORDER BY bucket), "
        "array_agg(readings::float8 ORDER BY bucket) FROM energy_by_meter_day "
        "WHERE meter_id = ANY(%s) AND bucket >= %s AND bucket < %s GROUP BY meter_id",
        (meter_ids, start, end)).fetchall()
    for meter_id, days, readings in rows:
        out[int(meter_id)] = [MeterDay(int(meter_id), d, n)
                              for d, n in zip(days, readings, strict=True)]
    return out


def conversion_issues(conn: psycopg.Connection[Any], meter_ids: list[int], start: datetime,
                      end: datetime) -> dict[int, list[ConversionIssue]]:
    """Intervals in ``[start, end)`` whose kgce or CO2 could not be computed, per meter and
    reason (served by the partial index energy_intervals_issue_idx)."""
    out: dict[int, list[ConversionIssue]] = {}
    with conn.cursor(row_factory=class_row(ConversionIssue)) as cur:
        cur.execute(
            "SELECT meter_id, conversion_issue AS issue, count(*)::int AS intervals, "
            "min(ts) AS first, max(ts) AS last FROM energy_intervals "
            "WHERE meter_id = ANY(%s) AND ts >= %s AND ts < %s "
            "AND conversion_issue IS NOT NULL GROUP BY meter_id, conversion_issue "
            "ORDER BY meter_id, min(ts)", (meter_ids, start, end))
        for row in cur:
            out.setdefault(int(row.meter_id), []).append(row)
    return out


def factor_versions(conn: psycopg.Connection[Any]) -> dict[int, tuple[str, str]]:
    """Factor set id -> (standard-coal table version, emission table version)."""
    with conn.cursor(row_factory=class_row(FactorSet)) as cur:
        cur.execute("SELECT id, standard_coal_version, emission_version FROM factor_sets")
        return {int(r.id): (r.standard_coal_version, r.emission_version) for r in cur}
