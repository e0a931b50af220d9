"""``energymon declare``: declared data (production records, measured calorific values, meter
replacements, CT x PT multiplier changes, plant grid factors) and ``declare list``.

Written by :mod:`accounting.declared` (the same writer as the API) on the owner's connection:
the recompute it needs is queued with :func:`storage.dirty.mark_dirty`, and every write is
audited in ``declared_input_log`` with the actor ``cli:<OS user>``. Bad input exits with
``EXIT_CONFIG`` and ``error: ...`` naming the field; nothing is written then.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import date, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from accounting.declared import (
    AnyRecord,
    Declared,
    DeclaredInputError,
    Kind,
    add_calorific_value,
    add_meter_replacement,
    add_multiplier_change,
    add_production_record,
    as_dict,
    list_declared,
    set_grid_factor,
)
from app.commands import Subparsers
from app.commands.database import require_schema
from app.runtime import database_url
from core.contract import NaiveTimestampError, aware_datetime
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from core.settings import Settings
from storage.meta import calendar_timezone

# CLI names of the kinds (`declare list --kind`), in the order `declare list` prints them
KINDS: dict[str, Kind] = {
    "production": Kind.PRODUCTION_RECORD,
    "calorific-value": Kind.CALORIFIC_VALUE,
    "replacement": Kind.METER_REPLACEMENT,
    "multiplier": Kind.METER_MULTIPLIER,
    "grid-factor": Kind.GRID_FACTOR,
}


class _Usage(ValueError):
    """A command-line value that cannot be used (names the option)."""


def actor() -> str:
    """``cli:<OS user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name (e.g. a container without a passwd entry)
        user = "unknown"
    return f"cli:{user}"


def parse_instant(option: str, text: str, tz: tzinfo) -> datetime:
    """An instant: ISO 8601 with a UTC offset, or a plain date (local midnight in ``tz``)."""
    value = text.strip()
    try:
        if len(value) == 10:
            d = date.fromisoformat(value)
            return datetime(d.year, d.month, d.day, tzinfo=tz)
        return aware_datetime(value)
    except NaiveTimestampError:
        raise _Usage(f"{option}: {text!r} has no UTC offset; write e.g. {value}+08:00, or a "
                     "plain date for local midnight") from None
    except ValueError:
        raise _Usage(f"{option}: {text!r} is neither a date (2026-01-01) nor an ISO 8601 time "
                     "with offset (2026-01-01T00:00:00+08:00)") from None


def _decimal(text: str) -> Decimal:
    """argparse type of --multiplier (exact, e.g. 600/5 = 120)."""
    try:
        return Decimal(text)
    except InvalidOperation:
        raise ValueError(text) from None


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        exact = not value.second and not value.microsecond
        return value.isoformat(timespec="minutes" if exact else "seconds")
    if isinstance(value, float | Decimal):
        return f"{value:.12g}"
    return str(value)


def _local(record: AnyRecord, tz: ZoneInfo) -> dict[str, Any]:
    """A record's fields with its times on the local calendar."""
    out = {}
    for name, value in record.__dict__.items():
        out[name] = value.astimezone(tz) if isinstance(value, datetime) else value
    return out


def _local_record(record: AnyRecord, tz: ZoneInfo) -> AnyRecord:
    times: dict[str, Any] = {k: v for k, v in _local(record, tz).items()
                             if isinstance(v, datetime)}
    return replace(record, **times)


def _describe(result: Declared[Any], tz: ZoneInfo) -> list[str]:
    what = result.kind.value.replace("_", " ")
    fields = _local(result.record, tz)
    key = ", ".join(f"{k} {_fmt(v)}" for k, v in fields.items()
                    if k not in ("entered_by", "entered_at", "source", "note"))
    lines = [f"{what} {'stored' if result.action == 'insert' else 'replaced'}: {key}"]
    if result.old is not None:
        old = _local(result.old, tz)
        lines.append("  replaced: " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in old.items() if k not in ("plant",)))
    if result.kind is Kind.PRODUCTION_RECORD:
        lines.append("  no recompute needed: verdicts read production records directly")
    elif not result.queued:
        lines.append("  no meter of the plant is affected: nothing queued for recompute")
    for r in result.queued:
        until = (_fmt(r.end.astimezone(tz)) if r.end is not None
                 else "open-ended (every later reading)")
        lines.append(f"  queued for recompute: meter {r.meter} from "
                     f"{_fmt(r.start.astimezone(tz))} to {until}")
    if result.queued:
        lines.append("  (`energymon accounting` picks the queue up; `energymon accounting once` "
                     "processes it now)")
    lines.append(f"  entered by {result.record.entered_by} at "
                 f"{_fmt(result.record.entered_at.astimezone(tz))}")
    return lines


def _write(conn: psycopg.Connection, args: argparse.Namespace, tz: ZoneInfo
           ) -> Declared[Any]:
    who = actor()
    if args.declare_command == "production":
        start = parse_instant("--from", args.start, tz) if args.start else None
        end = parse_instant("--to", args.end, tz) if args.end else None
        if args.period is None and (start is None or end is None):
            raise _Usage("give --period (2026-11, 2026, 2026-11-05) or both --from and --to")
        return add_production_record(
            conn, plant=args.plant, unit=args.unit, period=args.period, start=start, end=end,
            quantity=args.quantity, quantity_unit=args.quantity_unit, source=args.source,
            actor=who)
    if args.declare_command == "calorific-value":
        return add_calorific_value(
            conn, plant=args.plant, energy_type=args.energy_type,
            valid_from=parse_instant("--valid-from", args.valid_from, tz),
            lhv_kj_per_unit=args.lhv, source=args.source, actor=who)
    if args.declare_command == "replacement":
        return add_meter_replacement(
            conn, plant=args.plant, meter=args.meter, ts=parse_instant("--at", args.at, tz),
            old_final=args.old_final, new_initial=args.new_initial, note=args.note, actor=who)
    if args.declare_command == "multiplier":
        return add_multiplier_change(
            conn, plant=args.plant, meter=args.meter,
            valid_from=parse_instant("--valid-from", args.valid_from, tz),
            multiplier=args.multiplier, source=args.source, actor=who)
    return set_grid_factor(conn, plant=args.plant, year=args.year,
                           kgco2_per_kwh=args.kgco2_per_kwh, source=args.source, actor=who)


_COLUMNS: dict[Kind, Sequence[str]] = {
    Kind.PRODUCTION_RECORD: ("unit", "period_start", "period_end", "quantity",
                             "quantity_unit", "source"),
    Kind.CALORIFIC_VALUE: ("energy_type", "valid_from", "lhv_kj_per_unit", "per_unit",
                           "kgce_per_unit", "source"),
    Kind.METER_REPLACEMENT: ("meter", "ts", "old_final", "new_initial", "eng_unit", "note"),
    Kind.METER_MULTIPLIER: ("meter", "valid_from", "multiplier", "source"),
    Kind.GRID_FACTOR: ("year", "kgco2_per_kwh", "source"),
}


def _table(kind: Kind, records: Sequence[AnyRecord], tz: ZoneInfo) -> list[str]:
    columns = [*_COLUMNS[kind], "entered_by", "entered_at"]
    rows = []
    for record in records:
        values = _local(record, tz)
        if kind is Kind.METER_MULTIPLIER and values["valid_from"] is None:
            values["valid_from"] = "since always"
        rows.append([_fmt(values[c]) for c in columns])
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    lines = [f"{kind.value.replace('_', ' ')}s: {len(records)}"]
    if records:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
        lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))
                  for r in rows]
    return lines


def _list(conn: psycopg.Connection, args: argparse.Namespace, tz: ZoneInfo) -> int:
    kinds = [KINDS[args.kind]] if args.kind else list(KINDS.values())
    found = {kind: list(list_declared(conn, kind, args.plant)[0]) for kind in kinds}
    if args.format == "json":
        print(json.dumps({"plant": args.plant,
                          **{k.value: [as_dict(_local_record(r, tz)) for r in rs]
                             for k, rs in found.items()}},
                         ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"declared data of plant {args.plant} (times on the local calendar, {tz.key})")
    for kind, records in found.items():
        for line in _table(kind, records, tz):
            print(line)
    return EXIT_OK


def cmd_declare(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(database_url(settings)) as conn:
        require_schema(conn)
        if conn.execute("SELECT to_regclass('declared_input_log')").fetchone() == (None,):
            print("error: the database has no declared_input_log table yet: run "
                  "`energymon migrate`", file=sys.stderr)
            return EXIT_FAILURE
        tz = ZoneInfo(calendar_timezone(conn))
        conn.commit()  # each write below is its own transaction
        try:
            if args.declare_command == "list":
                return _list(conn, args, tz)
            result = _write(conn, args, tz)
        except (_Usage, DeclaredInputError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    for line in _describe(result, tz):
        print(line)
    return EXIT_OK


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plant", required=True, help="plant id")
    p.set_defaults(handler=cmd_declare)


def register(sub: Subparsers) -> None:
    dec = sub.add_parser("declare", help="declared data: production, calorific values, meter "
                         "replacements, multipliers, grid factors (audited)")
    dec_sub = dec.add_subparsers(dest="declare_command", required=True, metavar="KIND")
    add: Callable[..., argparse.ArgumentParser] = dec_sub.add_parser

    p = add("production", help="a unit's statistical output over a period (no recompute: "
            "verdicts read it directly)")
    _common(p)
    p.add_argument("--unit", required=True, help="production unit id")
    p.add_argument("--period", help="local-calendar day 2026-11-05, month 2026-11 or year 2026")
    p.add_argument("--from", dest="start", metavar="TS",
                   help="instead of --period: start (ISO 8601 with offset, or a date)")
    p.add_argument("--to", dest="end", metavar="TS", help="instead of --period: end (exclusive)")
    p.add_argument("--quantity", type=float, required=True,
                   help="output in the unit's product unit (>= 0)")
    p.add_argument("--quantity-unit", help="optional check: the unit's product unit, e.g. t")
    p.add_argument("--source", required=True, help="where the figure comes from")

    p = add("calorific-value", help="a measured low calorific value from a time on (queues "
            "the plant's meters of that type)")
    _common(p)
    p.add_argument("--energy-type", required=True, help="GB/T 2589 key, e.g. coke_oven_gas")
    p.add_argument("--valid-from", required=True, metavar="TS",
                   help="ISO 8601 with offset (or a date: local midnight)")
    p.add_argument("--lhv", type=float, required=True,
                   help="kJ per the energy type's unit (kJ/kg, kJ/m3), > 0")
    p.add_argument("--source", required=True, help="laboratory report or certificate")

    p = add("replacement", help="a counter's register replaced or reset (queues the meter "
            "around it)")
    _common(p)
    p.add_argument("--meter", required=True, help="meter id (counter or production kind)")
    p.add_argument("--at", required=True, metavar="TS", help="when, ISO 8601 with offset")
    p.add_argument("--old-final", type=float, required=True,
                   help="final value of the old register (eng_unit, >= 0)")
    p.add_argument("--new-initial", type=float, required=True,
                   help="initial value of the new register (eng_unit, >= 0)")
    p.add_argument("--note", help="free text")

    p = add("multiplier", help="a CT x PT multiplier change from a time on (history keeps "
            "the old ratio; queues the meter)")
    _common(p)
    p.add_argument("--meter", required=True, help="meter id")
    p.add_argument("--valid-from", required=True, metavar="TS",
                   help="ISO 8601 with offset (or a date: local midnight)")
    p.add_argument("--multiplier", type=_decimal, required=True,
                   help="CT ratio x PT ratio (> 0), e.g. 120 for 600/5")
    p.add_argument("--source", required=True, help='e.g. "CT 300/5 → 600/5"')

    p = add("grid-factor", help="the plant's own grid emission factor for a year (queues its "
            "electricity meters)")
    _common(p)
    p.add_argument("--year", type=int, required=True, help="local calendar year, 2000..2100")
    p.add_argument("--kgco2-per-kwh", type=float, required=True,
                   help="kgCO2/kWh (= tCO2/MWh), 0 <= factor < 2")
    p.add_argument("--source", required=True, help="e.g. the provincial notice")

    p = add("list", help="show a plant's declared data")
    _common(p)
    p.add_argument("--kind", choices=list(KINDS), help="one kind only (default: all)")
    p.add_argument("--format", choices=["table", "json"], default="table")
