"""Shared helpers to read the package's CSV reference tables (standard library only).

Every table is read the same way: UTF-8 (a BOM is tolerated), a header row, one record per
physical line. Errors are :class:`DataFileError` (a ``ValueError``) whose message names the
file, the line number (header = line 1) and the field, so that a corrupted copy is found
without a debugger.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from os import PathLike
from pathlib import Path

_NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_INT = re.compile(r"^\d{4}$")


class DataFileError(ValueError):
    """A reference table failed validation; the message names file, line and field."""

    def __init__(self, source: str, line: int, field: str | None, message: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        where = f"{source}, line {line}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True, slots=True)
class Row:
    """One CSV record with its physical line number (the header is line 1)."""

    line: int
    values: dict[str, str]

    def __getitem__(self, field: str) -> str:
        return self.values[field]


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed CSV file: where it came from, its content hash and its records."""

    source: str
    sha256: str
    rows: tuple[Row, ...]

    @property
    def short_hash(self) -> str:
        """``sha256:`` plus the first 12 hex digits of the file's SHA-256."""
        return f"sha256:{self.sha256[:12]}"


def package_bytes(name: str) -> tuple[bytes, str]:
    """Bytes of ``benchmarks/data/<name>`` and a display name for error messages."""
    data = resources.files("benchmarks").joinpath("data", name).read_bytes()
    return data, f"benchmarks/data/{name}"


def path_bytes(path: str | PathLike[str]) -> tuple[bytes, str]:
    """Bytes of a file on disk and its path as display name."""
    p = Path(path)
    return p.read_bytes(), str(p)


def read_table(data: bytes, source: str, required: Sequence[str]) -> Table:
    """Parse ``data`` as CSV; every column in ``required`` must be in the header."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataFileError(source, 1, None, f"not valid UTF-8 ({exc})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataFileError(source, 1, None, "file is empty (no header row)") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFileError(
            source, 1, missing[0], f"missing column(s) {missing}; header is {header}"
        )
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataFileError(source, 1, dupes[0], f"duplicate column(s) {dupes}")
    rows: list[Row] = []
    for record in reader:
        line = reader.line_num
        if not record or all(not cell.strip() for cell in record):
            continue  # blank line
        if len(record) != len(header):
            raise DataFileError(
                source, line, None, f"has {len(record)} fields, the header has {len(header)}"
            )
        rows.append(Row(line, {h: cell.strip() for h, cell in zip(header, record, strict=True)}))
    return Table(source, hashlib.sha256(data).hexdigest(), tuple(rows))


def parse_decimal(row: Row, field: str, source: str) -> Decimal | None:
    """The field as a finite ``Decimal``; ``None`` when blank (= not known, never guessed)."""
    text = row[field]
    if text == "":
        return None
    if not _NUMBER.match(text):
        raise DataFileError(source, row.line, field, f"not a number: {text!r}")
    return Decimal(text)


def parse_year(row: Row, field: str, source: str, *, blank_ok: bool) -> int | None:
    """A four-digit year between 1900 and 2100 (``None`` when blank and ``blank_ok``)."""
    text = row[field]
    if text == "" and blank_ok:
        return None
    if not _INT.match(text) or not 1900 <= int(text) <= 2100:
        raise DataFileError(source, row.line, field, f"not a year (1900-2100): {text!r}")
    return int(text)
