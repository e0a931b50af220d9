"""The ``energymon`` command line: the composition root of every process.

Each subcommand (one module per command group in :mod:`app.commands`) builds what it needs
from the settings and runs; nothing is created at import time. Nothing imports ``app``.
Exit codes (:mod:`core.exitcodes`): 0 success, 1 runtime failure, 2 invalid configuration or
usage, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from app.commands import (
    Handler,
    accounting,
    api,
    broker,
    collect,
    database,
    declare,
    demo,
    ingest,
    registry,
)
from app.commands import simulate as simulate_commands
from app.devservices.embedded_pg import EmbeddedPostgresError
from app.runtime import setup_logging
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_INTERRUPTED
from core.settings import Settings, load_settings
from core.yamlfile import ConfigFileError
from storage.meta import SchemaMissing
from storage.migrate import MigrationError

# the order of `energymon --help`
_GROUPS = (database, registry, declare, collect, ingest, broker, accounting, simulate_commands,
           api, demo)
_ORDER = ("migrate", "check-config", "collect", "registry", "declare", "db", "ingest",
          "broker-config", "accounting", "verdicts", "simulate", "serve", "token", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="energymon",
        description="Online energy monitoring for key energy-using units.",
    )
    parser.add_argument("--config", metavar="FILE",
                        help="settings YAML (the ENERGYMON_* keys in lower case, with api: and "
                        "ingest: sections)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in _GROUPS:
        group.register(sub)
    # list the commands in a fixed order, whatever order the groups registered them in
    sub._choices_actions.sort(key=lambda a: _ORDER.index(a.dest))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config) if args.config else Settings()
    except (ValidationError, FileNotFoundError, ConfigFileError) as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging("DEBUG" if args.verbose else settings.log_level)
    handler: Handler = args.handler
    try:
        return handler(settings, args)
    except (EmbeddedPostgresError, MigrationError, SchemaMissing) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
