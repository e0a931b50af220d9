"""Plant gateways of the project's Modbus simulator for the collector tests, meter by meter.

:class:`SimMeter` is one meter behind a gateway: its Modbus unit id, its register map and the
protocol faults of the fleet file's vocabulary (:mod:`fleet.simulation`), e.g.
``{"kind": "offline"}`` (the unit never answers), ``{"kind": "slow", "delay": 0.3}``,
``{"kind": "exception", "code": 4}`` or ``{"kind": "timeout", "probability": 0.5}``.
:class:`SimulatedGateway` turns a list of them into a one-plant fleet (one production line whose
consumed energy is spread over the plant's counters) and serves it with
:class:`simulators.modbus_server.ModbusFleetServer` (Modbus TCP) on its own port, in a background
thread. The clock is frozen (:data:`tests.sim_support.NOON` unless told otherwise), so every
register holds still while a test runs and :meth:`SimulatedGateway.served` says what the
collector must read.

Tests that need RTU framing or register contents of their own choosing use
:mod:`tests.support.modbus_image` instead (its docstring says why the simulator cannot serve
them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleet import parse_fleet, uscc_check_char
from modbus import load_register_map
from modbus.codec import Number
from modbus.registermap import Quantity
from simulators.clock import SimClock
from simulators.modbus_server import ModbusFleetServer, ServerStats
from simulators.model import FleetModel
from simulators.registers import MeterRegisters
from tests.sim_support import NOON

PLANT = "sim-gw"
_FIRST17 = "913600000001GWAYT"  # a fictional credit code (the check character is computed)


@dataclass(frozen=True)
class SimMeter:
    """One simulated meter: Modbus unit id, register map, declared protocol faults."""

    unit_id: int
    model: str
    faults: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "faults", tuple(dict(f) for f in self.faults))

    @property
    def meter_id(self) -> str:
        return f"u{self.unit_id}"


@dataclass(frozen=True)
class ServedMeter:
    """What the simulator serves for one unit id: every field's engineering value, decoded."""

    unit_id: int
    model: str
    values: dict[str, Number | None] = field(default_factory=dict)


def _meter_data(m: SimMeter) -> dict[str, Any]:
    """The fleet-file meter for a register map: its counter decides what it measures."""
    quantities = {f.quantity for f in load_register_map(m.model).fields}
    if Quantity.PRODUCTION_TOTAL in quantities:
        kind = {"kind": "production", "energy_type": "product", "eng_unit": "t"}
    elif quantities & {Quantity.ENERGY_IMPORT, Quantity.ENERGY_TOTAL}:
        kind = {"kind": "counter", "energy_type": "electricity", "eng_unit": "kWh"}
    else:
        kind = {"kind": "counter", "energy_type": "raw_coal", "eng_unit": "t"}
    return {"id": m.meter_id, "name": f"{m.model} at unit {m.unit_id}", "unit": "line",
            "model": m.model, **kind,
            "simulation": {"unit_id": m.unit_id, "faults": [dict(f) for f in m.faults]}}


def gateway_fleet(meters: Sequence[SimMeter]) -> FleetModel:
    """A one-plant fleet (plant :data:`PLANT`, Modbus transport) with exactly these meters."""
    data = [_meter_data(m) for m in meters]
    consumed = [d["id"] for d in data if d["kind"] != "production"]
    if not consumed:
        raise ValueError("a simulated gateway needs at least one energy counter (the line's "
                         "energy is spread over them)")
    share = round(1.0 / len(consumed), 12)
    mix = dict.fromkeys(consumed, share)
    mix[consumed[-1]] = round(1.0 - share * (len(consumed) - 1), 12)
    plant = {
        "id": PLANT, "uscc": _FIRST17 + uscc_check_char(_FIRST17), "name": "simulated gateway",
        "region": "360000", "industry": "cement", "energy_class": "ge_10000_tce",
        "key_unit": True,
        "simulation": {"transport": {"type": "modbus", "host": "127.0.0.1", "port": 0}},
        "units": [{"id": "line", "name": "clinker line", "catalogue": "cement/clinker",
                   "product": "cement clinker", "product_unit": "t", "design_capacity": 5000,
                   "capacity_unit": "t/d",
                   "simulation": {"intensity": {"level": "at_benchmark", "where": 0.5},
                                  "mix": mix}}],
        "meters": data,
    }
    fleet = parse_fleet({
        "fleet": "sim-gateway", "timezone": "Asia/Shanghai",
        "simulation": {"epoch": "2026-01-01T00:00:00+08:00", "seed": 1},
        "regions": [{"code": "360000", "name": "Jiangxi", "level": "province"}],
        "plants": [plant]}, "sim-gateway")
    return FleetModel(fleet)


class SimulatedGateway:
    """One plant gateway of the simulator: a Modbus TCP port with ``meters`` behind it.

    :meth:`start` listens (on a free port the first time, on the same port after
    :meth:`stop`); the request counters run on across a restart.
    """

    def __init__(self, meters: Iterable[SimMeter], *, clock: SimClock | None = None) -> None:
        self.meters = {m.unit_id: m for m in meters}
        self.clock = clock if clock is not None else SimClock.frozen(NOON)
        self.model = gateway_fleet(list(self.meters.values()))
        self.host = "127.0.0.1"
        self.port = 0
        self._server: ModbusFleetServer | None = None
        self._stats = ServerStats()

    def start(self) -> SimulatedGateway:
        if self._server is not None:
            raise RuntimeError("the gateway is already serving")
        server = ModbusFleetServer(self.model, self.clock, host=self.host,
                                   ports={PLANT: self.port})
        server.stats = self._stats
        self.port = server.start_in_thread()[PLANT].port
        self._server = server
        return self

    def stop(self) -> None:
        """Close the port and every connection to it (like a gateway losing power)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def requests(self) -> list[tuple[int, int]]:
        """(unit id, function code) of every request received (grouped, not in order)."""
        return [(unit_id, fc)
                for (_plant, unit_id, fc), n in self._stats.unit_requests.items()
                for _ in range(n)]

    @property
    def function_codes(self) -> set[int]:
        return set(self._stats.function_codes)

    def served(self, unit_id: int) -> ServedMeter:
        """What the collector must decode from ``unit_id`` at the clock's time."""
        meter = self.meters[unit_id]
        mm = self.model.meter(PLANT, meter.meter_id)
        return ServedMeter(unit_id, meter.model, MeterRegisters(mm).expected(self.clock.now()))


class SimulatedGateways:
    """Starts gateways for one test and stops every one of them at its end."""

    def __init__(self, clock: SimClock | None = None) -> None:
        self.clock = clock if clock is not None else SimClock.frozen(NOON)
        self._gateways: list[SimulatedGateway] = []

    def start(self, meters: Iterable[SimMeter]) -> SimulatedGateway:
        gateway = SimulatedGateway(meters, clock=self.clock)
        self._gateways.append(gateway)
        return gateway.start()

    def close(self) -> None:
        for gateway in self._gateways:
            gateway.stop()
        self._gateways.clear()
