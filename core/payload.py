"""The MQTT/HTTP reading payloads: the wire contract between plants and the platform.

Topic ``plants/{plant_id}/readings``, JSON, QoS 1. Two shapes are accepted on that topic:

Batch (one message per plant per poll cycle, from a collector gateway)::

    {"v": 1, "gateway": "gw-1", "seq": 1842, "sent_at": "2026-11-20T10:15:02+08:00",
     "readings": [{"meter": "k1-elec", "ts": "2026-11-20T10:15:00+08:00",
                   "value": 123456.7, "quality": "good"}, ...]}

Single reading (meters that publish by themselves)::

    {"meter": "k1-elec", "ts": "2026-11-20T10:15:00+08:00", "value": 123456.7}

The plant is the one named by the (authenticated) topic; a payload never names its plant.
``quality`` defaults to ``good``. ``seq`` increases by one per message of a gateway's spool;
``epoch`` names the spool (a new spool file starts a new epoch at seq 0). ``held_from`` is the
lowest seq the gateway still holds: every seq below it was acknowledged by the platform or
dropped by the spool's policy, and is never sent again. ``dropped`` is the spool's cumulative
count of readings dropped by that policy. Together they let the platform acknowledge, and
count gaps, redeliveries and drops (``ingest.streams``).

End-to-end acknowledgement: after committing, ingest publishes on
``plants/{plant_id}/acks/{gateway}`` (QoS 1, retained) the highest contiguous committed seq of
the gateway's epoch (:class:`AckPayload`); the collector deletes a batch from its spool only
when an acknowledgement of its epoch covers it. A broker's PUBACK alone is not enough: a broker
can lose what it acknowledged.
"""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.contract import CODE_PATTERN, Quality, aware_timestamp, finite_value

PAYLOAD_VERSION = 1
MAX_PAYLOAD_BYTES = 1_048_576   # larger messages are dead-lettered as 'oversized'
MAX_READINGS_PER_BATCH = 20_000
TOPIC_PATTERN = re.compile(r"^plants/([a-z0-9][a-z0-9._-]{0,63})/readings$")
MAX_EPOCH = (1 << 62) - 1


def topic_for(plant_id: str) -> str:
    return f"plants/{plant_id}/readings"


def ack_topic_for(plant_id: str, gateway: str) -> str:
    """Where ingest acknowledges a gateway's committed batches (retained, QoS 1)."""
    return f"plants/{plant_id}/acks/{gateway}"


def plant_from_topic(topic: str) -> str | None:
    """The plant id named by a readings topic, or None if the topic is not one."""
    match = TOPIC_PATTERN.match(topic)
    return match.group(1) if match else None


class WireReading(BaseModel):
    """One reading inside a payload (the plant comes from the topic)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meter: str = Field(pattern=CODE_PATTERN)
    ts: datetime
    value: float
    quality: Quality = Quality.GOOD

    _aware = field_validator("ts")(aware_timestamp)
    _finite = field_validator("value")(finite_value)


class BatchPayload(BaseModel):
    """A gateway's batch: every reading of one plant for one poll cycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = Field(default=PAYLOAD_VERSION, ge=1, le=PAYLOAD_VERSION)
    gateway: str = Field(pattern=CODE_PATTERN)
    seq: int = Field(ge=0)
    epoch: int = Field(default=0, ge=0, le=MAX_EPOCH)
    held_from: int | None = Field(default=None, ge=0)
    dropped: int | None = Field(default=None, ge=0)
    sent_at: datetime | None = None
    readings: list[WireReading] = Field(max_length=MAX_READINGS_PER_BATCH)


class AckPayload(BaseModel):
    """The platform's acknowledgement of a gateway's batches: every seq ``<= acked`` of
    ``epoch`` is committed (stored or dead-lettered) or was dropped by the gateway itself.

    Several ingest workers publish acknowledgements of one gateway, so they may arrive out of
    order: a receiver keeps the highest it has seen (a lower one is stale, never a retraction).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    v: int = PAYLOAD_VERSION
    gateway: str = Field(pattern=CODE_PATTERN)
    epoch: int = Field(ge=0, le=MAX_EPOCH)
    acked: int = Field(ge=-1)


class SingleReadingPayload(WireReading):
    """A meter that publishes its own readings, one per message."""
