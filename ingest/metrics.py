"""Prometheus metrics of an ingest process (exposed by ``energymon ingest --metrics-port``).

Rates (readings/s, messages/s) are ``rate()`` of the counters; every metric lives in the
pipeline's own registry so several pipelines (tests, two workers in one process) never clash.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from ingest.reasons import ReasonCode

_BATCH_BUCKETS = (1, 10, 100, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "energymon_ingest_messages", "Messages received (MQTT and HTTP push)",
            ["transport"], registry=r)
        self.readings_received = Counter(
            "energymon_ingest_readings_received", "Schema- and registry-valid readings queued",
            registry=r)
        self.readings_committed = Counter(
            "energymon_ingest_readings_committed",
            "Readings newly stored in the readings table (committed)", registry=r)
        self.duplicates = Counter(
            "energymon_ingest_duplicates",
            "Readings whose (meter, ts) was already stored with the same value (absorbed)",
            registry=r)
        self.conflicts = Counter(
            "energymon_ingest_conflicts",
            "Readings whose (meter, ts) was already stored with another value "
            "(kept in reading_conflicts)", registry=r)
        self.dead_letters = Counter(
            "energymon_ingest_dead_letters", "Dead letters committed, by reason code",
            ["reason"], registry=r)
        self.batches = Counter("energymon_ingest_batches", "Batches committed", registry=r)
        self.batch_size = Histogram(
            "energymon_ingest_batch_readings", "Readings per committed batch",
            buckets=_BATCH_BUCKETS, registry=r)
        self.commit_seconds = Histogram(
            "energymon_ingest_commit_seconds", "Time to write and commit one batch",
            buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge(
            "energymon_ingest_queue_readings",
            "Readings (and dead letters) waiting for or being written", registry=r)
        self.oldest_age = Gauge(
            "energymon_ingest_oldest_unacknowledged_age_seconds",
            "How long the oldest message received and not yet committed (so not yet "
            "acknowledged) has waited; grows while the database is away", registry=r)
        self.queue_capacity = Gauge(
            "energymon_ingest_queue_capacity", "Bound of the ingest queue", registry=r)
        self.backpressure = Counter(
            "energymon_ingest_backpressure_waits",
            "Submissions that had to wait for queue space", registry=r)
        self.db_retries = Counter(
            "energymon_ingest_db_retries", "Transient database errors retried, by SQLSTATE",
            ["sqlstate"], registry=r)
        self.set_aside = Counter(
            "energymon_ingest_set_aside",
            "Messages set aside after a permanent database error", registry=r)
        self.abandoned = Counter(
            "energymon_ingest_abandoned",
            "Messages neither committed nor acknowledged at shutdown (the broker redelivers)",
            registry=r)
        self.mqtt_connected = Gauge(
            "energymon_ingest_mqtt_connected", "1 while connected to the broker", registry=r)
        self.mqtt_connects = Counter(
            "energymon_ingest_mqtt_connects", "Successful broker connections", registry=r)
        self.acks_dropped = Counter(
            "energymon_ingest_mqtt_acks_dropped",
            "Acknowledgements not sent because the connection they belong to is gone "
            "(the broker redelivers; duplicates are absorbed)", registry=r)
        self.handoff_depth = Gauge(
            "energymon_ingest_mqtt_handoff_messages",
            "Messages taken from the broker and not yet in the queue (the network thread "
            "never waits: they wait here while the queue is full)", registry=r)
        self.handoff_waits = Counter(
            "energymon_ingest_mqtt_handoff_waits",
            "Times the network thread waited for room in the hand-off queue (the broker sent "
            "more than the Receive Maximum announced)", registry=r)
        self.handoff_dropped = Counter(
            "energymon_ingest_mqtt_handoff_dropped",
            "Messages of a lost connection dropped before reaching the queue (not "
            "acknowledged: the broker redelivers them)", registry=r)
        self.redelivered_batches = Counter(
            "energymon_ingest_redelivered_batches",
            "Gateway batches whose seq was already committed (redelivery or resend)", registry=r)
        self.skipped_batches = Counter(
            "energymon_ingest_skipped_batches",
            "Gateway batches that never came because their gateway's spool dropped them "
            "(its policy when full); the readings are counted in gateway_streams", registry=r)
        self.platform_acks = Counter(
            "energymon_ingest_platform_acks",
            "End-to-end acknowledgements published to plants/{plant}/acks/{gateway}",
            registry=r)
        # pre-bound children: no label lookup on the hot path
        self.messages_mqtt = self.messages.labels("mqtt")
        self.messages_http = self.messages.labels("http")
        self.dead_by_reason = {code: self.dead_letters.labels(code.value) for code in ReasonCode}

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
