"""The collector harness's meters: a minimal Modbus TCP responder with fixed registers.

One :class:`StubGateway` is one TCP port (a plant gateway) with unit ids behind it; every unit
answers read requests (FC3/FC4) from a register image encoded once with the shared register
maps and codec (:func:`register_image`), after ``latency_s`` if given (requests on one
connection are answered one after the other, as a gateway does). Other function codes get
exception 1 (illegal function); unknown unit ids get no answer.

Why not the project's simulator (``simulators.modbus_server``)? It is the reference for what a
plant serves (registers computed from the plant model, declared faults) and ``sim_bench.py``
measures it; but per request it costs several times the CPU of this responder (pymodbus'
server plus the plant model), and on the 2-vCPU VM it shares the cores with the collector.
Served by it, the throughput scenario measured the simulator: 4 010 devices/s (collector CPU
0.27 s per cycle) against 10 900 devices/s (0.14 s) with this responder, same machine, same
hour (perf/README.md). The harness measures the collector, so its meters must cost as little
as possible.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Mapping

from modbus import load_register_map

Image = dict[int, dict[int, int]]  # function code -> register address -> register


def register_image(model: str, values: Mapping[str, float]) -> Image:
    """The registers of ``values`` (field name -> engineering value) in ``model``'s map.

    Fields with a scale register or a bit position are not supported (the harness reads
    counters)."""
    rmap = load_register_map(model)
    image: Image = {3: {}, 4: {}}
    for name, value in values.items():
        f = rmap.field(name)
        if f.scale_register is not None or f.bit is not None or f.function_code not in image:
            raise ValueError(f"{model}.{name}: only plain register fields are supported")
        for offset, reg in enumerate(f.encode(value)):
            image[f.function_code][f.address + offset] = reg
    return image


class StubGateway:
    """A Modbus TCP (MBAP) server on ``host:port`` (0 = a free port) serving ``units``."""

    def __init__(self, units: Mapping[int, Image], *, latency_s: float = 0.0,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.units = dict(units)
        self.latency_s = latency_s
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _answer(self, uid: int, pdu: bytes) -> bytes | None:
        image = self.units.get(uid)
        if image is None:
            return None
        fc = pdu[0]
        if fc not in (3, 4) or len(pdu) < 5:
            return bytes((fc | 0x80, 1))
        address, count = struct.unpack(">HH", pdu[1:5])
        table = image[fc]
        regs = [table.get(a, 0) for a in range(address, address + count)]
        return bytes((fc, 2 * count)) + struct.pack(f">{count}H", *regs)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _pid, length, uid = struct.unpack(">HHHB", await reader.readexactly(7))
                response = self._answer(uid, await reader.readexactly(length - 1))
                if response is None:
                    continue
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                writer.write(struct.pack(">HHHB", tid, 0, len(response) + 1, uid) + response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
