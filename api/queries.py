"""Every SQL statement of the API (routes contain none). Values only as parameters,
identifiers only through :mod:`psycopg.sql`.

All of these run on a request connection: role ``energymon_api``, the principal's scope set in
the transaction, so row-level security filters them as a backstop under the routes' checks.
Intensity and verdicts are not here: they come from :func:`accounting.verdicts.unit_results`,
the same code the CLI and reports use; nor are the registry writes: :mod:`fleet.registry`
upserts plants, units and meters for the API and for ``energymon registry load``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import class_row

from core.contract import Quality

# -- storage rows ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantRow:
    pk: int
    id: str
    uscc: str
    name: str
    region: str
    region_name: str
    industry: str
    energy_class: str
    annual_energy_tce: float | None
    key_unit: bool
    timezone: str
    units: int
    meters: int
    updated_at: datetime


@dataclass(frozen=True)
class UnitRow:
    pk: int
    plant_pk: int
    plant: str
    id: str
    name: str
    catalogue_key: str | None
    catalogue_edition: int | None
    product: str
    product_unit: str
    design_capacity: float
    capacity_unit: str
    meters: int
    updated_at: datetime


@dataclass(frozen=True)
class MeterRow:
    pk: int
    plant_pk: int
    plant: str
    id: str
    name: str
    unit: str | None
    energy_type: str
    kind: str
    eng_unit: str
    multiplier: float
    direction: str
    rollover_max: float | None
    model: str | None
    interval_s: int
    installed_at: datetime | None
    removed_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class MeterStatusRow:
    meter: str
    unit: str | None
    energy_type: str
    kind: str
    eng_unit: str
    interval_s: int
    installed_at: datetime | None
    last_seen: datetime | None
    last_value: float | None
    last_quality: int | None
    received: int


@dataclass(frozen=True)
class GatewayStreamRow:
    gateway: str
    epoch: int
    acked_seq: int
    max_seq: int
    committed_batches: int
    redeliveries: int
    skipped_batches: int
    dropped_readings: int
    gap_since: datetime | None
    first_seen: datetime
    last_commit_at: datetime


@dataclass(frozen=True)
class EnergyTotalRow:
    energy_type: str
    eng_unit: str
    kind: str
    direction: str
    quantity: float
    kgce: float | None
    co2_kg: float | None
    estimated: float
    meters: int


# -- regions -----------------------------------------------------------------------------------
REGION_SUBTREE = sql.SQL("""
WITH RECURSIVE subtree AS (
    SELECT code FROM regions WHERE code = %(region)s
    UNION ALL
    SELECT r.code FROM regions r JOIN subtree s ON r.parent_code = s.code
)""")


def regions(conn: psycopg.Connection, *, limit: int, offset: int
            ) -> tuple[list[tuple[str, str, str, str | None]], int]:
    rows = conn.execute(
        "SELECT code, name, level, parent_code, count(*) OVER () FROM regions "
        "ORDER BY code LIMIT %s OFFSET %s", (limit, offset)).fetchall()
    total = rows[0][4] if rows else _count(conn, "SELECT count(*) FROM regions", {})
    return [r[:4] for r in rows], int(total)


def region(conn: psycopg.Connection, code: str) -> tuple[str, str, str, str | None] | None:
    return conn.execute("SELECT code, name, level, parent_code FROM regions WHERE code = %s",
                        (code,)).fetchone()


def region_chain(conn: psycopg.Connection, code: str) -> list[tuple[str, str, str, str | None]]:
    """The region and its ancestors, root first."""
    rows = conn.execute("""
        WITH RECURSIVE up AS (
            SELECT code, name, level, parent_code, 0 AS depth FROM regions WHERE code = %s
            UNION ALL
            SELECT r.code, r.name, r.level, r.parent_code, up.depth + 1
            FROM regions r JOIN up ON r.code = up.parent_code
        ) SELECT code, name, level, parent_code FROM up ORDER BY depth DESC""",
                        (code,)).fetchall()
    return rows


def region_within(conn: psycopg.Connection, code: str, root: str) -> bool:
    """Is ``code`` in the subtree of ``root`` (itself included)?"""
    query = REGION_SUBTREE + sql.SQL(" SELECT EXISTS (SELECT 1 FROM subtree WHERE code = "
                                     "%(code)s)")
    row = conn.execute(query, {"region": root, "code": code}).fetchone()
    return bool(row and row[0])


# -- registry ----------------------------------------------------------------------------------
_PLANTS = sql.SQL("""
    SELECT p.id AS pk, p.code AS id, p.uscc, p.name, p.region_code AS region,
           g.name AS region_name, p.industry, p.energy_class,
           p.annual_energy_tce::float8 AS annual_energy_tce, p.key_unit, p.timezone,
           (SELECT count(*) FROM production_units u WHERE u.plant_id = p.id)::int AS units,
           (SELECT count(*) FROM meters m WHERE m.plant_id = p.id)::int AS meters,
           p.updated_at
    FROM plants p JOIN regions g ON g.code = p.region_code
""")


def _count(conn: psycopg.Connection, query: sql.Composed | sql.SQL | str,
           params: dict[str, Any]) -> int:
    row = conn.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def plants(conn: psycopg.Connection, *, region: str | None, limit: int, offset: int
           ) -> tuple[list[PlantRow], int]:
    where = sql.SQL("TRUE")
    prefix = sql.SQL("")
    if region is not None:
        prefix = REGION_SUBTREE
        where = sql.SQL("p.region_code IN (SELECT code FROM subtree)")
    params = {"region": region, "limit": limit, "offset": offset}
    query = sql.SQL("{prefix} {select} WHERE {where} ORDER BY p.code "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(
        prefix=prefix, select=_PLANTS, where=where)
    rows = conn.cursor(row_factory=class_row(PlantRow)).execute(query, params).fetchall()
    total = _count(conn, sql.SQL("{prefix} SELECT count(*) FROM plants p WHERE {where}").format(
        prefix=prefix, where=where), params)
    return rows, total


def plant(conn: psycopg.Connection, code: str) -> PlantRow | None:
    query = sql.SQL("{select} WHERE p.code = %s").format(select=_PLANTS)
    return conn.cursor(row_factory=class_row(PlantRow)).execute(query, (code,)).fetchone()


_UNITS = sql.SQL("""
    SELECT u.id AS pk, u.plant_id AS plant_pk, p.code AS plant, u.code AS id, u.name,
           u.catalogue_key, u.catalogue_edition, u.product, u.product_unit,
           u.design_capacity::float8 AS design_capacity, u.capacity_unit,
           (SELECT count(*) FROM meters m WHERE m.unit_id = u.id)::int AS meters, u.updated_at
    FROM production_units u JOIN plants p ON p.id = u.plant_id
""")


def units(conn: psycopg.Connection, plant_pk: int, *, limit: int, offset: int
          ) -> tuple[list[UnitRow], int]:
    query = sql.SQL("{select} WHERE u.plant_id = %(plant)s ORDER BY u.code "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(select=_UNITS)
    params = {"plant": plant_pk, "limit": limit, "offset": offset}
    rows = conn.cursor(row_factory=class_row(UnitRow)).execute(query, params).fetchall()
    return rows, _count(conn, "SELECT count(*) FROM production_units WHERE plant_id = "
                        "%(plant)s", params)


def unit(conn: psycopg.Connection, plant_pk: int, code: str) -> UnitRow | None:
    query = sql.SQL("{select} WHERE u.plant_id = %s AND u.code = %s").format(select=_UNITS)
    return conn.cursor(row_factory=class_row(UnitRow)).execute(query, (plant_pk, code)
                                                               ).fetchone()


_METERS = sql.SQL("""
    SELECT m.id AS pk, m.plant_id AS plant_pk, p.code AS plant, m.code AS id, m.name,
           u.code AS unit, m.energy_type, m.kind, m.eng_unit, m.multiplier::float8 AS multiplier,
           m.direction, m.rollover_max::float8 AS rollover_max, m.meter_model AS model,
           m.interval_s, m.installed_at, m.removed_at, m.updated_at
    FROM meters m JOIN plants p ON p.id = m.plant_id
    LEFT JOIN production_units u ON u.id = m.unit_id
""")


def meters(conn: psycopg.Connection, plant_pk: int, *, unit_pk: int | None = None,
           limit: int, offset: int) -> tuple[list[MeterRow], int]:
    where = sql.SQL("m.plant_id = %(plant)s")
    if unit_pk is not None:
        where = sql.SQL("m.plant_id = %(plant)s AND m.unit_id = %(unit)s")
    params = {"plant": plant_pk, "unit": unit_pk, "limit": limit, "offset": offset}
    query = sql.SQL("{select} WHERE {where} ORDER BY m.code LIMIT %(limit)s OFFSET %(offset)s"
                    ).format(select=_METERS, where=where)
    rows = conn.cursor(row_factory=class_row(MeterRow)).execute(query, params).fetchall()
    total = _count(conn, sql.SQL("SELECT count(*) FROM meters m WHERE {where}").format(
        where=where), params)
    return rows, total


def meter(conn: psycopg.Connection, plant_pk: int, code: str) -> MeterRow | None:
    query = sql.SQL("{select} WHERE m.plant_id = %s AND m.code = %s").format(select=_METERS)
    return conn.cursor(row_factory=class_row(MeterRow)).execute(query, (plant_pk, code)
                                                                ).fetchone()


def uscc_owner(conn: psycopg.Connection, uscc: str) -> str | None:
    """Code of the plant holding ``uscc`` (the API role sees only plants in scope; admin: all)."""
    row = conn.execute("SELECT code FROM plants WHERE uscc = %s", (uscc,)).fetchone()
    return row[0] if row else None


# -- status ------------------------------------------------------------------------------------
def meter_status(conn: psycopg.Connection, plant_pk: int, *, since: datetime, until: datetime,
                 meter_pk: int | None = None) -> list[MeterStatusRow]:
    where = sql.SQL("m.plant_id = %(plant)s")
    if meter_pk is not None:
        where = sql.SQL("m.plant_id = %(plant)s AND m.id = %(meter)s")
    query = sql.SQL("""
        SELECT m.code AS meter, u.code AS unit, m.energy_type, m.kind, m.eng_unit,
               m.interval_s, m.installed_at, l.ts AS last_seen, l.value AS last_value,
               l.quality AS last_quality,
               (SELECT count(*) FROM readings r WHERE r.meter_id = m.id
                AND r.ts >= %(since)s AND r.ts < %(until)s)::int AS received
        FROM meters m
        LEFT JOIN production_units u ON u.id = m.unit_id
        LEFT JOIN LATERAL (SELECT r.ts, r.value, r.quality FROM readings r
                           WHERE r.meter_id = m.id ORDER BY r.ts DESC LIMIT 1) l ON TRUE
        WHERE {where} ORDER BY m.code""").format(where=where)
    return conn.cursor(row_factory=class_row(MeterStatusRow)).execute(
        query, {"plant": plant_pk, "meter": meter_pk, "since": since, "until": until}
    ).fetchall()


def gateway_streams(conn: psycopg.Connection, plant_pk: int) -> list[GatewayStreamRow]:
    """The plant's gateway streams (ingest.streams), newest activity first."""
    return conn.cursor(row_factory=class_row(GatewayStreamRow)).execute(
        "SELECT gateway, epoch, acked_seq, max_seq, committed_batches, redeliveries, "
        "skipped_batches, dropped_readings, gap_since, first_seen, last_commit_at "
        "FROM gateway_streams WHERE plant_id = %s ORDER BY last_commit_at DESC, gateway, epoch",
        (plant_pk,)).fetchall()


# -- energy ------------------------------------------------------------------------------------
ROLLUPS = {"hour": "energy_by_meter_hour", "day": "energy_by_meter_day",
           "month": "energy_by_meter_month"}


def energy_totals(conn: psycopg.Connection, plant_pk: int, *, unit_pk: int | None,
                  start: datetime, end: datetime, granularity: str) -> list[EnergyTotalRow]:
    """Sums of the rollup over ``[start, end)`` per energy type, unit of measure, kind and
    direction (the same rollup rows :func:`accounting.queries.unit_meter_totals` sums)."""
    where = sql.SQL("m.plant_id = %(plant)s")
    if unit_pk is not None:
        where = sql.SQL("m.plant_id = %(plant)s AND m.unit_id = %(unit)s")
    query = sql.SQL("""
        SELECT m.energy_type, m.eng_unit, m.kind, m.direction,
               coalesce(sum(r.quantity), 0) AS quantity, sum(r.kgce) AS kgce,
               sum(r.co2_kg) AS co2_kg, coalesce(sum(r.estimated), 0) AS estimated,
               count(DISTINCT m.id)::int AS meters
        FROM meters m
        LEFT JOIN {view} r ON r.meter_id = m.id AND r.bucket >= %(start)s AND r.bucket < %(end)s
        WHERE {where} AND m.kind <> 'instantaneous'
        GROUP BY 1, 2, 3, 4 ORDER BY m.kind = 'production', m.direction, m.energy_type,
                 m.eng_unit""").format(view=sql.Identifier(ROLLUPS[granularity]), where=where)
    return conn.cursor(row_factory=class_row(EnergyTotalRow)).execute(
        query, {"plant": plant_pk, "unit": unit_pk, "start": start, "end": end}).fetchall()


# -- history -----------------------------------------------------------------------------------
# Columns of every history row: ts, energy_type, flow, quantity, quantity_unit, value, quality,
# estimated, kgce, co2_kg, readings.
HISTORY_COLUMNS = ("ts", "energy_type", "flow", "quantity", "quantity_unit", "value",
                   "quality", "estimated", "kgce", "co2_kg", "readings")
# readings.quality smallint code -> wire name (core.contract's one table)
QUALITY: dict[int, str] = {q.code: q.value for q in Quality}


def history_query(*, level: str, resolution: str, plant_pk: int, unit_pk: int | None,
                  meter_pk: int | None, start: datetime, end: datetime, limit: int | None
                  ) -> tuple[sql.Composed, dict[str, Any]]:
    """The SQL of a history request (columns ``HISTORY_COLUMNS``), ordered by (ts, series) so
    pages can resume at a ts."""
    params: dict[str, Any] = {"plant": plant_pk, "unit": unit_pk, "meter": meter_pk,
                              "start": start, "end": end, "limit": limit}
    lim = sql.SQL(" LIMIT %(limit)s") if limit is not None else sql.SQL("")
    flow = sql.SQL("CASE WHEN m.kind = 'production' THEN 'production' ELSE m.direction END")
    if resolution == "raw":
        query = sql.SQL("""
            SELECT r.ts, m.energy_type, 'reading' AS flow, NULL::float8 AS quantity,
                   m.eng_unit AS quantity_unit, r.value, r.quality, NULL::float8 AS estimated,
                   NULL::float8 AS kgce, NULL::float8 AS co2_kg, NULL::int AS readings
            FROM readings r JOIN meters m ON m.id = r.meter_id
            WHERE m.plant_id = %(plant)s AND m.id = %(meter)s
              AND r.ts >= %(start)s AND r.ts < %(end)s
            ORDER BY r.ts""") + lim
        return query, params
    if resolution == "15min":
        source, ts_col = sql.Identifier("energy_intervals"), sql.SQL("r.ts")
    else:
        source, ts_col = sql.Identifier(ROLLUPS[resolution]), sql.SQL("r.bucket")
    if level == "meter":
        query = sql.SQL("""
            SELECT {ts} AS ts, m.energy_type, {flow} AS flow, r.quantity,
                   m.eng_unit AS quantity_unit, NULL::float8 AS value, NULL::smallint AS quality,
                   r.estimated, r.kgce, r.co2_kg, r.readings::int AS readings
            FROM {source} r JOIN meters m ON m.id = r.meter_id
            WHERE m.plant_id = %(plant)s AND m.id = %(meter)s
              AND {ts} >= %(start)s AND {ts} < %(end)s
            ORDER BY 1""").format(ts=ts_col, flow=flow, source=source)
        return query + lim, params
    where = sql.SQL("m.plant_id = %(plant)s")
    if level == "unit":
        where = sql.SQL("m.plant_id = %(plant)s AND m.unit_id = %(unit)s")
    query = sql.SQL("""
        SELECT {ts} AS ts, m.energy_type, {flow} AS flow, sum(r.quantity) AS quantity,
               m.eng_unit AS quantity_unit, NULL::float8 AS value, NULL::smallint AS quality,
               sum(r.estimated) AS estimated, sum(r.kgce) AS kgce, sum(r.co2_kg) AS co2_kg,
               sum(r.readings)::int AS readings
        FROM {source} r JOIN meters m ON m.id = r.meter_id
        WHERE {where} AND {ts} >= %(start)s AND {ts} < %(end)s
        GROUP BY 1, 2, 3, 5
        ORDER BY 1, 3, 2, 5""").format(ts=ts_col, flow=flow, source=source, where=where)
    return query + lim, params


# JSON pages: rows fetched in PostgreSQL's binary format (no text parsing of timestamps and
# doubles) and rendered by orjson, about 1.7x faster than json_agg in PostgreSQL for a page of
# 2 000 rows; timestamps carry the session time zone's offset (the calendar's, set per
# request). CSV: rendered by PostgreSQL (COPY), doubles in their shortest exact form
# (extra_float_digits = 1).
# CASE h.quality WHEN 0 THEN 'good' WHEN 1 THEN 'estimated' ... END, from core.contract
_QUALITY_TEXT = sql.SQL("CASE h.quality {whens} END").format(whens=sql.SQL(" ").join(
    sql.SQL("WHEN {code} THEN {name}").format(code=sql.Literal(q.code), name=sql.Literal(q.value))
    for q in Quality))


def history_json_page(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any],
                      page_size: int) -> tuple[bytes, int, datetime | None]:
    """(JSON array of the page's rows, their number, first ts of the next page or None).

    ``query`` (``HISTORY_COLUMNS``, ordered by ts) must be limited to ``page_size + 1`` rows. A
    page ends on a bucket boundary: when more rows exist, the rows of the last (possibly
    partial) bucket move to the next page.
    """
    rows = conn.cursor(binary=True).execute(query, params).fetchall()
    boundary = None
    if len(rows) > page_size:
        boundary = rows[-1][0]  # the query is ordered by ts
        rows = [r for r in rows if r[0] < boundary]
    quality = QUALITY.get
    body = orjson.dumps([
        {"ts": ts, "energy_type": energy_type, "flow": flow, "quantity": quantity,
         "quantity_unit": unit, "value": value,
         "quality": None if q is None else quality(q), "estimated": estimated,
         "kgce": kgce, "co2_kg": co2, "readings": readings}
        for ts, energy_type, flow, quantity, unit, value, q, estimated, kgce, co2, readings
        in rows])
    return body, len(rows), boundary


def history_csv(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any],
                *, chunk_bytes: int = 256 * 1024) -> Iterator[bytes]:
    """CSV (with header) of ``query`` through COPY TO STDOUT, in chunks of ``chunk_bytes``
    (PostgreSQL sends one message per row)."""
    statement = sql.SQL("""
        COPY (SELECT to_json(h.ts) #>> '{{}}' AS ts, h.energy_type, h.flow, h.quantity,
                     h.quantity_unit, h.value, {quality} AS quality, h.estimated, h.kgce,
                     h.co2_kg, h.readings
              FROM ({q}) h) TO STDOUT WITH (FORMAT csv, HEADER true)""").format(
        q=query, quality=_QUALITY_TEXT)
    buffer = bytearray()
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        for block in copy:
            buffer += block
            if len(buffer) >= chunk_bytes:
                yield bytes(buffer)
                buffer.clear()
    yield bytes(buffer)


def history_stream(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any],
                   *, itersize: int = 5000) -> Iterator[tuple[Any, ...]]:
    """Rows through a server-side cursor (constant memory, any size)."""
    with conn.cursor(name="energymon_history") as cur:
        cur.itersize = itersize
        cur.execute(query, params)
        yield from cur


def count_bounded(conn: psycopg.Connection, query: sql.Composed, params: dict[str, Any],
                  bound: int) -> int:
    """min(rows of ``query``, bound + 1): is it over the bound, without counting everything."""
    wrapped = sql.SQL("SELECT count(*) FROM ({q}) AS bounded").format(q=query)
    return _count(conn, wrapped, {**params, "limit": bound + 1})


def series_count(conn: psycopg.Connection, *, level: str, plant_pk: int,
                 unit_pk: int | None) -> int:
    """Distinct (energy type, unit of measure, flow) series of a unit or plant."""
    where = sql.SQL("m.plant_id = %(plant)s")
    if level == "unit":
        where = sql.SQL("m.plant_id = %(plant)s AND m.unit_id = %(unit)s")
    query = sql.SQL(
        "SELECT count(DISTINCT (m.energy_type, m.eng_unit, m.kind = 'production', "
        "m.direction)) FROM meters m WHERE {where}").format(where=where)
    return _count(conn, query, {"plant": plant_pk, "unit": unit_pk})


# -- health ------------------------------------------------------------------------------------
def schema_version(conn: psycopg.Connection) -> tuple[int | None, list[int]]:
    rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    versions = [int(r[0]) for r in rows]
    return (versions[-1] if versions else None), versions
