"""History rows as XLSX and Parquet (CSV is rendered by PostgreSQL itself, see
:func:`api.queries.history_csv`; JSON pages by :func:`api.queries.history_json_page`).

Rows are the tuples of :func:`api.queries.history_query` (``HISTORY_COLUMNS``). Every format
carries the same columns with the same numbers as the JSON answer; timestamps are bucket starts
in the local calendar's offset (ISO 8601 text in CSV and XLSX, ``timestamp[us, tz]`` in
Parquet). Units: ``quantity``/``value``/``estimated`` in the row's ``quantity_unit``, ``kgce`` in
kgce, ``co2_kg`` in kg CO2, ``readings`` a count.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from api.queries import HISTORY_COLUMNS, QUALITY

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


def xlsx_bytes(rows: Iterable[tuple[Any, ...]], tz: ZoneInfo, meta: dict[str, str]
               ) -> tuple[bytes, int]:
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
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue(), n


def parquet_bytes(rows: Iterable[tuple[Any, ...]], tz: ZoneInfo, meta: dict[str, str]
                  ) -> tuple[bytes, int]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[Any]] = [[] for _ in HISTORY_COLUMNS]
    for row in rows:
        for i, value in enumerate(normalise(row, tz)):
            columns[i].append(value)
    schema = pa.schema([
        pa.field("ts", pa.timestamp("us", tz=str(tz))),
        pa.field("energy_type", pa.string()), pa.field("flow", pa.string()),
        pa.field("quantity", pa.float64()), pa.field("quantity_unit", pa.string()),
        pa.field("value", pa.float64()), pa.field("quality", pa.string()),
        pa.field("estimated", pa.float64()), pa.field("kgce", pa.float64()),
        pa.field("co2_kg", pa.float64()), pa.field("readings", pa.int64()),
    ], metadata={**{f"energymon.{k}": v for k, v in meta.items()},
                 **{f"unit.{k}": v for k, v in COLUMN_UNITS.items()}})
    table = pa.table({name: pa.array(col, type=schema.field(name).type)
                      for name, col in zip(HISTORY_COLUMNS, columns, strict=True)},
                     schema=schema)
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue(), table.num_rows
