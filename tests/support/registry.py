"""Registry helpers for tests (moved from ``fleet.registry``: only tests count rows)."""

from __future__ import annotations

import psycopg
from psycopg import sql


def registry_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Row counts of the registry tables."""
    counts: dict[str, int] = {}
    for table in ("regions", "plants", "production_units", "meters"):
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
        counts[table] = int(row[0]) if row else 0
    return counts
