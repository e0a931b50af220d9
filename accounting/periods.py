"""Reporting periods on the local calendar (a day is 00:00-24:00 local, never a UTC day).

Accepted forms: ``2026-10-05`` or ``day:2026-10-05``; ``2026-10`` or ``month:2026-10``;
``2026`` or ``year:2026``; ``ytd:2026-10`` (1 January to the end of October);
``r12:2026-10`` (the twelve months ending with October 2026).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Period:
    label: str
    kind: str            # day | month | ytd | r12 | year
    start: datetime      # local midnight, tz-aware
    end: datetime        # exclusive

    @property
    def granularity(self) -> str:
        """The coarsest rollup that tiles this period exactly (month, day or hour)."""
        def at(ts: datetime, **zero: int) -> bool:
            return all(getattr(ts, k) == v for k, v in zero.items())

        midnight = {"hour": 0, "minute": 0, "second": 0, "microsecond": 0}
        if at(self.start, day=1, **midnight) and at(self.end, day=1, **midnight):
            return "month"
        if at(self.start, **midnight) and at(self.end, **midnight):
            return "day"
        return "hour"


def _month_start(year: int, month: int, tz: ZoneInfo) -> datetime:
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=tz)


def parse_period(spec: str, tz: ZoneInfo) -> Period:
    kind, _, value = spec.partition(":") if ":" in spec else ("", "", spec)
    value = value.strip()
    try:
        if kind in ("", "day") and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            d = date.fromisoformat(value)
            start = datetime(d.year, d.month, d.day, tzinfo=tz)
            end = datetime.fromordinal(d.toordinal() + 1).replace(tzinfo=tz)
            return Period(f"{value}", "day", start, end)
        if re.fullmatch(r"\d{4}-\d{2}", value):
            year, month = (int(x) for x in value.split("-"))
            if not 1 <= month <= 12:
                raise ValueError
            if kind in ("", "month"):
                return Period(value, "month", _month_start(year, month, tz),
                              _month_start(year, month + 1, tz))
            if kind == "ytd":
                return Period(f"ytd:{value}", "ytd", _month_start(year, 1, tz),
                              _month_start(year, month + 1, tz))
            if kind == "r12":
                return Period(f"r12:{value}", "r12", _month_start(year, month - 11, tz),
                              _month_start(year, month + 1, tz))
        if kind in ("", "year") and re.fullmatch(r"\d{4}", value):
            year = int(value)
            return Period(value, "year", _month_start(year, 1, tz), _month_start(year + 1, 1, tz))
    except ValueError:
        pass
    raise ValueError(
        f"period {spec!r} not understood; use 2026-10-05, 2026-10, 2026, ytd:2026-10 or "
        "r12:2026-10"
    )
