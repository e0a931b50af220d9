"""Collector end-to-end helpers: the collector as a child process, an MQTT subscriber, the
spool ledger, gateway files.

Only ``test_collector_mqtt.py`` uses these. The Modbus servers the collector tests poll live in
:mod:`tests.support`: :mod:`tests.support.sim_gateways` (the project's simulator, with its
protocol faults) and :mod:`tests.support.modbus_image` (fixed register images, for RTU framing
and register contents chosen by the test).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


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
                 spool: Path, plant: str = "p1", acknowledgement: str = "broker",
                 gateway_id: str = "gw-test", **extra: Any) -> Path:
    """Write a gateway file (YAML is a superset of JSON).

    ``acknowledgement`` is ``broker`` by default: the tests that use it without an ingest
    process watch the collector against a broker alone; the end-to-end (platform) one is
    tested with ingest in ``tests/faults``."""
    gateway = {"id": gateway_id, "plant": plant, "links": links, "devices": devices,
               "spool": {"path": str(spool), "capacity_readings": 100_000,
                         "synchronous": "normal"},
               "publish": {"reconnect_min_s": 1, "reconnect_max_s": 2, "drain_rate_msgs_s": 50,
                           "acknowledgement": acknowledgement},
               **extra}
    path.write_text(json.dumps({"gateway": gateway}, indent=1))
    return path
