"""Golden cases: each directory under tests/golden/fleets holds a fleet file and the lines
that ``energymon check-config`` must print for it (empty expected.txt = valid)."""

from pathlib import Path

import pytest

from app.cli import main
from fleet import FleetError, load_fleet, parse_fleet, uscc_check_char

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "fleets"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_check_config_golden(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [line for line in (GOLDEN / case / "expected.txt").read_text().splitlines()
                if line.strip()]
    code = main(["check-config", str(GOLDEN / case / "fleet.yaml")])
    out, err = capsys.readouterr()
    if not expected:
        assert code == 0, err
        assert "valid fleet" in out
        return
    assert code == 2
    for line in expected:
        assert line in err, f"missing in output:\n{line}\n--- got ---\n{err}"
    assert str(GOLDEN / case / "fleet.yaml") in err  # the file is named too


def test_example_fleet_is_valid(example_fleet_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(example_fleet_path)]) == 0
    out = capsys.readouterr().out
    assert "6 plants" in out and "9 production units" in out


def test_example_fleet_covers_required_industries_and_regions(example_fleet_path: Path) -> None:
    fleet = load_fleet(example_fleet_path)
    keys = {u.catalogue for p in fleet.plants for u in p.units}
    for needed in ("cement/clinker", "flat_glass/float_gt800", "steel/blast_furnace",
                   "steel/converter", "aluminium/electrolysis",
                   "chlor_alkali/caustic_soda_liquid_30", "ammonia/natural_gas"):
        assert needed in keys
    regions = {p.region for p in fleet.plants}
    # Yujiang (Yingtan), Shangyou (Ganzhou), Liuzhou districts, Jiangjin (Chongqing)
    assert {"360622", "360724", "500116"} <= regions
    assert regions & {"450205", "450206"}


def test_all_errors_reported_at_once() -> None:
    data = {"fleet": "x", "regions": [{"code": "360000", "name": "J", "level": "province"}],
            "plants": [{"id": "p1", "uscc": "bad", "name": "P", "region": "360000",
                        "industry": "c", "energy_class": "huge", "key_unit": "maybe"}]}
    with pytest.raises(FleetError) as info:
        parse_fleet(data, "inline")
    fields = " ".join(info.value.problems)
    assert "'uscc'" in fields and "'energy_class'" in fields and "'key_unit'" in fields


@pytest.mark.parametrize("code", ["91110000600037341L", "91440300708461136T",
                                  "91350100M000100Y43"])
def test_uscc_check_character_matches_published_codes(code: str) -> None:
    assert uscc_check_char(code[:17]) == code[17]


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="cannot read file"):
        load_fleet(tmp_path / "nope.yaml")


def _mini_fleet(**meter: object) -> dict[str, object]:
    return {"fleet": "x", "regions": [{"code": "360000", "name": "J", "level": "province"}],
            "plants": [{"id": "p1", "uscc": "91360622MA35CEM01A", "name": "P",
                        "region": "360000", "industry": "c", "energy_class": "ge_10000_tce",
                        "key_unit": True,
                        "units": [{"id": "kiln-1", "name": "k", "product": "clinker",
                                   "product_unit": "t", "design_capacity": 1,
                                   "capacity_unit": "t/d"}],
                        "meters": [{"id": "m1", "name": "m", "energy_type": "electricity",
                                    "kind": "counter", "eng_unit": "kWh", **meter}]}]}


def test_check_config_warns_about_meters_that_need_a_measured_calorific_value(
        example_fleet_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    from fleet.checks import conversion_warnings

    assert conversion_warnings(load_fleet(example_fleet_path)) == []
    data = _mini_fleet(energy_type="coke_oven_gas", eng_unit="m3", unit="kiln-1")
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert main(["check-config", str(path)]) == 0          # valid: a warning, not an error
    err = capsys.readouterr().err
    assert "warning:" in err and "plant 'p1' > meter 'm1'" in err
    assert "energymon declare calorific-value --plant p1 --energy-type coke_oven_gas" in err
    assert "unit 'kiln-1' is not evaluable" in err


def test_service_dates_and_rollover_step_are_validated() -> None:
    for meter, field in [
        ({"installed_at": "2026-01-02T00:00+08:00", "removed_at": "2026-01-01T00:00+08:00"},
         "'removed_at'"),
        ({"removed_at": "2026-01-01T00:00"}, "removed_at"),
        ({"rollover_step": 0.1}, "'rollover_step'"),
    ]:
        with pytest.raises(FleetError) as info:
            parse_fleet(_mini_fleet(**meter), "inline")
        assert field in " ".join(info.value.problems)
    parse_fleet(_mini_fleet(installed_at="2026-01-01T00:00+08:00",
                            removed_at="2026-06-01T00:00+08:00", rollover_max=99_999_999,
                            rollover_step=1), "inline")
