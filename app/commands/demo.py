"""``energymon demo``: the whole pipeline on embedded defaults (see :mod:`app.demo`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.commands import Subparsers
from app.demo import run_demo
from core.settings import Settings


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    serve = sys.stdin.isatty() if args.serve is None else args.serve
    return run_demo(settings, fleet_path=Path(args.fleet) if args.fleet else None,
                    days=args.days, live=args.live, serve=serve, api_port=args.api_port)


def register(sub: Subparsers) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    p.add_argument("--fleet", help="fleet file (default: the example fleet)")
    p.add_argument("--days", type=int, default=7, help="days of simulated history (default 7)")
    p.add_argument("--live", type=float, default=45,
                   help="seconds to run the live pipeline before the verdicts (default 45; "
                   "0 skips it)")
    p.add_argument("--serve", action=argparse.BooleanOptionalAction, default=None,
                   help="keep the pipeline and API running until Ctrl-C (default: when run "
                   "from a terminal)")
    p.add_argument("--api-port", type=int, default=8000,
                   help="API port (default 8000; 0 = any free port)")
    p.set_defaults(handler=cmd_demo)
