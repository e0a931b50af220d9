"""``energymon collect --gateway FILE``: a plant's collector gateway."""

from __future__ import annotations

import argparse
import sys

from app.commands import Subparsers
from collector.config import GatewayConfigError, load_gateway
from collector.gateway import run_collector
from core.exitcodes import EXIT_CONFIG
from core.settings import Settings


def cmd_collect(settings: Settings, args: argparse.Namespace) -> int:
    try:
        gateway = load_gateway(args.gateway_file)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if settings.mqtt is None and not args.spool_only:
        print("error: ENERGYMON_MQTT_URL is not set: the collector has no broker to publish to "
              "(use --spool-only to collect into the local spool without publishing)",
              file=sys.stderr)
        return EXIT_CONFIG
    return run_collector(gateway, data_dir=settings.data_dir,
                         mqtt=None if args.spool_only else settings.mqtt)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("collect", help="run a plant's collector gateway: poll Modbus meters, "
                       "spool, publish to ENERGYMON_MQTT_URL")
    p.add_argument("--gateway", dest="gateway_file", required=True, metavar="GATEWAY_YAML",
                   help="gateway file (links, devices, spool; see collector/config.py); the "
                   "top-level --config names the settings file")
    p.add_argument("--spool-only", action="store_true",
                   help="collect into the local spool without publishing")
    p.set_defaults(handler=cmd_collect)
