"""The live part of ``energymon demo``: the whole pipeline running on this machine.

Local MQTT broker (Mosquitto, or the embedded Python broker) -> simulated plants (Modbus TCP
meters on ports 15021-15025, the MQTT-pushing copper plant) -> one collector per Modbus plant
of the example fleet (polling every ``poll_s`` seconds instead of 15 minutes, so something
happens while you watch) -> ingest -> accounting -> the API, served with an admin token.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from accounting.store import Accountant
from api.server import serve_in_thread
from api.tokens import create_token
from app.devservices.broker import local_broker
from collector.config import Gateway, load_gateway
from collector.examples import example_gateway_paths
from collector.gateway import Collector
from core.ports import port_free
from core.settings import MqttEndpoint, Settings
from fleet import Fleet
from ingest.service import IngestOptions, IngestService
from simulators.runtime import SimulatedFleet


@dataclass
class LivePipeline:
    settings: Settings
    url: str
    fleet: Fleet
    poll_s: int = 15
    api_port: int = 0
    say: Callable[[str], None] = print
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    api_url: str | None = None
    api_token: str | None = None

    def start(self) -> LivePipeline:
        data = self.settings.data_dir
        broker = local_broker(data / "broker")
        broker.start()
        self._stack.callback(broker.stop)
        suffix = "?protocol=3.1.1" if broker.mqtt_protocol == "3.1.1" else ""
        endpoint = MqttEndpoint.parse(broker.url + suffix)
        kind = "Mosquitto" if broker.mqtt_protocol == "5" else "embedded Python broker (amqtt)"
        self.say(f"    broker: {kind} at {broker.url} (MQTT {broker.mqtt_protocol})")

        ingest = IngestService(self.url, endpoint,
                               IngestOptions(client_id="energymon-demo-ingest")).start()
        self._stack.callback(ingest.stop)
        self.say("    ingest: subscribed to plants/+/readings")

        sim = SimulatedFleet(self.fleet, mqtt=endpoint).start()
        self._stack.callback(sim.stop)
        ports = sorted({e.port for e in sim.endpoints.values()})
        self.say(f"    simulators: {len(sim.endpoints)} Modbus plants on ports "
                 f"{', '.join(map(str, ports))}; MQTT plants publish by themselves")

        for gateway in self._gateways():
            self._run_collector(gateway, endpoint, data / "collectors")
        self.say(f"    collectors: one per Modbus plant, polling every {self.poll_s} s")

        port = self.api_port if self.api_port and port_free(self.api_port) else 0
        server = serve_in_thread(self.settings, port, database_url=self.url)
        self._stack.callback(server.stop)
        with psycopg.connect(self.url) as conn:
            _, secret = create_token(conn, name="energymon demo", role="admin")
        self.api_url, self.api_token = server.url, secret
        self.say(f"    API: {server.url}/docs (admin token created for this demo)")
        return self

    def _gateways(self) -> Iterator[Gateway]:
        for path in example_gateway_paths():
            gateway = load_gateway(path)
            devices = [d.model_copy(update={"interval_s": self.poll_s, "late_after_s": None})
                       for d in gateway.devices]
            yield gateway.model_copy(update={"devices": devices})

    def _run_collector(self, gateway: Gateway, endpoint: MqttEndpoint, data_dir: Path) -> None:
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            collector = Collector(gateway, data_dir=data_dir, mqtt=endpoint)
            loop.run_until_complete(collector.run(stop))

        thread = threading.Thread(target=run, name="demo-collector", daemon=True)
        thread.start()

        def halt() -> None:
            loop.call_soon_threadsafe(stop.set)
            thread.join(15)

        self._stack.callback(halt)

    def stop(self) -> None:
        self._stack.close()


def counts(url: str) -> tuple[int, int, int]:
    """Readings, dead letters and open conflicts stored so far."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM readings), (SELECT count(*) FROM dead_letters), "
            "(SELECT count(*) FROM reading_conflicts WHERE resolved_at IS NULL)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def watch(url: str, seconds: float, say: Callable[[str], None] = print,
          every: float = 10.0) -> tuple[int, int, int]:
    """Print what arrives for ``seconds`` and run accounting as it goes; returns the growth."""
    accountant = Accountant(url)
    start = counts(url)
    began = time.monotonic()
    while True:
        left = seconds - (time.monotonic() - began)
        if left <= 0:
            break
        time.sleep(min(every, left))
        stats = accountant.process_dirty()
        now = counts(url)
        say(f"    +{time.monotonic() - began:4.0f} s: {now[0] - start[0]} readings stored, "
            f"{now[1] - start[1]} dead letters, {now[2] - start[2]} conflicts; accounting "
            f"recomputed {stats.intervals} intervals of {stats.meters} meters")
    end = counts(url)
    return end[0] - start[0], end[1] - start[1], end[2] - start[2]
