"""Run the whole simulated fleet in the background (for ``energymon demo`` and tests).

    with SimulatedFleet(fleet, mqtt=settings.mqtt, speed=60) as sim:
        sim.endpoints        # plant -> Endpoint(host, port, unit ids) of the Modbus meters
        ...                  # collectors poll them, ingest stores what the MQTT plants push

Modbus plants are served on their fleet ports (or free ports with ``free_ports=True``) from a
background thread; MQTT-pushing plants publish from another thread when a broker is given.
Both read the same plant model at the same simulated clock.
"""

from __future__ import annotations

import threading
from datetime import datetime

from core.settings import MqttEndpoint
from fleet import Fleet
from simulators.clock import SimClock
from simulators.modbus_server import Endpoint, ModbusFleetServer
from simulators.model import FleetModel
from simulators.mqtt_publisher import MqttPublisher, feeds_for


class SimulatedFleet:
    def __init__(self, fleet: Fleet | FleetModel, *, mqtt: MqttEndpoint | None = None,
                 start: datetime | float | None = None, speed: float = 1.0,
                 free_ports: bool = False, faults: bool = True) -> None:
        self.model = fleet if isinstance(fleet, FleetModel) else FleetModel(fleet)
        self.clock = SimClock(start, speed=speed)
        modbus = [p for p, pm in self.model.plants.items() if pm.transport.type == "modbus"]
        self.server = ModbusFleetServer(
            self.model, self.clock, plants=modbus, faults=faults,
            ports=dict.fromkeys(modbus, 0) if free_ports else None) if modbus else None
        self.mqtt = mqtt
        self.faults = faults
        self.endpoints: dict[str, Endpoint] = {}
        self.publisher: MqttPublisher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatedFleet:
        if self.server is not None:
            self.endpoints = self.server.start_in_thread()
        feeds = feeds_for(self.model, faults=self.faults)
        if self.mqtt is not None and feeds:
            self.publisher = MqttPublisher(self.mqtt, client_id="energymon-sim-plants")
            self.publisher.connect()
            publisher = self.publisher
            self._thread = threading.Thread(
                target=lambda: publisher.run(feeds, self.clock, stop=self._stop),
                name="mqtt-sim", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        if self.publisher is not None:
            self.publisher.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> SimulatedFleet:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
