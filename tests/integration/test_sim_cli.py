"""`energymon simulate ...` end to end (in-process, loopback, ephemeral ports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli import main
from app.devservices.broker import Mosquitto
from simulators.truth import read_truth_csv
from tests.sim_support import NOON, example_data, plant_of

START = NOON.isoformat()


def test_truth_prints_each_units_verdict(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out_file, summary = tmp_path / "truth.csv", tmp_path / "summary.json"
    code = main(["simulate", "truth", "--to", START, "--days", "2", "--out", str(out_file),
                 "--summary", str(summary)])
    out = capsys.readouterr().out
    assert code == 0, out
    units = json.loads(summary.read_text())
    assert len(units) == 9 and all(u["status"] == u["declared"] for u in units)
    assert "below_baseline" in out and "at_benchmark" in out
    rows = read_truth_csv(out_file)
    assert {r["quantity"] for r in rows} == {
        "energy", "kgce", "reading", "output", "consumed_kgce", "exported_kgce", "net_kgce"}


def test_modbus_serves_for_a_while_and_writes_endpoints(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    endpoints, truth = tmp_path / "endpoints.json", tmp_path / "run.csv"
    code = main(["simulate", "modbus", "--free-ports", "--host", "127.0.0.1", "--start", START,
                 "--speed", "3600", "--duration", "0.6", "--endpoints", str(endpoints),
                 "--truth", str(truth)])
    out = capsys.readouterr().out
    assert code == 0, out
    served = json.loads(endpoints.read_text())
    assert set(served) == {"jx-yujiang-cement", "jx-shangyou-glass", "gx-liuzhou-steel",
                           "gx-liujiang-aluminium", "cq-jiangjin-chem"}
    assert all(e["port"] > 0 and e["host"] == "127.0.0.1" for e in served.values())
    assert served["gx-liuzhou-steel"]["unit_ids"]["eaf1-elec"] == 8
    assert "28 Modbus meters of 5 plants" in out
    assert truth.exists() and len(read_truth_csv(truth)) > 0


def test_mqtt_publishes_the_pushing_plant(mosquitto: Mosquitto,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "mqtt", "--url", mosquitto.url, "--start", START, "--speed",
                 "3600", "--duration", "0.8", "--no-faults"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "jx-yujiang-copper" in out
    published = int(out.split("published ")[1].split(" messages")[0])
    assert published >= 2


def test_configuration_errors_name_the_place(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = example_data()
    plant_of(data, "jx-yujiang-copper")["simulation"]["loads"]["main-oil"] = {"rate": 5}
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    code = main(["simulate", "truth", "--fleet", str(path), "--to", START])
    err = capsys.readouterr().err
    assert code == 2
    assert "plant 'jx-yujiang-copper' > field 'simulation.loads.main-oil'" in err
    code = main(["simulate", "mqtt", "--fleet", str(path)])
    assert code == 2


def test_the_whole_fleet_runs_in_the_background(mosquitto: Mosquitto) -> None:
    import asyncio

    from pymodbus.client import AsyncModbusTcpClient

    from core.settings import MqttEndpoint
    from simulators.model import STEP_S
    from simulators.runtime import SimulatedFleet
    from tests.integration.test_sim_mqtt import Subscriber
    from tests.sim_support import example_model

    sub = Subscriber(mosquitto)
    start = (int(NOON.timestamp() // STEP_S) + 1) * STEP_S - 60
    sim = SimulatedFleet(example_model(), mqtt=MqttEndpoint.parse(mosquitto.url), start=start,
                         speed=600, free_ports=True, faults=False)
    with sim:
        ep = sim.endpoints["gx-liujiang-aluminium"]

        async def read() -> list[int]:
            client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=2, retries=0)
            await client.connect()
            try:
                rr = await client.read_holding_registers(0, count=2, device_id=1)
                return rr.registers
            finally:
                client.close()

        assert len(asyncio.run(read())) == 2
        sub.wait_for(1, timeout=10)
    sub.close()
    assert sub.messages and sub.messages[0][0] == "plants/jx-yujiang-copper/readings"
