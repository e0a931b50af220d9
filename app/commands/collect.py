"""``energymon collect --gateway FILE``: a plant's collector gateway."""

from __future__ import annotations

import argparse
import json
import sys
import time

from app.commands import Subparsers
from collector.config import Gateway, GatewayConfigError, load_gateway, spool_path
from collector.gateway import run_collector
from collector.spool import read_stats
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from core.settings import Settings


def cmd_collect(settings: Settings, args: argparse.Namespace) -> int:
    try:
        gateway = load_gateway(args.gateway_file)
    except GatewayConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.status:
        return _status(settings, gateway, args.format)
    if settings.mqtt is None and not args.spool_only:
        print("error: ENERGYMON_MQTT_URL is not set: the collector has no broker to publish to "
              "(use --spool-only to collect into the local spool without publishing)",
              file=sys.stderr)
        return EXIT_CONFIG
    return run_collector(gateway, data_dir=settings.data_dir,
                         mqtt=None if args.spool_only else settings.mqtt)


def _status(settings: Settings, gateway: Gateway, fmt: str) -> int:
    """What the gateway's spool holds that the platform has not yet confirmed."""
    path = spool_path(gateway, settings.data_dir)
    try:
        s = read_stats(path, gateway.spool.capacity_readings)
    except FileNotFoundError as exc:
        print(f"error: {exc} (the collector of gateway {gateway.id!r} has not run here)",
              file=sys.stderr)
        return EXIT_FAILURE
    now = time.time()
    status = {
        "gateway": gateway.id, "plant": gateway.plant, "spool": str(path), "epoch": s.epoch,
        "unacknowledged_readings": s.depth, "unacknowledged_batches": s.batches,
        "capacity_readings": s.capacity,
        "oldest_unacknowledged_age_s": round(now - s.oldest_created, 1)
        if s.oldest_created else None,
        "held_from_seq": s.held_from, "next_seq": s.next_seq,
        "dropped_oldest_readings": s.dropped_oldest, "refused_new_readings": s.refused_new,
        "acknowledgement": gateway.publish.acknowledgement,
    }
    if fmt == "json":
        print(json.dumps(status, indent=2))
    else:
        width = max(len(k) for k in status)
        for key, value in status.items():
            print(f"{key.replace('_', ' '):<{width}}  {'-' if value is None else value}")
    return EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("collect", help="run a plant's collector gateway: poll Modbus meters, "
                       "spool, publish to ENERGYMON_MQTT_URL")
    p.add_argument("--gateway", dest="gateway_file", required=True, metavar="GATEWAY_YAML",
                   help="gateway file (links, devices, spool; see collector/config.py); the "
                   "top-level --config names the settings file")
    p.add_argument("--spool-only", action="store_true",
                   help="collect into the local spool without publishing")
    p.add_argument("--status", action="store_true",
                   help="print what the gateway's spool holds that the platform has not "
                   "confirmed (depth, oldest age, seqs, drops) and exit; safe while it runs")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="output of --status")
    p.set_defaults(handler=cmd_collect)
