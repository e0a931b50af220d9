"""Modbus TCP meters against a real pymodbus client on loopback (ephemeral ports).

Every register of every meter model reads back the value the plant model intends (decoded
with the shared register maps and codec); declared faults show up at the protocol level.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from modbus import decode_plan, load_register_map, plan_reads
from modbus.registermap import available_models
from simulators.clock import SimClock
from simulators.modbus_server import Endpoint, ModbusFleetServer
from simulators.model import STEP_S, FleetModel
from simulators.registers import MeterRegisters, split_multiplier
from tests.sim_support import NOON, example_data, example_model, model, with_faults

READ = {1: "read_coils", 2: "read_discrete_inputs", 3: "read_holding_registers",
        4: "read_input_registers"}


def _serve(m: FleetModel, clock: SimClock, plants: list[str] | None = None, *,
           faults: bool = True) -> ModbusFleetServer:
    names = plants or [p for p, pm in m.plants.items() if pm.transport.type == "modbus"]
    return ModbusFleetServer(m, clock, plants=names, host="127.0.0.1",
                             ports=dict.fromkeys(names, 0), faults=faults)


@pytest.fixture
def example_server() -> Iterator[tuple[ModbusFleetServer, SimClock]]:
    """The example fleet's Modbus plants, protocol faults off (value faults stay)."""
    clock = SimClock.frozen(NOON)
    server = _serve(example_model(), clock, faults=False)
    server.start_in_thread()
    yield server, clock
    server.stop()


async def _poll(ep: Endpoint, m: FleetModel, meter: str, timeout: float = 2.0,
                ) -> dict[str, object]:
    mm = m.meter(ep.plant, meter)
    unit_id = ep.unit_ids[meter]
    client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=timeout, retries=0)
    await client.connect()
    try:
        responses = []
        for request in plan_reads(mm.regmap, unit_id):
            rr = await getattr(client, READ[request.function_code])(
                request.address, count=request.count, device_id=unit_id)
            assert not rr.isError(), (meter, request, rr)
            responses.append((request, rr.bits if request.is_bit_read else rr.registers))
        return decode_plan(responses)
    finally:
        client.close()


def test_every_register_of_every_meter_model_reads_back(example_server) -> None:
    server, clock = example_server
    m = example_model()
    t = clock.now()
    models_seen = set()

    async def run() -> None:
        for ep in server.endpoints.values():
            for meter in ep.unit_ids:
                mm = m.meter(ep.plant, meter)
                got = await _poll(ep, m, meter)
                regs = MeterRegisters(mm)
                assert got == regs.expected(t), meter
                models_seen.add(mm.regmap.model)
                # the counter a collector reads is the plant model's reading
                primary = got[mm.primary.name]
                assert primary == pytest.approx(mm.reading(t), rel=1e-6, abs=0.01), meter
                rmap = mm.regmap
                if rmap.ct_ratio_field:
                    ct = got[rmap.ct_ratio_field]
                    pt = got[rmap.pt_ratio_field] if rmap.pt_ratio_field else 1
                    assert ct * pt == pytest.approx(mm.multiplier)
                    assert (ct, pt) == pytest.approx(split_multiplier(mm.multiplier))

    asyncio.run(run())
    assert models_seen == set(available_models())
    assert server.stats.function_codes.keys() <= {1, 2, 3, 4}


def test_instantaneous_values_match_the_interval_energy(example_server) -> None:
    server, clock = example_server
    m = example_model()
    ep = server.endpoints["jx-yujiang-cement"]
    got = asyncio.run(_poll(ep, m, "k2-elec"))             # Acrel: secondary side, CT 60
    mm = m.meter("jx-yujiang-cement", "k2-elec")
    k = int(clock.now() // STEP_S)
    kw_primary = mm.quantities(k, k + 1)[0] / 0.25
    assert got["active_power"] * 60 == pytest.approx(kw_primary, rel=1e-3)
    assert got["energy_total"] == got["energy_import"] and got["energy_export"] == 0
    assert 0.8 < got["power_factor"] < 1
    whr = asyncio.run(_poll(ep, m, "whr-export"))          # exported: SDM630 signs export
    assert whr["active_power"] < 0 and whr["energy_import"] == 0 and whr["energy_export"] > 0


def test_unknown_unit_illegal_address_and_writes(example_server) -> None:
    server, _ = example_server
    ep = server.endpoints["gx-liujiang-aluminium"]

    async def run() -> None:
        client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=0.3, retries=0)
        await client.connect()
        try:
            with pytest.raises(ModbusIOException):       # nothing answers at unit 99
                await client.read_holding_registers(0, count=2, device_id=99)
            rr = await client.read_holding_registers(0x0200, count=2, device_id=1)
            assert rr.isError() and rr.exception_code == 2
            rr = await client.write_register(0, 5, device_id=1)
            assert rr.isError() and rr.exception_code == 1
            rr = await client.read_holding_registers(0, count=2, device_id=1)  # still serving
            assert not rr.isError()
        finally:
            client.close()

    asyncio.run(run())
    assert server.stats.writes_refused == 1


def _fault_model(plant: str, meter: str, faults: list[dict]) -> FleetModel:
    return model(with_faults(example_data(), plant, meter, faults), plants=[plant])


@pytest.mark.parametrize(("fault", "outcome"), [
    ({"kind": "offline", "every": "1d", "duration": "2h", "offset": "11h"}, "silent"),
    ({"kind": "timeout"}, "silent"),
    ({"kind": "exception", "code": 6}, 6),
    ({"kind": "exception", "code": 4}, 4),
    ({"kind": "slow", "delay": 1.0}, "silent"),    # slower than the client's 0.3 s
])
def test_protocol_faults_show_up_as_declared(fault: dict, outcome: object) -> None:
    plant, meter = "gx-liujiang-aluminium", "pl1-ac"
    m = _fault_model(plant, meter, [fault])
    clock = SimClock.frozen(NOON)                  # 12:00 local = epoch + 11 h + k days
    server = _serve(m, clock)
    ep = server.start_in_thread()[plant]

    async def run() -> None:
        client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=0.3, retries=0)
        await client.connect()
        try:
            if outcome == "silent":
                with pytest.raises(ModbusIOException):
                    await client.read_holding_registers(0, count=2, device_id=1)
            else:
                rr = await client.read_holding_registers(0, count=2, device_id=1)
                assert rr.isError() and rr.exception_code == outcome
            # the other meter on the same port is unaffected
            rr = await client.read_holding_registers(0, count=1, device_id=2)
            assert not rr.isError()
        finally:
            client.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()
    assert server.stats.faults[fault["kind"]] >= 1


def test_offline_window_closes_and_slow_answers_arrive() -> None:
    plant, meter = "gx-liujiang-aluminium", "pl1-ac"
    m = _fault_model(plant, meter, [
        {"kind": "offline", "every": "1d", "duration": "2h", "offset": "11h"},
        {"kind": "slow", "delay": 0.2}])
    clock = SimClock.frozen(NOON)
    server = _serve(m, clock)
    ep = server.start_in_thread()[plant]

    async def run() -> None:
        client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=0.3, retries=0)
        await client.connect()
        try:
            with pytest.raises(ModbusIOException):
                await client.read_holding_registers(0, count=2, device_id=1)
        finally:
            client.close()
        clock.set(NOON.timestamp() + 3 * 3600)               # 15:00 local: back online
        client = AsyncModbusTcpClient(ep.host, port=ep.port, timeout=2.0, retries=0)
        await client.connect()
        try:
            rr = await client.read_holding_registers(0, count=2, device_id=1)
            assert not rr.isError()                          # slow, but within 2 s
        finally:
            client.close()

    try:
        asyncio.run(run())
    finally:
        server.stop()
    assert server.stats.faults["slow"] == 1 and server.stats.faults["offline"] >= 1


def test_value_faults_are_visible_in_the_registers() -> None:
    m = example_model()
    plants = ["jx-shangyou-glass", "cq-jiangjin-chem"]
    at = datetime.fromisoformat("2026-11-25T10:00:00+08:00").timestamp()
    clock = SimClock.frozen(at - 60)
    server = _serve(m, clock, plants)
    eps = server.start_in_thread()
    gas = m.meter("jx-shangyou-glass", "f1-gas")
    rmap = load_register_map("generic_flow_totaliser")
    try:
        before = asyncio.run(_poll(eps["jx-shangyou-glass"], m, "f1-gas"))["flow_total"]
        clock.set(at + 60)
        after = asyncio.run(_poll(eps["jx-shangyou-glass"], m, "f1-gas"))["flow_total"]
        assert before > gas.modulus - 100 and after < 100            # rolled over at `at`
        assert rmap.field("flow_total").rollover_raw == 2**32 - 1
        reset = datetime.fromisoformat("2026-10-15T09:30:00+08:00").timestamp()
        clock.set(reset + 900)
        steam = asyncio.run(_poll(eps["cq-jiangjin-chem"], m, "ca1-steam"))
        mm = m.meter("cq-jiangjin-chem", "ca1-steam")
        assert steam["heat_total"] == pytest.approx(mm.cum_t(reset + 900) - mm.cum_t(reset))
        stuck = m.meter("cq-jiangjin-chem", "am1-elec").stuck[0]
        opens = m.epoch_s + stuck.offset + 100 * stuck.every
        clock.set(opens + 60)
        first = asyncio.run(_poll(eps["cq-jiangjin-chem"], m, "am1-elec"))
        clock.set(opens + 3600)
        second = asyncio.run(_poll(eps["cq-jiangjin-chem"], m, "am1-elec"))
        assert first == second                                        # every value frozen
        clock.set(opens + 3 * 3600)
        assert asyncio.run(_poll(eps["cq-jiangjin-chem"], m, "am1-elec")) != first
    finally:
        server.stop()
