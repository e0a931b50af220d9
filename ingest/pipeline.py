"""The transport-independent ingest pipeline: validate, queue, batch, write, then acknowledge.

``IngestPipeline.submit(plant_code, raw_bytes, source)`` is the one entry point for every
transport (the MQTT worker in :mod:`ingest.mqtt`, the HTTP push endpoint of the API). It
validates the message at once in the caller's thread, queues the valid readings and the dead
letters in a bounded buffer (blocking the caller when full: backpressure) and returns a
:class:`~ingest.model.Receipt`. One writer thread takes batches and writes each in one
transaction: a batch is flushed when ``batch_size`` readings are queued, when the oldest has
waited ``flush_interval``, or when nothing new arrived for ``idle_flush`` (the sender is
waiting for acknowledgements: a broker's in-flight window is full). After the commit, each
message's ``on_done`` callback runs (the MQTT worker acknowledges there), and
``receipt.wait()`` returns. Then every ``ack_listeners`` callable gets the gateway streams the
batch advanced (:mod:`ingest.streams`): the MQTT worker publishes them as the end-to-end
acknowledgement.

Errors: transient database errors (by SQLSTATE, see :mod:`ingest.errors`) are retried with
capped exponential backoff, the batch kept whole, until they succeed or the pipeline is closed
(then the messages are *abandoned*: not written, not acknowledged, so the broker redelivers
them). A permanent error splits the batch in halves until the failing message is isolated;
that message is set aside in ``dead_letters`` with reason ``permanent_db_error`` and its raw
bytes, and the others are written normally.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import psycopg

from core.payload import MAX_PAYLOAD_BYTES
from ingest.buffer import BoundedBuffer, BufferClosed
from ingest.errors import ErrorClass, classify
from ingest.metrics import IngestMetrics
from ingest.model import Outcome, Receipt, Rejection, StreamAck, Unit, WriteStats
from ingest.reasons import ReasonCode
from ingest.registry_cache import RegistryCache, database_loader
from ingest.validation import DEFAULT_FUTURE_TOLERANCE, DeadLetter, Validated, Validator
from ingest.writer import DeadLetterLimits, PgWriter

log = logging.getLogger(__name__)

T = TypeVar("T")


class Backpressure(RuntimeError):
    """The queue stayed full for the whole submit timeout (HTTP: answer 503, retry later)."""


class PipelineClosed(BufferClosed):
    """The pipeline is shutting down."""


class BatchWriter(Protocol):
    def write(self, units: Sequence[Unit]) -> WriteStats: ...
    def write_dead_letters(self, items: Sequence[tuple[Unit, DeadLetter]]) -> WriteStats: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class IngestConfig:
    batch_size: int = 20_000              # readings per transaction (flush when reached)
    flush_interval: float = 0.2           # seconds the oldest queued message may wait
    idle_flush: float | None = 0.02       # flush early when nothing new arrived for this long
    max_pending: int = 200_000            # readings queued or being written (backpressure)
    future_tolerance: timedelta = DEFAULT_FUTURE_TOLERANCE
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    registry_refresh: float = 60.0        # periodic registry reload, seconds
    registry_miss_interval: float = 5.0   # at most one reload per this on unknown plant/meter
    retry_initial: float = 0.05           # first backoff after a transient error, seconds
    retry_max: float = 5.0                # backoff cap, seconds
    connect_timeout: float = 5.0
    dead_letters: DeadLetterLimits = field(default_factory=DeadLetterLimits.from_settings)

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_pending < self.batch_size:
            raise ValueError("batch_size must be positive and max_pending at least batch_size")
        if self.flush_interval <= 0:
            raise ValueError("flush_interval must be positive")


def _sqlstate(exc: BaseException) -> str | None:
    return exc.sqlstate if isinstance(exc, psycopg.Error) else None


def _describe(exc: BaseException) -> str:
    state = _sqlstate(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"SQLSTATE {state}: {text}" if state else f"{type(exc).__name__}: {text}"


class _Abandon(Exception):
    pass


class IngestPipeline:
    """Validation + bounded queue + batched writer; safe to call ``submit`` from any thread."""

    def __init__(
        self,
        writer: BatchWriter,
        registry: RegistryCache,
        *,
        config: IngestConfig | None = None,
        metrics: IngestMetrics | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config = config or IngestConfig()
        self.writer = writer
        self.registry = registry
        self.metrics = metrics or IngestMetrics()
        self.validator = Validator(registry, future_tolerance=self.config.future_tolerance,
                                   max_payload_bytes=self.config.max_payload_bytes)
        self._now = now
        self._buffer: BoundedBuffer[Unit] = BoundedBuffer(
            self.config.max_pending, idle=self.config.idle_flush,
            on_block=self.metrics.backpressure.inc)
        self._abandon = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.metrics.queue_capacity.set(self.config.max_pending)
        # read at scrape time, so they stay true while the writer waits for the database
        self._writing: list[Unit] = []            # the batch the writer is on
        self.metrics.queue_depth.set_function(lambda: self._buffer.pending)
        self.metrics.oldest_age.set_function(self._oldest_age)
        self._messages = {"mqtt": self.metrics.messages_mqtt, "http": self.metrics.messages_http}
        #: called in the writer thread after each commit with the streams it advanced
        self.ack_listeners: list[Callable[[Sequence[StreamAck]], None]] = []

    @classmethod
    def for_database(cls, url: str, *, config: IngestConfig | None = None,
                     metrics: IngestMetrics | None = None) -> IngestPipeline:
        """The production wiring: a PostgreSQL writer and a registry cache on ``url``."""

        config = config or IngestConfig()
        registry = RegistryCache(database_loader(url, config.connect_timeout),
                                 miss_interval=config.registry_miss_interval)
        return cls(PgWriter(url, connect_timeout=config.connect_timeout,
                            dead_letters=config.dead_letters), registry,
                   config=config, metrics=metrics)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, registry_timeout: float | None = None) -> IngestPipeline:
        """Load the registry (retrying until the database answers) and start the writer."""
        deadline = None if registry_timeout is None else time.monotonic() + registry_timeout
        attempt = 0
        while not self.registry.refresh():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError("the registry could not be loaded from the database")
            attempt += 1
            if self._stop.wait(self._backoff(attempt)):
                raise PipelineClosed("closed while waiting for the database")
        snap = self.registry.snapshot
        log.info("registry loaded: %d plants, %d meters", len(snap.plants), snap.meter_count)
        for target, name in ((self._run_writer, "ingest-writer"),
                             (self._run_refresher, "ingest-registry")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued now; True once nothing is pending."""
        return self._buffer.wait_idle(timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop accepting, write what is queued (retrying up to ``timeout``), stop threads.

        Messages still unwritten after ``timeout`` are abandoned (not acknowledged). Returns
        True when everything queued was written.
        """
        self._buffer.close()
        self._stop.set()
        writer_thread = self._threads[0] if self._threads else None
        clean = True
        if writer_thread is not None:
            writer_thread.join(timeout)
            if writer_thread.is_alive():
                clean = False
                log.warning("ingest: database not reachable at shutdown; abandoning %d queued "
                            "readings (not acknowledged: the broker redelivers them)",
                            self._buffer.pending)
                self._abandon.set()
                writer_thread.join(10)
        for thread in self._threads[1:]:
            thread.join(5)
        left = self._buffer.drain()       # only when the writer never ran or was stuck
        if left:
            clean = False
            self._finish(left, Outcome.ABANDONED, "the pipeline closed before writing it")
        self.writer.close()
        return clean

    def interrupt(self) -> None:
        """Make a ``start`` still waiting for the database give up (PipelineClosed)."""
        self._stop.set()

    @property
    def pending(self) -> int:
        """Readings (and dead letters) queued or being written."""
        return self._buffer.pending

    @property
    def running(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    # -- the entry point -----------------------------------------------------------------------
    def submit(
        self,
        plant_code: str | None,
        raw: bytes,
        source: str,
        *,
        on_done: Callable[[Receipt], None] | None = None,
        received_at: datetime | None = None,
        timeout: float | None = None,
    ) -> Receipt:
        """Validate ``raw`` as sent for ``plant_code`` and queue it for storage.

        ``source`` names the transport and place (``mqtt:plants/p1/readings``,
        ``http:/api/v1/readings``); its prefix before ':' labels the messages metric.
        ``on_done(receipt)`` runs in the writer thread once the message is durable (or
        abandoned at shutdown: check ``receipt.durable``). Blocks while the queue is full;
        raises :class:`Backpressure` after ``timeout`` seconds, :class:`PipelineClosed` when
        shutting down. Never raises for a bad payload: that becomes a dead letter.
        """
        if self._buffer.closed:
            raise PipelineClosed("the ingest pipeline is closed")
        received_at = received_at or self._now()
        try:
            validated = self.validator.validate(plant_code, raw, received_at)
        except Exception as exc:  # a validation bug must not lose or crash anything
            log.exception("validation of a message from %s failed unexpectedly", source)
            validated = Validated(b"", 0, [DeadLetter(
                ReasonCode.INTERNAL_ERROR, f"validation failed: {type(exc).__name__}: {exc}",
                bytes(raw))])
        receipt = Receipt(plant_code, source, received_at, validated.count,
                          tuple(Rejection(d.reason_code, d.reason) for d in validated.dead))
        unit = Unit(receipt, validated.rows, validated.count, validated.dead, raw, on_done,
                    validated.batch)
        try:
            if not self._buffer.put(unit, unit.weight, timeout):
                raise Backpressure(f"the ingest queue stayed full ({self._buffer.pending} "
                                   f"pending) for {timeout} s")
        except BufferClosed as exc:
            raise PipelineClosed(str(exc)) from None
        return receipt

    # -- writer thread ---------------------------------------------------------------------------
    def _run_writer(self) -> None:
        cfg = self.config
        while True:
            batch = self._buffer.take(cfg.batch_size, cfg.flush_interval)
            if not batch:
                return
            units = [unit for unit, _ in batch]
            self._writing = units
            self._count_received(units)
            try:
                self._commit(units)
            except Exception:  # never let the writer thread die
                log.exception("ingest writer: unexpected failure; abandoning %d message(s)",
                              len(units))
                self._finish([u for u in units if not u.receipt.done], Outcome.ABANDONED,
                             "internal error")
            finally:
                self._writing = []
                self._buffer.release(sum(weight for _, weight in batch))

    def _oldest_age(self) -> float:
        """Seconds the oldest message not yet committed has waited (0 when none)."""
        writing = self._writing
        head = self._buffer.oldest()
        times = [u.received_at for u in writing[:1]] + ([head.received_at] if head else [])
        if not times:
            return 0.0
        return max(0.0, (self._now() - min(times)).total_seconds())

    def _count_received(self, units: list[Unit]) -> None:
        """Message and reading counters, per batch (off the receiving thread's hot path)."""
        by_transport: dict[str, int] = {}
        readings = 0
        for unit in units:
            transport = unit.receipt.source.partition(":")[0]
            by_transport[transport] = by_transport.get(transport, 0) + 1
            readings += unit.count
        for transport, count in by_transport.items():
            counter = self._messages.get(transport)
            if counter is None:
                counter = self._messages[transport] = self.metrics.messages.labels(transport)
            counter.inc(count)
        if readings:
            self.metrics.readings_received.inc(readings)

    def _run_refresher(self) -> None:
        while not self._stop.wait(self.config.registry_refresh):
            self.registry.refresh()

    def _backoff(self, attempt: int) -> float:
        cfg = self.config
        delay: float = min(cfg.retry_max, cfg.retry_initial * (2 ** min(attempt, 30)))
        return delay * random.uniform(0.8, 1.2)  # jitter, not cryptography

    def _retrying(self, action: Callable[[], T], what: str) -> T:
        """Run ``action``, retrying transient errors; permanent ones are raised."""
        attempt = 0
        while True:
            try:
                return action()
            except Exception as exc:
                if classify(exc) is ErrorClass.PERMANENT:
                    raise
                if self._abandon.is_set():
                    raise _Abandon(_describe(exc)) from exc
                delay = self._backoff(attempt)
                self.metrics.db_retries.labels(_sqlstate(exc) or "none").inc()
                if attempt == 0 or attempt % 10 == 0:
                    log.warning("%s: transient database error (%s); retrying in %.2f s "
                                "(attempt %d)", what, _describe(exc), delay, attempt + 1)
                attempt += 1
                if self._abandon.wait(delay):
                    raise _Abandon(_describe(exc)) from exc

    def _commit(self, units: list[Unit]) -> None:
        started = time.perf_counter()
        try:
            stats = self._retrying(lambda: self.writer.write(units), "writing a batch")
        except _Abandon as exc:
            self._finish(units, Outcome.ABANDONED, str(exc))
            return
        except Exception as exc:
            if len(units) > 1:
                log.warning("batch of %d messages refused (%s); splitting it to isolate the "
                            "message at fault", len(units), _describe(exc))
                half = len(units) // 2
                self._commit(units[:half])
                self._commit(units[half:])
                return
            self._set_aside(units[0], exc)
            return
        m = self.metrics
        m.commit_seconds.observe(time.perf_counter() - started)
        rows = sum(u.count for u in units)
        m.batches.inc()
        m.batch_size.observe(rows)
        if stats.inserted:
            m.readings_committed.inc(stats.inserted)
        if stats.duplicates:
            m.duplicates.inc(stats.duplicates)
        if stats.conflicts:
            m.conflicts.inc(stats.conflicts)
        for code, count in stats.dead_letters.items():
            m.dead_by_reason[code].inc(count)
        self._finish(units, Outcome.COMMITTED)
        self._streams(stats)

    def _streams(self, stats: WriteStats) -> None:
        m = self.metrics
        if stats.redeliveries:
            m.redelivered_batches.inc(stats.redeliveries)
        if stats.skipped:
            m.skipped_batches.inc(stats.skipped)
        if not stats.acks:
            return
        for listener in self.ack_listeners:
            try:
                listener(stats.acks)
            except Exception:
                log.exception("publishing end-to-end acknowledgements failed")

    def _set_aside(self, unit: Unit, exc: Exception) -> None:
        reason = _describe(exc)
        log.error("message from %s set aside: %s", unit.source, reason)
        dead = DeadLetter(ReasonCode.PERMANENT_DB_ERROR, reason[:2000], bytes(unit.raw))
        try:
            stats = self._retrying(lambda: self.writer.write_dead_letters([(unit, dead)]),
                                   "setting a message aside")
        except _Abandon as abandon:
            self._finish([unit], Outcome.ABANDONED, str(abandon))
            return
        except Exception as second:
            log.error("could not even dead-letter the message from %s (%s); it is not "
                      "acknowledged", unit.source, _describe(second))
            self._finish([unit], Outcome.ABANDONED, _describe(second))
            return
        self.metrics.set_aside.inc()
        self.metrics.dead_by_reason[ReasonCode.PERMANENT_DB_ERROR].inc()
        self._finish([unit], Outcome.SET_ASIDE, reason)
        self._streams(stats)

    def _finish(self, units: Sequence[Unit], outcome: Outcome, error: str | None = None) -> None:
        if outcome is Outcome.ABANDONED:
            self.metrics.abandoned.inc(len(units))
        for unit in units:
            unit.receipt._resolve(outcome, error)
            if unit.on_done is not None:
                try:
                    unit.on_done(unit.receipt)
                except Exception:
                    log.exception("on_done callback of a message from %s failed", unit.source)
