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


def test_a_changed_multiplier_keeps_history_and_a_declared_one_is_not_overruled(
        migrated_db: str, example_fleet_path: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from accounting.declared import add_multiplier_change
    from accounting.store import Accountant
    from tests.integration.test_accounting import write_counter

    text = example_fleet_path.read_text()
    assert "multiplier: 40, model: acrel_adl400}" in text      # f1-elec of the glass plant
    changed = tmp_path / "fleet.yaml"
    changed.write_text(text.replace("multiplier: 40, model: acrel_adl400}",
                                    "multiplier: 80, model: acrel_adl400}"))
    history = ("SELECT h.multiplier::float8, source, valid_from = '-infinity' FROM "
               "meter_multipliers h JOIN meters m ON m.id = h.meter_id WHERE m.code = 'f1-elec' "
               "ORDER BY valid_from")
    current = "SELECT multiplier::float8 FROM meters WHERE code = 'f1-elec'"
    with psycopg.connect(migrated_db) as conn:
        load_registry(conn, load_fleet(example_fleet_path))
        meter_id = conn.execute("SELECT id FROM meters WHERE code = 'f1-elec'").fetchone()[0]
        # readings before the change: 2 kWh per 15 minutes on the register
        now = datetime.now(UTC)
        start = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) \
            - timedelta(hours=2)
        write_counter(conn, meter_id, start, 4, 2.0)
        conn.commit()
        summary = load_registry(conn, load_fleet(changed))
        assert any("multiplier 40 -> 80 from now on" in n for n in summary.notes)
        assert conn.execute(history).fetchall() == [(40.0, "registry", True),
                                                    (80.0, "registry load", False)]
        assert conn.execute(current).fetchone() == (80.0,)
        conn.commit()
    # history is not rewritten: the readings before the change keep x40 (4 x 2 x 40)
    Accountant(migrated_db).recompute([meter_id])
    with psycopg.connect(migrated_db) as conn:
        assert conn.execute("SELECT sum(quantity) FROM energy_intervals WHERE meter_id = %s",
                            (meter_id,)).fetchone()[0] == pytest.approx(320.0)
        # a declared change (a CT swap, after that load) is not overruled by a later load of
        # an old file (the load's change is moved an hour back to leave room for it)
        conn.execute("UPDATE meter_multipliers SET valid_from = valid_from - INTERVAL '1 hour' "
                     "WHERE source = 'registry load'")
        add_multiplier_change(conn, plant="jx-shangyou-glass", meter="f1-elec",
                              valid_from=datetime.now(UTC) - timedelta(minutes=1),
                              multiplier=120,
                              source="CT 600/5 -> 3000/5", actor="test")
        conn.commit()
        summary = load_registry(conn, load_fleet(example_fleet_path))
        assert any("from its declared history (kept" in n for n in summary.notes)
        assert conn.execute(current).fetchone() == (120.0,)
        assert [r[0] for r in conn.execute(history)] == [40.0, 80.0, 120.0]
