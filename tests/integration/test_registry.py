from pathlib import Path

import psycopg
import pytest

from app.cli import main
from fleet import load_fleet
from fleet.registry import RegistryConflict, load_registry
from tests.support.registry import registry_counts

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "fleets"


def test_registry_load_upserts(migrated_db: str, example_fleet_path: Path) -> None:
    fleet = load_fleet(example_fleet_path)
    with psycopg.connect(migrated_db) as conn:
        first = load_registry(conn, fleet)
        assert (first.plants_inserted, first.units_inserted, first.meters_inserted) == (6, 9, 30)
        second = load_registry(conn, fleet)
        assert (second.plants_inserted, second.plants_updated) == (0, 6)
        assert (second.meters_inserted, second.meters_updated) == (0, 30)
        assert registry_counts(conn) == {"regions": 11, "plants": 6, "production_units": 9,
                                         "meters": 30}
        meter = conn.execute(
            "SELECT m.kind, m.eng_unit, m.multiplier, m.direction, m.meter_model, u.code "
            "FROM meters m JOIN plants p ON p.id = m.plant_id "
            "LEFT JOIN production_units u ON u.id = m.unit_id "
            "WHERE p.code = 'gx-liuzhou-steel' AND m.code = 'bof1-steam-rec'").fetchone()
        assert meter == ("counter", "GJ", 1, "exported", "generic_flow_totaliser", "bof-1")
        unit = conn.execute(
            "SELECT catalogue_key, design_capacity, capacity_unit FROM production_units "
            "WHERE code = 'kiln-1'").fetchone()
        assert unit == ("cement/clinker", 5000, "t/d")


def test_changed_file_updates_and_reports_meters_not_in_file(
        migrated_db: str, example_fleet_path: Path, tmp_path: Path) -> None:
    text = example_fleet_path.read_text()
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, load_fleet(example_fleet_path))
        changed = text.replace("multiplier: 400, model: eastron_sdm630",
                               "multiplier: 800, model: eastron_sdm630")
        changed = changed.replace(
            "      - {id: main-gas, name: shaft furnace natural gas, energy_type: natural_gas,\n"
            "         kind: counter, eng_unit: m3}\n", "")
        path = tmp_path / "fleet.yaml"
        path.write_text(changed)
        summary = load_registry(conn, load_fleet(path))
        assert summary.not_in_file == {"jx-yujiang-copper": ["main-gas"]}
        assert conn.execute("SELECT multiplier FROM meters WHERE code = 'eaf1-elec'"
                            ).fetchone() == (800,)
        # kept, never deleted: readings may refer to it
        assert conn.execute("SELECT count(*) FROM meters WHERE code = 'main-gas'"
                            ).fetchone() == (1,)


def test_uscc_of_another_registered_plant_is_refused(migrated_db: str,
                                                     example_fleet_path: Path,
                                                     tmp_path: Path) -> None:
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, load_fleet(example_fleet_path))
        text = (GOLDEN / "valid-minimal" / "fleet.yaml").read_text()
        path = tmp_path / "f.yaml"
        path.write_text(text)
        with pytest.raises(RegistryConflict, match="already belongs to registered plant "
                                                   "'jx-yujiang-cement'"):
            load_registry(conn, load_fleet(path))
        # the failed load wrote nothing
        assert conn.execute("SELECT count(*) FROM plants WHERE code = 'p1'").fetchone() == (0,)


def test_cli_registry_load_and_check_config_do_not_mix(
        migrated_db: str, example_fleet_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", migrated_db)
    assert main(["check-config", str(example_fleet_path)]) == 0
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT count(*) FROM plants").fetchone() == (0,)
    bad = GOLDEN / "bad-multiplier" / "fleet.yaml"
    assert main(["registry", "load", str(bad)]) == 2
    assert "field 'multiplier'" in capsys.readouterr().err
    assert main(["registry", "load", str(example_fleet_path)]) == 0
    assert "plants: 6 new" in capsys.readouterr().out


def test_cli_registry_load_without_schema_says_migrate(
        fresh_db: str, example_fleet_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", fresh_db)
    with pytest.raises(SystemExit, match="run `energymon migrate` first"):
        main(["registry", "load", str(example_fleet_path)])
