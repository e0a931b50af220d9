"""Interval energy from meter readings: pure functions, tested by tables and properties.

Cumulative counters (``kind: counter`` and ``production``) become quantities per aligned
interval (15 minutes by default) as follows, for consecutive readings *a* and *b*:

1. *Spikes*: a reading out of line with both neighbours (``prev <= next`` but the reading is
   not between them) is set aside and counted in ``spikes``; it never becomes a delta.
2. ``b - a >= 0``: the delta is ``b - a``.
3. ``b < a`` and the meter declares a rollover modulus *M* (the counter shows 0 again when it
   reaches *M*) and ``M - a + b <= M / 2``: a rollover, delta ``M - a + b``.
4. ``b <= a / 2`` otherwise: a reset or an undeclared replacement counting from zero; the delta
   is ``b`` and it is *estimated* (what the old register counted after *a* is unknown).
5. Any other backward step: the register was re-based; the delta is 0, estimated.
6. A declared replacement between *a* and *b* (old register's final value, new register's
   initial value) gives ``(old_final - a) + (b - new_initial)``, exact.

Every delta is multiplied by the meter's multiplier (CT x PT ratio) and spread over the aligned
intervals the span ``[a.ts, b.ts]`` overlaps, in proportion to time. A span longer than one
interval (a gap) marks its share *estimated*; so does a reading whose quality is not good.
Deltas are never negative, and their sum over any run of readings equals the register's true
advance (rollovers and declared replacements included).

Interval meters (``kind: interval``) carry the quantity of the interval ending at their
timestamp and are only multiplied and placed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_INTERVAL_S = 900


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: epoch seconds, register value, and whether its quality was not good."""

    ts: float
    value: float
    flagged: bool = False


@dataclass(frozen=True, slots=True)
class Replacement:
    """A declared meter replacement (or reset) at ``ts``."""

    ts: float
    old_final: float
    new_initial: float


@dataclass(slots=True)
class IntervalEnergy:
    """Quantity in one aligned interval ``[start, start + interval_s)`` (epoch seconds)."""

    start: int
    quantity: float = 0.0
    estimated: float = 0.0      # the part of ``quantity`` that rests on estimation
    readings: int = 0           # readings whose timestamp falls in the interval
    covered: float = 0.0        # seconds of the interval covered by reading spans

    @property
    def estimated_share(self) -> float:
        if self.quantity > 0:
            return min(1.0, self.estimated / self.quantity)
        return 0.0


@dataclass
class IntervalResult:
    intervals: list[IntervalEnergy]
    spikes: list[Sample] = field(default_factory=list)
    resets: list[Sample] = field(default_factory=list)
    rollovers: int = 0


def align(ts: float, interval_s: int) -> int:
    """Start of the aligned interval containing ``ts``."""
    return int(math.floor(ts / interval_s) * interval_s)


def _dedupe_sorted(samples: Iterable[Sample]) -> list[Sample]:
    out: list[Sample] = []
    for s in sorted(samples, key=lambda s: s.ts):
        if out and out[-1].ts == s.ts:
            continue
        out.append(s)
    return out


def drop_spikes(samples: Sequence[Sample], protected: Sequence[float] = ()
                ) -> tuple[list[Sample], list[Sample]]:
    """Split off readings that are out of line with both neighbours.

    ``protected`` timestamps (declared replacements) disable the check around them.
    """
    kept: list[Sample] = []
    spikes: list[Sample] = []
    n = len(samples)
    for i, s in enumerate(samples):
        if 0 < i < n - 1 and kept:
            prev, nxt = kept[-1], samples[i + 1]
            near_replacement = any(prev.ts < p <= nxt.ts for p in protected)
            if (not near_replacement and prev.value <= nxt.value
                    and not prev.value <= s.value <= nxt.value):
                spikes.append(s)
                continue
        kept.append(s)
    return kept, spikes


def counter_intervals(
    samples: Iterable[Sample],
    *,
    interval_s: int = DEFAULT_INTERVAL_S,
    modulus: float | None = None,
    multiplier: float = 1.0,
    replacements: Sequence[Replacement] = (),
) -> IntervalResult:
    """Interval quantities of a cumulative counter (see the module docstring for the rules)."""
    ordered = _dedupe_sorted(samples)
    kept, spikes = drop_spikes(ordered, [r.ts for r in replacements])
    buckets: dict[int, IntervalEnergy] = {}
    result = IntervalResult([], spikes=spikes)

    def bucket(start: int) -> IntervalEnergy:
        found = buckets.get(start)
        if found is None:
            found = buckets[start] = IntervalEnergy(start)
        return found

    for s in kept:
        bucket(align(s.ts, interval_s)).readings += 1

    for a, b in zip(kept, kept[1:], strict=False):
        replacement = next((r for r in replacements if a.ts < r.ts <= b.ts), None)
        estimated = a.flagged or b.flagged
        if replacement is not None:
            delta = (max(0.0, replacement.old_final - a.value)
                     + max(0.0, b.value - replacement.new_initial))
        else:
            step = b.value - a.value
            if step >= 0:
                delta = step
            elif modulus is not None and modulus - a.value + b.value <= modulus / 2:
                delta = modulus - a.value + b.value
                result.rollovers += 1
            elif b.value <= a.value / 2:
                delta = max(0.0, b.value)
                estimated = True
                result.resets.append(b)
            else:
                delta = 0.0
                estimated = True
                result.resets.append(b)
        delta *= multiplier
        span = b.ts - a.ts
        if span > interval_s:
            estimated = True
        _spread(delta, a.ts, b.ts, interval_s, estimated, bucket)

    result.intervals = [buckets[k] for k in sorted(buckets)]
    return result


def _spread(delta: float, t0: float, t1: float, interval_s: int, estimated: bool,
            bucket: object) -> None:
    """Distribute ``delta`` over the aligned intervals overlapping ``[t0, t1]``."""
    span = t1 - t0
    start = align(t0, interval_s)
    while start < t1:
        end = start + interval_s
        overlap = min(end, t1) - max(start, t0)
        if overlap > 0:
            part = delta * overlap / span
            target = bucket(start)  # type: ignore[operator]
            target.quantity += part
            target.covered += overlap
            if estimated:
                target.estimated += part
        start = end


def interval_meter_intervals(
    samples: Iterable[Sample], *, interval_s: int = DEFAULT_INTERVAL_S, multiplier: float = 1.0,
) -> IntervalResult:
    """Quantities of a meter reporting per interval (value = quantity of the interval ending
    at ``ts``)."""
    out: dict[int, IntervalEnergy] = {}
    for s in _dedupe_sorted(samples):
        # the interval ending at ts (or, for an unaligned ts, the one that contains it)
        start = int(math.ceil(s.ts / interval_s) * interval_s) - interval_s
        item = out.setdefault(start, IntervalEnergy(start))
        quantity = max(0.0, s.value) * multiplier
        item.quantity += quantity
        item.readings += 1
        item.covered = interval_s
        if s.flagged or s.value < 0:
            item.estimated += quantity
    return IntervalResult([out[k] for k in sorted(out)])
