"""The Reading contract shared by collectors, ingest, the API and the simulators.

A reading is ``(plant_id, meter_id, ts, value, quality)``: ``value`` is what the meter register
means (a cumulative counter in its unit, an interval quantity or an instantaneous value), ``ts``
is timezone-aware, ``quality`` is one of good / estimated / suspect / missing.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import IntEnum, StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Identifiers used in topics and fleet files: lower-case ascii, digits, '-', '_' and '.'.
CODE_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"


class Quality(StrEnum):
    GOOD = "good"
    ESTIMATED = "estimated"
    SUSPECT = "suspect"
    MISSING = "missing"

    @property
    def code(self) -> int:
        """Compact storage code (``readings.quality`` smallint)."""
        return QualityCode[self.name].value

    @classmethod
    def from_code(cls, code: int) -> Quality:
        return cls[QualityCode(code).name]


class QualityCode(IntEnum):
    GOOD = 0
    ESTIMATED = 1
    SUSPECT = 2
    MISSING = 3


def aware_timestamp(ts: datetime) -> datetime:
    """Validator: a timestamp must carry its UTC offset."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset (e.g. 2026-01-01T00:15:00+08:00)")
    return ts


def finite_value(value: float) -> float:
    """Validator: NaN and infinity are not readings."""
    if not math.isfinite(value):
        raise ValueError("value must be a finite number (NaN and infinity are rejected)")
    return value


class Reading(BaseModel):
    """One value of one meter at one instant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    plant_id: str = Field(pattern=CODE_PATTERN)
    meter_id: str = Field(pattern=CODE_PATTERN)
    ts: datetime
    value: float
    quality: Quality = Quality.GOOD

    _aware = field_validator("ts")(aware_timestamp)
    _finite = field_validator("value")(finite_value)
