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
from accounting.judge import AreaKpi, UnitResult, area_kpis, judge_units
from accounting.periods import Period
from benchmarks.catalogue import Catalogue

__all__ = ["AreaKpi", "UnitResult", "area_kpis", "unit_results"]


def unit_results(
    conn: psycopg.Connection[Any],
    period: Period,
    *,
    region: str | None = None,
    plant: str | None = None,
    catalogue: Catalogue | None = None,
    edition: int | None = None,
    now: datetime | None = None,
) -> list[UnitResult]:
    """Results for every production unit in scope (a region subtree and/or one plant)."""
    catalogue = catalogue or Catalogue.load()
    now = now or datetime.now(UTC)
    rows = queries.unit_meter_totals(conn, period.start, period.end, period.granularity,
                                     region=region, plant=plant)
    unit_ids = list(dict.fromkeys(row.unit_id for row in rows))
    declared = queries.declared_output(conn, unit_ids, period.start, period.end)
    versions = queries.factor_versions(conn)
    return judge_units(rows, declared, versions, catalogue, period, now=now, edition=edition)
