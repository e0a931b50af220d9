"""A bounded, weighted hand-over buffer between the receiving threads and the writer thread.

Weight is the number of readings (plus dead letters) of a message, so the bound is on memory,
not on message count. ``put`` blocks while the pending weight (queued plus being written) would
exceed the capacity: that is the backpressure that reaches the broker (paho stops reading, the
broker holds the messages) or the HTTP client (a timeout becomes 503). A unit is always admitted
when nothing is pending, so a single message heavier than the capacity cannot deadlock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class BufferClosed(RuntimeError):
    """The pipeline is shutting down and accepts nothing more."""


class BoundedBuffer(Generic[T]):
    def __init__(self, capacity: int, *, idle: float | None = None,
                 on_block: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.idle = idle
        self._on_block = on_block
        self._clock = clock
        self._last_put = 0.0
        self._items: deque[tuple[T, int, float]] = deque()
        self._queued = 0      # weight waiting in the queue
        self._pending = 0     # queued + handed to the writer and not yet released
        self._closed = False
        self._flush = False
        self._want = 0        # weight the waiting consumer wants for a full batch
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)     # the consumer waits here
        self._space = threading.Condition(self._lock)     # producers and flushers wait here
        self.blocked_puts = 0  # how many puts had to wait (backpressure events)

    # -- producer side -----------------------------------------------------------------------
    def put(self, item: T, weight: int, timeout: float | None = None) -> bool:
        """Queue ``item``; block while full. False if ``timeout`` expired, raises if closed."""
        weight = max(1, weight)
        with self._lock:
            if self._closed:
                raise BufferClosed("the ingest pipeline is closed")
            if self._pending and self._pending + weight > self.capacity:
                self.blocked_puts += 1
                if self._on_block is not None:
                    self._on_block()
                deadline = None if timeout is None else self._clock() + timeout
                while self._pending and self._pending + weight > self.capacity:
                    if self._closed:
                        raise BufferClosed("the ingest pipeline is closed")
                    remaining = None if deadline is None else deadline - self._clock()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._space.wait(remaining)
            now = self._clock()
            self._last_put = now
            was_empty = not self._items
            self._items.append((item, weight, now))
            self._queued += weight
            self._pending += weight
            # wake the consumer only when it can act: first item, or a full batch
            if was_empty or (self._want and self._queued >= self._want):
                self._ready.notify()
            return True

    # -- consumer side -----------------------------------------------------------------------
    def take(self, max_weight: int, linger: float) -> list[tuple[T, int]]:
        """Wait for a batch: up to ``max_weight`` (whole items, at least one), returned once
        that much is queued, or the oldest item has waited ``linger`` seconds, or nothing new
        arrived for ``idle`` seconds (the sender is waiting for us, e.g. a broker whose window
        of unacknowledged messages is full), or at once on flush/close. An empty list means
        closed and drained."""
        with self._lock:
            self._want = max_weight
            try:
                while True:
                    if self._items:
                        if self._queued >= max_weight or self._flush or self._closed:
                            break
                        now = self._clock()
                        wait = linger - (now - self._items[0][2])
                        if self.idle is not None:
                            wait = min(wait, self.idle - (now - self._last_put))
                        if wait <= 0:
                            break
                        self._ready.wait(wait)
                    elif self._closed:
                        return []
                    else:
                        self._flush = False
                        self._ready.wait()
            finally:
                self._want = 0
            batch: list[tuple[T, int]] = []
            taken = 0
            while self._items and (not batch or taken + self._items[0][1] <= max_weight):
                item, weight, _ = self._items.popleft()
                batch.append((item, weight))
                taken += weight
            self._queued -= taken
            if not self._items:
                self._flush = False
            return batch

    def release(self, weight: int) -> None:
        """The writer is done with ``weight`` (committed, set aside or abandoned)."""
        with self._lock:
            self._pending -= weight
            self._space.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Ask for an immediate flush and wait until nothing is pending."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._lock:
            self._flush = True
            self._ready.notify()
            while self._pending:
                remaining = None if deadline is None else deadline - self._clock()
                if remaining is not None and remaining <= 0:
                    return False
                self._space.wait(min(remaining, 0.5) if remaining is not None else 0.5)
                if self._items and not self._flush:   # new items arrived meanwhile
                    self._flush = True
                    self._ready.notify()
            return True

    def drain(self) -> list[T]:
        """Remove and return everything still queued (after close, when no writer is left)."""
        with self._lock:
            items = [item for item, _, _ in self._items]
            weight = sum(w for _, w, _ in self._items)
            self._items.clear()
            self._queued -= weight
            self._pending -= weight
            self._space.notify_all()
            return items

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._ready.notify_all()
            self._space.notify_all()

    # -- observation -------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        return self._queued

    @property
    def pending(self) -> int:
        return self._pending

    def oldest(self) -> T | None:
        """The item queued longest (None when the queue is empty)."""
        with self._lock:
            return self._items[0][0] if self._items else None

    @property
    def closed(self) -> bool:
        return self._closed
