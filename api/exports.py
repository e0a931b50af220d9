"""History rows as XLSX and Parquet (CSV is rendered by PostgreSQL itself, see
:func:`api.queries.history_csv`; JSON pages by :func:`api.queries.history_json_page`).

Rows are the tuples of :func:`api.queries.history_query` (``HISTORY_COLUMNS``). Every format
carries the same columns with the same numbers as the JSON answer; timestamps are bucket starts
in the local calendar's offset (ISO 8601 text in CSV and XLSX, ``timestamp[us, tz]`` in
Parquet). Units: ``quantity``/``value``/``estimated`` in the row's ``quantity_unit``, ``kgce`` in
kgce, ``co2_kg`` in kg CO2, ``readings`` a count.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO
from zoneinfo import ZoneInfo

from api.queries import HISTORY_COLUMNS, QUALITY

if TYPE_CHECKING:
    import pyarrow as pa

ROW_GROUP_ROWS = 65_536      # Parquet rows per row group: the most held in memory at once
SPOOL_PREFIX = "energymon-export-"  # name of an export's (unlinked) file while it is built

COLUMN_UNITS = {
    "ts": "bucket start (raw: reading time), ISO 8601 with offset",
    "energy_type": "energy type key or 'product'",
    "flow": "consumed | exported | production | reading",
    "quantity": "quantity_unit (after multiplier)",
    "quantity_unit": "unit of quantity, value and estimated",
    "value": "quantity_unit, raw register value before the multiplier",
    "quality": "good | estimated | suspect | missing",
    "estimated": "quantity_unit, part of quantity resting on estimation",
    "kgce": "kgce",
    "co2_kg": "kg CO2",
    "readings": "count",
}
MEDIA = {"csv": "text/csv; charset=utf-8",
         "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
         "parquet": "application/vnd.apache.parquet"}


def normalise(row: tuple[Any, ...], tz: ZoneInfo) -> tuple[Any, ...]:
    """A stored row with its timestamp in local time and quality as text."""
    ts, energy_type, flow, quantity, unit, value, quality, estimated, kgce, co2, readings = row
    return (ts.astimezone(tz), energy_type, flow, quantity, unit, value,
            QUALITY.get(quality) if quality is not None else None, estimated, kgce, co2,
            readings)


def as_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return dict(zip(HISTORY_COLUMNS, row, strict=True))


def spool_file(directory: str | None, fmt: str) -> BinaryIO:
    """A file to build one export in: created in ``directory`` (None: the system's temporary
    directory) and unlinked at once, so it lives only as long as its descriptor and nothing is
    left on disk, not even after a crash of the process."""
    fd, path = tempfile.mkstemp(prefix=SPOOL_PREFIX, suffix=f".{fmt}", dir=directory)
    try:
        os.unlink(path)
        return os.fdopen(fd, "w+b")
    except BaseException:
        os.close(fd)
        raise


def write_xlsx(rows: Iterable[tuple[Any, ...]], tz: ZoneInfo, meta: dict[str, str],
               out: BinaryIO) -> int:
    """Write the rows as a workbook (sheets ``history`` and ``about``) to ``out``; the number
    of rows. openpyxl's write-only mode keeps each sheet in its own temporary file, so the
    memory taken does not grow with the rows."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("history")
    ws.append(list(HISTORY_COLUMNS))
    n = 0
    for row in rows:
        values = normalise(row, tz)
        ws.append([v.isoformat() if isinstance(v, datetime) else v for v in values])
        n += 1
    info = wb.create_sheet("about")
    for key, value in meta.items():
        info.append([key, value])
    info.append([])
    info.append(["column", "unit / meaning"])
    for key, value in COLUMN_UNITS.items():
        info.append([key, value])
    wb.save(out)
    return n


def parquet_schema(tz: ZoneInfo, meta: dict[str, str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([
        pa.field("ts", pa.timestamp("us", tz=str(tz))),
        pa.field("energy_type", pa.string()), pa.field("flow", pa.string()),
        pa.field("quantity", pa.float64()), pa.field("quantity_unit", pa.string()),
        pa.field("value", pa.float64()), pa.field("quality", pa.string()),
        pa.field("estimated", pa.float64()), pa.field("kgce", pa.float64()),
        pa.field("co2_kg", pa.float64()), pa.field("readings", pa.int64()),
    ], metadata={**{f"energymon.{k}": v for k, v in meta.items()},
                 **{f"unit.{k}": v for k, v in COLUMN_UNITS.items()}})


def write_parquet(rows: Iterable[tuple[Any, ...]], tz: ZoneInfo, meta: dict[str, str],
                  out: BinaryIO, *, row_group_rows: int = ROW_GROUP_ROWS) -> int:
    """Write the rows as Parquet (zstd) to ``out``, one row group per ``row_group_rows`` rows,
    so that at most one row group is held in memory; the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema(tz, meta)
    types = [schema.field(name).type for name in HISTORY_COLUMNS]
    n = 0
    # bucket starts rise steadily: delta-encoded they take a third of the dictionary's bytes
    # (2.6 against 6.1 MB for 500 000 minute readings in groups of 65 536), which makes the
    # file smaller than one big default-encoded row group (4.3 MB)
    with pq.ParquetWriter(out, schema, compression="zstd",
                          use_dictionary=[c for c in HISTORY_COLUMNS if c != "ts"],
                          column_encoding={"ts": "DELTA_BINARY_PACKED"}) as writer:
        columns: list[list[Any]] = [[] for _ in HISTORY_COLUMNS]

        def flush() -> None:
            batch = pa.record_batch([pa.array(col, type=t) for col, t in zip(
                columns, types, strict=True)], schema=schema)
            writer.write_batch(batch, row_group_size=len(columns[0]) or None)
            for col in columns:
                col.clear()

        for row in rows:
            for i, value in enumerate(normalise(row, tz)):
                columns[i].append(value)
            n += 1
            if len(columns[0]) >= row_group_rows:
                flush()
        if columns[0]:
            flush()  # the last group; a file without rows still carries its schema
    return n
