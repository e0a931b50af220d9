"""Spool: ordering, sequence numbers, capacity policies, acknowledgement and crash safety."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collector.spool import Spool, SpoolReading, read_stats

T0 = datetime(2026, 11, 20, 2, 15, tzinfo=UTC)


def cycle(i: int, meters: int = 3) -> list[SpoolReading]:
    ts = T0 + timedelta(minutes=15 * i)
    return [SpoolReading(f"m{k}", ts, 1000.0 * k + i) for k in range(meters)]


def test_batches_come_back_oldest_first_with_their_readings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=1000)
    for i in range(5):
        assert spool.add(cycle(i), cycle_ts=float(i)) == [i]
    batches = spool.pending(10)
    assert [b.seq for b in batches] == [0, 1, 2, 3, 4]
    assert batches[2].readings[1] == ("m1", (T0 + timedelta(minutes=30)).isoformat(), 1002.0,
                                      "good")
    assert [b.seq for b in spool.pending(2, exclude={0, 2})] == [1, 3]
    assert [b.seq for b in spool.pending(2, newest=True)] == [4, 3]
    assert spool.stats().depth == 15 and spool.stats().batches == 5
    assert spool.stats().oldest_ts == T0.timestamp()


def test_ack_removes_only_the_acknowledged_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=1000)
    for i in range(4):
        spool.add(cycle(i))
    assert spool.ack([1, 2]) == 6
    assert [b.seq for b in spool.pending(10)] == [0, 3]
    assert spool.stats().depth == 6
    assert spool.ack([1]) == 0  # a second ack (redelivered PUBACK) is harmless
    spool.ack([0, 3])
    assert spool.pending(10) == [] and spool.stats().oldest_ts is None


def test_confirm_removes_everything_up_to_the_platforms_ack(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=1000)
    for i in range(5):
        spool.add(cycle(i))
    assert spool.confirm(-1) == 0
    assert spool.confirm(2) == 9
    assert [b.seq for b in spool.pending(10)] == [3, 4]
    s = spool.stats()
    assert (s.depth, s.batches, s.held_from, s.next_seq) == (6, 2, 3, 5)
    assert spool.confirm(2) == 0                       # again: nothing more
    assert spool.confirm(10) == 6
    s = spool.stats()
    assert (s.depth, s.held_from, s.oldest_created) == (0, 5, None)   # empty: next seq


def test_read_stats_sees_what_the_collector_holds_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with pytest.raises(FileNotFoundError):
        read_stats(path)
    sqlite3.connect(path).close()                      # a file being created, no schema yet
    with pytest.raises(FileNotFoundError, match="not an initialised spool"):
        read_stats(path)
    path.unlink()
    spool = Spool(path, capacity=1000, when_full="drop_oldest")
    for i in range(3):
        spool.add(cycle(i))
    spool.confirm(0)
    mtime = path.stat().st_mtime_ns
    seen = read_stats(path, capacity=1000)
    assert seen == spool.stats()
    assert path.stat().st_mtime_ns == mtime
    spool.close()


def test_seq_and_backlog_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path, capacity=1000)
    for i in range(3):
        spool.add(cycle(i))
    spool.ack([0])
    spool.close()
    spool = Spool(path, capacity=1000)
    assert spool.stats().next_seq == 3
    assert [b.seq for b in spool.pending(10)] == [1, 2]
    assert spool.add(cycle(3)) == [3]
    assert spool.stats().depth == 9


def test_large_cycles_are_split_into_messages(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=1000, max_per_batch=4)
    assert spool.add(cycle(0, meters=10)) == [0, 1, 2]
    assert [len(b.readings) for b in spool.pending(10)] == [4, 4, 2]


def test_drop_oldest_makes_room_and_counts_every_dropped_reading(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path, capacity=10, when_full="drop_oldest")
    for i in range(3):
        spool.add(cycle(i))  # 9 readings
    spool.add(cycle(3))  # 12 > 10: the 2 oldest readings go
    s = spool.stats()
    assert (s.depth, s.dropped_oldest, s.refused_new) == (10, 2, 0)
    first = spool.pending(1)[0]
    assert first.seq == 0 and [r[0] for r in first.readings] == ["m2"]
    spool.add(cycle(4))  # 3 more: batch 0 (1 left) and 2 of batch 1 go
    assert spool.stats().dropped_oldest == 5
    assert [b.seq for b in spool.pending(10)] == [1, 2, 3, 4]
    spool.close()
    assert Spool(path, capacity=10).stats().dropped_oldest == 5  # persisted


def test_refuse_new_keeps_the_backlog_and_counts_refusals(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=10, when_full="refuse_new")
    for i in range(3):
        spool.add(cycle(i))
    assert spool.add(cycle(3)) == [3]  # one reading still fits
    assert spool.add(cycle(4)) == []
    s = spool.stats()
    assert (s.depth, s.dropped_oldest, s.refused_new) == (10, 0, 5)
    assert [b.seq for b in spool.pending(10)] == [0, 1, 2, 3]


def test_cycle_larger_than_the_spool_keeps_its_newest_readings(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite", capacity=100)
    spool.add(cycle(0, meters=150))
    s = spool.stats()
    assert s.depth == 100 and s.dropped_oldest == 50
    assert spool.pending(1)[0].readings[0][0] == "m50"


def test_wal_mode_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Spool(path, capacity=100).close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rejects_unknown_policy(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="drop policy"):
        Spool(tmp_path / "s.sqlite", capacity=100, when_full="drop_newest")


WRITER = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime, timedelta
    from collector.spool import Spool, SpoolReading, read_stats
    spool = Spool(sys.argv[1], capacity=10_000_000, synchronous="normal")
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    i = 0
    while True:
        ts = t0 + timedelta(minutes=i)
        spool.add([SpoolReading(f"m{k}", ts, float(i)) for k in range(50)], cycle_ts=float(i))
        if i == 20:
            print("ready", flush=True)
        i += 1
""")


def test_sigkill_mid_write_leaves_only_whole_batches(tmp_path: Path) -> None:
    """kill -9 while writing in a loop: every committed batch is whole, seqs are contiguous."""
    path = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    spool = Spool(path, capacity=10_000_000)
    batches = spool.pending(1_000_000)
    n = spool.stats().next_seq
    assert n > 20
    assert [b.seq for b in batches] == list(range(n))
    assert all(len(b.readings) == 50 for b in batches)
    assert all(r[2] == float(b.seq) for b in batches for r in b.readings)
    assert spool.stats().depth == 50 * n


def test_collect_status_prints_what_the_spool_holds_unconfirmed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from app.cli import main

    spool_file = tmp_path / "gw.sqlite"
    gateway = tmp_path / "gateway.yaml"
    gateway.write_text(json.dumps({"gateway": {
        "id": "gw-1", "plant": "p1", "spool": {"path": str(spool_file)},
        "links": [{"name": "l", "transport": "tcp", "host": "127.0.0.1", "port": 502}],
        "devices": [{"id": "d", "link": "l", "unit_id": 1, "model": "chint_dtsu666",
                     "meters": [{"id": "m", "field": "energy_import"}]}]}}))
    monkeypatch.setenv("ENERGYMON_DATA_DIR", str(tmp_path))
    assert main(["collect", "--gateway", str(gateway), "--status"]) == 1
    assert "has not run here" in capsys.readouterr().err
    spool = Spool(spool_file, capacity=1000)
    for i in range(4):
        spool.add(cycle(i))
    spool.confirm(1)
    spool.close()
    assert main(["collect", "--gateway", str(gateway), "--status", "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["unacknowledged_readings"] == 6 and status["unacknowledged_batches"] == 2
    assert status["held_from_seq"] == 2 and status["next_seq"] == 4
    assert status["acknowledgement"] == "platform"
    assert status["oldest_unacknowledged_age_s"] >= 0
    assert main(["collect", "--gateway", str(gateway), "--status"]) == 0
    assert "unacknowledged readings" in capsys.readouterr().out
