"""Building blocks of the reading contract: identifiers, quality, timestamps and values.

The wire contract itself (the MQTT/HTTP payloads collectors, simulators and meters send and
ingest and the API accept) is :mod:`core.payload`; it is built from what is here:

- :data:`CODE_PATTERN`: plant, unit and meter identifiers (topics, fleet files, payloads);
- :class:`Quality` (the wire names good / estimated / suspect / missing) and
  :class:`QualityCode` (their ``readings.quality`` smallint codes), the one table of both;
- :func:`aware_timestamp` / :func:`aware_datetime`: timestamps carry their UTC offset;
- :func:`finite_value`: NaN and infinity are not readings.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import IntEnum, StrEnum

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


class NaiveTimestampError(ValueError):
    """ISO 8601 text without a UTC offset (raised by :func:`aware_datetime`)."""


def aware_datetime(text: str) -> datetime:
    """Parse ISO 8601 text that carries a UTC offset (``Z`` for UTC), e.g.
    ``2026-01-01T00:15:00+08:00``.

    Raises ``ValueError`` (Python's own message) when the text is not ISO 8601 and
    :class:`NaiveTimestampError` (a ``ValueError``) when it has no offset, so that callers can
    answer each case in their own words.
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveTimestampError(
            f"{text!r} has no UTC offset (e.g. 2026-01-01T00:15:00+08:00)")
    return value


def finite_value(value: float) -> float:
    """Validator: NaN and infinity are not readings."""
    if not math.isfinite(value):
        raise ValueError("value must be a finite number (NaN and infinity are rejected)")
    return value


#: ``meter_multipliers.source`` of the rows the registry writes itself (the base row of a
#: history, a fleet file's change loaded with ``energymon registry load``); any other source
#: is a declared change, which a later registry load never overrules
REGISTRY_MULTIPLIER_SOURCES = ("registry", "registry load")
