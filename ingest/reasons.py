"""Why a message or a reading was not stored as-is (``dead_letters.reason_code``)."""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    """Machine-readable reason codes written to ``dead_letters.reason_code``."""

    INVALID_JSON = "invalid_json"              # not parseable JSON (or not UTF-8)
    INVALID_SCHEMA = "invalid_schema"          # JSON, but not a batch or single-reading payload
    UNKNOWN_PLANT = "unknown_plant"            # the topic/token names no registered plant
    UNKNOWN_METER = "unknown_meter"            # the plant has no meter of that code
    # no longer written (security review M1: it told a plant that another plant has a meter
    # of that code); kept so dead letters written before it still read
    FOREIGN_METER = "foreign_meter"
    FUTURE_TIMESTAMP = "future_timestamp"      # ts further ahead of receive time than allowed
    BEFORE_INSTALLATION = "before_installation"  # ts before the meter's installed_at
    NON_FINITE = "non_finite"                  # NaN or +/- infinity
    OVERSIZED = "oversized"                    # payload bytes or reading count over the limit
    PERMANENT_DB_ERROR = "permanent_db_error"  # the database refused it for good (SQLSTATE)
    INTERNAL_ERROR = "internal_error"          # validation itself failed (a bug); raw bytes kept
