"""Readings as PostgreSQL binary COPY rows, encoded once at validation time.

A validated message carries its readings as one ``bytes`` block of fixed-width binary COPY
tuples ``(meter_id int8, ts timestamptz, value float8, quality int2)``: compact in the queue,
and the writer sends the blocks of a batch to ``COPY ... (FORMAT BINARY)`` without touching
a single row in Python.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

#: field count, then (length, value) per column: int8 meter_id, timestamptz, float8, int2
ROW = struct.Struct(">hiqiqidih")
ROW_SIZE = ROW.size
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
COPY_TRAILER = b"\xff\xff"
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

_pack = ROW.pack


def to_micros(ts: datetime) -> int:
    """Microseconds since 2000-01-01 UTC (PostgreSQL's timestamptz); ``ts`` must be aware."""
    return (ts - PG_EPOCH) // _US


def from_micros(micros: int) -> datetime:
    return PG_EPOCH + timedelta(microseconds=micros)


def encode_row(meter_id: int, micros: int, value: float, quality: int) -> bytes:
    return _pack(4, 8, meter_id, 8, micros, 8, value, 2, quality)


def decode_rows(block: bytes) -> list[tuple[int, datetime, float, int]]:
    """``(meter_id, ts, value, quality)`` tuples of an encoded block (tests, the dedup path)."""
    return [(meter_id, from_micros(micros), value, quality)
            for _, _, meter_id, _, micros, _, value, _, quality in ROW.iter_unpack(block)]


def decode_keys(block: bytes) -> list[tuple[int, int]]:
    """``(meter_id, micros)`` keys of an encoded block."""
    return [(meter_id, micros) for _, _, meter_id, _, micros, _, _, _, _ in ROW.iter_unpack(block)]
