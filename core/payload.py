"""The MQTT/HTTP reading payloads: the wire contract between plants and the platform.

Topic ``plants/{plant_id}/readings``, JSON, QoS 1. Two shapes are accepted on that topic:

Batch (one message per plant per poll cycle, from a collector gateway)::

    {"v": 1, "gateway": "gw-1", "seq": 1842, "sent_at": "2026-11-20T10:15:02+08:00",
     "readings": [{"meter": "k1-elec", "ts": "2026-11-20T10:15:00+08:00",
                   "value": 123456.7, "quality": "good"}, ...]}

Single reading (meters that publish by themselves)::

    {"meter": "k1-elec", "ts": "2026-11-20T10:15:00+08:00", "value": 123456.7}

The plant is the one named by the (authenticated) topic; a payload never names its plant.
``quality`` defaults to ``good``. ``seq`` increases by one per message of a gateway (it restarts
at 0 only with a new ``gateway`` boot id), so the platform can count gaps and redeliveries.
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


def topic_for(plant_id: str) -> str:
    return f"plants/{plant_id}/readings"


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
    sent_at: datetime | None = None
    readings: list[WireReading] = Field(max_length=MAX_READINGS_PER_BATCH)


class SingleReadingPayload(WireReading):
    """A meter that publishes its own readings, one per message."""
