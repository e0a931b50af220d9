"""``energymon broker-config``: the Mosquitto configuration the platform needs, generated.

The same generator (:mod:`app.brokerconf`) writes the demo's and the tests' broker and the
files in ``deploy/mosquitto/``; its sizing is explained in ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.brokerconf import PROVINCE, BrokerSizing, acl_lines, config_lines
from app.commands import Subparsers
from core.exitcodes import EXIT_CONFIG, EXIT_OK
from core.settings import Settings


def cmd_broker_config(settings: Settings, args: argparse.Namespace) -> int:
    if args.acl:
        print("\n".join(acl_lines(tuple(args.platform_user or ("ingest",)))))
        return EXIT_OK
    try:
        sizing = BrokerSizing(plants=args.plants, cycle_s=args.cycle_s,
                              held_hours=args.held_hours, message_bytes=args.message_bytes,
                              loss_window_s=args.loss_window_s, max_inflight=args.max_inflight)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print("\n".join(config_lines(
        sizing, listener=args.listener, persistence_dir=args.persistence_dir,
        password_file=None if args.anonymous else args.password_file,
        acl_file=None if args.anonymous else args.acl_file)))
    return EXIT_OK


def register(sub: Subparsers) -> None:
    d = PROVINCE
    p = sub.add_parser("broker-config", help="print the Mosquitto configuration sized for a "
                       "province (or for the figures given); --acl prints its ACL file")
    p.add_argument("--acl", action="store_true", help="print the ACL file instead")
    p.add_argument("--platform-user", action="append", metavar="USER",
                   help="ACL: a user that reads readings and writes acks (default: ingest)")
    p.add_argument("--plants", type=int, default=d.plants, help="collectors publishing")
    p.add_argument("--cycle-s", type=int, default=d.cycle_s,
                   help="their publish interval, seconds")
    p.add_argument("--held-hours", type=float, default=d.held_hours,
                   help="how long one ingest session must hold all traffic")
    p.add_argument("--message-bytes", type=int, default=d.message_bytes,
                   help="a typical batch message, bytes")
    p.add_argument("--loss-window-s", type=int, default=d.loss_window_s,
                   help="autosave interval: what a broker crash may lose from its disk")
    p.add_argument("--max-inflight", type=int, default=d.max_inflight,
                   help="QoS 1 messages in flight per client")
    p.add_argument("--listener", default="1883 0.0.0.0", help="'<port> <address>'")
    p.add_argument("--persistence-dir", type=Path, default=Path("/var/lib/mosquitto"))
    p.add_argument("--password-file", type=Path, default=Path("/etc/mosquitto/passwd"))
    p.add_argument("--acl-file", type=Path, default=Path("/etc/mosquitto/energymon.acl"))
    p.add_argument("--anonymous", action="store_true",
                   help="allow anonymous clients (a local demo only)")
    p.set_defaults(handler=cmd_broker_config)
