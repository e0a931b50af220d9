"""One ingest worker, for ``energymon ingest`` and for running ingest inside another process.

``IngestService`` = metrics endpoint + :class:`IngestPipeline` on the database +
:class:`MqttIngestWorker` on the broker. It is handed its database URL and broker; the
composition root (``app.commands.ingest``) resolves them and runs it until SIGTERM/SIGINT.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta

from core.settings import IngestSettings, MqttEndpoint
from ingest.metrics import IngestMetrics
from ingest.mqtt import READINGS_TOPICS, MqttIngestWorker
from ingest.pipeline import IngestConfig, IngestPipeline
from ingest.writer import DeadLetterLimits

log = logging.getLogger(__name__)

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
    session_expiry: int = 60
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not _GROUP.match(self.group):
            raise ValueError(f"invalid shared-subscription group {self.group!r}: use letters, "
                             "digits, '-', '_' and '.'")
        if self.client_id is not None and not self.client_id.strip():
            raise ValueError("the MQTT client id must not be empty")
        if not 1 <= self.receive_maximum <= 65_535:
            raise ValueError("receive maximum must be between 1 and 65535")

    @classmethod
    def from_settings(cls, settings: IngestSettings) -> IngestOptions:
        """Options from the ``ingest`` section of the settings (ValueError if invalid)."""
        config = IngestConfig(
            batch_size=settings.batch_size,
            flush_interval=settings.flush_interval,
            max_pending=settings.max_pending,
            future_tolerance=timedelta(seconds=settings.future_tolerance),
            dead_letters=DeadLetterLimits.from_settings(settings),
        )
        return cls(group=settings.group, client_id=settings.client_id, config=config,
                   metrics_port=settings.metrics_port, metrics_addr=settings.metrics_addr,
                   receive_maximum=settings.receive_maximum,
                   session_expiry=settings.session_expiry, drain_timeout=settings.drain_timeout)


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
