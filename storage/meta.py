"""What every runtime reads about a database: its storage backend and its calendar time zone.

Both are chosen once, at the first ``energymon migrate``, and kept in ``energymon_meta``.
"""

from __future__ import annotations

from enum import StrEnum

import psycopg


class SchemaMissing(RuntimeError):
    """The database has no energymon schema yet (run ``energymon migrate``)."""


class Backend(StrEnum):
    TIMESCALEDB = "timescaledb"
    POSTGRES = "postgres"


def timescaledb_available(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return row is not None


def current_backend(conn: psycopg.Connection) -> Backend | None:
    exists = conn.execute("SELECT to_regclass('energymon_meta')").fetchone()
    if not exists or exists[0] is None:
        return None
    row = conn.execute("SELECT value FROM energymon_meta WHERE key = 'backend'").fetchone()
    return Backend(row[0]) if row else None


def calendar_timezone(conn: psycopg.Connection) -> str:
    """The local calendar time zone this database's rollups use."""
    row = conn.execute(
        "SELECT value FROM energymon_meta WHERE key = 'calendar_timezone'").fetchone()
    if row is None:
        raise SchemaMissing("the database has no energymon schema: run `energymon migrate`")
    return str(row[0])
