"""Ingest: MQTT (and HTTP push) readings into TimescaleDB/PostgreSQL, idempotent and batched.

Public API:

- :class:`IngestPipeline` -- transport-independent validation + bounded queue + batched,
  idempotent writer; ``submit(plant_code, raw_bytes, source) -> Receipt``.
- :class:`MqttIngestWorker` -- MQTT 5 shared-subscription consumer, acknowledging after commit.
- :class:`IngestService` / :func:`run_ingest` -- the process wiring used by ``energymon ingest``.
- :class:`ReasonCode`, :class:`Receipt`, :class:`Outcome`, :class:`IngestConfig`.

Imports only ``core`` (never ``collector`` or ``simulators``).
"""

from ingest.errors import ErrorClass, classify, classify_sqlstate
from ingest.metrics import IngestMetrics
from ingest.model import Outcome, Receipt, Rejection
from ingest.pipeline import Backpressure, IngestConfig, IngestPipeline, PipelineClosed
from ingest.reasons import ReasonCode
from ingest.registry_cache import MeterEntry, RegistryCache, RegistrySnapshot

__all__ = [
    "Backpressure",
    "ErrorClass",
    "IngestConfig",
    "IngestMetrics",
    "IngestPipeline",
    "MeterEntry",
    "Outcome",
    "PipelineClosed",
    "ReasonCode",
    "Receipt",
    "RegistryCache",
    "RegistrySnapshot",
    "Rejection",
    "classify",
    "classify_sqlstate",
]


def __getattr__(name: str) -> object:
    # the transports import paho; load them only when asked for
    if name == "MqttIngestWorker":
        from ingest.mqtt import MqttIngestWorker

        return MqttIngestWorker
    if name in ("IngestService", "IngestOptions", "run_ingest"):
        from ingest import service

        return getattr(service, name)
    raise AttributeError(name)
