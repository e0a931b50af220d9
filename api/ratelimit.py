"""Per-principal request rate limiting: an in-process token bucket.

Each key (a token id, or a client address for failed authentication) owns a bucket of
``burst`` requests refilled at ``rate`` per second. A request takes one; an empty bucket answers
429 with ``Retry-After`` = whole seconds until one request is available again. Several API
processes each keep their own buckets (the limit is per process); put a shared limiter in the
reverse proxy when running many.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._max_keys = max_keys

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def acquire(self, key: str) -> float | None:
        """Take one request from ``key``'s bucket: None if allowed, else seconds to wait."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self._max_keys:
                    self._evict(now)
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            else:
                bucket.tokens = self._refilled(bucket, now)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / self.rate

    def blocked(self, key: str) -> float | None:
        """Seconds until ``key``'s bucket holds a request again, or None when it holds one
        now (nothing is taken: a look before doing any work for the request)."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                return None
            tokens = self._refilled(bucket, now)
            return None if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate)

    def _evict(self, now: float) -> None:
        """Drop buckets that have refilled completely (they hold no state worth keeping)."""
        full = self.burst / self.rate
        for key in [k for k, b in self._buckets.items() if now - b.updated >= full]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_keys:  # still full: forget the oldest half
            for key in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[
                    : len(self._buckets) // 2]:
                del self._buckets[key]


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Slots:
    """At most ``total`` holders at once, and ``per_key`` per key (heavy exports): a holder
    that does not get a slot is refused at once, never queued."""

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> bool:
        with self._lock:
            if (sum(self._held.values()) >= self.total
                    or self._held.get(key, 0) >= self.per_key):
                return False
            self._held[key] = self._held.get(key, 0) + 1
            return True

    def release(self, key: str) -> None:
        with self._lock:
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

    @property
    def held(self) -> int:
        with self._lock:
            return sum(self._held.values())
