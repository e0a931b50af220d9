"""``energymon check-config`` and ``energymon registry load``: fleet and gateway files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import psycopg
import yaml

from app.commands import Subparsers
from app.commands.database import require_schema
from app.runtime import database_url
from collector.config import GatewayConfigError, is_gateway_data, load_gateway
from core.exitcodes import EXIT_CONFIG, EXIT_OK
from core.settings import Settings
from fleet import Fleet, FleetError, load_fleet
from fleet.checks import conversion_warnings, cross_check
from fleet.registry import RegistryConflict, load_registry


def load_fleet_or_report(path: str) -> Fleet | None:
    """The validated, cross-checked fleet at ``path``, or None after printing every problem."""
    try:
        fleet = load_fleet(path)
    except FleetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    problems = cross_check(fleet)
    if problems:
        print(f"error: {FleetError(path, problems)}", file=sys.stderr)
        return None
    return fleet


def _is_gateway_file(path: str) -> bool:
    """A YAML mapping with a top-level ``gateway`` key is a collector gateway file. Only the
    kind of file is decided here: the loader of that kind reports what is wrong with it (a
    duplicated key included), and anything unreadable is reported by the fleet loader."""
    data: Any
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.safe_load(text)  # lenient on purpose: the strict loader reports later
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return is_gateway_data(data)


def _check_gateway(path: str) -> int:
    try:
        gw = load_gateway(path)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{path}: valid gateway {gw.id!r} for plant {gw.plant!r}: {len(gw.links)} links, "
          f"{len(gw.devices)} devices, {gw.meter_count} meters, spool "
          f"{gw.spool.capacity_readings} readings ({gw.spool.when_full})")
    return EXIT_OK


def cmd_check_config(settings: Settings, args: argparse.Namespace) -> int:
    if _is_gateway_file(args.file):
        return _check_gateway(args.file)
    fleet = load_fleet_or_report(args.file)
    if fleet is None:
        return EXIT_CONFIG
    units = sum(len(p.units) for p in fleet.plants)
    meters = sum(len(p.meters) for p in fleet.plants)
    print(f"{args.file}: valid fleet {fleet.fleet!r}: {len(fleet.regions)} regions, "
          f"{len(fleet.plants)} plants, {units} production units, {meters} meters")
    for warning in conversion_warnings(fleet):
        print(f"warning: {args.file}: {warning}", file=sys.stderr)
    return EXIT_OK


def cmd_registry_load(settings: Settings, args: argparse.Namespace) -> int:
    fleet = load_fleet_or_report(args.file)
    if fleet is None:
        return EXIT_CONFIG
    with psycopg.connect(database_url(settings)) as conn:
        require_schema(conn)
        try:
            summary = load_registry(conn, fleet)
        except RegistryConflict as exc:
            print(f"error: {args.file}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
    print(f"{args.file}: registry updated")
    for line in summary.lines():
        print(f"  {line}")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("check-config", help="validate a fleet or gateway file without writing "
                       "anything")
    p.add_argument("file")
    p.set_defaults(handler=cmd_check_config)

    reg = sub.add_parser("registry", help="plants, production units and meters")
    reg_sub = reg.add_subparsers(dest="registry_command", required=True, metavar="ACTION")
    p = reg_sub.add_parser("load", help="upsert a fleet file into the registry")
    p.add_argument("file")
    p.set_defaults(handler=cmd_registry_load)
