"""Process wiring for ``energymon ingest`` and for running ingest inside another process (demo).

``IngestService`` = metrics endpoint + :class:`IngestPipeline` on the database +
:class:`MqttIngestWorker` on the broker. ``run_ingest`` runs one until SIGTERM/SIGINT, then
shuts down gracefully: unsubscribe, commit and acknowledge what was received, disconnect.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType

import psycopg

from core.settings import MqttEndpoint, Settings
from ingest.metrics import IngestMetrics
from ingest.mqtt import READINGS_TOPICS, MqttIngestWorker
from ingest.pipeline import IngestConfig, IngestPipeline, PipelineClosed

log = logging.getLogger(__name__)

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2
_GROUP = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class IngestOptions:
    group: str = "ingest"
    client_id: str | None = None
    topics: tuple[str, ...] = READINGS_TOPICS
    config: IngestConfig = field(default_factory=IngestConfig)
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"
    receive_maximum: int = 20_000
    session_expiry: int = 3600
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _GROUP.match(self.group):
            raise ValueError(f"invalid shared-subscription group {self.group!r}: use letters, "
                             "digits, '-', '_' and '.'")
        if self.client_id is not None and not self.client_id.strip():
            raise ValueError("the MQTT client id must not be empty")
        if not 1 <= self.receive_maximum <= 65_535:
            raise ValueError("receive maximum must be between 1 and 65535")


class IngestService:
    """One ingest worker: pipeline + MQTT consumer (+ optional metrics endpoint)."""

    def __init__(self, database_url: str, endpoint: MqttEndpoint,
                 options: IngestOptions | None = None,
                 metrics: IngestMetrics | None = None) -> None:
        self.options = options or IngestOptions()
        self.metrics = metrics or IngestMetrics()
        self.pipeline = IngestPipeline.for_database(database_url, config=self.options.config,
                                                    metrics=self.metrics)
        self.worker = MqttIngestWorker(
            self.pipeline, endpoint, group=self.options.group, client_id=self.options.client_id,
            topics=self.options.topics, receive_maximum=self.options.receive_maximum,
            session_expiry=self.options.session_expiry,
        )
        self._started = False

    def start(self, registry_timeout: float | None = None) -> IngestService:
        if self.options.metrics_port is not None:
            self.metrics.serve(self.options.metrics_port, self.options.metrics_addr)
            log.info("metrics on http://%s:%d/metrics", self.options.metrics_addr,
                     self.options.metrics_port)
        self.pipeline.start(registry_timeout=registry_timeout)
        self.worker.start()
        self._started = True
        return self

    def interrupt(self) -> None:
        """Abort a ``start`` that is still waiting for the database."""
        self.pipeline.interrupt()

    def stop(self, timeout: float | None = None) -> bool:
        timeout = self.options.drain_timeout if timeout is None else timeout
        clean = True
        if self._started:
            clean = self.worker.stop(drain_timeout=timeout)
        clean = self.pipeline.close(timeout=timeout) and clean
        return clean


def _schema_missing(url: str) -> bool | None:
    """True if the database has no energymon schema, None if it cannot be reached now."""
    from core.migrate import current_backend

    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return current_backend(conn) is None
    except psycopg.OperationalError as exc:
        log.warning("database not reachable yet (%s); ingest keeps trying", str(exc).strip())
        return None


def run_ingest(settings: Settings, options: IngestOptions) -> int:
    """Run an ingest worker until SIGTERM/SIGINT; the exit code of ``energymon ingest``."""
    endpoint = settings.mqtt
    if endpoint is None:
        print("error: ENERGYMON_MQTT_URL is not set: ingest needs the broker to subscribe to; "
              "set it, e.g. ENERGYMON_MQTT_URL=mqtt://ingest:secret@broker.example:1883",
              file=sys.stderr)
        return EXIT_CONFIG
    from core.runtime import database_url, redact

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


def options_from_args(args: argparse.Namespace) -> IngestOptions:
    """Build options from the ``energymon ingest`` argparse namespace (ValueError if invalid)."""
    config = IngestConfig(
        batch_size=args.batch_size,
        flush_interval=args.flush_interval,
        max_pending=args.max_pending,
        future_tolerance=timedelta(seconds=args.future_tolerance),
    )
    return IngestOptions(
        group=args.group,
        client_id=args.client_id,
        config=config,
        metrics_port=args.metrics_port,
        metrics_addr=args.metrics_addr,
        receive_maximum=args.receive_maximum,
        session_expiry=args.session_expiry,
        drain_timeout=args.drain_timeout,
    )
