"""The bounded queue, backpressure, retries and setting aside, with a scripted writer."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg import errors

from ingest.buffer import BoundedBuffer, BufferClosed
from ingest.model import Outcome, Receipt, Unit, WriteStats
from ingest.pipeline import Backpressure, IngestConfig, IngestPipeline, PipelineClosed
from ingest.reasons import ReasonCode
from ingest.registry_cache import RegistryCache, RegistrySnapshot
from ingest.validation import DeadLetter

SNAPSHOT = RegistrySnapshot.from_rows([("p1", f"m{i}", i + 1, None) for i in range(50)])


class ScriptedWriter:
    """Records batches; can be paused (gate), fail with scripted errors, or refuse a payload."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.failures: list[BaseException] = []
        self.poison: bytes | None = None
        self.batches: list[list[Unit]] = []
        self.dead: list[tuple[Unit, DeadLetter]] = []
        self.calls = 0
        self.lock = threading.Lock()

    def write(self, units: Sequence[Unit]) -> WriteStats:
        self.gate.wait()
        with self.lock:
            self.calls += 1
            if self.failures:
                raise self.failures.pop(0)
            if self.poison is not None and any(u.raw == self.poison for u in units):
                raise errors.lookup("22P02")("invalid input syntax")
            self.batches.append(list(units))
            stats = WriteStats(inserted=sum(u.count for u in units))
            for unit in units:
                for dead in unit.dead:
                    stats.dead_letters[dead.reason_code] = (
                        stats.dead_letters.get(dead.reason_code, 0) + 1)
            return stats

    def write_dead_letters(self, items: Sequence[tuple[Unit, DeadLetter]]) -> WriteStats:
        with self.lock:
            self.dead.extend(items)
        return WriteStats()

    def close(self) -> None:
        pass

    def written(self) -> list[Unit]:
        return [u for batch in self.batches for u in batch]


def payload(seq: int, readings: int) -> bytes:
    ts = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    return json.dumps({"gateway": "gw", "seq": seq, "readings": [
        {"meter": f"m{i % 50}", "ts": (ts - timedelta(minutes=15 * seq)).isoformat(),
         "value": float(i)} for i in range(readings)]}).encode()


def make_pipeline(writer: ScriptedWriter, **config: object) -> IngestPipeline:
    cfg = IngestConfig(**{"batch_size": 50, "flush_interval": 0.02, "max_pending": 1000,
                          "retry_initial": 0.001, "retry_max": 0.01, **config})  # type: ignore[arg-type]
    return IngestPipeline(writer, RegistryCache.fixed(SNAPSHOT), config=cfg).start()


# -- the buffer itself -------------------------------------------------------------------------
def test_buffer_blocks_when_full_and_resumes_after_release() -> None:
    buf: BoundedBuffer[str] = BoundedBuffer(10)
    assert buf.put("a", 6) and buf.put("b", 4)
    assert buf.put("c", 1, timeout=0.05) is False          # full: timed out
    done = threading.Event()
    threading.Thread(target=lambda: (buf.put("c", 3), done.set()), daemon=True).start()
    time.sleep(0.05)
    assert not done.is_set() and buf.pending == 10
    batch = buf.take(max_weight=6, linger=0)
    assert batch == [("a", 6)]
    assert not done.is_set()                                 # taken but not yet written
    buf.release(6)
    assert done.wait(2)
    assert buf.pending == 7 and buf.blocked_puts == 2


def test_buffer_admits_one_oversized_item_when_empty_and_lingers() -> None:
    buf: BoundedBuffer[str] = BoundedBuffer(5)
    assert buf.put("huge", 50, timeout=0)
    assert buf.take(10, linger=0) == [("huge", 50)]
    buf.release(50)
    buf.put("x", 1)
    started = time.monotonic()
    assert buf.take(10, linger=0.1) == [("x", 1)]           # waited for the linger time
    assert time.monotonic() - started >= 0.09
    buf.close()
    with pytest.raises(BufferClosed):
        buf.put("y", 1)
    assert buf.take(10, linger=1) == []


def test_buffer_flushes_early_when_the_sender_goes_quiet() -> None:
    buf: BoundedBuffer[str] = BoundedBuffer(100, idle=0.02)
    buf.put("a", 1)
    started = time.monotonic()
    assert buf.take(50, linger=5) == [("a", 1)]
    assert time.monotonic() - started < 2


# -- backpressure through the pipeline ---------------------------------------------------------
def test_full_queue_blocks_submitters_and_loses_nothing() -> None:
    writer = ScriptedWriter()
    writer.gate.clear()                                     # the database "hangs"
    pipeline = make_pipeline(writer, max_pending=100, batch_size=40)
    receipts: list[Receipt] = []
    finished = threading.Event()

    def produce() -> None:
        for seq in range(20):
            receipts.append(pipeline.submit("p1", payload(seq, 20), "mqtt:plants/p1/readings"))
        finished.set()

    threading.Thread(target=produce, daemon=True).start()
    peak = 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        peak = max(peak, pipeline.pending)
        time.sleep(0.005)
    assert not finished.is_set(), "the producer must be blocked by the full queue"
    assert 0 < peak <= 100
    assert pipeline.metrics.backpressure._value.get() >= 1
    with pytest.raises(Backpressure):
        pipeline.submit("p1", payload(99, 20), "http:/api", timeout=0.05)
    writer.gate.set()
    assert finished.wait(5)
    assert pipeline.flush(5)
    assert all(r.wait(5) is Outcome.COMMITTED for r in receipts)
    written = writer.written()
    assert len(written) == 20 and len({id(u) for u in written}) == 20   # each exactly once
    assert sum(u.count for u in written) == 400
    assert pipeline.close(5)
    with pytest.raises(PipelineClosed):
        pipeline.submit("p1", payload(1, 1), "mqtt:plants/p1/readings")


def test_on_done_runs_only_after_the_commit() -> None:
    writer = ScriptedWriter()
    pipeline = make_pipeline(writer)
    seen: list[bool] = []
    receipt = pipeline.submit("p1", payload(1, 5), "mqtt:x",
                              on_done=lambda r: seen.append(any(
                                  u.receipt is r for u in writer.written())))
    assert receipt.wait(5) is Outcome.COMMITTED and receipt.durable
    assert seen == [True]
    pipeline.close(5)


# -- errors -----------------------------------------------------------------------------------
def test_transient_errors_are_retried_without_loss_or_duplication() -> None:
    writer = ScriptedWriter()
    writer.failures = [errors.lookup("40P01")("deadlock"),
                       psycopg.OperationalError("server closed the connection"),
                       errors.lookup("53300")("too many connections")]
    pipeline = make_pipeline(writer, batch_size=1000, flush_interval=0.05)
    receipts = [pipeline.submit("p1", payload(s, 10), "mqtt:x") for s in range(5)]
    assert all(r.wait(5) is Outcome.COMMITTED for r in receipts)
    assert writer.calls == 4
    assert sorted(u.receipt.accepted for u in writer.written()) == [10] * 5
    assert len(writer.written()) == 5
    assert pipeline.metrics.db_retries.labels("40P01")._value.get() == 1
    pipeline.close(5)


def test_a_permanent_error_sets_aside_only_the_message_at_fault() -> None:
    writer = ScriptedWriter()
    bad = payload(3, 4)
    writer.poison = bad
    writer.gate.clear()
    pipeline = make_pipeline(writer, batch_size=1000, flush_interval=0.05)
    receipts = [pipeline.submit("p1", bad if s == 3 else payload(s, 4), "mqtt:x")
                for s in range(8)]
    writer.gate.set()
    outcomes = [r.wait(5) for r in receipts]
    assert outcomes == [Outcome.COMMITTED] * 3 + [Outcome.SET_ASIDE] + [Outcome.COMMITTED] * 4
    assert len(writer.written()) == 7 and all(u.raw != bad for u in writer.written())
    [(unit, dead)] = writer.dead
    assert unit.raw == bad and dead.payload == bad
    assert dead.reason_code is ReasonCode.PERMANENT_DB_ERROR and "22P02" in dead.reason
    assert receipts[3].durable                    # set aside = stored: the MQTT ack may go
    pipeline.close(5)


def test_shutdown_while_the_database_is_down_abandons_without_ack() -> None:
    writer = ScriptedWriter()
    writer.failures = [psycopg.OperationalError("connection refused")] * 10_000
    pipeline = make_pipeline(writer, retry_max=0.02)
    acked: list[Receipt] = []
    receipt = pipeline.submit("p1", payload(1, 3), "mqtt:x",
                              on_done=lambda r: acked.append(r) if r.durable else None)
    time.sleep(0.1)
    assert not receipt.done
    assert pipeline.close(timeout=0.2) is False
    assert receipt.wait(5) is Outcome.ABANDONED
    assert acked == [] and writer.batches == []


def test_a_validation_bug_becomes_a_dead_letter_not_a_crash(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    writer = ScriptedWriter()
    pipeline = make_pipeline(writer)

    def boom(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(pipeline.validator, "validate", boom)
    receipt = pipeline.submit("p1", b"{}", "mqtt:x")
    assert receipt.wait(5) is Outcome.COMMITTED
    assert [r.reason_code for r in receipt.rejected] == [ReasonCode.INTERNAL_ERROR]
    assert writer.written()[0].dead[0].payload == b"{}"
    pipeline.close(5)
