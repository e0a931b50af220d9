"""Intensity per production unit and its verdict against the benchmark and baseline levels.

:func:`unit_results` fetches the rollup sums, declared production and factor versions of the
units in scope (:mod:`accounting.queries`) and hands them to the pure
:func:`accounting.judge.judge_units`, where the rules are stated; :func:`area_kpis` (pure too)
aggregates the results per catalogue area.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg

from accounting import queries
from accounting.judge import AreaKpi, Evidence, UnitResult, area_kpis, judge_units
from accounting.periods import Period
from benchmarks.catalogue import Catalogue
from core.settings import VerdictSettings

__all__ = ["AreaKpi", "UnitResult", "area_kpis", "unit_results"]


def unit_results(
    conn: psycopg.Connection[Any],
    period: Period,
    *,
    region: str | None = None,
    plant: str | None = None,
    catalogue: Catalogue | None = None,
    edition: int | None = None,
    default_edition: int | None = None,
    now: datetime | None = None,
    rules: VerdictSettings | None = None,
) -> list[UnitResult]:
    """Results for every production unit in scope (a region subtree and/or one plant), with
    or without meters. The period must be whole local days (every reporting period is)."""
    if period.granularity == "hour":
        raise ValueError(f"period {period.label!r}: verdicts are on whole local days "
                         f"({period.start:%Y-%m-%d %H:%M} to {period.end:%Y-%m-%d %H:%M})")
    catalogue = catalogue or Catalogue.load()
    now = now or datetime.now(UTC)
    units = queries.units(conn, region=region, plant=plant)
    rows = queries.unit_meter_totals(conn, period.start, period.end, period.granularity,
                                     region=region, plant=plant)
    unit_ids = [u.unit_id for u in units]
    meter_ids = list(dict.fromkeys(row.meter_id for row in rows))
    evidence = Evidence(
        # declared output counts up to now: a record of a running month stands only for
        # the part of it that has passed (pro-rated, so never against partial energy)
        declared=queries.declared_output(conn, unit_ids, period.start,
                                         max(period.start, min(period.end, now))),
        versions=queries.factor_versions(conn),
        days=queries.meter_days(conn, meter_ids, period.start, period.end),
        issues=queries.conversion_issues(conn, meter_ids, period.start, period.end),
    )
    return judge_units(units, rows, evidence, catalogue, period, now=now, edition=edition,
                       default_edition=default_edition, rules=rules)
