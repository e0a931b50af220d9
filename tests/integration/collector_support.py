"""Test doubles for the collector: small Modbus servers built from the shared register maps.

Stand-in until ``simulators/`` ships its servers (swap :class:`ModbusTestServer` for theirs
then). The server speaks Modbus TCP (MBAP) or RTU frames over TCP (for ``rtu_over_tcp`` links
and, through pyserial's ``socket://`` URLs, for ``rtu`` links), serves each unit id's
registers encoded with :mod:`modbus` from engineering values, and can be told per unit to
answer slowly, never, or with an exception. Every function code it receives is recorded.

Runs on its own event loop in a background thread (:class:`ServerThread`), so the code under
test may be synchronous, asynchronous or another process.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modbus import RegisterMap, load_register_map
from modbus.codec import DataType, Number, apply_scaling

READ_FCS = {1, 2, 3, 4}
REPO = Path(__file__).resolve().parents[2]


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
            raw = 5 + seed if f.quantity.value == "ct_ratio" else 20
            values[f.name] = apply_scaling(raw, scale=f.scale, scale_exponent=f.scale_exponent,
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
    """One simulated device behind a server: its map, its values and its behaviour."""

    unit_id: int
    model: str
    values: dict[str, Number | None] = field(default_factory=dict)
    latency_s: float = 0.0
    mode: str = "ok"  # ok | silent (never answers) | exception (answers exception code 4)
    strict: bool = False  # unmapped registers answer 'illegal data address'
    image: Image = field(default_factory=dict)

    def __post_init__(self) -> None:
        rmap = load_register_map(self.model)
        if not self.values:
            self.values = dict(sample_values(rmap, seed=self.unit_id))
        self.image = encode_image(rmap, self.values)

    def set_values(self, **values: Number | None) -> None:
        self.values.update(values)
        self.image = encode_image(load_register_map(self.model), self.values)

    def read(self, fc: int, address: int, count: int) -> list[int] | int:
        """Registers/bits, or an exception code."""
        table = self.image.get(fc, {})
        if self.strict and any(a not in table for a in range(address, address + count)):
            return 2
        return [table.get(a, 0) for a in range(address, address + count)]


def _pdu_response(unit: Unit | None, pdu: bytes, log: list[tuple[int, int]]) -> bytes | None:
    fc = pdu[0]
    uid = unit.unit_id if unit else -1
    log.append((uid, fc))
    if unit is None:
        return None
    if fc not in READ_FCS or len(pdu) < 5:
        return bytes((fc | 0x80, 1))
    if unit.mode == "exception":
        return bytes((fc | 0x80, 4))
    address, count = struct.unpack(">HH", pdu[1:5])
    data = unit.read(fc, address, count)
    if isinstance(data, int):
        return bytes((fc | 0x80, data))
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
        self.connections = 0
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

    async def _answer(self, unit: Unit | None, pdu: bytes) -> bytes | None:
        response = _pdu_response(unit, pdu, self.requests)
        if unit is None or unit.mode == "silent":
            return None
        if unit.latency_s:
            await asyncio.sleep(unit.latency_s)
        return response

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                header = await reader.readexactly(7)
                tid, _pid, length, uid = struct.unpack(">HHHB", header)
                pdu = await reader.readexactly(length - 1)
                response = await self._answer(self.units.get(uid), pdu)
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
        self.connections += 1
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
                response = await self._answer(self.units.get(uid), frame[1:-2])
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
    """An event loop in a daemon thread that runs test servers."""

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


def expected_reading(unit: Unit, field_name: str) -> float:
    value = unit.values[field_name]
    assert value is not None and not (isinstance(value, float) and math.isnan(value))
    return float(value)


# --------------------------------------------------------------------------- processes, MQTT
class CollectorProcess:
    """``python -m app.cli collect --gateway FILE`` as a child process (never killed by name)."""

    def __init__(self, config: Path, *, mqtt_url: str, data_dir: Path, log: Path) -> None:
        self.config = config
        self.env = {**os.environ, "ENERGYMON_MQTT_URL": mqtt_url,
                    "ENERGYMON_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "-v", "collect", "--gateway", str(self.config)],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL, as a crash or power loss of the process would."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


class Subscriber:
    """A persistent-session MQTT 5 subscriber that records every readings message."""

    def __init__(self, port: int, topic: str = "plants/+/readings") -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        self.messages: list[dict[str, Any]] = []
        self.topics: list[str] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-sub-{port}", protocol=mqtt.MQTTv5)

        def on_connect(client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
            client.subscribe(topic, qos=1)

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            with self._lock:
                self.messages.append(json.loads(msg.payload))
                self.topics.append(msg.topic)

        self.client.on_connect = on_connect
        self.client.on_message = on_message
        self.client.reconnect_delay_set(1, 2)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        self.client.connect_async("127.0.0.1", port, keepalive=10, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def spool_state(path: Path) -> tuple[int, int]:
    """(next_seq, batches pending) of a spool file, read without disturbing its writer."""
    if not path.exists():
        return 0, 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        next_seq = db.execute("SELECT value FROM meta WHERE key = 'next_seq'").fetchone()
        pending = db.execute("SELECT count(*) FROM batches").fetchone()[0]
        return (next_seq[0] if next_seq else 0), pending
    except sqlite3.OperationalError:
        return 0, 0
    finally:
        db.close()


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def gateway_yaml(path: Path, *, links: list[dict[str, Any]], devices: list[dict[str, Any]],
                 spool: Path, plant: str = "p1", **extra: Any) -> Path:
    """Write a gateway file (YAML is a superset of JSON)."""
    gateway = {"id": "gw-test", "plant": plant, "links": links, "devices": devices,
               "spool": {"path": str(spool), "capacity_readings": 100_000,
                         "synchronous": "normal"},
               "publish": {"reconnect_min_s": 1, "reconnect_max_s": 2, "drain_rate_msgs_s": 50},
               **extra}
    path.write_text(json.dumps({"gateway": gateway}, indent=1))
    return path
