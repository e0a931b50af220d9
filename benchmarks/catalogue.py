"""The energy-efficiency benchmark catalogue (能效标杆水平 / 基准水平), as versioned data.

Data: ``benchmarks/data/efficiency_levels.csv``, a copy of the shared reference file with every
original column (edition, industry, area_zh, product_or_process, metric, unit, benchmark,
baseline, notes, source) and one added leading column ``key``.

Key scheme
----------
``key`` is a short, stable ascii identifier ``area/product`` (``[a-z0-9_]+/[a-z0-9_]+``) that is
the SAME in every edition for the same product or process, so that a production unit is mapped
once (e.g. ``cement/clinker``) and the edition is chosen separately:

* ``area`` names the sector in English (``steel``, ``cement``, ``flat_glass``, ``chlor_alkali``,
  ``coal_chem``, ``petrochem``, ``ammonia``, ``phosphate_fertiliser``, ``ceramics`` ...);
* ``product`` names the product, process or sub-class within it, with size classes spelled as
  in ``eaf_30_50`` (30 t < capacity < 50 t), ``eaf_ge50`` (>= 50 t), ``float_gt800`` (> 800 t/d),
  ``float_500_800``, ``caustic_soda_liquid_30`` (NaOH >= 30 %).
* the edition-note rows (one per edition, no values) have the key ``edition_note``; they are
  kept as :attr:`Catalogue.edition_notes`, not as entries.

Where the 2023 reference row groups several products (e.g. "caustic soda (liquid >=30%, >=45%,
solid >=98%)" or "sintering, pelletising, EAF steelmaking") the package copy holds one row per
product key, each with the same (blank) values and the same original text, notes and source.

Values are kept exactly as in the reference. A blank benchmark and baseline means *not
evaluable* (the value was not retrieved); it is never filled with a guess or with another
edition's value. :meth:`Catalogue.resolve` picks the newest edition that HAS values.

Direction: lower is better for every entry unless its notes say "higher is better". Converter
steelmaking has negative values (-30 / -10 kgce/t): lower (more negative) is still better.

Units of ``benchmark``/``baseline``: the entry's ``unit`` (kgce/t, kgoe/t, kWh/t,
kgce/weight-box, kgce/m2, kgoe/(t·energy factor)).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from os import PathLike
from types import MappingProxyType

from benchmarks import _csvdata
from benchmarks._csvdata import DataFileError
from benchmarks._units import KNOWN_NUMERATORS, split_unit

DATA_FILE = "efficiency_levels.csv"
EDITION_NOTE_KEY = "edition_note"
COLUMNS = (
    "key",
    "edition",
    "industry",
    "area_zh",
    "product_or_process",
    "metric",
    "unit",
    "benchmark",
    "baseline",
    "notes",
    "source",
)
KEY_PATTERN = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*/[a-z0-9]+(?:_[a-z0-9]+)*$")
_HIGHER_IS_BETTER = re.compile(r"\bhigher\s+is\s+better\b", re.IGNORECASE)
_EDITION_RANGE = (2000, 2100)


class UnknownEntryError(KeyError):
    """No catalogue entry for the requested key (or key and edition); lists what exists."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def direction_from_notes(notes: str) -> bool:
    """``lower_is_better`` for a row: True unless the notes say "higher is better"."""
    return _HIGHER_IS_BETTER.search(notes) is None


_CONFIDENCE = re.compile(r"confidence:\s*([a-z]+(?:-[a-z]+)*)")


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    """One product or process in one edition of the catalogue.

    ``benchmark`` and ``baseline`` are in ``unit`` (e.g. kgce/t); both are ``None`` when the
    value is not known (then the entry is not :attr:`evaluable`).
    """

    key: str
    edition: int
    industry: str
    area_zh: str
    product: str
    metric: str
    unit: str
    benchmark: Decimal | None
    baseline: Decimal | None
    notes: str = ""
    source: str = ""
    lower_is_better: bool = True

    def __post_init__(self) -> None:
        problem = _value_problem(self.benchmark, self.baseline, self.lower_is_better, self.unit)
        if problem is not None:
            raise ValueError(f"catalogue entry {self.key!r} edition {self.edition}: {problem[1]}")

    @property
    def evaluable(self) -> bool:
        """True when both benchmark and baseline are known."""
        return self.benchmark is not None and self.baseline is not None

    @property
    def confidence(self) -> str | None:
        """The confidence the catalogue's notes state for the values (``high``,
        ``medium-high``, ``low-medium`` ...), or None when the notes state none."""
        match = _CONFIDENCE.search(self.notes)
        return match.group(1) if match else None


def _value_problem(
    benchmark: Decimal | None, baseline: Decimal | None, lower_is_better: bool, unit: str
) -> tuple[str, str] | None:
    """(field, message) describing what is wrong with a value pair, or None."""
    if (benchmark is None) != (baseline is None):
        field = "baseline" if baseline is None else "benchmark"
        return field, "only one of benchmark/baseline is given; give both or neither"
    if benchmark is None or baseline is None:
        return None
    if lower_is_better and benchmark > baseline:
        return "benchmark", (
            f"benchmark {benchmark} is worse than baseline {baseline} "
            "(lower is better, so benchmark must be <= baseline)"
        )
    if not lower_is_better and benchmark < baseline:
        return "benchmark", (
            f"benchmark {benchmark} is worse than baseline {baseline} "
            "(higher is better, so benchmark must be >= baseline)"
        )
    try:
        numerator, _ = split_unit(unit)
    except ValueError as exc:
        return "unit", str(exc)
    if numerator not in KNOWN_NUMERATORS:
        return "unit", (
            f"unit {unit!r}: energy part {numerator!r} is not one of {sorted(KNOWN_NUMERATORS)}"
        )
    return None


class Catalogue:
    """All entries of all editions, validated; look-ups by ``(key, edition)``.

    ``version`` identifies the data (file name and SHA-256 prefix); record it with every
    verdict so an auditor can find the exact table that produced it.
    """

    def __init__(
        self,
        entries: Iterable[CatalogueEntry],
        *,
        version: str,
        edition_notes: Mapping[int, str] | None = None,
    ) -> None:
        by_key: dict[str, dict[int, CatalogueEntry]] = {}
        for entry in entries:
            editions = by_key.setdefault(entry.key, {})
            if entry.edition in editions:
                raise ValueError(f"duplicate catalogue entry {entry.key!r} {entry.edition}")
            editions[entry.edition] = entry
        self._by_key = {k: dict(sorted(v.items())) for k, v in sorted(by_key.items())}
        self.version = version
        self.edition_notes: Mapping[int, str] = MappingProxyType(dict(edition_notes or {}))

    # -- loading -------------------------------------------------------------------------

    @classmethod
    def load(cls) -> Catalogue:
        """The catalogue shipped as package data (``benchmarks/data/efficiency_levels.csv``)."""
        return cls.from_bytes(*_csvdata.package_bytes(DATA_FILE))

    @classmethod
    def from_path(cls, path: str | PathLike[str]) -> Catalogue:
        """A catalogue from a CSV file with the package file's columns (for tests, overrides)."""
        return cls.from_bytes(*_csvdata.path_bytes(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str) -> Catalogue:
        """Parse and validate CSV bytes; ``source`` names the file in error messages."""
        table = _csvdata.read_table(data, source, COLUMNS)
        entries: list[CatalogueEntry] = []
        notes_by_edition: dict[int, str] = {}
        seen: dict[tuple[str, int], int] = {}
        unit_of: dict[str, tuple[str, int]] = {}
        for row in table.rows:
            key = row["key"]
            if key != EDITION_NOTE_KEY and not KEY_PATTERN.match(key):
                raise DataFileError(
                    source, row.line, "key", f"{key!r} is not an 'area/product' ascii key"
                )
            edition = _csvdata.parse_year(row, "edition", source, blank_ok=False)
            assert edition is not None
            if not _EDITION_RANGE[0] <= edition <= _EDITION_RANGE[1]:
                raise DataFileError(source, row.line, "edition", f"implausible edition {edition}")
            if (key, edition) in seen:
                raise DataFileError(
                    source,
                    row.line,
                    "key",
                    f"duplicate key {key!r} for edition {edition} "
                    f"(first on line {seen[key, edition]})",
                )
            seen[key, edition] = row.line
            benchmark = _csvdata.parse_decimal(row, "benchmark", source)
            baseline = _csvdata.parse_decimal(row, "baseline", source)
            if key == EDITION_NOTE_KEY:
                if benchmark is not None or baseline is not None:
                    raise DataFileError(
                        source, row.line, "benchmark", "an edition note carries no values"
                    )
                notes_by_edition[edition] = row["notes"]
                continue
            lower_is_better = direction_from_notes(row["notes"])
            unit = row["unit"]
            problem = _value_problem(benchmark, baseline, lower_is_better, unit)
            if problem is not None:
                raise DataFileError(source, row.line, problem[0], problem[1])
            if key in unit_of and unit_of[key][0] != unit:
                first_unit, first_line = unit_of[key]
                raise DataFileError(
                    source,
                    row.line,
                    "unit",
                    f"key {key!r} has unit {unit!r} here but {first_unit!r} on line "
                    f"{first_line}; a key must keep its unit across editions",
                )
            unit_of.setdefault(key, (unit, row.line))
            entries.append(
                CatalogueEntry(
                    key=key,
                    edition=edition,
                    industry=row["industry"],
                    area_zh=row["area_zh"],
                    product=row["product_or_process"],
                    metric=row["metric"],
                    unit=unit,
                    benchmark=benchmark,
                    baseline=baseline,
                    notes=row["notes"],
                    source=row["source"],
                    lower_is_better=lower_is_better,
                )
            )
        name = source.rsplit("/", 1)[-1]
        return cls(entries, version=f"{name} {table.short_hash}", edition_notes=notes_by_edition)

    # -- look-ups ------------------------------------------------------------------------

    def keys(self) -> list[str]:
        """All product keys, sorted (edition notes excluded)."""
        return list(self._by_key)

    def editions(self, key: str | None = None) -> list[int]:
        """Editions present in the catalogue, or for one key (sorted ascending)."""
        if key is None:
            found = {e for eds in self._by_key.values() for e in eds} | set(self.edition_notes)
            return sorted(found)
        return list(self._editions_of(key))

    def get(self, key: str, edition: int) -> CatalogueEntry | None:
        """The entry for exactly ``(key, edition)``, or ``None`` when there is none."""
        return self._by_key.get(key, {}).get(edition)

    def resolve(self, key: str, edition: int | None = None) -> CatalogueEntry:
        """The entry to evaluate ``key`` against.

        With ``edition`` given: exactly that edition (evaluable or not). Without: the newest
        edition that has values; when no edition has values, the newest entry, which is not
        evaluable (the verdict will say so) -- never a guessed value.

        Raises :class:`UnknownEntryError` (a ``KeyError``) naming the known keys or the
        key's editions when the key or the pinned edition does not exist.
        """
        editions = self._editions_of(key)
        if edition is not None:
            if edition not in editions:
                raise UnknownEntryError(
                    f"catalogue key {key!r} has no edition {edition}; "
                    f"editions for this key: {list(editions)} (catalogue {self.version})"
                )
            return editions[edition]
        for entry in reversed(editions.values()):
            if entry.evaluable:
                return entry
        return next(reversed(editions.values()))

    def entries(self) -> list[CatalogueEntry]:
        """Every entry, sorted by key then edition."""
        return [e for eds in self._by_key.values() for e in eds.values()]

    def __iter__(self) -> Iterator[CatalogueEntry]:
        return iter(self.entries())

    def __len__(self) -> int:
        return sum(len(eds) for eds in self._by_key.values())

    def __repr__(self) -> str:
        return f"Catalogue({len(self)} entries, {len(self._by_key)} keys, {self.version})"

    def _editions_of(self, key: str) -> dict[int, CatalogueEntry]:
        try:
            return self._by_key[key]
        except KeyError:
            raise UnknownEntryError(
                f"unknown catalogue key {key!r}; known keys: {', '.join(self._by_key)}"
            ) from None
