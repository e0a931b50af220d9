"""Collector: the Modbus/MQTT edge gateway that runs in every plant.

Poll meters over Modbus TCP / RTU / RTU-over-TCP with the shared register maps and request
planner (:mod:`modbus`), stamp each reading with its cycle boundary and a quality flag,
commit it to a durable SQLite spool, and publish one QoS 1 message per plant per cycle to
``plants/{plant}/readings``, deleting only after the broker's PUBACK. Meters that publish on a
local broker are forwarded through the same spool. Only Modbus *read* function codes can be
sent (:mod:`collector.guard`).

Entry point: ``energymon collect --gateway gateway.yaml`` (:func:`collector.gateway.run_collector`).
Imports only ``core`` of this project.
"""

from collector.config import Gateway, GatewayConfigError, load_gateway, parse_gateway
from collector.gateway import Collector, run_collector
from collector.spool import Spool, SpoolReading

__all__ = [
    "Collector",
    "Gateway",
    "GatewayConfigError",
    "Spool",
    "SpoolReading",
    "load_gateway",
    "parse_gateway",
    "run_collector",
]
