"""Declared data: the one writer of what a plant declares besides its readings (issue 13).

Five kinds, one function each; ``energymon declare ...`` (the CLI, table owner) and the API's
POST/PUT routes (role ``energymon_api``) both write through them:

=====================  ===========================  ===============================================
kind (log ``kind``)    function                     recompute queued (accounting_dirty)
=====================  ===========================  ===============================================
``production_record``  :func:`add_production_record`  none: verdicts read the records directly
``calorific_value``    :func:`add_calorific_value`    the plant's counter/interval meters of that
                                                      energy type, from ``valid_from`` to the next
                                                      ``valid_from`` of that (plant, type) or on
``meter_replacement``  :func:`add_meter_replacement`  the meter, one day either side of ``ts``
``meter_multiplier``   :func:`add_multiplier_change`  the meter, from ``valid_from`` to its next
                                                      change or on
``grid_factor``        :func:`set_grid_factor`        the plant's electricity meters from 1 January
                                                      of the year (local calendar) to the next year
                                                      the plant declared, or on (a plant factor
                                                      holds for later years until another one)
=====================  ===========================  ===============================================

Every write is validated first (:class:`DeclaredInputError`, whose ``field`` names the input
and whose message names the plant, unit or meter and the field; nothing is written), then done
in ONE transaction (``with conn.transaction():``, a savepoint inside the API's request
transaction): the row, one ``declared_input_log`` row (actor, time, key, old and new values)
and the recompute queue for the affected meters' intervals. A write with the key of a stored
row replaces it (action ``replace``, the old values in the log); a production record that
overlaps another record of its unit with a different period is refused
(:class:`DeclaredConflict`). An advisory transaction lock per key (the unit, the meter, the
plant and type, the plant and year) serialises concurrent declarations of the same thing.

Queueing: the owner (CLI) queues with :func:`storage.dirty.mark_dirty`; the API role cannot
write ``accounting_dirty`` and passes ``queue=queue_via_api``
(``energymon_api_queue_recompute``, which admits only meters of plants in the request's
declare scope). Open-ended ranges end at :data:`OPEN_END` rather than at the newest reading,
so a reading committed while the declaration is being written is recomputed too.

Multipliers: the multiplier in force at t is the ``meter_multipliers`` row with the greatest
``valid_from <= t``. The first change recorded for a meter also stores a base row
``valid_from = '-infinity'`` with the meter's registry multiplier (source ``registry``), so
history before the change keeps the old ratio; the database then keeps ``meters.multiplier``
at the multiplier in force now (trigger of migration 0031).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from accounting.periods import parse_period
from benchmarks.factors import KJ_PER_KGCE, EnergyFactors, default_energy_factors
from core.contract import REGISTRY_MULTIPLIER_SOURCES
from storage.dirty import mark_dirty
from storage.meta import calendar_timezone

#: the upper bound of an open-ended recompute range (every later reading)
OPEN_END = datetime(9999, 1, 1, tzinfo=UTC)
#: a replacement's recompute range: this much either side of its ts
REPLACEMENT_MARGIN = timedelta(days=1)
MAX_TEXT = 500
YEAR_MIN, YEAR_MAX = 2000, 2100            # any timestamp (monitoring data, not history)
GRID_YEARS = (2000, 2100)                  # plant_grid_factors.year
GRID_FACTOR_MAX = 2.0                      # kgCO2/kWh; real grids are about 0.1 .. 1.2
QUANTITY_MAX = 1e12          # t (or the unit's product unit) in one record
REGISTER_MAX = 1e18          # a register value
MULTIPLIER_MIN = 1e-6
MULTIPLIER_MAX = Decimal("1e9")
PLAUSIBLE = 10.0   # a measured coefficient within 1/10 .. 10 x the table's value or range
FUTURE_SLACK = timedelta(minutes=5)        # clock skew allowed for "not in the future"
PRODUCTION_PERIODS = ("day", "month", "year")
MAX_RECORD = timedelta(days=367)


class Kind(StrEnum):
    """The five kinds of declared data (``declared_input_log.kind``)."""

    PRODUCTION_RECORD = "production_record"
    CALORIFIC_VALUE = "calorific_value"
    METER_REPLACEMENT = "meter_replacement"
    METER_MULTIPLIER = "meter_multiplier"
    GRID_FACTOR = "grid_factor"


class DeclaredInputError(ValueError):
    """Declared data that cannot be stored. ``field`` names the input at fault; the message
    names the plant (unit, meter) and the field. Nothing was written."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class DeclaredNotFound(DeclaredInputError):
    """The plant or meter does not exist (or is outside the caller's scope)."""


class DeclaredConflict(DeclaredInputError):
    """The declaration conflicts with a stored one (an overlapping production record)."""


# -- records -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProductionRecord:
    plant: str
    unit: str
    period_start: datetime
    period_end: datetime              # exclusive
    quantity: float                   # in quantity_unit, the unit's product unit
    quantity_unit: str
    source: str
    entered_by: str | None            # NULL on rows stored before migration 0031
    entered_at: datetime | None


@dataclass(frozen=True)
class CalorificValue:
    plant: str
    energy_type: str
    valid_from: datetime
    lhv_kj_per_unit: float            # kJ per per_unit
    per_unit: str | None              # the GB/T 2589 row's unit (kg, m3 ...)
    kgce_per_unit: float | None       # the coefficient it gives: lhv / 29 307.6
    source: str
    entered_by: str | None
    entered_at: datetime | None


@dataclass(frozen=True)
class MeterReplacement:
    plant: str
    meter: str
    ts: datetime
    old_final: float                  # register values in eng_unit (before the multiplier)
    new_initial: float
    eng_unit: str
    note: str | None
    entered_by: str | None
    entered_at: datetime | None


@dataclass(frozen=True)
class MultiplierChange:
    plant: str
    meter: str
    valid_from: datetime | None       # None: since always (the registry's base row)
    multiplier: Decimal
    source: str
    entered_by: str
    entered_at: datetime


@dataclass(frozen=True)
class GridFactor:
    plant: str
    year: int                         # local calendar year
    kgco2_per_kwh: float
    source: str
    entered_by: str | None
    entered_at: datetime | None


AnyRecord = ProductionRecord | CalorificValue | MeterReplacement | MultiplierChange | GridFactor
R = TypeVar("R", ProductionRecord, CalorificValue, MeterReplacement, MultiplierChange,
            GridFactor)


@dataclass(frozen=True)
class QueuedRange:
    """A range of a meter's readings queued for recompute."""

    meter: str
    meter_id: int
    start: datetime
    end: datetime | None              # None: open-ended (every later reading)


@dataclass(frozen=True)
class Declared(Generic[R]):
    """What a write did: inserted or replaced ``record`` (``old``: the replaced one) and
    queued ``queued`` for recompute, in one transaction."""

    kind: Kind
    action: Literal["insert", "replace"]
    record: R
    old: R | None
    queued: tuple[QueuedRange, ...]


def as_dict(record: AnyRecord) -> dict[str, Any]:
    """A record's fields as JSON values (ISO 8601 times, numbers as floats)."""
    return {f.name: _jsonable(getattr(record, f.name)) for f in fields(record)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


# -- the recompute queue ----------------------------------------------------------------------
RecomputeQueue = Callable[[psycopg.Connection[Any], Sequence[tuple[int, datetime, datetime]]],
                          None]

QUEUE_AS_API = "SELECT energymon_api_queue_recompute(%s, %s, %s)"


def queue_via_api(conn: psycopg.Connection[Any],
                  ranges: Iterable[tuple[int, datetime, datetime]]) -> None:
    """The recompute queue of the API role (``energymon_api_queue_recompute``, migration
    0031): the same ranges as :func:`storage.dirty.mark_dirty`, refused whole unless every
    meter is of a plant in the request's scope with declare on."""
    rows = list(ranges)
    if rows:
        conn.execute(QUEUE_AS_API, ([r[0] for r in rows], [r[1] for r in rows],
                                    [r[2] for r in rows]))


def _queue(conn: psycopg.Connection[Any], queue: RecomputeQueue,
           ranges: Sequence[QueuedRange]) -> tuple[QueuedRange, ...]:
    queue(conn, [(r.meter_id, r.start, r.end or OPEN_END) for r in ranges])
    return tuple(ranges)


# -- validation helpers -------------------------------------------------------------------------
def _where(plant: str, *, unit: str | None = None, meter: str | None = None) -> str:
    out = f"plant {plant!r}"
    if unit is not None:
        out += f" > unit {unit!r}"
    if meter is not None:
        out += f" > meter {meter!r}"
    return out


def _fail(where: str, field: str, detail: str,
          cls: type[DeclaredInputError] = DeclaredInputError) -> DeclaredInputError:
    return cls(field, f"{where} > field {field!r}: {detail}")


def _text(where: str, field: str, value: object, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise _fail(where, field, "is required")
        return None
    if not isinstance(value, str):
        raise _fail(where, field, f"must be text (got {type(value).__name__})")
    text = value.strip()
    if not text:
        if required:
            raise _fail(where, field, "must not be empty")
        return None
    if len(text) > MAX_TEXT:
        raise _fail(where, field, f"at most {MAX_TEXT} characters (got {len(text)})")
    if any(ord(c) < 32 or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        raise _fail(where, field, "control characters are not allowed")
    return text


def _required_text(where: str, field: str, value: object) -> str:
    text = _text(where, field, value)
    assert text is not None
    return text


def _instant(where: str, field: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise _fail(where, field, f"must be a timestamp with a UTC offset (got {value!r})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise _fail(where, field, f"{value.isoformat()} has no UTC offset; write e.g. "
                    f"{value.isoformat()}+08:00")
    if not YEAR_MIN <= value.year <= YEAR_MAX:
        raise _fail(where, field, f"year {value.year} is outside {YEAR_MIN}..{YEAR_MAX}")
    return value


def _not_future(where: str, field: str, value: datetime, now: datetime, what: str) -> None:
    if value > now + FUTURE_SLACK:
        raise _fail(where, field, f"{value.isoformat()} is in the future (now "
                    f"{now.astimezone(value.tzinfo).isoformat(timespec='seconds')}); {what}")


def _number(where: str, field: str, value: object, *, minimum: float | None = None,
            exclusive: bool = False, below: float | None = None, unit: str = "") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise _fail(where, field, f"must be a number (got {value!r})")
    try:
        number = float(value)
    except ValueError:
        raise _fail(where, field, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise _fail(where, field, f"must be a finite number (got {value})")
    suffix = f" {unit}" if unit else ""
    if minimum is not None:
        if exclusive and number <= minimum:
            raise _fail(where, field, f"must be > {minimum:g}{suffix} (got {number:g})")
        if not exclusive and number < minimum:
            raise _fail(where, field, f"must be >= {minimum:g}{suffix}, not negative (got "
                        f"{number:g})")
    if below is not None and number >= below:
        raise _fail(where, field, f"must be below {below:g}{suffix} (got {number:g})")
    return number


def _norm(unit: str) -> str:
    return unit.strip().lower().replace("-", "_").replace(" ", "_")


# -- lookups --------------------------------------------------------------------------------------
def _plant_id(conn: psycopg.Connection[Any], plant: str) -> int:
    row = conn.execute("SELECT id FROM plants WHERE code = %s", (plant,)).fetchone()
    if row is None:
        raise DeclaredNotFound("plant", f"plant {plant!r}: no such plant (or not in this "
                               "scope)")
    return int(row[0])


@dataclass(frozen=True)
class _Meter:
    id: int
    code: str
    kind: str
    energy_type: str
    eng_unit: str
    multiplier: Decimal
    rollover_max: Decimal | None


def _meter(conn: psycopg.Connection[Any], plant_id: int, plant: str, meter: str) -> _Meter:
    row = conn.execute(
        "SELECT id, code, kind, energy_type, eng_unit, multiplier, rollover_max FROM meters "
        "WHERE plant_id = %s AND code = %s", (plant_id, meter)).fetchone()
    if row is None:
        raise _fail(_where(plant), "meter", f"no meter {meter!r} in this plant",
                    DeclaredNotFound)
    return _Meter(int(row[0]), row[1], row[2], row[3], row[4], Decimal(row[5]),
                  None if row[6] is None else Decimal(row[6]))


def _lock(conn: psycopg.Connection[Any], kind: Kind, key: str) -> None:
    """Serialise declarations of the same thing until the transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                 (f"energymon.declared.{kind.value}:{key}",))


def _log(conn: psycopg.Connection[Any], *, actor: str, plant_id: int, kind: Kind,
         action: str, key: dict[str, Any], old: dict[str, Any] | None,
         new: dict[str, Any]) -> None:
    conn.execute(
        "INSERT INTO declared_input_log (actor, plant_id, kind, action, key, old, new) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (actor, plant_id, kind.value, action, Jsonb(_jsonable(key)),
         None if old is None else Jsonb(_jsonable(old)), Jsonb(_jsonable(new))))


def _calendar(conn: psycopg.Connection[Any]) -> ZoneInfo:
    return ZoneInfo(calendar_timezone(conn))


def _meters_of(conn: psycopg.Connection[Any], plant_id: int, *,
               energy_type: str | None = None, electricity: bool = False
               ) -> list[tuple[int, str]]:
    """(id, code) of the plant's counter and interval meters (the ones with energy) of
    ``energy_type``, or of every electricity type."""
    rows = conn.execute(
        "SELECT id, code FROM meters WHERE plant_id = %(plant)s "
        "AND kind IN ('counter', 'interval') "
        "AND (%(type)s::text IS NULL OR energy_type = %(type)s) "
        "AND (NOT %(electricity)s OR energy_type LIKE 'electricity%%') ORDER BY code",
        {"plant": plant_id, "type": energy_type, "electricity": electricity})
    return [(int(i), str(c)) for i, c in rows]


# -- 1. production records ------------------------------------------------------------------------
def _record_period(conn: psycopg.Connection[Any], where: str, start: object, end: object,
                   period: str | None, now: datetime) -> tuple[datetime, datetime, str]:
    """(start, end, the field naming the period) from a period spec or two instants."""
    if period is not None:
        if start is not None or end is not None:
            raise _fail(where, "period", "give either period or period_start and period_end, "
                        "not both")
        spec = _required_text(where, "period", period)
        try:
            parsed = parse_period(spec, _calendar(conn))
        except ValueError as exc:
            raise _fail(where, "period", str(exc)) from None
        if parsed.kind not in PRODUCTION_PERIODS:
            raise _fail(where, "period", f"{spec!r} is a reporting window ({parsed.kind}); a "
                        "production record covers a day (2026-11-05), a month (2026-11) or a "
                        "year (2026), or give period_start and period_end")
        lo, hi, field = parsed.start, parsed.end, "period"
        if not YEAR_MIN <= lo.year <= YEAR_MAX:
            raise _fail(where, "period", f"year {lo.year} is outside {YEAR_MIN}..{YEAR_MAX}")
    else:
        if start is None:
            raise _fail(where, "period_start", "is required (or give a period such as 2026-11)")
        if end is None:
            raise _fail(where, "period_end", "is required (or give a period such as 2026-11)")
        lo = _instant(where, "period_start", start)
        hi = _instant(where, "period_end", end)
        field = "period_start"
        if hi <= lo:
            raise _fail(where, "period_end", f"{hi.isoformat()} is not after period_start "
                        f"{lo.isoformat()}")
        if hi - lo > MAX_RECORD:
            raise _fail(where, "period_end", "a production record covers at most one year; "
                        "declare one record per year (or month)")
    _not_future(where, field, lo, now, "declare production for a period that has begun")
    return lo, hi, field


def add_production_record(
    conn: psycopg.Connection[Any], *, plant: str, unit: str, start: datetime | None = None,
    end: datetime | None = None, period: str | None = None, quantity: float,
    source: str, actor: str, quantity_unit: str | None = None,
    queue: RecomputeQueue = mark_dirty, now: datetime | None = None,
) -> Declared[ProductionRecord]:
    """Declare a unit's statistical output over ``[start, end)`` (aware instants) or over a
    ``period`` on the database's local calendar (``2026-11-05``, ``2026-11``, ``2026``), in
    the unit's product unit (``quantity_unit``, when given, must be that unit).

    A record overlapping another record of the unit is refused (:class:`DeclaredConflict`)
    unless it has exactly the same period: then it replaces it (old values to the log).

    No recompute is queued: interval energy does not depend on declared output, and verdicts
    read the records directly when they judge a period (``queue`` is accepted for a uniform
    signature and not called).
    """
    del queue  # nothing to recompute (see above)
    now = now or datetime.now(UTC)
    where = _where(plant, unit=unit)
    who = _required_text(where, "actor", actor)
    amount = _number(where, "quantity", quantity, minimum=0, below=QUANTITY_MAX)
    src = _required_text(where, "source", source)
    given_unit = _text(where, "quantity_unit", quantity_unit, required=False)
    kind = Kind.PRODUCTION_RECORD
    with conn.transaction():
        plant_id = _plant_id(conn, plant)
        row = conn.execute("SELECT id, product_unit FROM production_units "
                           "WHERE plant_id = %s AND code = %s", (plant_id, unit)).fetchone()
        if row is None:
            raise _fail(_where(plant), "unit", f"no production unit {unit!r} in this plant")
        unit_id, product_unit = int(row[0]), str(row[1])
        if given_unit is not None and _norm(given_unit) != _norm(product_unit):
            raise _fail(where, "quantity_unit", f"{given_unit!r} is not the unit's product unit "
                        f"{product_unit!r}; declare the quantity in {product_unit}")
        lo, hi, period_field = _record_period(conn, where, start, end, period, now)
        _lock(conn, kind, str(unit_id))
        stored = conn.execute(
            "SELECT period_start, period_end, quantity, source, entered_by, entered_at "
            "FROM production_records WHERE unit_id = %s AND period_start < %s "
            "AND period_end > %s ORDER BY period_start", (unit_id, hi, lo)).fetchall()
        same = [r for r in stored if r[0] == lo and r[1] == hi]
        for other in stored:
            if not (other[0] == lo and other[1] == hi):
                o_lo, o_hi = (t.astimezone(lo.tzinfo) for t in other[:2])
                raise _fail(where, period_field,
                            f"{lo.isoformat()} .. {hi.isoformat()} overlaps the stored record "
                            f"{o_lo.isoformat()} .. {o_hi.isoformat()} ({other[2]:.12g} "
                            f"{product_unit}); declare exactly that period to replace it, or a "
                            "period that does not overlap", DeclaredConflict)

        def record(r: Sequence[Any]) -> ProductionRecord:
            return ProductionRecord(plant, unit, r[0], r[1], float(r[2]), product_unit,
                                    str(r[3]), r[4], r[5])

        old = record(same[0]) if same else None
        if old is not None:
            written = conn.execute(
                "UPDATE production_records SET quantity = %s, source = %s, entered_by = %s, "
                "entered_at = now() WHERE unit_id = %s AND period_start = %s "
                "AND period_end = %s RETURNING period_start, period_end, quantity, source, "
                "entered_by, entered_at", (amount, src, who, unit_id, lo, hi)).fetchone()
        else:
            written = conn.execute(
                "INSERT INTO production_records (unit_id, period_start, period_end, quantity, "
                "source, entered_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING period_start, "
                "period_end, quantity, source, entered_by, entered_at",
                (unit_id, lo, hi, amount, src, who)).fetchone()
        assert written is not None
        new = record(written)
        action: Literal["insert", "replace"] = "replace" if old else "insert"
        _log(conn, actor=who, plant_id=plant_id, kind=kind, action=action,
             key={"plant": plant, "unit": unit, "period_start": lo, "period_end": hi},
             old=None if old is None else {"quantity": old.quantity, "source": old.source,
                                           "entered_by": old.entered_by,
                                           "entered_at": old.entered_at},
             new={"quantity": amount, "quantity_unit": product_unit, "source": src})
    return Declared(kind, action, new, old, ())


# -- 2. measured calorific values -------------------------------------------------------------
def _measured_types(factors: EnergyFactors) -> list[str]:
    out = []
    for key in factors.keys():
        try:
            factors.coefficient(key, 1)
        except ValueError:
            continue
        out.append(key)
    return out


def _coefficient(factors: EnergyFactors, energy_type: str, lhv: float
                 ) -> tuple[str | None, float | None]:
    """(the row's unit, kgce per unit) of a stored value; (None, None) when the table no
    longer takes it."""
    try:
        coef = factors.coefficient(energy_type, Decimal(repr(lhv)))
    except (ValueError, LookupError):
        return None, None
    return coef.unit, float(coef.kgce_per_unit)


def add_calorific_value(
    conn: psycopg.Connection[Any], *, plant: str, energy_type: str, valid_from: datetime,
    lhv_kj_per_unit: float, source: str, actor: str, queue: RecomputeQueue = mark_dirty,
    factors: EnergyFactors | None = None,
) -> Declared[CalorificValue]:
    """Declare a measured low calorific value (kJ per the GB/T 2589 row's unit: kJ/kg for
    coal and oil, kJ/m3 for gases) of ``energy_type`` at ``plant`` from ``valid_from``.

    The type must be in the table and take a measured value (electricity at the equivalent
    value and heat are converted by definition); the coefficient it gives must be plausible
    (within 1/10 .. 10 x the table's value or range). Same (plant, type, valid_from) as a
    stored value: replaces it. Queues the plant's counter and interval meters of that type
    from ``valid_from`` to the next ``valid_from`` of that (plant, type), or open-ended.
    """
    factors = factors or default_energy_factors()
    where = _where(plant)
    who = _required_text(where, "actor", actor)
    etype = _required_text(where, "energy_type", energy_type)
    if not factors.has(etype):
        raise _fail(where, "energy_type", f"unknown energy type {etype!r} (not in the GB/T "
                    "2589-2020 table); types that take a measured value: "
                    f"{', '.join(_measured_types(factors))}")
    row = factors.get(etype)
    lhv = _number(where, "lhv_kj_per_unit", lhv_kj_per_unit, minimum=0, exclusive=True,
                  unit=f"kJ/{row.unit}")
    try:
        coefficient = factors.coefficient(etype, Decimal(repr(lhv)))
    except ValueError as exc:
        raise _fail(where, "energy_type", str(exc)) from None
    kgce = float(coefficient.kgce_per_unit)
    low = row.range_low if row.range_low is not None else row.kgce_per_unit
    high = row.range_high if row.range_high is not None else row.kgce_per_unit
    lo_ok = float(low) / PLAUSIBLE if low is not None else 0.0
    hi_ok = float(high) * PLAUSIBLE if high is not None else 20.0
    if not lo_ok <= kgce <= hi_ok:
        table = ("no value" if low is None or high is None else
                 f"{low} kgce/{row.unit}" if low == high else f"{low} .. {high} kgce/{row.unit}")
        raise _fail(where, "lhv_kj_per_unit",
                    f"{lhv:g} kJ/{row.unit} gives {kgce:.4g} kgce/{row.unit}, implausible for "
                    f"{etype} (GB/T 2589: {table}); the value is in kJ per {row.unit} "
                    f"(1 kgce = {KJ_PER_KGCE} kJ)")
    since = _instant(where, "valid_from", valid_from)
    src = _required_text(where, "source", source)
    kind = Kind.CALORIFIC_VALUE
    with conn.transaction():
        plant_id = _plant_id(conn, plant)
        _lock(conn, kind, f"{plant_id}:{etype}")
        prior = conn.execute(
            "SELECT valid_from, lhv_kj_per_unit, source, entered_by, entered_at "
            "FROM measured_calorific_values WHERE plant_id = %s AND energy_type = %s "
            "AND valid_from = %s", (plant_id, etype, since)).fetchone()

        def record(r: Sequence[Any]) -> CalorificValue:
            unit, per = _coefficient(factors, etype, float(r[1]))
            return CalorificValue(plant, etype, r[0], float(r[1]), unit, per, str(r[2]),
                                  r[3], r[4])

        old = record(prior) if prior else None
        if old is not None:
            written = conn.execute(
                "UPDATE measured_calorific_values SET lhv_kj_per_unit = %s, source = %s, "
                "entered_by = %s, entered_at = now() WHERE plant_id = %s AND energy_type = %s "
                "AND valid_from = %s "
                "RETURNING valid_from, lhv_kj_per_unit, source, entered_by, entered_at",
                (lhv, src, who, plant_id, etype, since)).fetchone()
        else:
            written = conn.execute(
                "INSERT INTO measured_calorific_values (plant_id, energy_type, "
                "lhv_kj_per_unit, valid_from, source, entered_by) VALUES (%s, %s, %s, %s, %s, "
                "%s) RETURNING valid_from, lhv_kj_per_unit, source, entered_by, entered_at",
                (plant_id, etype, lhv, since, src, who)).fetchone()
        assert written is not None
        nxt = conn.execute(
            "SELECT min(valid_from) FROM measured_calorific_values WHERE plant_id = %s "
            "AND energy_type = %s AND valid_from > %s", (plant_id, etype, since)).fetchone()
        until = nxt[0] if nxt else None
        meters = _meters_of(conn, plant_id, energy_type=etype)
        queued = _queue(conn, queue, [QueuedRange(code, mid, since, until)
                                      for mid, code in meters])
        action: Literal["insert", "replace"] = "replace" if old else "insert"
        _log(conn, actor=who, plant_id=plant_id, kind=kind, action=action,
             key={"plant": plant, "energy_type": etype, "valid_from": since},
             old=None if old is None else {"lhv_kj_per_unit": old.lhv_kj_per_unit,
                                           "source": old.source, "entered_by": old.entered_by,
                                           "entered_at": old.entered_at},
             new={"lhv_kj_per_unit": lhv, "per_unit": row.unit, "kgce_per_unit": kgce,
                  "source": src})
    return Declared(kind, action, record(written), old, queued)


# -- 3. meter replacements --------------------------------------------------------------------
def add_meter_replacement(
    conn: psycopg.Connection[Any], *, plant: str, meter: str, ts: datetime, old_final: float,
    new_initial: float, actor: str, note: str | None = None,
    queue: RecomputeQueue = mark_dirty, now: datetime | None = None,
) -> Declared[MeterReplacement]:
    """Declare that a counter or production meter's register was replaced (or reset) at
    ``ts``: the old register's final value and the new one's initial value (eng_unit, before
    the multiplier), so the interval across the change is exact instead of estimated. Same
    (meter, ts): replaces it. Queues the meter one day either side of ``ts``."""
    now = now or datetime.now(UTC)
    where = _where(plant, meter=meter)
    who = _required_text(where, "actor", actor)
    at = _instant(where, "ts", ts)
    _not_future(where, "ts", at, now, "declare a replacement once it has happened")
    final = _number(where, "old_final", old_final, minimum=0, below=REGISTER_MAX)
    initial = _number(where, "new_initial", new_initial, minimum=0, below=REGISTER_MAX)
    remark = _text(where, "note", note, required=False)
    kind = Kind.METER_REPLACEMENT
    with conn.transaction():
        plant_id = _plant_id(conn, plant)
        m = _meter(conn, plant_id, plant, meter)
        if m.kind not in ("counter", "production"):
            raise _fail(where, "meter", f"is an {m.kind} meter; a replacement (old final and "
                        "new initial register values) applies to counter and production "
                        "meters only")
        if m.rollover_max is not None:
            for name, value in (("old_final", final), ("new_initial", initial)):
                if value > m.rollover_max:
                    raise _fail(where, name, f"{value:g} exceeds the meter's rollover_max "
                                f"{m.rollover_max} {m.eng_unit}")
        _lock(conn, kind, str(m.id))
        prior = conn.execute(
            "SELECT ts, old_final, new_initial, note, entered_by, entered_at "
            "FROM meter_replacements WHERE meter_id = %s AND ts = %s", (m.id, at)).fetchone()

        def record(r: Sequence[Any]) -> MeterReplacement:
            return MeterReplacement(plant, m.code, r[0], float(r[1]), float(r[2]), m.eng_unit,
                                    r[3], r[4], r[5])

        old = record(prior) if prior else None
        if old is not None:
            written = conn.execute(
                "UPDATE meter_replacements SET old_final = %s, new_initial = %s, note = %s, "
                "entered_by = %s, entered_at = now() WHERE meter_id = %s AND ts = %s "
                "RETURNING ts, old_final, new_initial, note, entered_by, entered_at",
                (final, initial, remark, who, m.id, at)).fetchone()
        else:
            written = conn.execute(
                "INSERT INTO meter_replacements (meter_id, ts, old_final, new_initial, note, "
                "entered_by) VALUES (%s, %s, %s, %s, %s, %s) "
                "RETURNING ts, old_final, new_initial, note, entered_by, entered_at",
                (m.id, at, final, initial, remark, who)).fetchone()
        assert written is not None
        queued = _queue(conn, queue, [QueuedRange(m.code, m.id, at - REPLACEMENT_MARGIN,
                                                  at + REPLACEMENT_MARGIN)])
        action: Literal["insert", "replace"] = "replace" if old else "insert"
        _log(conn, actor=who, plant_id=plant_id, kind=kind, action=action,
             key={"plant": plant, "meter": m.code, "ts": at},
             old=None if old is None else {"old_final": old.old_final,
                                           "new_initial": old.new_initial, "note": old.note,
                                           "entered_by": old.entered_by,
                                           "entered_at": old.entered_at},
             new={"old_final": final, "new_initial": initial, "eng_unit": m.eng_unit,
                  "note": remark})
    return Declared(kind, action, record(written), old, queued)


# -- 4. CT x PT multiplier changes ------------------------------------------------------------
def _multiplier(where: str, value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise _fail(where, "multiplier", f"must be a number (got {value!r})")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise _fail(where, "multiplier", f"{value!r} is not a number") from None
    if not number.is_finite():
        raise _fail(where, "multiplier", f"must be a finite number (got {value})")
    if number <= 0:
        raise _fail(where, "multiplier", f"must be > 0 (got {number}); the multiplier is the "
                    "CT ratio x PT ratio, e.g. 600/5 x 1 = 120")
    if number > MULTIPLIER_MAX:
        raise _fail(where, "multiplier", f"must be at most {MULTIPLIER_MAX:g} (got {number})")
    if number < MULTIPLIER_MIN:
        raise _fail(where, "multiplier", f"must be at least {MULTIPLIER_MIN:g} (got {number})")
    return number


def add_multiplier_change(
    conn: psycopg.Connection[Any], *, plant: str, meter: str, valid_from: datetime,
    multiplier: Decimal | float | int | str, source: str, actor: str,
    queue: RecomputeQueue = mark_dirty,
) -> Declared[MultiplierChange]:
    """Declare that ``meter``'s multiplier (CT ratio x PT ratio) is ``multiplier`` from
    ``valid_from`` on (e.g. a CT changed from 300/5 to 600/5).

    The first change of a meter also stores the base row ``valid_from = -infinity`` with the
    registry's multiplier (source ``registry``), so history before the change keeps the old
    ratio; ``meters.multiplier`` then follows the multiplier in force now (trigger).
    Same (meter, valid_from): replaces it. Queues the meter from ``valid_from`` to its next
    change, or open-ended.
    """
    where = _where(plant, meter=meter)
    who = _required_text(where, "actor", actor)
    ratio = _multiplier(where, multiplier)
    since = _instant(where, "valid_from", valid_from)
    src = _required_text(where, "source", source)
    if src.strip().lower() in REGISTRY_MULTIPLIER_SOURCES:
        raise _fail(where, "source", f"{src!r} is reserved for the registry's own rows; say "
                    "what changed (e.g. 'CT 300/5 -> 600/5, work order 1234')")
    kind = Kind.METER_MULTIPLIER
    with conn.transaction():
        plant_id = _plant_id(conn, plant)
        m = _meter(conn, plant_id, plant, meter)
        _lock(conn, kind, str(m.id))
        first = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM meter_multipliers "
                             "WHERE meter_id = %s)", (m.id,)).fetchone()
        base: Decimal | None = None
        if first and first[0]:
            base = m.multiplier
            conn.execute(
                "INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, source, "
                "entered_by) VALUES (%s, '-infinity', %s, 'registry', %s)",
                (m.id, base, who))
        prior = conn.execute(
            "SELECT valid_from, multiplier, source, entered_by, entered_at "
            "FROM meter_multipliers WHERE meter_id = %s AND valid_from = %s",
            (m.id, since)).fetchone()

        def record(r: Sequence[Any]) -> MultiplierChange:
            return MultiplierChange(plant, m.code, r[0], Decimal(r[1]), str(r[2]), str(r[3]),
                                    r[4])

        old = record(prior) if prior else None
        if old is not None:
            written = conn.execute(
                "UPDATE meter_multipliers SET multiplier = %s, source = %s, entered_by = %s, "
                "entered_at = now() WHERE meter_id = %s AND valid_from = %s "
                "RETURNING valid_from, multiplier, source, entered_by, entered_at",
                (ratio, src, who, m.id, since)).fetchone()
        else:
            written = conn.execute(
                "INSERT INTO meter_multipliers (meter_id, valid_from, multiplier, source, "
                "entered_by) VALUES (%s, %s, %s, %s, %s) "
                "RETURNING valid_from, multiplier, source, entered_by, entered_at",
                (m.id, since, ratio, src, who)).fetchone()
        assert written is not None
        nxt = conn.execute(
            "SELECT min(valid_from) FROM meter_multipliers WHERE meter_id = %s "
            "AND valid_from > %s", (m.id, since)).fetchone()
        queued = _queue(conn, queue, [QueuedRange(m.code, m.id, since,
                                                  nxt[0] if nxt else None)])
        action: Literal["insert", "replace"] = "replace" if old else "insert"
        new: dict[str, Any] = {"multiplier": ratio, "source": src}
        if base is not None:
            new["registry_base"] = {"valid_from": "-infinity", "multiplier": base}
        _log(conn, actor=who, plant_id=plant_id, kind=kind, action=action,
             key={"plant": plant, "meter": m.code, "valid_from": since},
             old=None if old is None else {"multiplier": old.multiplier, "source": old.source,
                                           "entered_by": old.entered_by,
                                           "entered_at": old.entered_at},
             new=new)
    return Declared(kind, action, record(written), old, queued)


# -- 5. plant grid factors --------------------------------------------------------------------
def set_grid_factor(
    conn: psycopg.Connection[Any], *, plant: str, year: int, kgco2_per_kwh: float,
    source: str, actor: str, queue: RecomputeQueue = mark_dirty,
) -> Declared[GridFactor]:
    """Declare (or replace) the plant's own purchased-electricity emission factor for a
    local calendar ``year`` (2000..2100), in kgCO2/kWh (= tCO2/MWh), 0 <= factor < 2.

    Accounting uses a plant's factor of the newest declared year <= an interval's year, so
    this queues the plant's electricity meters (energy type ``electricity*``) from 1 January
    of ``year`` (local calendar) to 1 January of the plant's next declared year, or
    open-ended.
    """
    where = _where(plant)
    who = _required_text(where, "actor", actor)
    if isinstance(year, bool) or not isinstance(year, int):
        raise _fail(where, "year", f"must be a whole year (got {year!r})")
    if not GRID_YEARS[0] <= year <= GRID_YEARS[1]:
        raise _fail(where, "year", f"must be within {GRID_YEARS[0]}..{GRID_YEARS[1]} (got "
                    f"{year})")
    factor = _number(where, "kgco2_per_kwh", kgco2_per_kwh, minimum=0)
    if factor >= GRID_FACTOR_MAX:
        raise _fail(where, "kgco2_per_kwh", f"must be below {GRID_FACTOR_MAX:g} kgCO2/kWh (got "
                    f"{factor:g}); grid factors are about 0.1 .. 1.2 kgCO2/kWh (= tCO2/MWh), "
                    "is the value in gCO2/kWh?")
    src = _required_text(where, "source", source)
    kind = Kind.GRID_FACTOR
    with conn.transaction():
        plant_id = _plant_id(conn, plant)
        _lock(conn, kind, f"{plant_id}:{year}")
        prior = conn.execute(
            "SELECT year, kgco2_per_kwh, source, entered_by, entered_at FROM plant_grid_factors "
            "WHERE plant_id = %s AND year = %s", (plant_id, year)).fetchone()

        def record(r: Sequence[Any]) -> GridFactor:
            return GridFactor(plant, int(r[0]), float(r[1]), str(r[2]), r[3], r[4])

        old = record(prior) if prior else None
        if old is not None:
            written = conn.execute(
                "UPDATE plant_grid_factors SET kgco2_per_kwh = %s, source = %s, "
                "entered_by = %s, entered_at = now() WHERE plant_id = %s AND year = %s "
                "RETURNING year, kgco2_per_kwh, source, entered_by, entered_at",
                (factor, src, who, plant_id, year)).fetchone()
        else:
            written = conn.execute(
                "INSERT INTO plant_grid_factors (plant_id, year, kgco2_per_kwh, source, "
                "entered_by) VALUES (%s, %s, %s, %s, %s) "
                "RETURNING year, kgco2_per_kwh, source, entered_by, entered_at",
                (plant_id, year, factor, src, who)).fetchone()
        assert written is not None
        tz = _calendar(conn)
        nxt = conn.execute("SELECT min(year) FROM plant_grid_factors WHERE plant_id = %s "
                           "AND year > %s", (plant_id, year)).fetchone()
        start = datetime(year, 1, 1, tzinfo=tz)
        until = datetime(int(nxt[0]), 1, 1, tzinfo=tz) if nxt and nxt[0] is not None else None
        meters = _meters_of(conn, plant_id, electricity=True)
        queued = _queue(conn, queue, [QueuedRange(code, mid, start, until)
                                      for mid, code in meters])
        action: Literal["insert", "replace"] = "replace" if old else "insert"
        _log(conn, actor=who, plant_id=plant_id, kind=kind, action=action,
             key={"plant": plant, "year": year},
             old=None if old is None else {"kgco2_per_kwh": old.kgco2_per_kwh,
                                           "source": old.source, "entered_by": old.entered_by,
                                           "entered_at": old.entered_at},
             new={"kgco2_per_kwh": factor, "source": src})
    return Declared(kind, action, record(written), old, queued)


# -- readers ----------------------------------------------------------------------------------
def _page(conn: psycopg.Connection[Any], query: sql.SQL, params: dict[str, Any]
          ) -> tuple[list[tuple[Any, ...]], int]:
    """One page of ``query`` (LIMIT NULL = all) and the count of all its rows."""
    rows = conn.execute(sql.SQL("{} LIMIT %(limit)s OFFSET %(offset)s").format(query),
                        params).fetchall()
    total = conn.execute(sql.SQL("SELECT count(*) FROM ({}) AS q").format(query),
                         params).fetchone()
    return rows, int(total[0]) if total else 0


def production_records(conn: psycopg.Connection[Any], plant: str, *, unit: str | None = None,
                       limit: int | None = None, offset: int = 0
                       ) -> tuple[list[ProductionRecord], int]:
    """A plant's production records (optionally of one unit) by unit and period, and their
    total count."""
    rows, total = _page(conn, sql.SQL("""
        SELECT p.code, u.code, r.period_start, r.period_end, r.quantity, u.product_unit,
               r.source, r.entered_by, r.entered_at
        FROM production_records r JOIN production_units u ON u.id = r.unit_id
        JOIN plants p ON p.id = u.plant_id
        WHERE p.code = %(plant)s AND (%(unit)s::text IS NULL OR u.code = %(unit)s)
        ORDER BY u.code, r.period_start"""),
        {"plant": plant, "unit": unit, "limit": limit, "offset": offset})
    return [ProductionRecord(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6], r[7], r[8])
            for r in rows], total


def calorific_values(conn: psycopg.Connection[Any], plant: str, *,
                     energy_type: str | None = None, limit: int | None = None, offset: int = 0,
                     factors: EnergyFactors | None = None) -> tuple[list[CalorificValue], int]:
    """A plant's measured calorific values by energy type and valid_from."""
    factors = factors or default_energy_factors()
    rows, total = _page(conn, sql.SQL("""
        SELECT p.code, c.energy_type, c.valid_from, c.lhv_kj_per_unit, c.source, c.entered_by,
               c.entered_at
        FROM measured_calorific_values c JOIN plants p ON p.id = c.plant_id
        WHERE p.code = %(plant)s AND (%(type)s::text IS NULL OR c.energy_type = %(type)s)
        ORDER BY c.energy_type, c.valid_from"""),
        {"plant": plant, "type": energy_type, "limit": limit, "offset": offset})
    out = []
    for r in rows:
        unit, per = _coefficient(factors, r[1], float(r[3]))
        out.append(CalorificValue(r[0], r[1], r[2], float(r[3]), unit, per, r[4], r[5], r[6]))
    return out, total


def meter_replacements(conn: psycopg.Connection[Any], plant: str, *, meter: str | None = None,
                       limit: int | None = None, offset: int = 0
                       ) -> tuple[list[MeterReplacement], int]:
    """A plant's declared meter replacements (optionally of one meter) by meter and ts."""
    rows, total = _page(conn, sql.SQL("""
        SELECT p.code, m.code, r.ts, r.old_final, r.new_initial, m.eng_unit, r.note,
               r.entered_by, r.entered_at
        FROM meter_replacements r JOIN meters m ON m.id = r.meter_id
        JOIN plants p ON p.id = m.plant_id
        WHERE p.code = %(plant)s AND (%(meter)s::text IS NULL OR m.code = %(meter)s)
        ORDER BY m.code, r.ts"""),
        {"plant": plant, "meter": meter, "limit": limit, "offset": offset})
    return [MeterReplacement(r[0], r[1], r[2], float(r[3]), float(r[4]), r[5], r[6], r[7],
                             r[8]) for r in rows], total


def multiplier_changes(conn: psycopg.Connection[Any], plant: str, *, meter: str | None = None,
                       limit: int | None = None, offset: int = 0
                       ) -> tuple[list[MultiplierChange], int]:
    """A plant's multiplier history (optionally of one meter) by meter and valid_from; the
    base row (since always) has ``valid_from`` None."""
    rows, total = _page(conn, sql.SQL("""
        SELECT p.code, m.code, CASE WHEN isfinite(x.valid_from) THEN x.valid_from END,
               x.multiplier, x.source, x.entered_by, x.entered_at
        FROM meter_multipliers x JOIN meters m ON m.id = x.meter_id
        JOIN plants p ON p.id = m.plant_id
        WHERE p.code = %(plant)s AND (%(meter)s::text IS NULL OR m.code = %(meter)s)
        ORDER BY m.code, x.valid_from"""),
        {"plant": plant, "meter": meter, "limit": limit, "offset": offset})
    return [MultiplierChange(r[0], r[1], r[2], Decimal(r[3]), r[4], r[5], r[6])
            for r in rows], total


def grid_factors(conn: psycopg.Connection[Any], plant: str, *, limit: int | None = None,
                 offset: int = 0) -> tuple[list[GridFactor], int]:
    """A plant's own grid factors by year."""
    rows, total = _page(conn, sql.SQL("""
        SELECT p.code, g.year, g.kgco2_per_kwh, g.source, g.entered_by, g.entered_at
        FROM plant_grid_factors g JOIN plants p ON p.id = g.plant_id
        WHERE p.code = %(plant)s ORDER BY g.year"""),
        {"plant": plant, "limit": limit, "offset": offset})
    return [GridFactor(r[0], int(r[1]), float(r[2]), r[3], r[4], r[5]) for r in rows], total


def list_declared(conn: psycopg.Connection[Any], kind: Kind | str, plant: str, *,
                  unit: str | None = None, meter: str | None = None,
                  energy_type: str | None = None, limit: int | None = None, offset: int = 0
                  ) -> tuple[Sequence[AnyRecord], int]:
    """The declared data of one kind at ``plant`` (filters: ``unit`` for production records,
    ``meter`` for replacements and multipliers, ``energy_type`` for calorific values) and the
    total count; :class:`DeclaredNotFound` for an unknown plant."""
    try:
        kind = Kind(kind)
    except ValueError:
        raise DeclaredInputError("kind", f"field 'kind': {kind!r} is not one of "
                                 f"{', '.join(k.value for k in Kind)}") from None
    _plant_id(conn, plant)
    if kind is Kind.PRODUCTION_RECORD:
        return production_records(conn, plant, unit=unit, limit=limit, offset=offset)
    if kind is Kind.CALORIFIC_VALUE:
        return calorific_values(conn, plant, energy_type=energy_type, limit=limit,
                                offset=offset)
    if kind is Kind.METER_REPLACEMENT:
        return meter_replacements(conn, plant, meter=meter, limit=limit, offset=offset)
    if kind is Kind.METER_MULTIPLIER:
        return multiplier_changes(conn, plant, meter=meter, limit=limit, offset=offset)
    return grid_factors(conn, plant, limit=limit, offset=offset)
