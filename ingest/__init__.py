"""Ingest: MQTT (and HTTP push) readings into TimescaleDB/PostgreSQL, idempotent and batched.

Public API:

- :class:`IngestPipeline` -- transport-independent validation + bounded queue + batched,
  idempotent writer; ``submit(plant_code, raw_bytes, source) -> Receipt``.
- :class:`MqttIngestWorker` -- MQTT 5 shared-subscription consumer, acknowledging after commit.
- :class:`IngestService` -- one worker (pipeline + MQTT consumer), run by ``energymon ingest``.
- :class:`ReasonCode`, :class:`Receipt`, :class:`Outcome`, :class:`IngestConfig`.

Imports ``core`` and ``storage`` (never ``collector`` or ``simulators``).
"""

from ingest.errors import ErrorClass, classify, classify_sqlstate
from ingest.metrics import IngestMetrics
from ingest.model import Outcome, Receipt, Rejection
from ingest.mqtt import MqttIngestWorker
from ingest.pipeline import Backpressure, IngestConfig, IngestPipeline, PipelineClosed
from ingest.reasons import ReasonCode
from ingest.registry_cache import MeterEntry, RegistryCache, RegistrySnapshot
from ingest.service import IngestOptions, IngestService

__all__ = [
    "Backpressure",
    "ErrorClass",
    "IngestConfig",
    "IngestMetrics",
    "IngestOptions",
    "IngestService",
    "MqttIngestWorker",
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
