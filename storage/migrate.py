"""Ordered SQL migrations, applied idempotently and recorded in ``schema_migrations``.

Files in ``storage/migrations`` are named ``NNNN_name.sql`` (for every backend) or
``NNNN_name.timescaledb.sql`` / ``NNNN_name.postgres.sql`` (one per backend, same version).
The backend is chosen once per database: TimescaleDB when the extension can be created there,
plain PostgreSQL otherwise; it is recorded in ``energymon_meta`` and never switched silently.
A file whose first line is ``-- energymon:no-transaction`` runs outside a transaction (needed
for some TimescaleDB statements); every other file runs in one transaction with its record.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import psycopg
from psycopg import sql

from storage.meta import Backend, current_backend, timescaledb_available

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 7_315_001  # pg_advisory_lock key: one migrator at a time
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+?)(?:\.(timescaledb|postgres))?\.sql$")


class MigrationError(RuntimeError):
    """A migration cannot be applied (or two share a version)."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    variant: str | None
    sql_text: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql_text.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return not self.sql_text.startswith("-- energymon:no-transaction")


def available_migrations(backend: Backend) -> list[Migration]:
    """Migrations for ``backend`` in version order (backend variant preferred)."""
    by_version: dict[int, dict[str | None, Migration]] = {}
    for entry in resources.files("storage.migrations").iterdir():
        match = _NAME.match(entry.name)
        if not match:
            continue
        version, name, variant = int(match.group(1)), match.group(2), match.group(3)
        slot = by_version.setdefault(version, {})
        clash = next((m.name for m in slot.values() if m.name != name), None)
        if clash is not None or variant in slot:
            raise MigrationError(
                f"two migrations share version {version:04d}: {clash or name!r} and {name!r}"
            )
        slot[variant] = Migration(
            version, name, variant, entry.read_text(encoding="utf-8")
        )
    chosen: list[Migration] = []
    for version in sorted(by_version):
        variants = by_version[version]
        if backend.value in variants:
            chosen.append(variants[backend.value])
        elif None in variants:
            chosen.append(variants[None])
        else:
            raise MigrationError(f"migration {version:04d} has no variant for backend {backend}")
    return chosen


def _detect_backend(conn: psycopg.Connection, want: str) -> Backend:
    """Pick the backend for a fresh database; ``want`` is auto / timescaledb / postgres."""
    if want == "postgres":
        return Backend.POSTGRES
    if timescaledb_available(conn):
        try:
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            return Backend.TIMESCALEDB
        except psycopg.Error as exc:
            if want == "timescaledb":
                raise MigrationError(
                    f"TimescaleDB was requested but cannot be enabled: {exc}".strip()
                ) from exc
            log.warning("TimescaleDB is installed but cannot be enabled (%s); "
                        "using plain PostgreSQL partitioning", str(exc).strip())
            return Backend.POSTGRES
    if want == "timescaledb":
        raise MigrationError("TimescaleDB was requested but the extension is not installed "
                             "on this PostgreSQL server")
    return Backend.POSTGRES


@dataclass(frozen=True)
class MigrateResult:
    backend: Backend
    applied: list[str]
    already: int


MIN_SERVER_VERSION = 150000  # PostgreSQL 15


def migrate(
    url: str,
    *,
    backend: str = "auto",
    timezone: str = "Asia/Shanghai",
    progress: Callable[[str], None] | None = None,
) -> MigrateResult:
    """Apply pending migrations to the database at ``url``; safe to run repeatedly.

    ``timezone`` is the local calendar of rollups (days, months); it is fixed when the
    database is first migrated and recorded in ``energymon_meta`` (``calendar_timezone``).
    Migration files refer to it as ``{{calendar_tz}}``.
    """
    say = progress or (lambda _msg: None)
    with psycopg.connect(url, autocommit=True) as conn:
        server_version = conn.info.server_version
        if server_version < MIN_SERVER_VERSION:
            raise MigrationError(
                f"PostgreSQL {server_version // 10000} is too old: energymon needs PostgreSQL "
                "15 or newer"
            )
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS energymon_meta ("
                " key text PRIMARY KEY, value text NOT NULL,"
                " updated_at timestamptz NOT NULL DEFAULT now())"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, variant text,"
                " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            chosen = current_backend(conn)
            if chosen is None:
                chosen = _detect_backend(conn, backend)
                conn.execute(
                    "INSERT INTO energymon_meta (key, value) VALUES ('backend', %s)",
                    (chosen.value,),
                )
            elif backend != "auto" and backend != chosen.value:
                raise MigrationError(
                    f"this database was migrated for backend {chosen.value!r}; "
                    f"{backend!r} was requested (use a new database to switch)"
                )
            calendar_tz = _calendar_timezone(conn, timezone, say)
            done = {
                row[0]: row[1]
                for row in conn.execute("SELECT version, checksum FROM schema_migrations")
            }
            applied: list[str] = []
            for mig in available_migrations(chosen):
                label = f"{mig.version:04d}_{mig.name}"
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"migration {label} changed after it was applied to this database "
                            "(checksum differs); add a new migration instead of editing it"
                        )
                    continue
                say(f"applying {label} ({chosen.value})")
                record = (
                    "INSERT INTO schema_migrations (version, name, variant, checksum) "
                    "VALUES (%s, %s, %s, %s)"
                )
                args = (mig.version, mig.name, mig.variant, mig.checksum)
                text = mig.sql_text.replace(
                    "{{calendar_tz}}", sql.Literal(calendar_tz).as_string(conn)
                ).encode()
                try:
                    if mig.transactional:
                        with conn.transaction():
                            conn.execute(text)
                            conn.execute(record, args)
                    else:
                        conn.execute(text)
                        conn.execute(record, args)
                except psycopg.Error as exc:
                    raise MigrationError(f"migration {label} failed: {exc}") from exc
                applied.append(label)
            _maintain(conn, chosen)
            return MigrateResult(chosen, applied, len(done))
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def _calendar_timezone(conn: psycopg.Connection, wanted: str,
                       say: Callable[[str], None]) -> str:
    row = conn.execute(
        "SELECT value FROM energymon_meta WHERE key = 'calendar_timezone'").fetchone()
    if row is None:
        conn.execute("INSERT INTO energymon_meta (key, value) VALUES ('calendar_timezone', %s)",
                     (wanted,))
        return wanted
    if row[0] != wanted:
        say(f"note: this database keeps its calendar time zone {row[0]} "
            f"(requested {wanted}; rollups cannot change time zone in place)")
    return str(row[0])


def _maintain(conn: psycopg.Connection, backend: Backend) -> None:
    """Recurring upkeep done by every migrate run (partitions two years ahead)."""
    if backend is Backend.POSTGRES:
        conn.execute(
            "SELECT energymon_ensure_partitions(now() - INTERVAL '1 month', "
            "now() + INTERVAL '2 years')"
        )


def schema_status(url: str) -> dict[str, object]:
    """Backend, applied versions and pending migrations of the database at ``url``."""
    with psycopg.connect(url) as conn:
        backend = current_backend(conn)
        if backend is None:
            return {"backend": None, "applied": [], "pending": "all"}
        applied = [
            f"{v:04d}_{n}"
            for v, n in conn.execute(
                sql.SQL("SELECT version, name FROM {} ORDER BY version").format(
                    sql.Identifier("schema_migrations")
                )
            )
        ]
        pending = [
            f"{m.version:04d}_{m.name}"
            for m in available_migrations(backend)
            if f"{m.version:04d}_{m.name}" not in applied
        ]
        return {"backend": backend.value, "applied": applied, "pending": pending}
