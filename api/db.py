"""The API's connection pool: every connection runs as ``energymon_api`` (row-level security
applies), every request transaction carries the principal's scope.

Connection set-up (pool ``configure`` hook): ``SET ROLE energymon_api`` and the schema
``energymon_scoped`` first on the ``search_path`` (on TimescaleDB it holds the scoped views
of relations that cannot carry policies; see migration 0020). The login role must be a
member of ``energymon_api`` (the migration grants it to the role that migrates). Superusers
and table owners bypass row-level security, which is why the role switch is essential.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from api.auth import Principal
from api.config import ApiConfig

log = logging.getLogger(__name__)

SCOPED_SCHEMA = "energymon_scoped"


class RoleMissing(RuntimeError):
    """The API role does not exist or this login may not switch to it."""


def configure_connection(conn: psycopg.Connection, role: str) -> None:
    try:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        conn.rollback()
        raise RoleMissing(
            f"cannot SET ROLE {role}: {str(exc).strip()} (run `energymon migrate`; the login "
            f"role needs membership: GRANT {role} TO <login role>)") from exc
    conn.execute("SELECT set_config('search_path', %s || ', ' || current_setting('search_path'),"
                 " false)", (SCOPED_SCHEMA,))
    conn.execute("SET extra_float_digits = 1")  # doubles rendered by PostgreSQL round-trip
    conn.commit()


def set_scope(conn: psycopg.Connection, principal: Principal, statement_timeout_ms: int,
              timezone: str) -> None:
    """Scope of the current transaction (reset at its end). Requests get it from
    ``energymon_api_authenticate``; this re-applies it after a mid-request commit."""
    scope_all, plants, write, declare = principal.settings()
    conn.execute(
        "SELECT set_config('energymon.scope_all', %s, true), "
        "set_config('energymon.scope_plants', %s, true), "
        "set_config('energymon.scope_write', %s, true), "
        "set_config('energymon.scope_declare', %s, true), "
        "set_config('energymon.actor', %s, true), "
        "set_config('statement_timeout', %s, true), set_config('TimeZone', %s, true)",
        (scope_all, plants, write, declare, principal.actor, str(statement_timeout_ms),
         timezone))


class Database:
    """The pool, opened and closed by the app's lifespan."""

    def __init__(self, url: str, config: ApiConfig) -> None:
        self.config = config
        self.url = url
        role = config.db_role
        self.pool = ConnectionPool(
            url, min_size=config.pool_min, max_size=max(config.pool_max, config.pool_min),
            open=False, name="energymon-api", timeout=config.pool_timeout,
            # prepare every statement on first use: the API sends a small fixed set, and a
            # fresh pool connection would otherwise plan each one five times first
            kwargs={"application_name": "energymon-api", "prepare_threshold": 0},
            configure=lambda conn: configure_connection(conn, role),
        )  # no check on checkout (a round trip per request); a broken connection is replaced

    def open(self, timeout: float = 30.0) -> None:
        self.pool.open(wait=False)
        # fail fast with a clear message when the role switch cannot work
        with psycopg.connect(self.url, connect_timeout=max(1, int(timeout))) as conn:
            configure_connection(conn, self.config.db_role)
        self.pool.wait(timeout)

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        with self.pool.connection(timeout=self.config.pool_timeout) as conn:
            yield conn
