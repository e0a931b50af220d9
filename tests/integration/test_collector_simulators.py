"""The collector against the project's simulators (simulators.modbus_server): the shipped
example gateway files read, for every Modbus plant of the example fleet, exactly the values the
plant model intends; and every field of every meter model decodes to the simulator's value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.config import parse_gateway
from collector.gateway import Collector
from modbus import available_models

sim = pytest.importorskip("simulators.modbus_server")
from simulators.clock import SimClock  # noqa: E402
from simulators.registers import MeterRegisters  # noqa: E402
from tests.sim_support import NOON, example_model  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "collector" / "examples"


@pytest.fixture(scope="module")
def simulator() -> Iterator[Any]:
    model = example_model()
    names = [p for p, pm in model.plants.items() if pm.transport.type == "modbus"]
    server = sim.ModbusFleetServer(model, SimClock.frozen(NOON), plants=names,
                                   host="127.0.0.1", ports=dict.fromkeys(names, 0), faults=False)
    server.start_in_thread()
    yield server
    server.stop()


def _cycle(gateway: dict[str, Any], tmp_path: Path) -> dict[str, float]:
    gw = parse_gateway(gateway)
    # Wall time moved back to the quarter hour that has just passed, so the cycle reads on time
    # (not late, not skipped as a whole interval late) whatever minute the test runs at.
    started = time.time()
    tick = int(started) // 900 * 900
    c = Collector(gw, data_dir=tmp_path, mqtt=None,
                  wall=lambda: time.time() - (started - tick))

    async def go() -> None:
        try:
            results = await c.run_cycle(tick)
            assert [r.error for r in results] == [None] * len(results)
        finally:
            for link in c.links.values():
                link.close()

    asyncio.run(go())
    values = {m: v for b in c.spool.pending(1000) for m, _ts, v, _q in b.readings}
    c.spool.close()
    return values


def test_example_gateways_read_what_the_plant_model_intends(simulator: Any,
                                                            tmp_path: Path) -> None:
    model = example_model()
    t = simulator.clock.now()
    plants = 0
    for plant_id, endpoint in simulator.endpoints.items():
        data = yaml.safe_load((EXAMPLES / f"gateway-{plant_id}.yaml").read_text())
        data["gateway"]["links"][0]["port"] = endpoint.port
        data["gateway"]["spool"]["path"] = str(tmp_path / f"{plant_id}.sqlite")
        values = _cycle(data, tmp_path)
        assert set(values) == set(endpoint.unit_ids) - {
            m.id for m in model.plant(plant_id).plant.meters if m.model is None}
        for meter, value in values.items():
            mm = model.meter(plant_id, meter)
            assert value == MeterRegisters(mm).expected(t)[mm.primary.name], meter
            assert value == pytest.approx(mm.reading(t), rel=1e-6, abs=0.01), meter
        plants += 1
    assert plants == 5
    assert simulator.stats.function_codes.keys() <= {1, 2, 3, 4}


def test_every_field_of_every_model_and_meter_reported_ratios(simulator: Any,
                                                              tmp_path: Path) -> None:
    """All fields of every meter; for CT/PT meters also ``ratio: from_meter``, whose primary
    value must equal the secondary reading × the fleet multiplier."""
    model = example_model()
    t = simulator.clock.now()
    seen: set[str] = set()
    for plant_id, endpoint in simulator.endpoints.items():
        links = [{"name": "lan", "transport": "tcp", "host": "127.0.0.1",
                  "port": endpoint.port, "timeout_s": 2}]
        devices, ratio_devices = [], []
        for meter, unit_id in endpoint.unit_ids.items():
            mm = model.meter(plant_id, meter)
            devices.append({"id": meter, "link": "lan", "unit_id": unit_id,
                            "model": mm.regmap.model, "interval_s": 900, "late_after_s": 899,
                            "meters": [{"id": f"{meter}.{f.name}", "field": f.name}
                                       for f in mm.regmap.fields]})
            if mm.regmap.ct_ratio_field:
                ratio_devices.append({"id": f"{meter}.primary", "link": "lan",
                                      "unit_id": unit_id, "model": mm.regmap.model,
                                      "interval_s": 900, "late_after_s": 899,
                                      "ratio": "from_meter",
                                      "meters": [{"id": f"{meter}.primary",
                                                  "field": mm.primary.name}]})

        def gateway(devs: list[dict[str, Any]], name: str, plant: str = plant_id,
                    links: list[dict[str, Any]] = links) -> dict[str, Any]:
            return {"gateway": {"id": "gw", "plant": plant, "links": links, "devices": devs,
                                "spool": {"path": str(tmp_path / f"{name}-{plant}.sqlite")}}}

        with pytest.raises(ValueError, match="already device"):
            parse_gateway(gateway(devices + ratio_devices, "both"))  # one device per unit id
        values = _cycle(gateway(devices, "all"), tmp_path)
        if ratio_devices:
            values.update(_cycle(gateway(ratio_devices, "ratio"), tmp_path))
        for meter in endpoint.unit_ids:
            mm = model.meter(plant_id, meter)
            expected = MeterRegisters(mm).expected(t)
            for f in mm.regmap.fields:
                if expected[f.name] is None:
                    assert f"{meter}.{f.name}" not in values
                else:
                    assert values[f"{meter}.{f.name}"] == float(expected[f.name]), (meter, f.name)
            if mm.regmap.ct_ratio_field:
                primary = values[f"{meter}.primary"]
                assert primary == pytest.approx(mm.reading(t) * mm.multiplier, rel=1e-6)
            seen.add(mm.regmap.model)
    assert seen == set(available_models())
