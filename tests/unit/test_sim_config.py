"""The optional `simulation` blocks of fleet files: schema, cross-references, error locations."""

from __future__ import annotations

import pytest

from fleet import FleetError, IntensityLevel, RelativeIntensity, parse_duration
from simulators.model import FleetModel, SimulationError
from tests.sim_support import example_data, fleet, meter_of, plant_of, unit_of, with_faults


def _problems(data: dict) -> str:
    with pytest.raises(FleetError) as info:
        fleet(data)
    return "\n".join(info.value.problems)


def test_example_fleet_simulates_every_plant_with_all_three_levels() -> None:
    f = fleet()
    assert all(p.simulation is not None for p in f.plants)
    levels = {u.simulation.intensity.level for p in f.plants for u in p.units
              if isinstance(u.simulation.intensity, RelativeIntensity)}
    assert levels == set(IntensityLevel)
    transports = {p.id: p.simulation.transport.type for p in f.plants}
    assert transports["jx-yujiang-copper"] == "mqtt"
    assert sum(1 for t in transports.values() if t == "modbus") == 5
    kinds = {fault.kind for p in f.plants for m in p.meters if m.simulation
             for fault in m.simulation.faults}
    assert {"offline", "timeout", "slow", "exception", "rollover", "reset", "stuck",
            "spike"} <= kinds
    copper = f.plant("jx-yujiang-copper").simulation
    assert {x.kind for x in copper.transport.faults} == {
        "duplicate", "out_of_order", "late", "clock_skew", "malformed"}


def test_fleets_without_simulation_are_unchanged() -> None:
    data = example_data()
    data.pop("simulation")
    for plant in data["plants"]:
        plant.pop("simulation", None)
        for item in (*plant.get("units", []), *plant["meters"]):
            item.pop("simulation", None)
    f = fleet(data)
    assert f.simulation is None and all(p.simulation is None for p in f.plants)


@pytest.mark.parametrize(("text", "seconds"), [
    (900, 900), ("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1.5h", 5400)])
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_mix_must_add_up_and_name_the_units_meters() -> None:
    data = example_data()
    unit_of(data, "jx-yujiang-cement", "kiln-1")["simulation"]["mix"] = {
        "k1-elec": 0.5, "k2-coal": 0.4}
    text = _problems(data)
    assert "plant 'jx-yujiang-cement' > unit 'kiln-1' > field 'simulation'" in text
    assert "add up to 0.9" in text


def test_meter_of_a_unit_missing_from_the_mix_is_named() -> None:
    data = example_data()
    unit_of(data, "jx-yujiang-cement", "kiln-1")["simulation"]["mix"] = {"k1-elec": 1.0}
    text = _problems(data)
    assert "meter 'k1-coal' > field 'unit'" in text and "simulation.mix" in text


def test_exports_take_exported_meters_only() -> None:
    data = example_data()
    unit_of(data, "gx-liuzhou-steel", "bof-1")["simulation"]["exports"] = {"bof1-elec": 10}
    text = _problems(data)
    assert "unit 'bof-1' > field 'simulation.exports.bof1-elec'" in text
    assert "'consumed'" in text


def test_fault_fields_are_validated_with_their_location() -> None:
    data = with_faults(example_data(), "gx-liuzhou-steel", "bf1-elec",
                       [{"kind": "timeout", "probability": 1.5}])
    text = _problems(data)
    assert "plant 'gx-liuzhou-steel' > meter 'bf1-elec' > field 'simulation.faults.0" in text
    assert "probability" in text
    data = with_faults(example_data(), "gx-liuzhou-steel", "bf1-elec",
                       [{"kind": "explode"}])
    assert "explode" in _problems(data)
    data = with_faults(example_data(), "gx-liuzhou-steel", "bf1-elec",
                       [{"kind": "stuck"}])
    assert "needs a window" in _problems(data)
    data = with_faults(example_data(), "gx-liuzhou-steel", "bf1-elec",
                       [{"kind": "offline", "every": "1h", "duration": "2h"}])
    assert "shorter than 'every'" in _problems(data)


def test_modbus_faults_are_refused_on_an_mqtt_plant() -> None:
    data = with_faults(example_data(), "jx-yujiang-copper", "main-elec",
                       [{"kind": "offline"}])
    text = _problems(data)
    assert "meter 'main-elec' > field 'simulation.faults.0'" in text
    assert "Modbus fault" in text


def test_duplicate_unit_ids_and_missing_models_are_named() -> None:
    data = example_data()
    meter_of(data, "jx-shangyou-glass", "f1-gas")["simulation"]["unit_id"] = 1
    text = _problems(data)
    assert "meter 'f1-gas' > field 'simulation.unit_id': unit id 1 is also used by meter " \
           "'f1-elec'" in text
    data = example_data()
    del meter_of(data, "jx-shangyou-glass", "f1-elec")["model"]
    assert "meter 'f1-elec' > field 'model': a Modbus-simulated meter needs a register map" \
        in _problems(data)


def test_unit_without_simulation_in_a_simulated_plant_is_named() -> None:
    data = example_data()
    del unit_of(data, "cq-jiangjin-chem", "ammonia-1")["simulation"]
    assert "unit 'ammonia-1' > field 'simulation': every unit of a simulated plant" \
        in _problems(data)


def test_plant_level_meter_needs_a_load() -> None:
    data = example_data()
    del plant_of(data, "jx-yujiang-cement")["simulation"]["loads"]
    assert "meter 'whr-export' > field 'simulation': plant-level meter without a load" \
        in _problems(data)


def test_simulator_checks_name_their_location() -> None:
    data = example_data()
    plant_of(data, "jx-yujiang-copper")["simulation"]["loads"]["nope"] = {"rate": 1}
    with pytest.raises(SimulationError, match=r"plant 'jx-yujiang-copper' > field "
                                              r"'simulation.loads.nope'"):
        FleetModel(fleet(data))
    data = example_data()
    del unit_of(data, "jx-shangyou-glass", "float-1")["simulation"]["output_rate"]
    with pytest.raises(SimulationError, match=r"unit 'float-1' > field "
                                              r"'simulation.output_rate'"):
        FleetModel(fleet(data))
    data = with_faults(example_data(), "gx-liuzhou-steel", "bf1-elec",
                       [{"kind": "rollover", "at": "2026-01-01T00:00:00+08:00"}])
    with pytest.raises(SimulationError, match=r"meter 'bf1-elec' > .*declared counter width"):
        FleetModel(fleet(data))


def test_relative_intensity_needs_catalogue_values() -> None:
    data = example_data()
    del unit_of(data, "cq-jiangjin-chem", "ammonia-1")["catalogue"]
    with pytest.raises(SimulationError, match="unit 'ammonia-1' > field 'simulation.intensity'"):
        FleetModel(fleet(data))
    unit_of(data, "cq-jiangjin-chem", "ammonia-1")["simulation"]["intensity"] = 950
    model = FleetModel(fleet(data))
    unit = model.plant("cq-jiangjin-chem").units["ammonia-1"]
    assert unit.intensity == 950 and unit.intensity_unit == "kgce/t"
