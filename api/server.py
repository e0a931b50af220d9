"""Running the API: ``energymon serve`` (blocking) and :func:`serve_in_thread` (demo, tests,
perf harness).

Usage from another process's composition root (e.g. ``app/demo.py``)::

    from api.server import serve_in_thread

    server = serve_in_thread(settings, port=8000, database_url=url)  # returns once ready
    print(f"API docs: {server.url}/docs")
    ...
    server.stop()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from api.app import create_app
from api.config import ApiConfig
from core.ports import free_port
from core.settings import Settings


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown, so the process would end
    "killed by signal" (exit status 143). Like `energymon collect` and `energymon ingest`,
    `energymon serve` exits 0 once it has stopped cleanly."""

    @contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            yield
            getattr(self, "_captured_signals", []).clear()  # handled: graceful shutdown


def _server(settings: Settings, host: str, port: int, config: ApiConfig | None,
            database_url: str | None, log_level: str) -> uvicorn.Server:
    app = create_app(settings, config, database_url=database_url)
    proxies = list((config or settings.api).trusted_proxies)
    # X-Forwarded-For is believed only from the configured reverse proxies (uvicorn's default
    # trusts 127.0.0.1, which let a local client pick its own address: security review L1)
    return _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                  access_log=False, lifespan="on",
                                  timeout_graceful_shutdown=10, proxy_headers=bool(proxies),
                                  forwarded_allow_ips=proxies or None))


def serve(settings: Settings, database_url: str, *, host: str = "127.0.0.1", port: int = 8000,
          config: ApiConfig | None = None, log_level: str = "info") -> int:
    """Serve until SIGINT/SIGTERM (uvicorn handles the signals); the exit code."""
    server = _server(settings, host, port, config, database_url, log_level)
    server.run()
    return 0 if server.started else 1


@dataclass
class ServerHandle:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self, timeout: float = 15.0) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)


def serve_in_thread(settings: Settings, port: int = 0, *, host: str = "127.0.0.1",
                    config: ApiConfig | None = None, database_url: str | None = None,
                    log_level: str = "warning", timeout: float = 60.0) -> ServerHandle:
    """Start the API in a daemon thread and return once it answers (port 0 = a free port).

    Raises RuntimeError when it does not start within ``timeout`` seconds (e.g. the database
    is not migrated: the lifespan fails and uvicorn stops).
    """
    port = port or free_port(host)
    server = _server(settings, host, port, config, database_url, log_level)
    thread = threading.Thread(target=server.run, name=f"energymon-api-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the API did not start on {host}:{port} (see the log above)")
        time.sleep(0.05)
    return ServerHandle(f"http://{host}:{port}", server, thread)
