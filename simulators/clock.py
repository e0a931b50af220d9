"""Simulated time: real time, accelerated, or frozen (tests)."""

from __future__ import annotations

import threading
import time
from datetime import datetime


class SimClock:
    """``now()`` = ``start + speed × (wall time elapsed)``, in seconds since the Unix epoch.

    ``SimClock(speed=60)`` runs one simulated minute per second from the current time;
    ``SimClock.frozen(t)`` stands still (``set``/``advance`` move it), for tests.
    """

    def __init__(self, start: datetime | float | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self._lock = threading.Lock()
        self._start = (start.timestamp() if isinstance(start, datetime)
                       else float(start) if start is not None else time.time())
        self._wall0 = time.monotonic()
        self.speed = speed
        self._frozen = False

    @classmethod
    def frozen(cls, at: datetime | float) -> SimClock:
        clock = cls(at)
        clock._frozen = True
        return clock

    def now(self) -> float:
        with self._lock:
            if self._frozen:
                return self._start
            return self._start + (time.monotonic() - self._wall0) * self.speed

    def set(self, at: datetime | float) -> None:
        with self._lock:
            self._start = at.timestamp() if isinstance(at, datetime) else float(at)
            self._wall0 = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.set(self.now() + seconds)

    def wall_seconds_until(self, t: float) -> float:
        """Wall-clock seconds until simulated instant ``t`` (0 if passed; inf when frozen)."""
        remaining = t - self.now()
        if remaining <= 0:
            return 0.0
        return float("inf") if self._frozen else remaining / self.speed
