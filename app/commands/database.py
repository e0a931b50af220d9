"""``energymon migrate`` and ``energymon db``: the schema and the embedded PostgreSQL."""

from __future__ import annotations

import argparse
import sys

import psycopg

from app.commands import Subparsers
from app.runtime import database_url, embedded_postgres, redact
from core.exitcodes import EXIT_FAILURE, EXIT_OK
from core.settings import Settings
from storage.meta import current_backend
from storage.migrate import migrate


def require_schema(conn: psycopg.Connection) -> None:
    """Exit with a clear message when the database has no energymon schema yet."""
    if current_backend(conn) is None:
        raise SystemExit("error: the database has no energymon schema yet: "
                         "run `energymon migrate` first")


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    url = database_url(settings)
    result = migrate(url, backend=args.backend, timezone=settings.timezone, progress=print)
    print(f"database {redact(url)}: backend {result.backend.value}, "
          f"{len(result.applied)} migration(s) applied, {result.already} already present")
    return EXIT_OK


def cmd_db(settings: Settings, args: argparse.Namespace) -> int:
    if settings.database_url:
        print(f"using the configured database {redact(settings.database_url)} "
              "(ENERGYMON_DATABASE_URL); no embedded server is managed")
        return EXIT_OK
    pg = embedded_postgres(settings)
    if args.action == "start":
        print(f"embedded PostgreSQL running: {redact(pg.start())}")
    elif args.action == "stop":
        pg.stop()
        print(f"embedded PostgreSQL in {pg.datadir} stopped")
    elif args.action == "url":
        if not pg.initialised:
            print("error: the embedded PostgreSQL was never started "
                  "(run `energymon db start`)", file=sys.stderr)
            return EXIT_FAILURE
        print(pg.url())
    else:  # status
        state = "running" if pg.is_running() else ("stopped" if pg.initialised else "absent")
        print(f"embedded PostgreSQL in {pg.datadir}: {state}")
        if pg.initialised:
            print(f"  url: {redact(pg.url())}  (password in {pg.secret_file})")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("migrate", help="create or upgrade the database schema (idempotent)")
    p.add_argument("--backend", choices=["auto", "timescaledb", "postgres"], default="auto",
                   help="storage backend for a new database (default: TimescaleDB if available)")
    p.set_defaults(handler=cmd_migrate)

    p = sub.add_parser("db", help="manage the embedded PostgreSQL (when no URL is configured)")
    p.add_argument("action", choices=["status", "start", "stop", "url"], nargs="?",
                   default="status")
    p.set_defaults(handler=cmd_db)
