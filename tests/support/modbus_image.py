"""A Modbus server that serves fixed register images, for what the simulator cannot serve.

The collector tests use the project's simulator (:mod:`simulators.modbus_server`, wrapped by
:mod:`tests.support.sim_gateways`) wherever it will do: it serves the plant model's values over
Modbus TCP and injects the fleet file's protocol faults (offline, timeout, slow, exception). This
hand-rolled server stays for the three things the simulator does not do:

- **RTU framing.** :class:`ModbusTestServer` with ``framing="rtu"`` speaks RTU frames (CRC-16)
  over TCP, for ``rtu_over_tcp`` links and, through pyserial's ``socket://`` URLs, for ``rtu``
  links; ``ModbusFleetServer`` speaks Modbus TCP (MBAP) only.
- **Register contents chosen by the test.** A :class:`Unit` holds an engineering value for
  every field of its register map (:func:`sample_values`: exact after encoding, bits, floats,
  64-bit counters, scale registers) which :meth:`Unit.set_values` can replace, e.g. counters
  one step below their width or rollover, or ``None`` for the "not available" sentinel. The
  simulator's registers follow the plant model and cannot be set.
- **A register image without a server.** :meth:`Unit.read` answers the fake pymodbus client of
  the poller's unit tests (``tests/unit/test_collector_polling.py``).

It injects no faults (declare those on a simulated meter instead). Every (unit id, function
code) it receives is recorded in order; unknown unit ids get no answer. It runs on its own
event loop in a background thread (:class:`ServerThread`), so the code under test may be
synchronous, asynchronous or another process.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from modbus import RegisterMap, load_register_map
from modbus.codec import DataType, Number, apply_scaling

READ_FCS = {1, 2, 3, 4}


def crc16(data: bytes) -> int:
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def sample_values(rmap: RegisterMap, seed: int = 1) -> dict[str, Number]:
    """A representable engineering value for every field of a map (exact after decoding)."""
    values: dict[str, Number] = {}
    exponents: dict[str, int] = {}
    for f in rmap.fields:  # ratio and scale registers first: others depend on them
        if f.quantity.value in ("ct_ratio", "pt_ratio"):
            ratio = 5 + seed if f.quantity.value == "ct_ratio" else 20
            values[f.name] = apply_scaling(ratio, scale=f.scale, scale_exponent=f.scale_exponent,
                                           offset=f.offset)
        elif f.quantity.value == "scale_factor" or any(
            g.scale_register == f.name for g in rmap.fields
        ):
            values[f.name] = apply_scaling(2, scale=f.scale, offset=f.offset)
            exponents[f.name] = f.exponent_from(values[f.name]) or 0
    for i, f in enumerate(rmap.fields):
        if f.name in values:
            continue
        k = i + 1 + seed
        if f.dtype is DataType.BOOL:
            values[f.name] = bool(k % 2)
            continue
        exponent = exponents[f.scale_register] if f.scale_register else f.scale_exponent
        if f.dtype.is_float:
            raw: Number = 1000.0 + 37.25 * k
        else:
            big = {16: 1200 + k, 32: 123_456_789 + 1001 * k, 64: 98_765_432_101 + k}[f.dtype.bits]
            raw = min(big, int(f.dtype.max_raw) - 1)
            if f.rollover_raw is not None:
                raw = min(raw, int(f.rollover_raw) - 1)
            if any(int(s) & ((1 << f.dtype.bits) - 1) == raw for s in f.sentinels):
                raw -= 1
        values[f.name] = apply_scaling(raw, scale=f.scale, scale_exponent=exponent,
                                       offset=f.offset)
    return values


Image = dict[int, dict[int, int]]


def encode_image(rmap: RegisterMap, values: Mapping[str, Number | None]) -> Image:
    """Register image ``{function_code: {address: register-or-bit}}`` for a map's values."""
    image: Image = {1: {}, 2: {}, 3: {}, 4: {}}
    exponents: dict[str, int | None] = {}
    for f in rmap.fields:
        if any(g.scale_register == f.name for g in rmap.fields):
            exponents[f.name] = f.exponent_from(values.get(f.name))
    for f in rmap.fields:
        if f.name not in values:
            continue
        value = values[f.name]
        if f.scale_register is not None:
            regs = f.encode(value, scale_exponent=exponents[f.scale_register])
        else:
            regs = f.encode(value)
        table = image[f.function_code]
        for offset, reg in enumerate(regs):
            if f.bit is not None:
                table[f.address] = table.get(f.address, 0) | reg
            else:
                table[f.address + offset] = reg
    return image


@dataclass
class Unit:
    """One device behind a server: its register map and the values its registers encode."""

    unit_id: int
    model: str
    values: dict[str, Number | None] = field(default_factory=dict)
    image: Image = field(default_factory=dict)

    def __post_init__(self) -> None:
        rmap = load_register_map(self.model)
        if not self.values:
            self.values = dict(sample_values(rmap, seed=self.unit_id))
        self.image = encode_image(rmap, self.values)

    def set_values(self, **values: Number | None) -> None:
        self.values.update(values)
        self.image = encode_image(load_register_map(self.model), self.values)

    def read(self, fc: int, address: int, count: int) -> list[int]:
        """Registers/bits (unmapped addresses read 0)."""
        table = self.image.get(fc, {})
        return [table.get(a, 0) for a in range(address, address + count)]


def _pdu_response(unit: Unit | None, pdu: bytes, log: list[tuple[int, int]]) -> bytes | None:
    fc = pdu[0]
    uid = unit.unit_id if unit else -1
    log.append((uid, fc))
    if unit is None:
        return None
    if fc not in READ_FCS or len(pdu) < 5:
        return bytes((fc | 0x80, 1))
    address, count = struct.unpack(">HH", pdu[1:5])
    data = unit.read(fc, address, count)
    if fc in (1, 2):
        packed = bytearray((count + 7) // 8)
        for i, bit in enumerate(data):
            if bit:
                packed[i // 8] |= 1 << (i % 8)
        return bytes((fc, len(packed))) + bytes(packed)
    return bytes((fc, 2 * count)) + struct.pack(f">{count}H", *data)


class ModbusTestServer:
    """An asyncio Modbus server (``framing`` 'tcp' = MBAP, 'rtu' = RTU frames over TCP)."""

    def __init__(self, units: Iterable[Unit], *, framing: str = "tcp", host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.units = {u.unit_id: u for u in units}
        self.framing = framing
        self.host = host
        self.port = port
        self.requests: list[tuple[int, int]] = []  # (unit id, function code), every request
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def function_codes(self) -> set[int]:
        return {fc for _, fc in self.requests}

    async def start(self) -> None:
        handler = self._serve_tcp if self.framing == "tcp" else self._serve_rtu
        self._server = await asyncio.start_server(handler, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, uid = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                response = _pdu_response(self.units.get(uid), pdu, self.requests)
                if response is None:
                    continue
                writer.write(struct.pack(">HHHB", tid, 0, len(response) + 1, uid) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve_rtu(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(2)
                uid, fc = head
                if fc in (15, 16):
                    rest = await reader.readexactly(5)
                    rest += await reader.readexactly(rest[4] + 2)
                else:
                    rest = await reader.readexactly(6)
                frame = head + rest
                if crc16(frame[:-2]) != struct.unpack("<H", frame[-2:])[0]:
                    continue
                response = _pdu_response(self.units.get(uid), frame[1:-2], self.requests)
                if response is None:
                    continue
                body = bytes((uid,)) + response
                writer.write(body + struct.pack("<H", crc16(body)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class ServerThread:
    """An event loop in a daemon thread that runs :class:`ModbusTestServer` instances."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Any, timeout: float = 10) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def start(self, server: ModbusTestServer) -> ModbusTestServer:
        self.call(server.start())
        return server

    def stop(self, server: ModbusTestServer) -> None:
        self.call(server.stop())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
