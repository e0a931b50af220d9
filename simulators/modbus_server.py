"""Modbus TCP meters: every Modbus-simulated plant of a fleet served by one process.

Each plant is one Modbus TCP server (a plant gateway) on its own port with one unit id per
meter, built with pymodbus' current server API (``ModbusTcpServer`` with ``SimDevice`` /
``SimData`` register blocks; the older ``ModbusServerContext``/``ModbusDeviceContext`` are
deprecated). Register values are not stored: a ``SimDevice`` action computes the requested
registers from the plant model at the current simulated time and encodes them with the same
register maps and codec the collector uses (:class:`simulators.registers.MeterRegisters`).

Faults declared per meter act at the protocol level:

- ``offline``: the unit id does not answer (the client times out);
- ``timeout``: a share of requests gets no answer;
- ``slow``: answers are delayed by ``delay`` wall-clock seconds;
- ``exception``: the answer is a Modbus exception response with ``code``;
- value faults (rollover, reset, stuck, spike) are part of the plant model and show in the
  registers.

Unknown unit ids get no answer (like a serial gateway with nothing at that address). Write
requests are refused (illegal function) and counted: collectors must only read.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from fleet import ExceptionFault, SlowFault
from modbus.registermap import Table
from simulators import _hash
from simulators.clock import SimClock
from simulators.model import FleetModel, MeterModel, in_window
from simulators.registers import AddressError, MeterRegisters

log = logging.getLogger("energymon.simulators.modbus")

_TABLE_OF_FC = {1: Table.COIL, 2: Table.DISCRETE_INPUT, 3: Table.HOLDING, 4: Table.INPUT}
_TABLE_ORDER = (Table.COIL, Table.DISCRETE_INPUT, Table.HOLDING, Table.INPUT)


@dataclass
class ServerStats:
    """Counters of one fleet server (all plants), for tests and the perf harness."""

    requests: int = 0
    answered: int = 0
    function_codes: Counter[int] = field(default_factory=Counter)
    # requests per (plant, unit id, function code): what a test asks of one meter
    unit_requests: Counter[tuple[str, int, int]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    writes_refused: int = 0
    illegal_address: int = 0


@dataclass(frozen=True)
class Endpoint:
    plant: str
    host: str
    port: int
    unit_ids: dict[str, int]     # meter id -> unit id


def unit_ids(model: FleetModel, plant_id: str) -> dict[str, int]:
    """Modbus unit id of every meter of a plant (declared, else position from 1)."""
    out: dict[str, int] = {}
    for position, meter in enumerate(model.plant(plant_id).plant.meters, start=1):
        declared = meter.simulation.unit_id if meter.simulation else None
        out[meter.id] = declared if declared is not None else position
    return out


def _runs(addresses: Iterable[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for a in sorted(set(addresses)):
        if runs and runs[-1][0] + runs[-1][1] == a:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((a, 1))
    return runs


def _blocks(regs: MeterRegisters) -> tuple[list[SimData], list[SimData], list[SimData],
                                           list[SimData]]:
    """pymodbus register blocks covering exactly the map's addresses (others are invalid)."""
    out: list[list[SimData]] = []
    for table in _TABLE_ORDER:
        fields = regs.by_table[table]
        if table.is_bit:
            if fields:
                lo = min(f.address for f in fields) // 16 * 16
                hi = (max(f.address for f in fields) // 16 + 1) * 16
            else:
                lo, hi = 0, 16
            out.append([SimData(address=lo, values=[False] * (hi - lo),
                                datatype=DataType.BITS)])
        else:
            addresses = [a for f in fields for a in range(f.address, f.end)]
            blocks = [SimData(address=a, count=n, values=0, datatype=DataType.REGISTERS)
                      for a, n in _runs(addresses)]
            out.append(blocks or [SimData(address=0, datatype=DataType.INVALID)])
    return (out[0], out[1], out[2], out[3])


class ModbusFleetServer:
    """Serve every Modbus-simulated plant of ``model`` (or those named in ``plants``).

    ``ports`` overrides the fleet's ports per plant (0 = a free port), ``host`` overrides every
    plant's host. Use :meth:`start`/:meth:`stop` inside a running event loop, or
    :meth:`start_in_thread`/:meth:`stop` from synchronous code.
    """

    def __init__(self, model: FleetModel, clock: SimClock, *, plants: Iterable[str] | None = None,
                 host: str | None = None, ports: Mapping[str, int] | None = None,
                 faults: bool = True) -> None:
        self.model = model
        self.clock = clock
        self.faults = faults
        self.stats = ServerStats()
        self.endpoints: dict[str, Endpoint] = {}
        self._servers: list[ModbusTcpServer] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._counters: Counter[str] = Counter()
        names = list(plants) if plants is not None else [
            p for p, pm in model.plants.items() if pm.transport.type == "modbus"]
        self._plans: list[tuple[str, str, int, list[tuple[int, MeterRegisters]]]] = []
        for plant_id in names:
            pm = model.plant(plant_id)
            if pm.transport.type != "modbus":
                raise ValueError(f"plant {plant_id!r} pushes MQTT; it has no Modbus server")
            ids = unit_ids(model, plant_id)
            devices = [(ids[m.id], MeterRegisters(m)) for m in pm.meters.values()]
            port = ports.get(plant_id, pm.transport.port) if ports else pm.transport.port
            self._plans.append((plant_id, host or pm.transport.host, port, devices))

    # -- the request path --------------------------------------------------------------------
    def _draw(self, mm: MeterModel, kind: str) -> float:
        self._counters[mm.plant_id + "/" + mm.id + "/" + kind] += 1
        return _hash.uniform1(mm.key, 100 + len(kind),
                              self._counters[mm.plant_id + "/" + mm.id + "/" + kind])

    async def _action(self, regs: MeterRegisters, unit_id: int, function_code: int,
                      start_address: int, address: int, count: int, registers: list[int],
                      set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        stats = self.stats
        stats.requests += 1
        stats.function_codes[function_code] += 1
        stats.unit_requests[(regs.mm.plant_id, unit_id, function_code)] += 1
        if set_values is not None or function_code not in _TABLE_OF_FC:
            stats.writes_refused += 1
            return ExcCodes.ILLEGAL_FUNCTION
        mm = regs.mm
        t = self.clock.now()
        if self.faults:
            for fault in mm.protocol_faults:
                if not in_window(fault, t, mm.epoch_s):
                    continue
                if fault.probability < 1 and self._draw(mm, fault.kind) >= fault.probability:
                    continue
                stats.faults[fault.kind] += 1
                if fault.kind in ("offline", "timeout"):
                    raise NoSuchIdException(f"{mm.id}: {fault.kind} (simulated)")
                if isinstance(fault, ExceptionFault):
                    return ExcCodes(fault.code)
                if isinstance(fault, SlowFault):
                    await asyncio.sleep(fault.delay)
                    t = self.clock.now()
        table = _TABLE_OF_FC[function_code]
        if not regs.by_table[table]:
            stats.illegal_address += 1
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            if table.is_bit:
                first = address // 16
                bits = regs.read(table, first * 16, count * 16, t)
                offset = first - start_address
                for r in range(count):
                    word = 0
                    for i, bit in enumerate(bits[r * 16:(r + 1) * 16]):
                        if bit:
                            word |= 1 << i
                    registers[offset + r] = word
            else:
                words = regs.read(table, address, count, t)
                offset = address - start_address
                registers[offset:offset + count] = words
        except AddressError:
            stats.illegal_address += 1
            return ExcCodes.ILLEGAL_ADDRESS
        stats.answered += 1
        return None

    @staticmethod
    async def _silent(*_args: object) -> ExcCodes | None:
        raise NoSuchIdException("no meter at this unit id")

    def _devices(self, devices: list[tuple[int, MeterRegisters]]) -> list[SimDevice]:
        out = [SimDevice(id=unit_id, simdata=_blocks(regs),
                         action=partial(self._action, regs, unit_id))
               for unit_id, regs in devices]
        # every other unit id: the whole address space is valid so that the request reaches
        # the action, which answers nothing (pymodbus answers invalid addresses itself)
        everything = ([SimData(0, values=[False] * 65536, datatype=DataType.BITS)],
                      [SimData(0, values=[False] * 65536, datatype=DataType.BITS)],
                      [SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)],
                      [SimData(0, count=65536, values=0, datatype=DataType.REGISTERS)])
        out.append(SimDevice(id=0, simdata=everything, action=self._silent))
        return out

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> dict[str, Endpoint]:
        """Listen on every plant's port; returns the endpoints (with the actual ports)."""
        for plant_id, host, port, devices in self._plans:
            server = ModbusTcpServer(self._devices(devices), address=(host, port),
                                     ignore_missing_devices=True)
            await server.serve_forever(background=True)
            transport = server.transport
            actual = port
            sockets = getattr(transport, "sockets", None)
            if sockets:
                actual = int(sockets[0].getsockname()[1])
            self._servers.append(server)
            ids = {regs.mm.id: uid for uid, regs in devices}
            self.endpoints[plant_id] = Endpoint(plant_id, host, actual, ids)
            log.info("plant %s: Modbus TCP on %s:%d, %d meters", plant_id, host, actual,
                     len(devices))
        return self.endpoints

    async def stop_async(self) -> None:
        for server in self._servers:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it untyped
        self._servers.clear()

    def start_in_thread(self, timeout: float = 30) -> dict[str, Endpoint]:
        """Run the servers on an event loop in a background thread (returns when listening)."""
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # reported to the caller
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=run, name="modbus-sim", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("Modbus simulator did not start")
        if errors:
            raise errors[0]
        return self.endpoints

    def stop(self) -> None:
        """Stop a server started with :meth:`start_in_thread`."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None
            self._loop = None

    def __enter__(self) -> ModbusFleetServer:
        self.start_in_thread()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
