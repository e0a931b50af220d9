"""The benchmark catalogue: package data, key scheme, look-ups and validation at load."""

from __future__ import annotations

import ast
import csv
import io
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks import _csvdata
from benchmarks.catalogue import (
    EDITION_NOTE_KEY,
    KEY_PATTERN,
    Catalogue,
    CatalogueEntry,
    UnknownEntryError,
)

PACKAGE = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.load()


# -- package data --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["efficiency_levels.csv", "energy_conversion.csv", "emission_factors.csv"]
)
def test_every_data_file_loads_with_a_leading_key_and_its_source_columns(name: str) -> None:
    data, source = _csvdata.package_bytes(name)
    table = _csvdata.read_table(data, source, ["key", "source", "notes"])
    assert table.rows, name
    header = next(csv.reader(io.StringIO(data.decode("utf-8"))))
    assert header[0] == "key"
    assert all(row["key"] for row in table.rows)
    assert all(row["source"] for row in table.rows if row["key"] != "edition_note")


def test_the_package_imports_nothing_outside_the_standard_library() -> None:
    allowed_prefix = "benchmarks"
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top == allowed_prefix or top in _stdlib(), f"{path.name} imports {name}"


def _stdlib() -> frozenset[str]:
    import sys

    return frozenset(sys.stdlib_module_names) | {"__future__"}


def test_catalogue_counts_and_editions(catalogue: Catalogue) -> None:
    assert catalogue.editions() == [2021, 2023]
    assert set(catalogue.edition_notes) == {2021, 2023}
    assert len(catalogue.keys()) == 62
    assert len(catalogue) == 112
    assert EDITION_NOTE_KEY not in catalogue.keys()


def test_every_key_follows_the_scheme(catalogue: Catalogue) -> None:
    for key in catalogue.keys():
        assert KEY_PATTERN.match(key), key


def test_every_key_has_one_unit_across_editions(catalogue: Catalogue) -> None:
    for key in catalogue.keys():
        units = {catalogue.get(key, e).unit for e in catalogue.editions(key)}  # type: ignore[union-attr]
        assert len(units) == 1, (key, units)


def test_version_is_a_hash_of_the_data_file(catalogue: Catalogue) -> None:
    assert catalogue.version.startswith("efficiency_levels.csv sha256:")
    assert len(catalogue.version.split("sha256:")[1]) == 12
    assert Catalogue.load().version == catalogue.version


@pytest.mark.parametrize(
    ("key", "edition", "benchmark", "baseline", "unit"),
    [
        ("cement/clinker", 2021, "100", "117", "kgce/t"),
        ("steel/blast_furnace", 2021, "361", "435", "kgce/t"),
        ("steel/blast_furnace", 2023, "361", "435", "kgce/t"),
        ("steel/converter", 2023, "-30", "-10", "kgce/t"),
        ("steel/eaf_30_50", 2021, "67", "86", "kgce/t"),
        ("steel/eaf_ge50", 2021, "61", "72", "kgce/t"),
        ("ferroalloy/ferrosilicon", 2021, "1770", "1900", "kgce/t"),
        ("ferroalloy/ferrosilicon", 2023, "1770", "1850", "kgce/t"),
        ("aluminium/electrolysis", 2021, "13000", "13350", "kWh/t"),
        ("flat_glass/float_gt800", 2021, "8", "12", "kgce/weight-box"),
        ("flat_glass/float_500_800", 2021, "9.5", "13.5", "kgce/weight-box"),
        ("chlor_alkali/caustic_soda_liquid_30", 2021, "315", "350", "kgce/t"),
        ("chlor_alkali/caustic_soda_liquid_45", 2021, "420", "470", "kgce/t"),
        ("chlor_alkali/caustic_soda_solid_98", 2021, "620", "685", "kgce/t"),
        ("ammonia/natural_gas", 2021, "1000", "1200", "kgce/t"),
        ("ammonia/pulverized_coal", 2021, "1350", "1550", "kgce/t"),
        ("ammonia/lump_anthracite_premium", 2021, "1100", "1350", "kgce/t"),
        ("petrochem/ethylene", 2021, "590", "640", "kgoe/t"),
        ("refining/whole_refinery", 2021, "7.5", "8.5", "kgoe/(t·energy factor)"),
        ("ceramics/tiles_absorption_0_5_to_10", 2021, "3.7", "4.6", "kgce/m2"),
    ],
)
def test_values_are_exactly_those_of_the_reference(
    catalogue: Catalogue, key: str, edition: int, benchmark: str, baseline: str, unit: str
) -> None:
    entry = catalogue.get(key, edition)
    assert entry is not None
    assert (entry.benchmark, entry.baseline, entry.unit) == (
        Decimal(benchmark),
        Decimal(baseline),
        unit,
    )
    assert entry.evaluable and entry.lower_is_better
    assert entry.source and entry.notes


@pytest.mark.parametrize(
    ("key", "keys_in_group"),
    [
        (
            "chlor_alkali/caustic_soda_liquid_30",
            [
                "chlor_alkali/caustic_soda_liquid_30",
                "chlor_alkali/caustic_soda_liquid_45",
                "chlor_alkali/caustic_soda_solid_98",
            ],
        ),
        ("flat_glass/float_gt800", ["flat_glass/float_gt800", "flat_glass/float_500_800"]),
        (
            "steel/sintering",
            ["steel/sintering", "steel/pelletising", "steel/eaf_30_50", "steel/eaf_ge50"],
        ),
    ],
)
def test_grouped_2023_rows_are_split_per_key_with_same_text(
    catalogue: Catalogue, key: str, keys_in_group: list[str]
) -> None:
    first = catalogue.get(key, 2023)
    assert first is not None
    for other_key in keys_in_group:
        other = catalogue.get(other_key, 2023)
        assert other is not None and not other.evaluable
        assert (other.product, other.notes, other.source) == (
            first.product,
            first.notes,
            first.source,
        )


# -- resolve -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "pinned", "expected_edition", "evaluable"),
    [
        ("steel/blast_furnace", None, 2023, True),
        ("steel/converter", None, 2023, True),
        ("ferroalloy/ferrosilicon", None, 2023, True),
        ("cement/clinker", None, 2021, True),  # 2023 row is blank -> 2021
        ("chlor_alkali/caustic_soda_liquid_45", None, 2021, True),
        ("steel/eaf_ge50", None, 2021, True),
        ("aluminium/electrolysis", None, 2021, True),
        ("cement/clinker", 2023, 2023, False),  # pinned: exactly that edition
        ("steel/blast_furnace", 2021, 2021, True),
        ("steel/sintering", None, 2023, False),  # no edition has values: newest, not evaluable
        ("coking/semi_coke", None, 2023, False),
        ("ammonia/lignite", None, 2021, False),
        ("urea/urea", None, 2023, False),
        ("textiles/woven_fabric", None, 2023, False),
    ],
)
def test_resolve_picks_the_newest_edition_with_values(
    catalogue: Catalogue, key: str, pinned: int | None, expected_edition: int, evaluable: bool
) -> None:
    entry = catalogue.resolve(key, pinned)
    assert (entry.key, entry.edition, entry.evaluable) == (key, expected_edition, evaluable)
    if not evaluable:
        assert entry.benchmark is None and entry.baseline is None


def test_resolve_unknown_key_lists_known_keys(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownEntryError) as info:
        catalogue.resolve("cement/klinker")
    assert isinstance(info.value, LookupError)
    assert "'cement/klinker'" in str(info.value) and "cement/clinker" in str(info.value)


def test_resolve_unknown_edition_lists_the_key_editions(catalogue: Catalogue) -> None:
    with pytest.raises(UnknownEntryError, match=r"no edition 2025.*\[2021, 2023\]"):
        catalogue.resolve("cement/clinker", 2025)
    with pytest.raises(UnknownEntryError, match=r"\[2023\]"):
        catalogue.resolve("urea/urea", 2021)


def test_get_is_exact_and_returns_none_when_missing(catalogue: Catalogue) -> None:
    assert catalogue.get("urea/urea", 2021) is None
    assert catalogue.get("nope/nope", 2021) is None
    assert catalogue.get("cement/clinker", 2023) is not None


def test_editions_per_key(catalogue: Catalogue) -> None:
    assert catalogue.editions("cement/clinker") == [2021, 2023]
    assert catalogue.editions("urea/urea") == [2023]
    assert catalogue.editions("ammonia/lignite") == [2021]


def test_converter_is_lower_is_better_despite_negative_values(catalogue: Catalogue) -> None:
    entry = catalogue.resolve("steel/converter")
    assert entry.lower_is_better
    assert entry.benchmark is not None and entry.baseline is not None
    assert entry.benchmark < entry.baseline < 0


# -- validation of a corrupted copy ----------------------------------------------------------


def _package_rows() -> tuple[list[str], list[list[str]]]:
    data, _ = _csvdata.package_bytes("efficiency_levels.csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _line(header: list[str], rows: list[list[str]], key: str, edition: str) -> int:
    """Line number (header = 1) of the row (key, edition) in the written file."""
    for i, row in enumerate(rows):
        if row[header.index("key")] == key and row[header.index("edition")] == edition:
            return i + 2
    raise AssertionError((key, edition))


def _set(
    header: list[str], rows: list[list[str]], key: str, edition: str, fields: dict[str, str]
) -> None:
    row = rows[_line(header, rows, key, edition) - 2]
    for field, value in fields.items():
        row[header.index(field)] = value


def test_from_path_loads_an_unmodified_copy(tmp_path: Path) -> None:
    header, rows = _package_rows()
    loaded = Catalogue.from_path(_write(tmp_path / "copy.csv", header, rows))
    assert loaded.keys() == Catalogue.load().keys()
    assert loaded.version.startswith("copy.csv sha256:")


@pytest.mark.parametrize(
    ("key", "edition", "fields", "bad_field", "message", "error_row"),
    [
        ("cement/clinker", "2021", {"edition": "20x1"}, "edition", "not a year", None),
        ("cement/clinker", "2021", {"edition": "1999"}, "edition", "implausible edition", None),
        ("cement/clinker", "2021", {"benchmark": "1OO"}, "benchmark", "not a number", None),
        ("cement/clinker", "2021", {"baseline": "NaN"}, "baseline", "not a number", None),
        ("cement/clinker", "2021", {"benchmark": "120"}, "benchmark", "worse than baseline", None),
        ("steel/converter", "2023", {"benchmark": "-5"}, "benchmark", "worse than baseline", None),
        ("cement/clinker", "2021", {"baseline": ""}, "baseline", "only one of", None),
        ("cement/clinker", "2023", {"benchmark": "100"}, "baseline", "only one of", None),
        # the duplicate is reported on the later of the two lines
        (
            "cement/clinker",
            "2021",
            {"key": "steel/blast_furnace"},
            "key",
            "duplicate key",
            ("steel/blast_furnace", "2021"),
        ),
        ("cement/clinker", "2021", {"key": "Cement Clinker"}, "key", "not an 'area/product'", None),
        ("cement/clinker", "2023", {"unit": "kgce/m2"}, "unit", "keep its unit", None),
        ("cement/clinker", "2021", {"unit": "MJ/t"}, "unit", "energy part 'MJ'", None),
        ("cement/clinker", "2021", {"unit": "kgce"}, "unit", "not of the form", None),
        ("edition_note", "2021", {"benchmark": "1"}, "benchmark", "edition note", None),
    ],
)
def test_corrupted_copy_fails_naming_file_line_and_field(
    tmp_path: Path,
    key: str,
    edition: str,
    fields: dict[str, str],
    bad_field: str,
    message: str,
    error_row: tuple[str, str] | None,
) -> None:
    header, rows = _package_rows()
    line = _line(header, rows, *(error_row or (key, edition)))
    _set(header, rows, key, edition, fields)
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError) as info:
        Catalogue.from_path(path)
    text = str(info.value)
    assert str(path) in text
    assert f"line {line}," in text
    assert f"field {bad_field!r}" in text
    assert message in text


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h, r: (h.remove("source"), [row.pop() for row in r]), "missing column"),
        (lambda h, r: r[3].append("extra"), "has 12 fields"),
    ],
)
def test_structural_errors_name_the_file(tmp_path: Path, mutate: object, message: str) -> None:
    header, rows = _package_rows()
    mutate(header, rows)  # type: ignore[operator]
    path = _write(tmp_path / "bad.csv", header, rows)
    with pytest.raises(ValueError, match=message) as info:
        Catalogue.from_path(path)
    assert str(path) in str(info.value)


# -- entries built in code -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("benchmark", "baseline", "lower_is_better", "message"),
    [
        (Decimal(5), None, True, "only one of"),
        (Decimal(5), Decimal(4), True, "worse than baseline"),
        (Decimal(4), Decimal(5), False, "worse than baseline"),
    ],
)
def test_entry_rejects_inconsistent_values(
    benchmark: Decimal, baseline: Decimal | None, lower_is_better: bool, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        CatalogueEntry(
            "x/y", 2023, "X", "X", "x", "m", "kgce/t", benchmark, baseline, "", "", lower_is_better
        )


def test_higher_is_better_is_read_from_the_notes(tmp_path: Path) -> None:
    header, rows = _package_rows()
    fields = {"benchmark": "117", "baseline": "100", "notes": "synthetic row. Higher is better."}
    _set(header, rows, "cement/clinker", "2021", fields)
    entry = Catalogue.from_path(_write(tmp_path / "hib.csv", header, rows)).get(
        "cement/clinker", 2021
    )
    assert entry is not None and not entry.lower_is_better
