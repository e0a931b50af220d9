"""A small progress bar on stderr (no dependency): ``label [#####-----] 52% 1.2M/2.3M 310k/s``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _human(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


class Progress:
    """Call :meth:`update` with increments; :meth:`close` prints the final line."""

    def __init__(self, total: int, label: str, *, unit: str = "rows", stream: TextIO | None = None,
                 enabled: bool = True, width: int = 30) -> None:
        self.total = max(total, 1)
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self._last >= 0.1 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _draw(self, now: float, end: str = "") -> None:
        share = min(self.done / self.total, 1.0)
        filled = int(share * self.width)
        rate = self.done / max(now - self._start, 1e-9)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'-' * (self.width - filled)}] "
                          f"{share * 100:3.0f}% {_human(self.done)}/{_human(self.total)} "
                          f"{self.unit} {_human(rate)}/s{end}")
        self.stream.flush()

    def close(self) -> float:
        """Finish the line; returns the elapsed seconds."""
        elapsed = time.monotonic() - self._start
        if self.enabled:
            self._draw(time.monotonic(), end="\n")
        return elapsed
