"""``energymon serve`` and ``energymon token``: the HTTP API and its tokens."""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, tzinfo

import psycopg

from api.server import serve
from api.tokens import TokenError, create_token, list_tokens, revoke_token
from app.commands import Subparsers
from app.commands.database import require_schema
from app.runtime import database_url
from core.contract import NaiveTimestampError, aware_datetime
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from core.settings import Settings


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    base = f"http://{args.host}:{args.port}"
    print(f"energymon API on {base}/api/v1 (docs: {base}/docs, metrics: {base}/metrics)",
          flush=True)
    return serve(settings, database_url(settings), host=args.host, port=args.port,
                 log_level="debug" if args.verbose else "info")


def parse_expiry(text: str | None, tz: tzinfo) -> datetime | None:
    """``--expires``: a date (local midnight in ``tz``) or ISO 8601 with a UTC offset."""
    if text is None:
        return None
    if len(text) == 10:
        d = date.fromisoformat(text)
        return datetime(d.year, d.month, d.day, tzinfo=tz)
    try:
        return aware_datetime(text)
    except NaiveTimestampError:
        raise ValueError("--expires needs a UTC offset, e.g. 2027-01-01T00:00:00+08:00") from None


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    with psycopg.connect(database_url(settings)) as conn:
        require_schema(conn)
        if conn.execute("SELECT to_regclass('api_tokens')").fetchone() == (None,):
            print("error: the database has no api_tokens table yet: run `energymon migrate`",
                  file=sys.stderr)
            return EXIT_FAILURE
        if args.token_command == "create":
            try:
                expires = parse_expiry(args.expires, settings.tz)
                token_id, secret = create_token(conn, name=args.name, role=args.role,
                                                plant=args.plant, region=args.region,
                                                expires_at=expires)
            except (TokenError, ValueError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_CONFIG
            scope = (f"plant {args.plant}" if args.plant else
                     f"region {args.region}" if args.region else "all plants")
            print(f"token {token_id} created: role {args.role}, scope {scope}"
                  + (f", expires {expires}" if expires else ""), file=sys.stderr)
            print("the secret is shown once; only its SHA-256 is stored:", file=sys.stderr)
            print(secret)
            return EXIT_OK
        if args.token_command == "revoke":
            if revoke_token(conn, args.id):
                print(f"token {args.id} revoked")
                return EXIT_OK
            print(f"error: no active token with id {args.id} (see `energymon token list`)",
                  file=sys.stderr)
            return EXIT_FAILURE
        tokens = list_tokens(conn)
        print(f"{'id':>4}  {'state':<8} {'role':<9} {'scope':<28} {'name':<24} "
              f"{'expires':<16} last used")
        for t in tokens:
            print(f"{t.id:>4}  {t.state:<8} {t.role:<9} {t.scope:<28} {t.name[:24]:<24} "
                  f"{f'{t.expires_at:%Y-%m-%d %H:%M}' if t.expires_at else '-':<16} "
                  f"{f'{t.last_used_at:%Y-%m-%d %H:%M}' if t.last_used_at else 'never'}")
        return EXIT_OK


def register(sub: Subparsers) -> None:
    p = sub.add_parser("serve", help="serve the HTTP API (docs at /docs; limits from the "
                       "settings' api section)")
    p.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="listen port (default 8000)")
    p.set_defaults(handler=cmd_serve)

    tok = sub.add_parser("token", help="API tokens: create, revoke, list")
    tok_sub = tok.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    p = tok_sub.add_parser("create", help="create a token and print its secret once")
    p.add_argument("--role", required=True, choices=["plant", "regulator", "auditor", "admin"])
    p.add_argument("--plant", help="plant id (role plant)")
    p.add_argument("--region", help="region code whose subtree the token sees (regulator; "
                   "optional for auditor)")
    p.add_argument("--name", required=True, help="who or what uses the token")
    p.add_argument("--expires", help="expiry: a date (local midnight) or ISO 8601 with offset")
    p.set_defaults(handler=cmd_token)
    p = tok_sub.add_parser("revoke", help="revoke a token at once")
    p.add_argument("id", type=int)
    p.set_defaults(handler=cmd_token)
    p = tok_sub.add_parser("list", help="list tokens (never their secrets)")
    p.set_defaults(handler=cmd_token)
