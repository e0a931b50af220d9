"""The fault suite's harness: real processes, a ledger kept at the source, a classification.

Every component runs as the product runs it: Mosquitto, ``energymon ingest`` and
``energymon collect`` as child processes (SIGKILL is a real crash), PostgreSQL as a server of
the test's own (it may be stopped), Modbus meters served by the project's simulator on
loopback. The ledger is the collector's own account of what it committed to its spool
(``cycle_spooled`` log lines: the cycle's tick and how many readings), written before any of
it is published; after the faults and a drain every spooled reading is classified stored /
lost, and redeliveries and conflicts are counted from what ingest recorded.

Profiles: ``short`` (the default, part of ``make test``) and ``long`` (``make soak``,
``ENERGYMON_FAULTS_PROFILE=long``): longer outages, more repetitions.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from core.ports import free_port
from tests.integration.collector_support import wait_for as wait_for  # the suite's, too

REPO = Path(__file__).resolve().parents[2]
PLANT = "jx-yujiang-cement"
METERS = ("k1-elec", "k1-coal", "k1-clinker")
FIELDS = ("energy_import", "flow_total", "production_total")
MODELS = ("chint_dtsu666", "generic_flow_totaliser", "generic_belt_scale")
REPORT = Path(os.environ.get("ENERGYMON_FAULTS_REPORT", REPO / ".data" / "faults"))
#: ``broker`` runs the collectors at-least-once to the broker only: the control run that shows
#: what the end-to-end acknowledgement prevents (the suite then fails on the loss)
ACKNOWLEDGEMENT = os.environ.get("ENERGYMON_FAULTS_ACK", "platform")


@dataclass(frozen=True)
class Profile:
    name: str
    steady_s: float          # normal running before and after the faults
    broker_kills: int
    broker_down_s: float
    between_s: float         # running between two faults
    db_down_s: float
    flood_messages: int
    drain_timeout_s: float
    brokers: tuple[str, ...]   # broker configurations the broker-kill test runs on
    spool_overflow_s: float    # the broker away this long with a 100-reading spool
    link_cut_s: float          # a network link cut this long (fault proxy)
    slow_db_s: float           # the database slowed this long
    slow_flood_messages: int   # ... while this many flood messages arrive


PROFILES = {
    "short": Profile("short", steady_s=3, broker_kills=3, broker_down_s=3, between_s=3,
                     db_down_s=12, flood_messages=3000, drain_timeout_s=90,
                     brokers=("project", "stock"), spool_overflow_s=45, link_cut_s=8,
                     slow_db_s=15, slow_flood_messages=10_000),
    "long": Profile("long", steady_s=30, broker_kills=10, broker_down_s=15, between_s=30,
                    db_down_s=60, flood_messages=30_000, drain_timeout_s=600,
                    brokers=("project", "stock", "stock-persistent"), spool_overflow_s=300,
                    link_cut_s=120, slow_db_s=120, slow_flood_messages=100_000),
}


def profile() -> Profile:
    name = os.environ.get("ENERGYMON_FAULTS_PROFILE", "short")
    if name not in PROFILES:
        raise ValueError(f"ENERGYMON_FAULTS_PROFILE={name!r}: use one of {sorted(PROFILES)}")
    return PROFILES[name]


class Child:
    """A child process of ``python -m app.cli``; its output appended to ``log``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Child:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "app.cli", *self.args],
                                         cwd=REPO, env=self.env, stdout=out,
                                         stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash or a power cut of the process would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class IngestChild(Child):
    """``energymon ingest`` with its metrics on a free port."""

    def __init__(self, db_url: str, mqtt_url: str, client_id: str, log: Path,
                 *extra: str) -> None:
        self.metrics_port = free_port()
        super().__init__(["-v", "ingest", "--client-id", client_id, "--metrics-port",
                          str(self.metrics_port), *extra],
                         {"ENERGYMON_DATABASE_URL": db_url, "ENERGYMON_MQTT_URL": mqtt_url},
                         log)

    def rss_mb(self) -> float | None:
        """Resident memory of the process in MB (Linux /proc), None when not running."""
        if not self.alive or self.proc is None:
            return None
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def metric(self, name: str) -> float:
        """The sum of a metric's samples (0 when absent or the process does not answer)."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                        timeout=2) as answer:
                text = answer.read().decode()
        except OSError:
            return 0.0
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


def ingest(db_url: str, mqtt_url: str, client_id: str, log: Path, *extra: str) -> IngestChild:
    return IngestChild(db_url, mqtt_url, client_id, log, *extra)


def gateway_file(path: Path, *, modbus_port: int, spool: Path, gateway: str = "gw-faults",
                 capacity: int = 1_000_000, **publish: Any) -> Path:
    devices = [{"id": meter, "link": "lan", "unit_id": unit, "model": model, "interval_s": 1,
                "meters": [{"id": meter, "field": fld}]}
               for unit, (meter, model, fld) in enumerate(zip(METERS, MODELS, FIELDS,
                                                              strict=True), start=1)]
    body = {"gateway": {
        "id": gateway, "plant": PLANT,
        "links": [{"name": "lan", "transport": "tcp", "host": "127.0.0.1",
                   "port": modbus_port, "timeout_s": 0.5}],
        "devices": devices,
        "spool": {"path": str(spool), "capacity_readings": capacity, "when_full": "drop_oldest",
                  "synchronous": "normal"},
        "publish": {"reconnect_min_s": 1, "reconnect_max_s": 2, "drain_rate_msgs_s": 200,
                    "platform_ack_timeout_s": 5, "platform_ack_max_s": 20,
                    "acknowledgement": ACKNOWLEDGEMENT, **publish}}}
    path.write_text(json.dumps(body, indent=1))
    return path


def collector(config: Path, mqtt_url: str, data_dir: Path, log: Path) -> Child:
    return Child(["-v", "collect", "--gateway", str(config)],
                 {"ENERGYMON_MQTT_URL": mqtt_url, "ENERGYMON_DATA_DIR": str(data_dir)}, log)


_SPOOLED = re.compile(r"event=cycle_spooled tick=(\S+) .*?readings=(\d+)")
_DROPPED = re.compile(r"event=spool_full policy=drop_oldest dropped=(\d+)")


def dropped_by_policy(*logs: Path) -> int:
    """Readings the collector's spool dropped to make room, by its own log lines."""
    return sum(int(m.group(1)) for log in logs if log.exists()
               for m in _DROPPED.finditer(log.read_text(errors="replace")))


def ledger(*logs: Path) -> dict[str, int]:
    """The source ledger: readings spooled per cycle tick (ISO time), from collector logs."""
    out: dict[str, int] = {}
    for log in logs:
        if not log.exists():
            continue
        for match in _SPOOLED.finditer(log.read_text(errors="replace")):
            tick = datetime.fromisoformat(match.group(1)).isoformat()
            out[tick] = out.get(tick, 0) + int(match.group(2))
    return out


@dataclass
class Outcome:
    scenario: str
    broker: str
    generated: int
    stored: int
    lost: int
    conflicting: int
    redelivered_batches: int
    skipped_batches: int
    gap_open: bool
    recovery_s: float | None       # None: never more than 3 s behind
    dropped: int = 0               # by the spool's capacity policy, counted by the collector
    ingest_rss_max_mb: float | None = None   # the largest ingest RSS sampled
    # (seconds since the start, MB): the largest ingest worker's RSS, at most 60 points
    ingest_rss_series: list[tuple[float, float]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    lost_ticks: list[str] = field(default_factory=list)

    def line(self) -> str:
        drops = f" (the spool's policy dropped {self.dropped}, counted)" if self.dropped else ""
        rss = (f", ingest RSS at most {self.ingest_rss_max_mb:g} MB"
               if self.ingest_rss_max_mb else "")
        if self.ingest_rss_series:
            rss += (f" ({self.ingest_rss_series[0][1]:g} MB at the start, "
                    f"{self.ingest_rss_series[-1][1]:g} MB at the end)")
        return (f"{self.scenario} ({self.broker}): {self.generated} generated, {self.stored} "
                f"stored, {self.lost} not stored{drops}, {self.conflicting} conflicting, "
                f"{self.redelivered_batches} batches redelivered (absorbed), "
                + ("never more than 3 s behind" if self.recovery_s is None
                   else f"recovery in {self.recovery_s:.1f} s") + rss)


def stored_per_tick(db_url: str, ticks: list[str]) -> dict[str, int]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT r.ts, count(*) FROM readings r JOIN meters m ON m.id = r.meter_id "
            "JOIN plants p ON p.id = m.plant_id WHERE p.code = %s AND m.code = ANY(%s) "
            "AND r.ts = ANY(%s::timestamptz[]) GROUP BY r.ts",
            (PLANT, list(METERS), ticks)).fetchall()
    return {ts.isoformat(): n for ts, n in rows}


def classify(scenario: str, broker: str, db_url: str, logs: list[Path],
             recovery_s: float | None, faults: list[str]) -> Outcome:
    source = ledger(*logs)
    stored = stored_per_tick(db_url, list(source))
    lost_ticks = sorted(t for t, n in source.items() if stored.get(t, 0) < n)
    with psycopg.connect(db_url) as conn:
        conflicts = conn.execute("SELECT count(*) FROM reading_conflicts").fetchone()
        streams = conn.execute(
            "SELECT coalesce(sum(redeliveries), 0), coalesce(sum(skipped_batches), 0), "
            "coalesce(bool_or(gap_since IS NOT NULL), false) FROM gateway_streams g "
            "JOIN plants p ON p.id = g.plant_id WHERE p.code = %s", (PLANT,)).fetchone()
    assert conflicts is not None and streams is not None
    generated = sum(source.values())
    kept = sum(min(stored.get(t, 0), n) for t, n in source.items())
    return Outcome(scenario, broker, generated, kept, generated - kept, int(conflicts[0]),
                   int(streams[0]), int(streams[1]), bool(streams[2]),
                   None if recovery_s is None else round(recovery_s, 1),
                   dropped=dropped_by_policy(*logs), faults=faults,
                   lost_ticks=lost_ticks[:20])


def report(outcome: Outcome) -> None:
    """Append the outcome to the run's report (``.data/faults/``: results.jsonl, and the
    lines ``docs/reliability.md`` quotes)."""
    REPORT.mkdir(parents=True, exist_ok=True)
    with open(REPORT / "results.jsonl", "a") as out:
        out.write(json.dumps({"at": datetime.now().astimezone().isoformat(timespec="seconds"),
                              "profile": profile().name, **asdict(outcome)}) + "\n")
    print(outcome.line())
