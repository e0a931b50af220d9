"""The only door between the collector and a Modbus link: read function codes 1-4, nothing else.

Modbus has no authentication, so a collector that *can* write can damage a plant. This module
is the single place in ``collector/`` that touches a pymodbus client, and it exposes only
:meth:`ReadOnlyModbus.read`, which maps a planned :class:`~modbus.ReadRequest` to one of the
four read calls. Any other function code raises :class:`WriteRefusedError` before a byte is
sent; the underlying client is kept in a private slot and never handed out. A test scans the
package source so no other module calls a pymodbus method directly.
"""

from __future__ import annotations

from typing import Any, Protocol

from collector.config import Link
from modbus import READ_FUNCTION_CODES

__all__ = ["DeviceExceptionError", "ReadOnlyModbus", "WriteRefusedError", "open_client"]

# function code -> name of the pymodbus read method; nothing else is ever looked up
_READ_METHODS: dict[int, str] = {
    1: "read_coils",
    2: "read_discrete_inputs",
    3: "read_holding_registers",
    4: "read_input_registers",
}
assert frozenset(_READ_METHODS) == READ_FUNCTION_CODES


class WriteRefusedError(PermissionError):
    """Something asked the collector to send a function code that is not a read."""


class DeviceExceptionError(Exception):
    """The device answered with a Modbus exception response (e.g. 2 illegal data address)."""

    def __init__(self, function_code: int, exception_code: int) -> None:
        self.function_code = function_code
        self.exception_code = exception_code
        super().__init__(f"FC{function_code} answered with exception code {exception_code}")


class _Request(Protocol):
    @property
    def unit_id(self) -> int: ...
    @property
    def function_code(self) -> int: ...
    @property
    def address(self) -> int: ...
    @property
    def count(self) -> int: ...


class ReadOnlyModbus:
    """A pymodbus async client reduced to connect / close / read.

    ``read`` returns the registers (FC3/FC4) or bits (FC1/FC2) of one request.
    """

    __slots__ = ("__client",)

    def __init__(self, client: Any) -> None:
        self.__client = client

    async def connect(self) -> bool:
        return bool(await self.__client.connect())

    def close(self) -> None:
        self.__client.close()

    @property
    def connected(self) -> bool:
        return bool(self.__client.connected)

    async def read(self, request: _Request) -> list[int]:
        fc = request.function_code
        method = _READ_METHODS.get(fc) if fc in READ_FUNCTION_CODES else None
        if method is None:
            raise WriteRefusedError(
                f"function code {fc} refused: the collector sends only read function codes "
                f"{sorted(READ_FUNCTION_CODES)}"
            )
        response = await getattr(self.__client, method)(
            request.address, count=request.count, device_id=request.unit_id
        )
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise DeviceExceptionError(fc, int(code))
        if fc in (1, 2):
            return [int(b) for b in response.bits]
        return list(response.registers)


def open_client(link: Link) -> ReadOnlyModbus:
    """A guarded pymodbus client for a link config (not connected yet).

    pymodbus' own reconnect and retries are switched off (``reconnect_delay=0``,
    ``retries=0``): the link poller owns backoff, retries and timeouts.
    """
    from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
    from pymodbus.framer import FramerType

    common: dict[str, Any] = {
        "name": link.name,
        "timeout": link.timeout_s,
        "retries": 0,
        "reconnect_delay": 0,
        "reconnect_delay_max": 0,
    }
    client: AsyncModbusTcpClient | AsyncModbusSerialClient
    if link.transport == "tcp":
        client = AsyncModbusTcpClient(link.host, port=link.port, framer=FramerType.SOCKET, **common)
    elif link.transport == "rtu_over_tcp":
        client = AsyncModbusTcpClient(link.host, port=link.port, framer=FramerType.RTU, **common)
    elif link.transport == "rtu":
        client = AsyncModbusSerialClient(
            link.port,
            framer=FramerType.RTU,
            baudrate=link.baudrate,
            bytesize=link.bytesize,
            parity=link.parity,
            stopbits=link.stopbits,
            **common,
        )
    else:  # pragma: no cover - the config union has exactly these three
        raise ValueError(f"unknown transport {link.transport!r}")
    return ReadOnlyModbus(client)
