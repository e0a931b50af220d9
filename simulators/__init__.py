"""energymon simulators: a realistic fleet of plants and meters without hardware, with a ground
truth for every number the platform computes.

- :mod:`simulators.model` — the plant model, a pure deterministic function of (fleet, seed,
  time): output per 15-minute interval from each unit's capacity, utilisation and schedule;
  energy = output × true intensity + base load, split by the energy mix and converted to each
  meter's unit (GB/T 2589); counters = cumulative sums (linear inside an interval) wrapped at
  the declared width, with value faults (rollover, reset, stuck, spike);
- :mod:`simulators.registers` — the register image of a Modbus meter at an instant, encoded
  with the shared register maps and codec (:mod:`modbus`);
- :mod:`simulators.modbus_server` — every Modbus plant served by one process (pymodbus
  ``ModbusTcpServer`` + ``SimDevice``; one port per plant, one unit id per meter) with
  protocol faults (offline, timeout, slow, exception);
- :mod:`simulators.mqtt_publisher` — plants that push :mod:`core.payload` batches or single
  readings with transport faults (duplicate, out of order, late, clock skew, malformed);
- :mod:`simulators.backfill` — history by binary COPY into ``readings`` or via MQTT;
- :mod:`simulators.truth` — the ground truth (per meter, unit, plant and interval) as CSV;
- :mod:`simulators.runtime` — the whole fleet in the background (demo);
- :mod:`simulators.synthetic` — fleets of any size for perf harnesses.

Configured by the optional ``simulation`` blocks of the fleet file (:mod:`fleet`); run
with ``energymon simulate modbus | mqtt | backfill | truth``. Imports :mod:`core` and the pure
domain package :mod:`benchmarks`, never collector, ingest or api. Nothing is imported here so
that ``import simulators`` stays cheap; import the submodules.
"""
