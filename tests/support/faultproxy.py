"""A small asyncio TCP proxy that injects network faults between two real endpoints.

Put it between a collector and its broker, or a collector and its Modbus meters, and:

- :meth:`FaultProxy.cut` drops every connection and refuses new ones (a link that is down);
  :meth:`FaultProxy.restore` brings it back;
- :meth:`FaultProxy.reset` aborts every open connection with a TCP RST (a NAT or firewall
  that forgot the flow) and keeps accepting;
- :attr:`FaultProxy.latency_s` delays every chunk forwarded, both ways.

It runs its own event loop in a daemon thread; every method is safe to call from the test's
thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future
from typing import Any


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = host
        self.port = port
        self.latency_s = 0.0
        self.connections = 0                    # accepted since start
        self._down = False
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy",
                                        daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._listen()).result(10)
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._shutdown()).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    # -- faults --------------------------------------------------------------------------------
    def cut(self) -> None:
        """Down: every connection closed, new ones refused."""
        self._down = True
        self._call(self._drop_all(abort=False)).result(10)

    def restore(self) -> None:
        self._down = False

    def reset(self) -> None:
        """Abort every open connection with RST; new connections are accepted."""
        self._call(self._drop_all(abort=True)).result(10)

    # -- inside the loop -------------------------------------------------------------------------
    def _call(self, coro: Any) -> Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._drop_all(abort=True)

    async def _drop_all(self, *, abort: bool) -> None:
        for client, server in list(self._pairs):
            for writer in (client, server):
                if abort:
                    _abort(writer)
                else:
                    writer.close()
        self._pairs.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        self._pairs.discard(pair)
        for w in pair:
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.latency_s:
                    await asyncio.sleep(self.latency_s)
                if writer.is_closing():
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), not FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
