"""SQLSTATE classification: which database errors are retried and which set a batch aside."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from ingest.errors import ErrorClass, classify, classify_sqlstate

T, P = ErrorClass.TRANSIENT, ErrorClass.PERMANENT

SQLSTATES = [
    ("08000", T, "connection_exception"),
    ("08003", T, "connection_does_not_exist"),
    ("08006", T, "connection_failure"),
    ("08001", T, "sqlclient_unable_to_establish_sqlconnection"),
    ("40001", T, "serialization_failure"),
    ("40P01", T, "deadlock_detected"),
    ("40003", T, "statement_completion_unknown"),
    ("53000", T, "insufficient_resources"),
    ("53100", T, "disk_full"),
    ("53200", T, "out_of_memory"),
    ("53300", T, "too_many_connections"),
    ("55P03", T, "lock_not_available"),
    ("57014", T, "query_canceled"),
    ("57P01", T, "admin_shutdown"),
    ("57P02", T, "crash_shutdown"),
    ("57P03", T, "cannot_connect_now"),
    ("58030", T, "io_error"),
    ("25P03", T, "idle_in_transaction_session_timeout"),
    (None, T, "no SQLSTATE: the server never answered"),
    ("22P02", P, "invalid_text_representation"),
    ("22003", P, "numeric_value_out_of_range"),
    ("22008", P, "datetime_field_overflow"),
    ("23505", P, "unique_violation"),
    ("23503", P, "foreign_key_violation"),
    ("23514", P, "check_violation"),
    ("42P01", P, "undefined_table"),
    ("42501", P, "insufficient_privilege"),
    ("42703", P, "undefined_column"),
    ("XX000", P, "internal_error"),
    ("0A000", P, "feature_not_supported"),
]


@pytest.mark.parametrize(("sqlstate", "expected", "name"), SQLSTATES,
                         ids=[s[2] for s in SQLSTATES])
def test_sqlstate_table(sqlstate: str | None, expected: ErrorClass, name: str) -> None:
    assert classify_sqlstate(sqlstate) is expected
    if sqlstate is not None:
        assert classify(errors.lookup(sqlstate)(name)) is expected


@pytest.mark.parametrize(("exc", "expected"), [
    (psycopg.OperationalError("connection is lost"), T),
    (psycopg.InterfaceError("the connection is closed"), T),
    (ConnectionResetError("peer reset"), T),
    (TimeoutError("timed out"), T),
    (psycopg.ProgrammingError("bad query"), P),
    (ValueError("a bug in our encoding"), P),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), P),
])
def test_exceptions_without_sqlstate(exc: BaseException, expected: ErrorClass) -> None:
    assert classify(exc) is expected
