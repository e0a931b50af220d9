"""Interval energy from meter readings: pure functions, tested by tables and properties.

Cumulative counters (``kind: counter`` and ``production``) become quantities per aligned
interval (15 minutes by default) as follows, for consecutive readings *a* and *b*:

1. *Spikes*: a reading out of line with both neighbours (``a <= next`` but the reading is
   not between them) is set aside (``spikes``). *Plausibility*: a step faster than
   ``PLAUSIBLE_FACTOR`` times the meter's typical rate (the 90th percentile of its advancing
   rates in the window, when at least eight pairs show one) is not taken at face value. If
   a later reading within ``LOOKAHEAD`` readings is back in line with *a*, the readings in
   between were spikes and are set aside (``spikes``); otherwise the register was re-based
   (undeclared replacement) and the step counts 0, estimated.
2. ``b - a >= 0`` and plausible: the delta is ``b - a``.
3. ``b < a`` and the meter declares a rollover modulus *M* (the counter shows 0 again when it
   reaches *M*) and ``M - a + b <= M / 2``: a rollover, delta ``M - a + b``.
4. ``b < a``, a dip that a later reading undoes (as in 1): the dip is set aside.
5. ``b < a`` otherwise, with ``b <= a / 2`` and ``b`` a plausible advance: a reset or an
   undeclared replacement counting from zero; the delta is ``b``, estimated (what the old
   register counted after *a* is unknown). Any other backward step re-bases the register:
   0, estimated.
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
from collections.abc import Callable, Iterable, Sequence
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


PLAUSIBLE_FACTOR = 50.0
LOOKAHEAD = 8
MIN_RATE_SAMPLES = 8


def typical_rate(samples: Sequence[Sample]) -> float | None:
    """The 90th percentile of the advancing rates (units per second) between consecutive
    readings, or None when fewer than ``MIN_RATE_SAMPLES`` pairs advance."""
    rates = sorted(
        (b.value - a.value) / (b.ts - a.ts)
        for a, b in zip(samples, samples[1:], strict=False)
        if b.ts > a.ts and b.value > a.value
    )
    if len(rates) < MIN_RATE_SAMPLES:
        return None
    return rates[min(len(rates) - 1, int(0.9 * len(rates)))]


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
    rate = typical_rate(ordered)
    buckets: dict[int, IntervalEnergy] = {}
    result = IntervalResult([])

    def bucket(start: int) -> IntervalEnergy:
        found = buckets.get(start)
        if found is None:
            found = buckets[start] = IntervalEnergy(start)
        return found

    def plausible(advance: float, span: float) -> bool:
        return rate is None or advance <= rate * span * PLAUSIBLE_FACTOR

    def back_in_line(a: Sample, j: int) -> int | None:
        """Index of the first reading after ``j`` (within LOOKAHEAD) in line with ``a``."""
        for k in range(j + 1, min(len(ordered), j + 1 + LOOKAHEAD)):
            c = ordered[k]
            if c.value >= a.value and plausible(c.value - a.value, c.ts - a.ts):
                return k
        return None

    if not ordered:
        return result
    kept = [ordered[0]]
    a = ordered[0]
    j = 1
    while j < len(ordered):
        b = ordered[j]
        replacement = next((r for r in replacements if a.ts < r.ts <= b.ts), None)
        estimated = a.flagged or b.flagged
        span = b.ts - a.ts
        if replacement is not None:
            delta = (max(0.0, replacement.old_final - a.value)
                     + max(0.0, b.value - replacement.new_initial))
        else:
            step = b.value - a.value
            wrap = (modulus - a.value + b.value) if modulus is not None else None
            following = ordered[j + 1] if j + 1 < len(ordered) else None
            if (following is not None and a.value <= following.value
                    and not a.value <= b.value <= following.value
                    and not any(b.ts < r.ts <= following.ts for r in replacements)):
                # out of line with both neighbours: a single spike or dip
                result.spikes.append(b)
                j += 1
                continue
            if step >= 0 and plausible(step, span):
                delta = step
            elif (step < 0 and wrap is not None and modulus is not None
                  and wrap <= modulus / 2 and plausible(wrap, span)):
                delta = wrap
                result.rollovers += 1
            else:
                resume = back_in_line(a, j)
                if resume is not None:
                    result.spikes.extend(ordered[j:resume])
                    j = resume
                    continue
                if step < 0 and b.value <= a.value / 2 and plausible(max(b.value, 0), span):
                    delta = max(0.0, b.value)  # reset to zero
                else:
                    delta = 0.0  # re-based register (undeclared replacement)
                estimated = True
                result.resets.append(b)
        if span > interval_s:
            estimated = True
        _spread(delta * multiplier, a.ts, b.ts, interval_s, estimated, bucket)
        kept.append(b)
        a = b
        j += 1

    for sample in kept:
        bucket(align(sample.ts, interval_s)).readings += 1
    result.intervals = [buckets[k] for k in sorted(buckets)]
    return result


def _spread(delta: float, t0: float, t1: float, interval_s: int, estimated: bool,
            bucket: Callable[[int], IntervalEnergy]) -> None:
    """Distribute ``delta`` over the aligned intervals overlapping ``[t0, t1]``."""
    span = t1 - t0
    start = align(t0, interval_s)
    while start < t1:
        end = start + interval_s
        overlap = min(end, t1) - max(start, t0)
        if overlap > 0:
            part = delta * overlap / span
            target = bucket(start)
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
