"""Ingest throughput, measured as ratios in one run on one machine.

Run manually (a few minutes): ``.venv/bin/python perf/ingest_bench.py [--readings 1000000]``.

Starts its own embedded PostgreSQL (production settings: fsync and synchronous_commit on; plain
PostgreSQL backend with monthly partitions, or ``--timescaledb``: a hypertable on an installed
PostgreSQL with the extension) and a local Mosquitto, registers a synthetic fleet
(``--plants`` x ``--meters`` meters) and measures, on the same rows:

(a) raw binary COPY of all rows into ``readings`` from a pre-encoded buffer, one transaction
    (the physical limit: no parsing, no validation, no dedup);
(b) end to end: batched MQTT payloads (one message per plant per interval, ``--meters``
    readings each, QoS 1), preloaded into the worker's persistent session on the broker,
    drained by the real worker (``IngestPipeline`` + ``MqttIngestWorker``) until every reading
    is committed;
(c) a naive consumer: paho ``on_message`` -> ``json.loads`` -> one autocommitted
    ``INSERT ... ON CONFLICT DO NOTHING`` per reading (what one writes first), same payloads;
(d) end to end with single-reading messages (one reading per MQTT message).

Each rate is rows (or messages) committed per second of wall time from the moment the worker
starts until the last row is committed; (a), (b) and (d) are repeated (interleaved) and the
medians reported. Prints a table and writes ``perf/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.devservices.broker import Mosquitto  # noqa: E402
from app.devservices.embedded_pg import EmbeddedPostgres, find_postgres_with_extension  # noqa: E402
from core.payload import topic_for  # noqa: E402
from core.settings import MqttEndpoint  # noqa: E402
from ingest.mqtt import MqttIngestWorker  # noqa: E402
from ingest.pipeline import IngestConfig, IngestPipeline  # noqa: E402
from storage.migrate import migrate  # noqa: E402

EPOCH = datetime(2026, 3, 1, tzinfo=UTC)
PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
GOALS = {"e2e_vs_copy": 0.35, "e2e_vs_naive": 20.0, "e2e_rows_per_s": 100_000,
         "single_msgs_per_s": 15_000}


# -- setup ------------------------------------------------------------------------------------
def register_fleet(url: str, plants: int, meters: int) -> dict[str, dict[str, int]]:
    """Synthetic registry: plant code -> meter code -> meter id."""
    out: dict[str, dict[str, int]] = {}
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO regions (code, name, level) VALUES ('360000', 'bench', "
                     "'province') ON CONFLICT DO NOTHING")
        for p in range(plants):
            code = f"bench-plant-{p:03d}"
            uscc = f"91360000MA{p:08d}"
            row = conn.execute(
                "INSERT INTO plants (code, uscc, name, region_code, industry, energy_class, "
                "key_unit) VALUES (%s, %s, %s, '360000', 'cement', 'ge_10000_tce', true) "
                "RETURNING id", (code, uscc, code)).fetchone()
            assert row is not None
            ids = {}
            for m in range(meters):
                mrow = conn.execute(
                    "INSERT INTO meters (plant_id, code, name, energy_type, kind, eng_unit) "
                    "VALUES (%s, %s, %s, 'electricity', 'counter', 'kWh') RETURNING id",
                    (row[0], f"m{m:04d}", f"meter {m}")).fetchone()
                assert mrow is not None
                ids[f"m{m:04d}"] = mrow[0]
            out[code] = ids
    return out


def batch_payloads(fleet: dict[str, dict[str, int]], intervals: int
                   ) -> list[tuple[str, bytes, list[tuple[int, datetime, float, int]]]]:
    """(topic, payload, rows) per plant per interval."""
    out = []
    seq = 0
    for k in range(intervals):
        ts = EPOCH + timedelta(minutes=15 * k)
        iso = ts.isoformat()
        for plant, meters in fleet.items():
            readings, rows = [], []
            for code, meter_id in meters.items():
                value = 1000.0 + k * 3.25 + meter_id * 0.5
                readings.append({"meter": code, "ts": iso, "value": value, "quality": "good"})
                rows.append((meter_id, ts, value, 0))
            seq += 1
            payload = json.dumps({"v": 1, "gateway": "gw-bench", "seq": seq, "sent_at": iso,
                                  "readings": readings}).encode()
            out.append((topic_for(plant), payload, rows))
    return out


def single_payloads(fleet: dict[str, dict[str, int]], count: int, offset_days: int
                    ) -> list[tuple[str, bytes]]:
    out = []
    plants = list(fleet.items())
    k = 0
    while len(out) < count:
        ts = (EPOCH + timedelta(days=offset_days, minutes=15 * k)).isoformat()
        for plant, meters in plants:
            for code in meters:
                out.append((topic_for(plant), json.dumps(
                    {"meter": code, "ts": ts, "value": 42.0 + k}).encode()))
                if len(out) == count:
                    return out
        k += 1
    return out


def count_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        return int(row[0]) if row else 0


def truncate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("TRUNCATE readings, dead_letters, reading_conflicts")
        conn.execute("CHECKPOINT")


def publish_all(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-publisher",
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    window = 20_000          # stay far below the 65 535 packet ids paho can have in flight
    for start in range(0, len(messages), window):
        infos = [client.publish(topic, payload, qos=1)
                 for topic, payload in messages[start:start + window]]
        for info in infos:
            info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def prepare_session(broker: Mosquitto, client_id: str, group: str) -> None:
    """Create the persistent shared-subscription session the preloaded messages queue for."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=True)
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    done = threading.Event()
    client.on_subscribe = lambda *a: done.set()
    client.on_connect = lambda c, *a: c.subscribe(f"$share/{group}/plants/+/readings", qos=1)
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    assert done.wait(10), "subscription failed"
    client.disconnect()
    client.loop_stop()


def wait_until(predicate: Callable[[], bool], timeout: float, poll: float = 0.005) -> float:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark step did not finish in time")
        time.sleep(poll)
    return time.perf_counter()


# -- measurements -----------------------------------------------------------------------------
def encode_copy(rows: list[tuple[int, datetime, float, int]]) -> bytes:
    row = struct.Struct(">hiqiqidih")
    us = timedelta(microseconds=1)
    parts = [b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)]
    parts += [row.pack(4, 8, m, 8, (ts - PG_EPOCH) // us, 8, v, 2, q) for m, ts, v, q in rows]
    parts.append(b"\xff\xff")
    return b"".join(parts)


def raw_copy(url: str, rows: list[tuple[int, datetime, float, int]]) -> float:
    data = encode_copy(rows)
    truncate(url)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
                "COPY readings (meter_id, ts, value, quality) FROM STDIN (FORMAT BINARY)") as cp:
            for i in range(0, len(data), 1 << 20):
                cp.write(data[i:i + (1 << 20)])
        conn.commit()
        elapsed = time.perf_counter() - started
    assert count_rows(url) == len(rows)
    return len(rows) / elapsed


def end_to_end(url: str, broker: Mosquitto, messages: list[tuple[str, bytes]], expected: int,
               config: IngestConfig, tag: str, receive_maximum: int = 20_000
               ) -> dict[str, float]:
    truncate(url)
    client_id, group = f"bench-{tag}", f"bench-{tag}"
    prepare_session(broker, client_id, group)
    publish_all(broker, messages)
    pipeline = IngestPipeline.for_database(url, config=config).start(registry_timeout=30)
    committed = pipeline.metrics.readings_committed
    worker = MqttIngestWorker(pipeline, MqttEndpoint.parse(broker.url), group=group,
                              client_id=client_id, receive_maximum=receive_maximum)
    cpu0 = os.times()
    started = time.perf_counter()
    worker.start()
    ended = wait_until(lambda: committed._value.get() >= expected, 600)
    cpu1 = os.times()
    worker.stop(drain_timeout=30)
    pipeline.close()
    assert count_rows(url) == expected, "rows missing or extra"
    elapsed = ended - started
    return {"seconds": elapsed, "rows_per_s": expected / elapsed,
            "msgs_per_s": len(messages) / elapsed,
            "ingest_cpu_s": (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)}


def naive(url: str, broker: Mosquitto, messages: list[tuple[str, bytes]], expected: int,
          fleet: dict[str, dict[str, int]]) -> dict[str, float]:
    truncate(url)
    client_id = "bench-naive"
    prepare_session(broker, client_id, "bench-naive")
    publish_all(broker, messages)
    conn = psycopg.connect(url, autocommit=True)
    stored = [0]

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        plant = msg.topic.split("/")[1]
        body = json.loads(msg.payload)
        for r in body["readings"]:
            conn.execute(
                "INSERT INTO readings (meter_id, ts, value, quality) VALUES (%s, %s, %s, 0) "
                "ON CONFLICT (meter_id, ts) DO NOTHING",
                (fleet[plant][r["meter"]], datetime.fromisoformat(r["ts"]), r["value"]))
            stored[0] += 1

    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("$share/bench-naive/plants/+/readings", qos=1)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    started = time.perf_counter()
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    client.loop_start()
    ended = wait_until(lambda: stored[0] >= expected, 900)
    client.disconnect()
    client.loop_stop()
    conn.close()
    assert count_rows(url) == expected
    elapsed = ended - started
    return {"seconds": elapsed, "rows_per_s": expected / elapsed}


# -- main -------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plants", type=int, default=10)
    parser.add_argument("--meters", type=int, default=200, help="meters per plant = readings "
                        "per batched message")
    parser.add_argument("--readings", type=int, default=1_000_000)
    parser.add_argument("--naive-readings", type=int, default=20_000)
    parser.add_argument("--single-messages", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="repetitions of (a), (b) and (d); medians are reported")
    parser.add_argument("--timescaledb", action="store_true",
                        help="TimescaleDB hypertable (an installed PostgreSQL with the "
                        "extension) instead of plain PostgreSQL partitions")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="energymon-perf-"))
    if args.timescaledb:
        bindir = find_postgres_with_extension("timescaledb")
        if bindir is None:
            parser.error("no PostgreSQL installation with the timescaledb extension found")
        pg = EmbeddedPostgres(work / "pg", bindir=bindir, preload=["timescaledb"])
    else:
        pg = EmbeddedPostgres(work / "pg")
    backend = "timescaledb" if args.timescaledb else "postgres"
    broker = Mosquitto(work / "mosquitto", persistence=False)
    results: dict[str, object] = {}
    try:
        url = pg.start("bench")
        migrate(url, backend=backend)
        broker.start()
        fleet = register_fleet(url, args.plants, args.meters)
        per_interval = args.plants * args.meters
        intervals = max(1, args.readings // per_interval)
        batches = batch_payloads(fleet, intervals)
        messages = [(t, p) for t, p, _ in batches]
        rows = [r for _, _, rs in batches for r in rs]
        n = len(rows)
        config = IngestConfig(batch_size=args.batch_size, max_pending=10 * args.batch_size)
        print(f"{n} readings in {len(messages)} batched messages of {args.meters}; "
              f"{args.single_messages} single-reading messages; batch size {args.batch_size}",
              flush=True)

        # interleaved repetitions: (a) and (b) alternate so drift hits both alike
        copy_rates: list[float] = []
        e2e_runs: list[dict[str, float]] = []
        for rep in range(args.repeat):
            copy_rates.append(raw_copy(url, rows))
            print(f"(a) raw binary COPY, run {rep + 1}: {copy_rates[-1]:,.0f} rows/s", flush=True)
            e2e_runs.append(end_to_end(url, broker, messages, n, config, f"batched{rep}"))
            print(f"(b) end to end, batched payloads, run {rep + 1}: "
                  f"{e2e_runs[-1]['rows_per_s']:,.0f} rows/s", flush=True)
        copy_rate = statistics.median(copy_rates)
        e2e = sorted(e2e_runs, key=lambda r: r["rows_per_s"])[len(e2e_runs) // 2]
        naive_msgs = messages[: max(1, args.naive_readings // args.meters)]
        naive_n = len(naive_msgs) * args.meters
        nv = naive(url, broker, naive_msgs, naive_n, fleet)
        print(f"(c) naive per-reading INSERT consumer: {nv['rows_per_s']:,.0f} rows/s",
              flush=True)
        singles = single_payloads(fleet, args.single_messages, offset_days=30)
        single_runs = []
        for rep in range(args.repeat):
            single_runs.append(end_to_end(url, broker, singles, len(singles), config,
                                          f"single{rep}"))
            print(f"(d) end to end, single-reading messages, run {rep + 1}: "
                  f"{single_runs[-1]['msgs_per_s']:,.0f} msgs/s", flush=True)
        single = sorted(single_runs, key=lambda r: r["msgs_per_s"])[len(single_runs) // 2]

        ratio_copy = e2e["rows_per_s"] / copy_rate
        ratio_naive = e2e["rows_per_s"] / nv["rows_per_s"]
        table = [
            ("(a) raw binary COPY, rows/s", copy_rate, "-", ""),
            ("(b) end to end batched, rows/s", e2e["rows_per_s"],
             f">= {GOALS['e2e_rows_per_s']:,}", e2e["rows_per_s"] >= GOALS["e2e_rows_per_s"]),
            ("(c) naive consumer, rows/s", nv["rows_per_s"], "-", ""),
            ("(d) single-reading, msgs/s", single["msgs_per_s"],
             f">= {GOALS['single_msgs_per_s']:,}",
             single["msgs_per_s"] >= GOALS["single_msgs_per_s"]),
            ("b / a", ratio_copy, f">= {GOALS['e2e_vs_copy']}",
             ratio_copy >= GOALS["e2e_vs_copy"]),
            ("b / c", ratio_naive, f">= {GOALS['e2e_vs_naive']}",
             ratio_naive >= GOALS["e2e_vs_naive"]),
        ]
        print()
        print(f"{'measure':<34} {'value':>14}  {'goal':<12} met")
        for name, value, goal, met in table:
            shown = f"{value:,.2f}" if value < 1000 else f"{value:,.0f}"
            print(f"{name:<34} {shown:>14}  {goal:<12} {met if met != '' else ''}")
        results = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                        "python": platform.python_version(),
                        "affinity": len(os.sched_getaffinity(0))},
            "setup": {"readings": n, "batched_messages": len(messages),
                      "readings_per_message": args.meters, "plants": args.plants,
                      "single_messages": len(singles), "batch_size": args.batch_size,
                      "backend": ("timescaledb hypertable" if args.timescaledb
                                  else "postgres (monthly partitions)")
                      + ", fsync on, synchronous_commit on",
                      "naive_readings": naive_n},
            "raw_copy_rows_per_s": copy_rates,
            "end_to_end_batched_runs": e2e_runs,
            "end_to_end_single_runs": single_runs,
            "end_to_end_batched": e2e,
            "naive_per_reading_insert": nv,
            "end_to_end_single": single,
            "ratios": {"e2e_vs_copy": ratio_copy, "e2e_vs_naive": ratio_naive},
            "goals": GOALS,
        }
        out = ROOT / "perf" / "results" / ("ingest_timescaledb.json" if args.timescaledb
                                           else "ingest.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults written to {out.relative_to(ROOT)}")
        return 0
    finally:
        broker.stop()
        pg.stop("fast")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
