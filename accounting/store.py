"""Recompute interval energy and rollups in the database, incrementally.

Writers of readings (ingest, backfill) queue the changed ranges with
``energymon_mark_dirty(meter_ids, from_ts, to_ts)``; :meth:`Accountant.process_dirty` takes
the queue (``FOR UPDATE SKIP LOCKED``, so several accountants can share it), recomputes the
intervals those readings touch, converts them to kgce and CO2, and refreshes the rollups:
continuous aggregates on TimescaleDB, the rollup tables on plain PostgreSQL. Both are sums of
the same ``energy_intervals`` rows, so both backends give the same numbers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from accounting.conversion import Converter, MeterFactors
from accounting.intervals import (
    LOOKAHEAD,
    IntervalResult,
    Replacement,
    Sample,
    counter_intervals,
    interval_meter_intervals,
)
from benchmarks.factors import convert_quantity
from core.contract import QualityCode
from storage.meta import Backend, calendar_timezone, current_backend

log = logging.getLogger(__name__)

# readings loaded beyond each side of a range: enough for the typical-rate estimate and the
# spike look-ahead of accounting.intervals; the outermost EDGE of them are references only
PAD_READINGS = 48
EDGE = LOOKAHEAD + 1
# a meter whose recompute failed goes back into the queue due this much later
RETRY_AFTER = timedelta(minutes=5)


@dataclass(frozen=True)
class MeterRow:
    id: int
    plant_code: str
    region_code: str
    code: str
    energy_type: str
    kind: str
    eng_unit: str
    multiplier: float
    rollover_max: Decimal | None
    interval_s: int
    rollover_step: Decimal | None = None

    @property
    def modulus(self) -> float | None:
        """The value at which the register shows 0 again: the declared maximum plus one
        register step (the step declared, else the last digit of the maximum as written:
        99 999 999 -> 1, 9 999 999 999.9 -> 0.1)."""
        if self.rollover_max is None:
            return None
        step = self.rollover_step
        if step is None:
            exponent = self.rollover_max.normalize().as_tuple().exponent
            step = Decimal(1).scaleb(min(0, int(exponent))) if isinstance(exponent, int) \
                else Decimal(1)
        return float(self.rollover_max + step)


@dataclass
class RecomputeStats:
    meters: int = 0
    readings: int = 0
    intervals: int = 0
    spikes: int = 0
    resets: int = 0
    rollovers: int = 0
    unconverted: int = 0          # intervals stored with a conversion issue (kgce or CO2 NULL)
    skipped: list[str] = field(default_factory=list)
    issues: dict[str, str] = field(default_factory=dict)   # meter -> first conversion issue
    failed: dict[int, str] = field(default_factory=dict)   # meter id -> error (re-queued)

    def add(self, other: RecomputeStats) -> None:
        for name in ("meters", "readings", "intervals", "spikes", "resets", "rollovers",
                     "unconverted"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped += other.skipped
        self.issues.update(other.issues)
        self.failed.update(other.failed)


class Accountant:
    """Turns readings into interval energy and rollups for one database."""

    def __init__(self, url: str, converter: Converter | None = None) -> None:
        self.url = url
        self.converter = converter or Converter()
        with psycopg.connect(url) as conn:
            backend = current_backend(conn)
            if backend is None:
                raise RuntimeError("the database has no energymon schema: run energymon migrate")
            self.backend: Backend = backend
            self.tz = ZoneInfo(calendar_timezone(conn))
            self.factor_set = self._factor_set(conn)
        self._meters: dict[int, MeterRow] = {}
        self._factors: dict[int, MeterFactors] = {}
        self._factor_issue: dict[int, str] = {}       # meter id -> why kgce is unknown
        self._multipliers: dict[int, list[tuple[float, float]]] = {}
        self._failing: set[int] = set()   # meters whose last recompute failed

    # -- registry ---------------------------------------------------------------------------
    def _factor_set(self, conn: psycopg.Connection) -> int:
        coal, emission = self.converter.versions
        row = conn.execute(
            "INSERT INTO factor_sets (standard_coal_version, emission_version) VALUES (%s, %s) "
            "ON CONFLICT (standard_coal_version, emission_version) DO UPDATE "
            "SET standard_coal_version = EXCLUDED.standard_coal_version RETURNING id",
            (coal, emission)).fetchone()
        conn.commit()
        assert row is not None
        return int(row[0])

    def _load_meters(self, conn: psycopg.Connection, ids: Sequence[int] | None) -> None:
        query = (
            "SELECT m.id, p.code, p.region_code, m.code, m.energy_type, m.kind, m.eng_unit, "
            "m.multiplier::float8, m.rollover_max, m.interval_s, m.rollover_step "
            "FROM meters m JOIN plants p ON p.id = m.plant_id"
        )
        rows = (conn.execute(query + " WHERE m.id = ANY(%s)", (list(ids),)) if ids is not None
                else conn.execute(query)).fetchall()
        measured: dict[tuple[str, str], list[tuple[datetime, float]]] = {}
        for plant, etype, valid_from, lhv in conn.execute(
            "SELECT p.code, c.energy_type, c.valid_from, c.lhv_kj_per_unit "
            "FROM measured_calorific_values c JOIN plants p ON p.id = c.plant_id"
        ):
            measured.setdefault((plant, etype), []).append((valid_from, lhv))
        grid: dict[str, list[tuple[int, float]]] = {}
        for plant, year, factor in conn.execute(
            "SELECT p.code, g.year, g.kgco2_per_kwh FROM plant_grid_factors g "
            "JOIN plants p ON p.id = g.plant_id"
        ):
            grid.setdefault(plant, []).append((int(year), float(factor)))
        steps: dict[int, list[tuple[float, float]]] = {}
        history = ("SELECT meter_id, extract(epoch FROM valid_from)::float8, "
                   "multiplier::float8 FROM meter_multipliers")
        order = " ORDER BY meter_id, valid_from"
        for meter_id, valid_from, multiplier in (
                conn.execute(history + " WHERE meter_id = ANY(%s)" + order, (list(ids),))
                if ids is not None else conn.execute(history + order)):
            steps.setdefault(int(meter_id), []).append((valid_from, multiplier))
        for row in rows:
            meter = MeterRow(*row)
            self._meters[meter.id] = meter
            self._multipliers[meter.id] = steps.get(meter.id, [])
            self._factors.pop(meter.id, None)
            self._factor_issue.pop(meter.id, None)
            if meter.kind in ("counter", "interval"):
                try:
                    self._factors[meter.id] = self.converter.meter_factors(
                        meter.energy_type, meter.eng_unit, meter.region_code,
                        measured.get((meter.plant_code, meter.energy_type)),
                        grid.get(meter.plant_code))
                except (ValueError, LookupError) as exc:
                    # no poison pill: the meter's intervals are stored with the reason and
                    # NULL kgce/CO2, every other meter goes on
                    self._factor_issue[meter.id] = f"kgce: {_message(exc)}"
                    log.warning("meter %s/%s: energy not converted: %s", meter.plant_code,
                                meter.code, _message(exc))

    # -- recompute --------------------------------------------------------------------------
    def recompute(self, meter_ids: Sequence[int] | None = None,
                  from_ts: datetime | None = None, to_ts: datetime | None = None,
                  progress: Callable[[int, int], None] | None = None) -> RecomputeStats:
        """Recompute intervals of ``meter_ids`` (all meters when None) whose readings fall in
        ``[from_ts, to_ts]`` (everything when None), then refresh rollups."""
        lo = from_ts or datetime(1970, 1, 1, tzinfo=UTC)
        hi = to_ts or datetime(9999, 1, 1, tzinfo=UTC)
        stats = RecomputeStats()
        with psycopg.connect(self.url) as conn:
            self._load_meters(conn, meter_ids)
            ids = list(meter_ids) if meter_ids is not None else sorted(self._meters)
            touched: tuple[datetime, datetime] | None = None
            for n, meter_id in enumerate(ids, start=1):
                done = RecomputeStats()   # counted only once its transaction commits
                try:
                    window = self._recompute_meter(conn, meter_id, lo, hi, done)
                    conn.commit()
                    stats.add(done)
                    self._failing.discard(meter_id)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    raise  # the database is gone: nothing else can be done either
                except Exception as exc:  # one meter never stops the rest
                    conn.rollback()
                    meter = self._meters.get(meter_id)
                    name = f"{meter.plant_code}/{meter.code}" if meter else str(meter_id)
                    if meter_id in self._failing:  # the traceback was logged already
                        log.warning("meter %s: recompute failed again (%s); re-queued", name,
                                    _message(exc))
                    else:
                        log.exception("meter %s: recompute failed; re-queued", name)
                        self._failing.add(meter_id)
                    stats.failed[meter_id] = f"{name}: {_message(exc)}"
                    # back in the queue, not before RETRY_AFTER: a meter that keeps failing
                    # is retried every few minutes, never in a hot loop
                    conn.execute("INSERT INTO accounting_dirty (meter_id, from_ts, to_ts, "
                                 "queued_at) VALUES (%s, %s, %s, now() + %s)",
                                 (meter_id, lo, hi, RETRY_AFTER))
                    conn.commit()
                    window = None
                if window:
                    touched = window if touched is None else (min(touched[0], window[0]),
                                                              max(touched[1], window[1]))
                if progress:
                    progress(n, len(ids))
            if touched:
                self._refresh(conn, ids, *touched)
        return stats

    def _recompute_meter(self, conn: psycopg.Connection, meter_id: int, lo: datetime,
                         hi: datetime, stats: RecomputeStats
                         ) -> tuple[datetime, datetime] | None:
        meter = self._meters.get(meter_id)
        if meter is None:
            stats.skipped.append(f"meter id {meter_id}: not in the registry")
            return None
        if meter.kind == "instantaneous":
            return None
        rows = conn.execute(
            """
            (SELECT ts, value, quality FROM readings WHERE meter_id = %(m)s AND ts < %(lo)s
             ORDER BY ts DESC LIMIT %(pad)s)
            UNION ALL
            (SELECT ts, value, quality FROM readings
             WHERE meter_id = %(m)s AND ts >= %(lo)s AND ts <= %(hi)s)
            UNION ALL
            (SELECT ts, value, quality FROM readings WHERE meter_id = %(m)s AND ts > %(hi)s
             ORDER BY ts LIMIT %(pad)s)
            ORDER BY ts
            """,
            {"m": meter_id, "lo": lo, "hi": hi, "pad": PAD_READINGS},
        ).fetchall()
        if not rows:
            return None
        samples = [Sample(ts.timestamp(), value, quality != 0,
                          missing=quality == QualityCode.MISSING)
                   for ts, value, quality in rows]
        interval_s = meter.interval_s
        multiplier: float | list[tuple[float, float]] = (
            self._multipliers.get(meter_id) or meter.multiplier)
        if meter.kind == "interval":
            result: IntervalResult = interval_meter_intervals(
                samples, interval_s=interval_s, multiplier=multiplier)
            first = samples[0].ts - interval_s
            last = samples[-1].ts
            keep_lo = math.floor(first / interval_s) * interval_s
            keep_hi = math.ceil(last / interval_s) * interval_s
        else:
            replacements = [
                Replacement(ts.timestamp(), old, new) for ts, old, new in conn.execute(
                    "SELECT ts, old_final, new_initial FROM meter_replacements "
                    "WHERE meter_id = %s ORDER BY ts", (meter_id,))
            ]
            result = counter_intervals(samples, interval_s=interval_s,
                                       modulus=meter.modulus,
                                       multiplier=multiplier, replacements=replacements)
            # Rewrite only the intervals the queued readings can change: pairs up to EDGE
            # readings around the range (a spike decision looks LOOKAHEAD readings ahead).
            # The rest of the padding is context; PAD_READINGS >= 2 * EDGE keeps the
            # rewritten pairs judged with EDGE readings of context on both sides.
            before = sum(1 for x in samples if x.ts < lo.timestamp())
            after = sum(1 for x in samples if x.ts > hi.timestamp())
            first = samples[max(before - EDGE, 0)].ts
            last = samples[len(samples) - 1 - max(after - EDGE, 0)].ts
            keep_lo = math.ceil(first / interval_s) * interval_s
            keep_hi = math.floor(last / interval_s) * interval_s
        w_lo = datetime.fromtimestamp(keep_lo, UTC)
        w_hi = datetime.fromtimestamp(keep_hi, UTC)
        if w_hi <= w_lo:
            return None
        factors = self._factors.get(meter_id)
        factor_issue = self._factor_issue.get(meter_id)
        kwh_per_unit = 1.0
        if factors is not None and factors.electricity:
            kwh_per_unit = float(convert_quantity(1, meter.eng_unit, "kWh"))
        conn.execute("DELETE FROM energy_intervals WHERE meter_id = %s AND ts >= %s AND ts < %s",
                     (meter_id, w_lo, w_hi))
        written = 0
        with conn.cursor().copy(
            "COPY energy_intervals (meter_id, ts, quantity, estimated, kgce, co2_kg, readings, "
            "factor_set, conversion_issue) FROM STDIN"
        ) as copy:
            for item in result.intervals:
                if not keep_lo <= item.start < keep_hi:
                    continue
                start = datetime.fromtimestamp(item.start, UTC)
                kgce = co2 = None
                issue = factor_issue
                per_unit = factors.kgce_per_unit(item.start) if factors is not None else None
                if factors is not None and per_unit is None:
                    since = datetime.fromtimestamp(factors.kgce_steps[0][0], self.tz)
                    issue = (f"kgce: no measured calorific value of {meter.energy_type} in "
                             f"force yet (the first is valid from {since:%Y-%m-%d %H:%M})")
                elif factors is not None and per_unit is not None:
                    kgce = item.quantity * per_unit
                    year = start.astimezone(self.tz).year
                    try:
                        co2 = self.converter.co2_kg(factors, item.quantity, kgce, year,
                                                    kwh_per_unit)
                    except (ValueError, LookupError) as exc:
                        issue = f"co2: {_message(exc)}"
                if issue is not None:
                    stats.unconverted += 1
                    stats.issues.setdefault(f"{meter.plant_code}/{meter.code}", issue)
                copy.write_row((meter_id, start, item.quantity, item.estimated, kgce, co2,
                                item.readings, self.factor_set, issue))
                written += 1
        stats.meters += 1
        stats.readings += len(samples)
        stats.intervals += written
        stats.spikes += len(result.spikes)
        stats.resets += len(result.resets)
        stats.rollovers += result.rollovers
        return w_lo, w_hi

    def _refresh(self, conn: psycopg.Connection, meter_ids: list[int], lo: datetime,
                 hi: datetime) -> None:
        if self.backend is Backend.POSTGRES:
            conn.execute("SELECT energymon_refresh_rollups(%s, %s, %s)", (meter_ids, lo, hi))
            conn.commit()
            return
        # continuous aggregates: refresh whole local months around the window, outside any
        # transaction block (TimescaleDB requires it)
        local_lo = lo.astimezone(self.tz).replace(day=1, hour=0, minute=0, second=0,
                                                  microsecond=0)
        local_hi = hi.astimezone(self.tz)
        nxt = (local_hi.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
               + timedelta(days=32)).replace(day=1)
        conn.commit()
        conn.autocommit = True
        try:
            for view in ("energy_by_meter_hour", "energy_by_meter_day", "energy_by_meter_month"):
                # the procedure takes the view as a regclass: its (quoted) name as a string
                name = sql.Literal(sql.Identifier(view).as_string(conn))
                conn.execute(sql.SQL("CALL refresh_continuous_aggregate({}, %s, %s)")
                             .format(name), (local_lo, nxt))
        finally:
            conn.autocommit = False

    # -- the queue --------------------------------------------------------------------------
    def process_dirty(self, limit: int = 10_000) -> RecomputeStats:
        """Recompute what writers queued; returns what was done (empty when nothing was)."""
        total = RecomputeStats()
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "DELETE FROM accounting_dirty WHERE id IN (SELECT id FROM accounting_dirty "
                "WHERE queued_at <= now() ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
                "RETURNING meter_id, from_ts, to_ts",
                (limit,)).fetchall()
            if not rows:
                return total
            merged: dict[int, tuple[datetime, datetime]] = {}
            for meter_id, lo, hi in rows:
                cur = merged.get(meter_id)
                merged[meter_id] = (lo, hi) if cur is None else (min(cur[0], lo),
                                                                max(cur[1], hi))
            # the queue rows stay deleted only if the recompute below succeeds
            try:
                by_window: dict[tuple[datetime, datetime], list[int]] = {}
                for meter_id, window in merged.items():
                    by_window.setdefault(window, []).append(meter_id)
                for (lo, hi), ids in by_window.items():
                    total.add(self.recompute(ids, lo, hi))
            except Exception:
                conn.rollback()
                raise
            conn.commit()
        return total


def _message(exc: BaseException) -> str:
    """An exception's text without the quotes ``KeyError`` puts around it."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
