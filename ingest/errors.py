"""Database error classification by SQLSTATE: retry what can succeed later, set aside the rest.

Transient (retried with capped backoff, the batch kept whole): connection exceptions (class 08),
serialization failures and deadlocks (40001, 40P01, 40003), insufficient resources (class 53),
operator intervention such as an administrator shutdown or a cancelled statement (57P01-57P05,
57014), lock not available (55P03), idle-session timeouts (25P03), system/IO errors (58000, 58030),
and errors without a SQLSTATE from a lost connection (``psycopg.OperationalError`` /
``InterfaceError``). Everything else (data exceptions 22, integrity violations 23, undefined
objects 42, ...) is permanent: retrying the same batch cannot succeed.
"""

from __future__ import annotations

from enum import StrEnum

import psycopg


class ErrorClass(StrEnum):
    TRANSIENT = "transient"
    PERMANENT = "permanent"


TRANSIENT_CLASSES = frozenset({"08", "53"})
TRANSIENT_STATES = frozenset({
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "40003",  # statement_completion_unknown
    "55P03",  # lock_not_available
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up / recovery)
    "57P04",  # database_dropped
    "57P05",  # idle_session_timeout
    "25P03",  # idle_in_transaction_session_timeout
    "58000",  # system_error
    "58030",  # io_error
})


def classify_sqlstate(sqlstate: str | None) -> ErrorClass:
    """Classify a SQLSTATE; ``None`` (no server answer, e.g. a lost connection) is transient."""
    if sqlstate is None:
        return ErrorClass.TRANSIENT
    if sqlstate[:2] in TRANSIENT_CLASSES or sqlstate in TRANSIENT_STATES:
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT


def classify(exc: BaseException) -> ErrorClass:
    """Classify an exception raised while writing a batch."""
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate is None:
            # no server-side error: the connection broke or could not be made
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                return ErrorClass.TRANSIENT
            return ErrorClass.PERMANENT
        return classify_sqlstate(exc.sqlstate)
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return ErrorClass.TRANSIENT
    return ErrorClass.PERMANENT
