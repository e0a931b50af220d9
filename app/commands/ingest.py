"""``energymon ingest``: one MQTT -> database worker, until SIGTERM/SIGINT.

Settings come from the ``ingest`` section (``ENERGYMON_INGEST_*`` or the config file); each
flag given on the command line overrides its setting. Shutdown is graceful: unsubscribe,
commit and acknowledge what was received, disconnect.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

import psycopg

from app.commands import Subparsers
from app.runtime import database_url, redact
from core.exitcodes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from core.settings import IngestSettings, Settings
from ingest.pipeline import PipelineClosed
from ingest.service import IngestOptions, IngestService
from storage.meta import current_backend

log = logging.getLogger("energymon.ingest")

# flag (argparse dest) -> field of IngestSettings; None means "not given: use the setting"
_FLAGS = ("group", "client_id", "batch_size", "flush_interval", "max_pending",
          "future_tolerance", "metrics_port", "metrics_addr", "receive_maximum",
          "session_expiry", "drain_timeout")


def _schema_missing(url: str) -> bool | None:
    """True if the database has no energymon schema, None if it cannot be reached now."""
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return current_backend(conn) is None
    except psycopg.OperationalError as exc:
        log.warning("database not reachable yet (%s); ingest keeps trying", str(exc).strip())
        return None


def options_from_args(args: argparse.Namespace, settings: IngestSettings) -> IngestOptions:
    """The ``ingest`` settings with the flags given on the command line applied
    (ValueError or pydantic.ValidationError if invalid)."""
    given = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    merged = IngestSettings.model_validate({**settings.model_dump(), **given})
    return IngestOptions.from_settings(merged)


def run_ingest(settings: Settings, options: IngestOptions) -> int:
    """Run an ingest worker until SIGTERM/SIGINT; the exit code of ``energymon ingest``."""
    endpoint = settings.mqtt
    if endpoint is None:
        print("error: ENERGYMON_MQTT_URL is not set: ingest needs the broker to subscribe to; "
              "set it, e.g. ENERGYMON_MQTT_URL=mqtt://ingest:secret@broker.example:1883",
              file=sys.stderr)
        return EXIT_CONFIG
    url = database_url(settings)
    if _schema_missing(url):
        print(f"error: the database {redact(url)} has no energymon schema yet: "
              "run `energymon migrate` first", file=sys.stderr)
        return EXIT_CONFIG
    service = IngestService(url, endpoint, options)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: stopping ingest gracefully", signal.Signals(signum).name)
        stop.set()
        service.interrupt()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            service.start()
        except PipelineClosed:
            return EXIT_OK  # stopped while waiting for the database
        log.info("ingest running: group %r, client id %r, batch %d readings / %.3g s, "
                 "queue bound %d readings, database %s, broker %s:%d", options.group,
                 service.worker.client_id, options.config.batch_size,
                 options.config.flush_interval, options.config.max_pending, redact(url),
                 endpoint.host, endpoint.port)
        while not stop.wait(1.0):
            if not service.pipeline.running:
                log.error("the ingest writer stopped unexpectedly")
                service.stop()
                return EXIT_FAILURE
        clean = service.stop()
        log.info("ingest stopped (%s)", "everything committed and acknowledged" if clean
                 else "some messages were not committed; the broker redelivers them")
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    try:
        options = options_from_args(args, settings.ingest)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_ingest(settings, options)


def register(sub: Subparsers) -> None:
    d = IngestSettings()
    p = sub.add_parser("ingest", help="consume readings from MQTT into the database "
                       "(needs ENERGYMON_MQTT_URL; defaults from the settings' ingest section)")
    p.add_argument("--group", "--workers-group", dest="group",
                   help="MQTT 5 shared-subscription group; workers of one group split the "
                   f"stream (default: {d.group})")
    p.add_argument("--client-id", help="stable MQTT client id of this worker, unique per worker "
                   "(default: energymon-<group>-<hostname>); a restarted worker with the same id "
                   "gets its unacknowledged messages again")
    p.add_argument("--batch-size", type=int,
                   help=f"readings per database transaction (default: {d.batch_size})")
    p.add_argument("--flush-interval", type=float,
                   help="seconds a queued reading may wait for its batch "
                   f"(default: {d.flush_interval})")
    p.add_argument("--max-pending", type=int,
                   help="bound of the queue in readings; receiving waits when full "
                   f"(default: {d.max_pending})")
    p.add_argument("--future-tolerance", type=float,
                   help="seconds a reading may be ahead of its receive time "
                   f"(default: {d.future_tolerance:g})")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus metrics on this port (default: off)")
    p.add_argument("--metrics-addr",
                   help=f"address of the metrics endpoint (default: {d.metrics_addr})")
    p.add_argument("--receive-maximum", type=int,
                   help="unacknowledged messages the broker may send at once "
                   f"(default: {d.receive_maximum})")
    p.add_argument("--session-expiry", type=int,
                   help="seconds the broker keeps this worker's session and unacknowledged "
                   f"messages while it is away (default: {d.session_expiry})")
    p.add_argument("--drain-timeout", type=float,
                   help="seconds to commit what was received at shutdown "
                   f"(default: {d.drain_timeout:g})")
    p.set_defaults(handler=cmd_ingest)
