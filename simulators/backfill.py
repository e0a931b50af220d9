"""Backfill: history for the fleet, fast, so dashboards and verdicts have data immediately.

Two paths, both generating exactly the readings of the plant model (the same as the Modbus
meters, the MQTT plants and the ground truth):

- **bulk** (default): binary ``COPY`` into ``readings`` through a temporary staging table and
  ``INSERT … ON CONFLICT (meter_id, ts) DO NOTHING`` (re-running a backfill is harmless). Meter
  ids are looked up in the registry by plant code + meter code (``energymon registry load``
  first). Readings a collector would not have got (an ``offline`` window, the share of
  ``timeout``/``exception`` requests) are left out unless ``faults=False``;
- **mqtt**: every plant's readings published as gateway batches to the broker, the path plants
  use (MQTT plants with their declared transport faults), for the ingest service to store.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

import numpy as np
import psycopg

from core.settings import MqttEndpoint
from simulators import _hash
from simulators.model import STEP_S, FleetModel, MeterModel, window_mask
from simulators.mqtt_publisher import MqttPublisher, PlantFeed, merge_plans
from simulators.progress import Progress
from storage.dirty import mark_dirty

CHUNK_INTERVALS = 96 * 7          # one week of readings per COPY


class RegistryMissing(RuntimeError):
    """Meters of the fleet are not in the registry (run ``energymon registry load``)."""


@dataclass
class BackfillResult:
    rows: int                   # rows generated (sent to the database or published)
    inserted: int               # rows stored (bulk path; duplicates skipped)
    dropped: int                # readings left out by protocol faults
    seconds: float
    messages: int = 0           # MQTT path


def delivered(mm: MeterModel, k0: int, k1: int) -> np.ndarray:
    """Which readings at boundaries k0..k1−1 a poller would have received (protocol faults)."""
    ok = np.ones(max(k1 - k0, 0), dtype=bool)
    if not mm.protocol_faults or k1 <= k0:
        return ok
    ks = np.arange(k0, k1, dtype=np.int64)
    t = ks.astype(np.float64) * STEP_S
    for i, fault in enumerate(mm.protocol_faults):
        if fault.kind == "slow":
            continue
        hit = window_mask(fault, t, mm.epoch_s)
        if fault.probability < 1:
            hit &= _hash.uniform(mm.key, 400 + i, ks) < fault.probability
        ok &= ~hit
    return ok


def meter_ids(conn: psycopg.Connection, model: FleetModel,
              plants: Iterable[str] | None = None) -> dict[tuple[str, str], int]:
    """Registry ids of the simulated meters, by (plant code, meter code)."""
    rows = conn.execute(
        "SELECT p.code, m.code, m.id FROM meters m JOIN plants p ON p.id = m.plant_id"
    ).fetchall()
    known = {(p, m): int(i) for p, m, i in rows}
    names = list(plants) if plants is not None else list(model.plants)
    wanted = [(p, m) for p in names for m in model.plant(p).meters]
    missing = [f"{p}/{m}" for p, m in wanted if (p, m) not in known]
    if missing:
        raise RegistryMissing(
            f"{len(missing)} meter(s) are not in the registry ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}); run `energymon registry load FLEET` first")
    return {key: known[key] for key in wanted}


def backfill_copy(model: FleetModel, database_url: str, k0: int, k1: int, *,
                  plants: Iterable[str] | None = None, faults: bool = True,
                  progress: bool = True, stream: TextIO | None = None) -> BackfillResult:
    """Readings at boundaries k0..k1−1 for every meter, COPYed into ``readings``."""
    names = list(plants) if plants is not None else list(model.plants)
    meters = [mm for p in names for mm in model.plant(p).meters.values()]
    total = len(meters) * max(k1 - k0, 0)
    bar = Progress(total, "backfill (COPY)", stream=stream, enabled=progress)
    generated = inserted = dropped = 0
    with psycopg.connect(database_url) as conn:
        ids = meter_ids(conn, model, names)
        conn.execute("CREATE TEMP TABLE energymon_sim_stage "
                     "(meter_id bigint, ts timestamptz, value double precision, quality smallint)")
        for c0 in range(k0, k1, CHUNK_INTERVALS):
            c1 = min(k1, c0 + CHUNK_INTERVALS)
            stamps = [datetime.fromtimestamp(k * STEP_S, UTC) for k in range(c0, c1)]
            with conn.transaction():
                with conn.cursor() as cur, cur.copy(
                    "COPY energymon_sim_stage (meter_id, ts, value, quality) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy:
                    copy.set_types(["int8", "timestamptz", "float8", "int2"])
                    for mm in meters:
                        values = mm.readings(c0, c1)
                        ok = delivered(mm, c0, c1) if faults else None
                        meter_id = ids[mm.plant_id, mm.id]
                        for i, value in enumerate(values.tolist()):
                            if ok is not None and not ok[i]:
                                dropped += 1
                                continue
                            copy.write_row((meter_id, stamps[i], value, 0))
                        generated += len(values)
                        bar.update(len(values))
                cur = conn.execute(
                    "INSERT INTO readings (meter_id, ts, value, quality) "
                    "SELECT meter_id, ts, value, quality FROM energymon_sim_stage "
                    "ON CONFLICT (meter_id, ts) DO NOTHING")
                inserted += max(cur.rowcount, 0)
                conn.execute("TRUNCATE energymon_sim_stage")
                # queue the range for accounting, in the same transaction as the readings
                ids_in_chunk = [ids[mm.plant_id, mm.id] for mm in meters]
                mark_dirty(conn, ((m, stamps[0], stamps[-1]) for m in ids_in_chunk))
    seconds = bar.close()
    return BackfillResult(generated, inserted, dropped, seconds)


def backfill_mqtt(model: FleetModel, endpoint: MqttEndpoint, k0: int, k1: int, *,
                  plants: Iterable[str] | None = None, faults: bool = True,
                  progress: bool = True, stream: TextIO | None = None) -> BackfillResult:
    """Every plant's readings for boundaries k0..k1−1 published as gateway batches."""
    names = list(plants) if plants is not None else list(model.plants)
    feeds = [PlantFeed(model, p, faults=faults,
                       mode=None if model.plant(p).transport.type == "mqtt" else "batch")
             for p in names]
    total = sum(len(model.plant(p).meters) for p in names) * max(k1 - k0, 0)
    bar = Progress(total, "backfill (MQTT)", stream=stream, enabled=progress)
    publisher = MqttPublisher(endpoint, client_id=f"energymon-backfill-{k0}")
    publisher.connect()
    try:
        chunk = max(1, math.ceil(CHUNK_INTERVALS / 4))
        for c0 in range(k0, k1, chunk):
            c1 = min(k1, c0 + chunk)
            for msg in merge_plans(feeds, c0, c1):
                publisher.publish(msg)
                bar.update(msg.readings)
        publisher.flush()
    finally:
        publisher.close()
    seconds = bar.close()
    st = publisher.stats
    return BackfillResult(st.readings, 0, 0, seconds, st.messages)
