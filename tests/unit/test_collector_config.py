"""Gateway files: golden check-config cases, the shipped examples, sizing and plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import main
from collector.config import (
    GatewayConfigError,
    load_gateway,
    parse_gateway,
    readings_for_six_months,
    spool_path,
)
from collector.polling import DevicePlan

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden" / "gateways"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())
EXAMPLES = sorted((REPO / "collector" / "examples").glob("gateway-*.yaml"))


@pytest.mark.parametrize("case", CASES)
def test_check_config_golden(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    expected = [line for line in (GOLDEN / case / "expected.txt").read_text().splitlines()
                if line.strip()]
    path = GOLDEN / case / "gateway.yaml"
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    if not expected:
        assert code == 0, err
        assert "valid gateway" in out
        return
    assert code == 2
    for line in expected:
        assert line in err, f"missing in output:\n{line}\n--- got ---\n{err}"
    assert f"{len(expected)} problem(s)" in err
    assert str(path) in err


def test_check_config_still_validates_fleet_files(example_fleet_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(example_fleet_path)]) == 0
    assert "valid fleet" in capsys.readouterr().out


def _gateway(**overrides: object) -> dict[str, object]:
    g: dict[str, object] = {
        "id": "gw-1", "plant": "p1",
        "links": [{"name": "lan", "transport": "tcp", "host": "127.0.0.1"}],
        "devices": [{"id": "d1", "link": "lan", "unit_id": 1, "model": "chint_dtsu666",
                     "meters": [{"id": "e1", "field": "energy_import"}]}],
    }
    g.update(overrides)
    return {"gateway": g}


def test_defaults_and_derived_values(tmp_path: Path) -> None:
    gw = parse_gateway(_gateway())
    dev, link = gw.devices[0], gw.links[0]
    assert (dev.interval_s, dev.ratio, dev.late_threshold_s) == (900, "none", 60.0)
    assert (link.timeout_s, link.retries, link.reset_on_timeout) == (1.0, 1, False)
    assert gw.spool.when_full == "drop_oldest" and gw.publish.order == "oldest_first"
    assert spool_path(gw, tmp_path) == tmp_path / "collector" / "gw-1.sqlite"
    rtu = parse_gateway(_gateway(links=[{"name": "lan", "transport": "rtu_over_tcp",
                                         "host": "h"}]))
    assert rtu.links[0].reset_on_timeout is True
    assert parse_gateway(_gateway(devices=[{
        "id": "d1", "link": "lan", "unit_id": 1, "model": "chint_dtsu666", "interval_s": 60,
        "meters": [{"id": "e1", "field": "energy_import"}]}])).devices[0].late_threshold_s == 30


def test_six_month_sizing() -> None:
    assert readings_for_six_months(1) == 96 * 183
    assert readings_for_six_months(200) == 3_513_600
    assert readings_for_six_months(200, 3600) == 200 * 24 * 183


def test_error_names_the_file() -> None:
    with pytest.raises(GatewayConfigError) as err:
        parse_gateway({"fleet": "x"}, "some.yaml")
    assert str(err.value).startswith("some.yaml: 1 problem(s)")


def test_quirks_and_gaps_shape_the_plan() -> None:
    gw = parse_gateway(_gateway(
        links=[{"name": "lan", "transport": "tcp", "host": "h",
                "quirks": {"max_registers_per_read": 4}}],
        devices=[{"id": "d1", "link": "lan", "unit_id": 9, "model": "chint_dtsu666",
                  "max_gap": 2, "ratio": "from_meter",
                  "meters": [{"id": "v1", "field": "voltage_l1"},
                             {"id": "v2", "field": "voltage_l2"},
                             {"id": "v3", "field": "voltage_l3"}]}]))
    plan = DevicePlan.build(gw.devices[0], gw.links[0])
    # ct/pt ratios (0x0006-0x0007) are read too; three float32 voltages at 0x2006.. fit 4+2
    assert [(r.address, r.count) for r in plan.requests] == [(6, 2), (0x2006, 4), (0x200A, 2)]
    assert {r.unit_id for r in plan.requests} == {9}


def test_ratio_conversion_of_values() -> None:
    base = {"link": "lan", "unit_id": 1, "model": "acrel_adl400",
            "meters": [{"id": "e", "field": "energy_import"}, {"id": "f", "field": "frequency"}]}
    decoded = {"energy_import": 100.0, "frequency": 50.0, "ct_ratio": 30, "pt_ratio": 2}
    cases = [({"ratio": "none"}, 100.0), ({"ratio": "configured", "ct_ratio": 60}, 6000.0),
             ({"ratio": "configured", "ct_ratio": 60, "pt_ratio": 100}, 600000.0),
             ({"ratio": "from_meter"}, 6000.0)]
    for extra, expected in cases:
        gw = parse_gateway(_gateway(devices=[{"id": "d1", **base, **extra}]))
        plan = DevicePlan.build(gw.devices[0], gw.links[0])
        values, missing = plan.meter_values(decoded)
        assert values == {"e": expected, "f": 50.0} and missing == [], extra
    gw = parse_gateway(_gateway(devices=[{"id": "d1", **base, "ratio": "from_meter"}]))
    plan = DevicePlan.build(gw.devices[0], gw.links[0])
    assert plan.meter_values({**decoded, "ct_ratio": None}) == ({"f": 50.0}, ["e"])
    assert plan.meter_values({**decoded, "energy_import": None})[1] == ["e"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_gateways_are_valid(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path)]) == 0
    assert "valid gateway" in capsys.readouterr().out


def test_example_gateways_match_the_example_fleet(example_fleet_path: Path) -> None:
    """Every Modbus plant of the example fleet has a gateway that reads each of its modelled
    meters at the simulator's address, with the register the simulators treat as the meter's
    reading, at the meter's interval."""
    from fleet import load_fleet

    sim = pytest.importorskip("simulators.model")
    from modbus import load_register_map

    fleet = load_fleet(example_fleet_path)
    gateways = {g.plant: g for g in map(load_gateway, EXAMPLES)}
    for plant in fleet.plants:
        transport = plant.simulation.transport if plant.simulation else None
        if transport is None or transport.type != "modbus":
            assert plant.id not in gateways
            continue
        gw = gateways[plant.id]
        assert gw.spool.capacity_readings >= readings_for_six_months(len(plant.meters))
        (link,) = gw.links
        assert (link.host, link.port) == (transport.host, transport.port)
        bound = {m.id: d for d in gw.devices for m in d.meters}
        for position, meter in enumerate(plant.meters, start=1):
            if meter.model is None:
                continue
            dev = bound[meter.id]
            unit_id = (meter.simulation.unit_id if meter.simulation
                       and meter.simulation.unit_id else position)
            field = sim.primary_field(meter, load_register_map(meter.model)).name
            assert (dev.unit_id, dev.model, dev.interval_s) == (unit_id, meter.model,
                                                                meter.interval_s)
            assert dev.meters[0].field == field and dev.ratio == "none"


def test_collect_needs_a_broker_or_spool_only(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENERGYMON_MQTT_URL", raising=False)
    assert main(["collect", "--gateway", str(EXAMPLES[0])]) == 2
    assert "ENERGYMON_MQTT_URL is not set" in capsys.readouterr().err
    bad = GOLDEN / "unknown-link" / "gateway.yaml"
    assert main(["collect", "--gateway", str(bad)]) == 2
    assert "unknown link 'lan-2'" in capsys.readouterr().err


def test_a_relative_spool_path_stays_under_the_data_directory(tmp_path: Path) -> None:
    # security review L2: `spool: {path: ../../escape-dir/spool.sqlite}` created a file
    # outside ENERGYMON_DATA_DIR
    with pytest.raises(GatewayConfigError) as err:
        parse_gateway(_gateway(spool={"path": "../../escape-dir/spool.sqlite"}), "gw.yaml")
    assert "field 'path'" in str(err.value) or "path" in str(err.value)
    assert "leaves the data directory" in str(err.value)
    inside = parse_gateway(_gateway(spool={"path": "spools/gw-1.sqlite"}))
    assert spool_path(inside, tmp_path) == tmp_path / "spools" / "gw-1.sqlite"
    absolute = parse_gateway(_gateway(spool={"path": str(tmp_path / "elsewhere.sqlite")}))
    assert spool_path(absolute, Path("/data")) == tmp_path / "elsewhere.sqlite"
