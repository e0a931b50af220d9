"""Interval energy from meter readings: pure functions, tested by tables and properties.

Readings first: a reading of quality ``missing`` (``Sample.missing``) carries no value and is
dropped before any arithmetic, for counters and interval meters alike. It is never a counter
sample, takes no part in the typical rate, spike or reset decisions, and does not count in
``IntervalEnergy.readings``. Of several readings with the same timestamp the first (after the
drop) is kept.

Cumulative counters (``kind: counter`` and ``production``) become quantities per aligned
interval (15 minutes by default) as follows, for consecutive kept readings *a* and *b* (the
*span* is ``b.ts - a.ts``; the *typical rate* is the 90th percentile of the advancing rates
between consecutive readings in the window, known when at least ``MIN_RATE_SAMPLES`` pairs
advance):

1. *Spikes*: a reading out of line with both neighbours (``a <= next`` but the reading is
   not between them) is set aside (``spikes``). *Plausibility*: a step faster than
   ``PLAUSIBLE_FACTOR`` times the typical rate is not taken at face value. If a later
   reading within ``LOOKAHEAD`` readings is back in line with *a*, the readings in between
   were spikes and are set aside (``spikes``); otherwise the register was re-based
   (undeclared replacement), see 5.
2. ``b - a >= 0`` and plausible: the delta is ``b - a``.
3. ``b < a`` and the meter declares a rollover modulus *M* and ``0 <= M - a + b <= M / 2`` (and
   is plausible): a rollover, delta ``M - a + b``. *M* is the value at which the register
   shows 0 again, i.e. the declared largest value plus one register step; the store computes
   it as ``rollover_max + step`` (a register 0..99 999 999 counting in steps of 1 has
   ``M = 100 000 000``).
4. ``b < a``, a dip that a later reading undoes (as in 1): the dip is set aside.
5. ``b < a`` otherwise, with ``b <= a / 2`` and ``b`` a plausible advance: a reset or an
   undeclared replacement counting from zero. The new register counted ``b``; what the old
   one counted after *a* is unknown, so the delta is ``max(b, rate * span)`` when the typical
   rate is known, else ``b``; estimated. Any other backward step, and an implausible forward
   step that no later reading undoes, re-bases the register: the delta is ``rate * span``
   (the rate is always known for an implausible step), else 0; estimated. Each such reading
   is listed in ``resets``.
6. A declared replacement between *a* and *b* (old register's final value, new register's
   initial value) gives ``(old_final - a) + (b - new_initial)``, exact.

*Multiplier* (CT x PT ratio): a number, or a history of steps ``((valid_from, multiplier),
...)`` sorted by ``valid_from`` (epoch seconds), the first step applying to everything before
it too (:func:`multiplier_at`). A delta is multiplied by the multiplier in force at the span's
start ``a.ts``; when a step's ``valid_from`` lies strictly inside ``(a.ts, b.ts)`` the delta
is estimated. The rollover test of rule 3 is on raw register values.

Each delta is spread over the aligned intervals the span ``[a.ts, b.ts]`` overlaps, in
proportion to time (``covered`` adds up the overlaps). The delta is *estimated* when:

- the span is a gap: ``span > interval_s * (1 + jitter)`` (``jitter`` defaults to
  ``DEFAULT_JITTER`` = 0.1, so readings a few seconds late or early are not gaps);
- a dropped ``missing`` reading lay strictly inside ``(a.ts, b.ts)`` (the good neighbours
  bridge the gap it leaves, whatever the span);
- *a* or *b* is flagged (quality not good, ``Sample.flagged``);
- rule 5 applies (undeclared reset or re-base), or a multiplier step lies inside the span
  (see above).

Deltas are never negative. For a history without undeclared resets and re-bases their sum
over any run of readings equals the register's true advance (rollovers and declared
replacements included); an undeclared reset or re-base adds an estimated part instead of
losing the consumption it hides.

Interval meters (``kind: interval``) carry the quantity of the interval ending at their
timestamp (for an unaligned timestamp: of the aligned interval containing it). A received
interval has quantity ``max(0, value) x multiplier``, ``readings`` 1 (one per reading placed in
it) and ``covered = interval_s``; it is estimated when the reading is flagged or negative, or
when a multiplier step lies strictly inside the ``interval_s`` the reading covers
(``(ts - interval_s, ts)``). The multiplier is the one in force at the start of that period,
``ts - interval_s`` (as for counters: the start of what the quantity measured). A missing
interval is missing, not zero: a run of up to ``max_fill`` (default 4) missing intervals
between two received intervals is filled with the mean of those two intervals' quantities,
one row per missing interval with ``readings = 0``, ``covered = 0`` and all of it estimated;
a longer run gives no rows (completeness accounting counts it elsewhere), and so do missing
intervals before the first or after the last received one.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

DEFAULT_INTERVAL_S = 900
DEFAULT_JITTER = 0.1
DEFAULT_MAX_FILL = 4

MultiplierSteps = Sequence[tuple[float, float]]
Multiplier = float | MultiplierSteps


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading: epoch seconds, register value, whether its quality was not good
    (``flagged``), and whether it was of quality ``missing`` (no usable value)."""

    ts: float
    value: float
    flagged: bool = False
    missing: bool = False


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


def _split_missing(samples: Iterable[Sample]) -> tuple[list[Sample], list[float]]:
    """Good readings (sorted, deduplicated) and the sorted timestamps of missing ones."""
    good: list[Sample] = []
    missing: list[float] = []
    for s in samples:
        if s.missing:
            missing.append(s.ts)
        else:
            good.append(s)
    return _dedupe_sorted(good), sorted(missing)


def _strictly_inside(sorted_ts: Sequence[float], t0: float, t1: float) -> bool:
    """Whether any of ``sorted_ts`` lies in the open interval ``(t0, t1)``."""
    return bisect_left(sorted_ts, t1) > bisect_right(sorted_ts, t0)


def _steps(multiplier: Multiplier) -> tuple[tuple[float, float], ...]:
    if isinstance(multiplier, int | float):
        return ((-math.inf, float(multiplier)),)
    steps = tuple((float(t), float(m)) for t, m in multiplier)
    if not steps:
        raise ValueError("a multiplier history needs at least one step")
    if any(b[0] < a[0] for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError("multiplier steps must be sorted by valid_from")
    return steps


def multiplier_at(steps: Multiplier, ts: float) -> float:
    """The multiplier in force at ``ts``: the last step with ``valid_from <= ts``, or the
    first step for a ``ts`` before all of them. A plain number is in force at every time."""
    ordered = _steps(steps)
    found = ordered[0][1]
    for valid_from, value in ordered:
        if valid_from > ts:
            break
        found = value
    return found


def _step_inside(steps: Sequence[tuple[float, float]], t0: float, t1: float) -> bool:
    """Whether a multiplier step takes effect strictly inside ``(t0, t1)``."""
    return any(t0 < valid_from < t1 for valid_from, _ in steps[1:])


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
    multiplier: Multiplier = 1.0,
    replacements: Sequence[Replacement] = (),
    jitter: float = DEFAULT_JITTER,
) -> IntervalResult:
    """Interval quantities of a cumulative counter (see the module docstring for the rules).

    ``modulus`` is the value at which the register shows 0 again (declared maximum plus one
    step); ``multiplier`` a number or a history of ``(valid_from, multiplier)`` steps; a span
    is a gap when longer than ``interval_s * (1 + jitter)``.
    """
    if jitter < 0:
        raise ValueError(f"jitter must be >= 0, got {jitter!r}")
    steps = _steps(multiplier)
    ordered, missing = _split_missing(samples)
    rate = typical_rate(ordered)
    gap_s = interval_s * (1 + jitter)
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
                  and 0 <= wrap <= modulus / 2 and plausible(wrap, span)):
                delta = wrap
                result.rollovers += 1
            else:
                resume = back_in_line(a, j)
                if resume is not None:
                    result.spikes.extend(ordered[j:resume])
                    j = resume
                    continue
                expected = rate * span if rate is not None else 0.0
                if step < 0 and b.value <= a.value / 2 and plausible(max(b.value, 0), span):
                    delta = max(max(0.0, b.value), expected)  # reset to zero
                else:
                    delta = expected  # re-based register (undeclared replacement)
                estimated = True
                result.resets.append(b)
        if (span > gap_s or _strictly_inside(missing, a.ts, b.ts)
                or _step_inside(steps, a.ts, b.ts)):
            estimated = True
        _spread(delta * multiplier_at(steps, a.ts), a.ts, b.ts, interval_s, estimated, bucket)
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
    samples: Iterable[Sample],
    *,
    interval_s: int = DEFAULT_INTERVAL_S,
    multiplier: Multiplier = 1.0,
    max_fill: int = DEFAULT_MAX_FILL,
) -> IntervalResult:
    """Quantities of a meter reporting per interval (value = quantity of the interval ending
    at ``ts``); runs of up to ``max_fill`` missing intervals between two received ones are
    filled, estimated (see the module docstring)."""
    if max_fill < 0:
        raise ValueError(f"max_fill must be >= 0, got {max_fill!r}")
    steps = _steps(multiplier)
    good, _ = _split_missing(samples)
    out: dict[int, IntervalEnergy] = {}
    for s in good:
        # the interval ending at ts (or, for an unaligned ts, the one that contains it)
        start = int(math.ceil(s.ts / interval_s) * interval_s) - interval_s
        item = out.setdefault(start, IntervalEnergy(start))
        measured_from = s.ts - interval_s
        quantity = max(0.0, s.value) * multiplier_at(steps, measured_from)
        item.quantity += quantity
        item.readings += 1
        item.covered = interval_s
        if s.flagged or s.value < 0 or _step_inside(steps, measured_from, s.ts):
            item.estimated += quantity
    received = sorted(out)
    for before, after in zip(received, received[1:], strict=False):
        absent = (after - before) // interval_s - 1
        if not 0 < absent <= max_fill:
            continue
        mean = (out[before].quantity + out[after].quantity) / 2
        for k in range(1, absent + 1):
            start = before + k * interval_s
            out[start] = IntervalEnergy(start, quantity=mean, estimated=mean)
    return IntervalResult([out[k] for k in sorted(out)])
