"""Counter and quality rules of accounting.intervals: missing readings, jitter, rollover
modulus, undeclared resets, multiplier history, interval-meter gaps (tables and properties)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.intervals import (
    DEFAULT_JITTER,
    IntervalEnergy,
    IntervalResult,
    Sample,
    counter_intervals,
    interval_meter_intervals,
    multiplier_at,
)
from modbus.registermap import counter_rollover

Q = 900  # 15 minutes
EXAMPLES = int(os.environ.get("ENERGYMON_HYPOTHESIS_EXAMPLES", "200"))


def samples_at(values: Sequence[float], times: Sequence[float] | None = None) -> list[Sample]:
    times = times if times is not None else [i * Q for i in range(len(values))]
    return [Sample(t, v) for t, v in zip(times, values, strict=True)]


def quantities(result: IntervalResult) -> list[float]:
    return [round(i.quantity, 9) for i in result.intervals]


def estimates(result: IntervalResult) -> list[float]:
    return [round(i.estimated, 9) for i in result.intervals]


def total(result: IntervalResult) -> float:
    return sum(i.quantity for i in result.intervals)


def total_estimated(result: IntervalResult) -> float:
    return sum(i.estimated for i in result.intervals)


def by_start(result: IntervalResult) -> dict[int, IntervalEnergy]:
    return {i.start: i for i in result.intervals}


# -- 1. missing readings --------------------------------------------------------------------


def test_twelve_missing_zero_readings_keep_the_true_total() -> None:
    """Domain review finding 13: 52 readings advancing 10 per interval, twelve of them
    ``missing`` with value 0."""
    samples = [
        Sample(i * Q, 0.0, flagged=True, missing=True) if 20 <= i < 32 else Sample(i * Q, 10 * i)
        for i in range(52)
    ]
    result = counter_intervals(samples, interval_s=Q)
    assert total(result) == pytest.approx(510)
    assert total_estimated(result) == pytest.approx(130)  # the 13 intervals 19..31 bridged
    assert estimates(result)[19:32] == [10] * 13
    assert sum(estimates(result)[:19]) == 0 and sum(estimates(result)[32:]) == 0
    assert result.spikes == [] and result.resets == []


def test_missing_readings_do_not_count_as_readings() -> None:
    samples = [Sample(0, 0), Sample(Q, 0, missing=True), Sample(2 * Q, 20)]
    result = counter_intervals(samples, interval_s=Q)
    assert [(i.start, i.readings) for i in result.intervals] == [(0, 1), (Q, 0), (2 * Q, 1)]
    assert quantities(result) == [10, 10, 0]
    assert estimates(result) == [10, 10, 0]


def test_a_missing_reading_inside_a_short_span_marks_it_estimated() -> None:
    """Polled every minute: the bridged span (120 s) is no gap by length, but by the reading
    it lost."""
    samples = [Sample(0, 0), Sample(60, 999, missing=True), Sample(120, 2), Sample(180, 3)]
    result = counter_intervals(samples, interval_s=Q)
    assert quantities(result) == [3]
    assert estimates(result) == [2]
    assert result.intervals[0].readings == 3


def test_a_missing_reading_at_the_edges_changes_nothing() -> None:
    good = samples_at([0, 10, 20])
    edged = [Sample(-Q, 0, missing=True), *good, Sample(3 * Q, 0, missing=True)]
    assert counter_intervals(edged, interval_s=Q) == counter_intervals(good, interval_s=Q)


def test_a_missing_reading_never_shadows_a_good_one_at_the_same_time() -> None:
    samples = [Sample(0, 0), Sample(Q, 0, missing=True), Sample(Q, 10), Sample(2 * Q, 20)]
    result = counter_intervals(samples, interval_s=Q)
    assert quantities(result) == [10, 10, 0]
    assert estimates(result) == [0, 0, 0]


def test_only_missing_readings_give_nothing() -> None:
    samples = [Sample(i * Q, 5, missing=True) for i in range(4)]
    assert counter_intervals(samples, interval_s=Q).intervals == []
    assert interval_meter_intervals(samples, interval_s=Q).intervals == []


# -- 2. jitter ------------------------------------------------------------------------------


def test_three_seconds_of_jitter_on_900_s_is_no_gap() -> None:
    offsets = [0, 3, -3, 2, -1, 3, -3, 0, 3, -2, 1]
    times = [i * Q + o for i, o in enumerate(offsets)]
    result = counter_intervals(samples_at([10.0 * i for i in range(len(times))], times),
                               interval_s=Q)
    assert total(result) == pytest.approx(100)
    assert total_estimated(result) == 0


@pytest.mark.parametrize(
    ("span", "jitter", "estimated"),
    [
        (900, DEFAULT_JITTER, False),
        (906, DEFAULT_JITTER, False),
        (990, DEFAULT_JITTER, False),  # at the tolerance: still measured
        (991, DEFAULT_JITTER, True),
        (1000, DEFAULT_JITTER, True),
        (901, 0.0, True),
        (1000, 0.2, False),
    ],
)
def test_a_span_is_a_gap_only_beyond_the_jitter_tolerance(
    span: float, jitter: float, estimated: bool
) -> None:
    result = counter_intervals(samples_at([0, 30], [0, span]), interval_s=Q, jitter=jitter)
    assert total(result) == pytest.approx(30)
    assert total_estimated(result) == (pytest.approx(30) if estimated else 0)


def test_negative_jitter_is_refused() -> None:
    with pytest.raises(ValueError, match="jitter"):
        counter_intervals(samples_at([0, 1]), interval_s=Q, jitter=-0.1)


# -- 3. rollover modulus --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("largest", "step", "values", "expected"),
    [
        # a 0..99 999 999 register counting in steps of 1 shows 0 again at 100 000 000
        (99_999_999, 1, [99_999_990, 6], 16),
        (99_999_999, 1, [99_999_999, 0], 1),
        # a 0..9 999 999.9 register in steps of 0.1
        (9_999_999.9, 0.1, [9_999_999.5, 0.3], 0.8),
        # a raw uint32 register
        (2**32 - 1, 1, [2**32 - 6, 5], 11),
        # a uint32 register in steps of 0.01 kWh: (2**32 - 1) × 0.01
        (42_949_672.95, 0.01, [42_949_672.90, 0.05], 0.11),
    ],
)
def test_rollover_wraps_at_the_declared_maximum_plus_one_step(
    largest: float, step: float, values: list[float], expected: float
) -> None:
    result = counter_intervals(samples_at(values), interval_s=Q, modulus=largest + step)
    assert result.rollovers == 1
    assert total(result) == pytest.approx(expected, abs=1e-6)
    assert total_estimated(result) == 0


@pytest.mark.parametrize("model", ["acrel_adl400", "generic_flow_totaliser"])
def test_rollover_of_a_uint32_width_map_counter(model: str) -> None:
    found = counter_rollover(model)
    assert found is not None
    largest, step = found
    # three steps up to 0 and three more after the wrap, then one step
    values = [largest - 2 * step, 3 * step, 4 * step]
    result = counter_intervals(samples_at(values), interval_s=Q, modulus=largest + step)
    assert result.rollovers == 1
    assert quantities(result)[:2] == pytest.approx([6 * step, step], abs=1e-6)


# -- 4. undeclared resets and re-bases ------------------------------------------------------

STEADY = [1000.0 + 10 * i for i in range(20)]  # 19 pairs advancing 10 per 900 s


@pytest.mark.parametrize(
    ("after", "reset_delta"),
    [
        # reset to zero: the new register counted 3, the rate says 10: 10, estimated
        ([3, 13, 23], 10),
        # the new register counted more than the rate says: b
        ([400, 410], 400),
        # backward step that is no reset (b > a / 2): re-based, the rate's 10, estimated
        ([800, 810, 820], 10),
    ],
)
def test_an_undeclared_reset_estimates_the_lost_part_from_the_rate(
    after: list[float], reset_delta: float
) -> None:
    result = counter_intervals(samples_at(STEADY + after), interval_s=Q)
    q, e = quantities(result), estimates(result)
    assert q[:19] == pytest.approx([10] * 19)
    assert q[19] == pytest.approx(reset_delta) and e[19] == pytest.approx(reset_delta)
    assert q[20:-1] == pytest.approx([10] * (len(after) - 1))
    assert sum(e) == pytest.approx(reset_delta)
    assert [s.value for s in result.resets] == [after[0]]


def test_a_rebase_after_a_gap_estimates_the_whole_gap() -> None:
    times = [i * Q for i in range(20)] + [23 * Q, 24 * Q]
    result = counter_intervals(samples_at(STEADY + [800, 810], times), interval_s=Q)
    assert quantities(result)[19:23] == pytest.approx([10] * 4)
    assert estimates(result)[19:23] == pytest.approx([10] * 4)


def test_an_implausible_jump_that_stays_is_a_rebase_counting_the_rate() -> None:
    after = [1_000_000.0 + 10 * i for i in range(12)]
    result = counter_intervals(samples_at(STEADY + after), interval_s=Q)
    assert quantities(result)[19] == pytest.approx(10)
    assert estimates(result)[19] == pytest.approx(10)
    assert total(result) == pytest.approx(10 * (len(STEADY) + len(after) - 1))


@pytest.mark.parametrize(("after", "delta"), [([3, 13], 3), ([4000, 4010], 0)])
def test_without_a_typical_rate_a_reset_counts_b_and_a_rebase_zero(
    after: list[float], delta: float
) -> None:
    result = counter_intervals(samples_at([5000, 5010, *after]), interval_s=Q)
    assert quantities(result)[1] == delta
    assert estimates(result)[1] == delta
    assert len(result.resets) == 1


# -- 5. multiplier history ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "ts", "expected"),
    [
        (((0.0, 40.0),), -1e9, 40),  # the first step applies before it too
        (((0.0, 40.0), (100.0, 60.0)), 99.9, 40),
        (((0.0, 40.0), (100.0, 60.0)), 100.0, 60),  # in force from valid_from on
        (((0.0, 40.0), (100.0, 60.0), (200.0, 80.0)), 150, 60),
        (((0.0, 40.0), (100.0, 60.0), (200.0, 80.0)), 1e9, 80),
        (25.0, 123.0, 25),
    ],
)
def test_multiplier_at(
    steps: float | tuple[tuple[float, float], ...], ts: float, expected: float
) -> None:
    assert multiplier_at(steps, ts) == expected


@pytest.mark.parametrize("steps", [(), ((100.0, 2.0), (0.0, 1.0))])
def test_a_bad_multiplier_history_is_refused(steps: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="multiplier"):
        counter_intervals(samples_at([0, 10]), interval_s=Q, multiplier=steps)
    with pytest.raises(ValueError, match="multiplier"):
        multiplier_at(steps, 0)


@pytest.mark.parametrize(
    ("steps", "expected", "estimated"),
    [
        # CT changed from 1 to 2 at the reading at 2Q: each span uses the ratio at its start
        (((0.0, 1.0), (2.0 * Q, 2.0)), [10, 10, 20, 0], [0, 0, 0, 0]),
        # ... changed halfway through the second span: ratio at its start, estimated
        (((0.0, 1.0), (1.5 * Q, 2.0)), [10, 10, 20, 0], [0, 10, 0, 0]),
        # a history whose first step starts later applies it to the earlier readings too
        (((5.0 * Q, 3.0), (10.0 * Q, 4.0)), [30, 30, 30, 0], [0, 0, 0, 0]),
    ],
)
def test_counter_multiplier_history(
    steps: tuple[tuple[float, float], ...], expected: list[float], estimated: list[float]
) -> None:
    result = counter_intervals(samples_at([0, 10, 20, 30]), interval_s=Q, multiplier=steps)
    assert quantities(result) == expected
    assert estimates(result) == estimated


def test_multiplier_step_inside_a_gap_is_estimated_at_the_old_ratio() -> None:
    steps = ((0.0, 1.0), (2.5 * Q, 2.0))
    result = counter_intervals(samples_at([0, 40], [0, 4 * Q]), interval_s=Q,
                               multiplier=steps)
    assert quantities(result) == [10, 10, 10, 10, 0]
    assert estimates(result) == [10, 10, 10, 10, 0]


@pytest.mark.parametrize(
    ("steps", "expected", "estimated"),
    [
        # the interval [Q, 2Q) reported at 2Q was measured under the old ratio; from 2Q on the
        # new one applies
        (((0.0, 1.0), (2.0 * Q, 2.0)), [5, 5, 10, 10], [0, 0, 0, 0]),
        # the ratio changed inside [Q, 2Q): old ratio, estimated
        (((0.0, 1.0), (1.5 * Q, 2.0)), [5, 5, 10, 10], [0, 5, 0, 0]),
        (60.0, [300, 300, 300, 300], [0, 0, 0, 0]),
    ],
)
def test_interval_meter_multiplier_history(
    steps: float | tuple[tuple[float, float], ...], expected: list[float],
    estimated: list[float],
) -> None:
    samples = samples_at([5, 5, 5, 5], [Q, 2 * Q, 3 * Q, 4 * Q])
    result = interval_meter_intervals(samples, interval_s=Q, multiplier=steps)
    assert quantities(result) == expected
    assert estimates(result) == estimated


# -- 6. interval meters ---------------------------------------------------------------------


def test_nine_of_ten_intervals_gives_nine_received_and_one_filled() -> None:
    """Domain review finding 14: a missing interval is not 0."""
    samples = [Sample(k * Q, 10) for k in range(1, 11) if k != 5]
    result = interval_meter_intervals(samples, interval_s=Q)
    assert [i.start for i in result.intervals] == [k * Q for k in range(10)]
    filled = by_start(result)[4 * Q]
    assert (filled.quantity, filled.estimated, filled.readings, filled.covered) == (10, 10, 0, 0)
    received = [i for i in result.intervals if i.start != 4 * Q]
    assert all((i.quantity, i.estimated, i.readings, i.covered) == (10, 0, 1, Q)
               for i in received)
    assert total(result) == 100 and total_estimated(result) == 10


def test_a_missing_quality_interval_is_filled_not_zero() -> None:
    samples = [Sample(Q, 8), Sample(2 * Q, 0, flagged=True, missing=True), Sample(3 * Q, 12)]
    result = interval_meter_intervals(samples, interval_s=Q)
    assert [(i.start, i.quantity, i.estimated, i.readings) for i in result.intervals] == [
        (0, 8, 0, 1), (Q, 10, 10, 0), (2 * Q, 12, 0, 1)]


@pytest.mark.parametrize(
    ("absent", "max_fill", "rows"),
    [(1, 4, 1), (4, 4, 4), (5, 4, 0), (2, 1, 0), (1, 0, 0), (6, 6, 6)],
)
def test_gaps_up_to_max_fill_are_filled_longer_ones_left_absent(
    absent: int, max_fill: int, rows: int
) -> None:
    samples = [Sample(Q, 6), Sample((absent + 2) * Q, 2)]
    result = interval_meter_intervals(samples, interval_s=Q, max_fill=max_fill)
    assert len(result.intervals) == 2 + rows
    filled = [i for i in result.intervals if i.readings == 0]
    assert len(filled) == rows
    assert all((i.quantity, i.estimated, i.covered) == (4, 4, 0) for i in filled)


def test_a_long_gap_gives_no_rows() -> None:
    samples = [Sample(Q, 10), Sample(2 * Q, 10), Sample(20 * Q, 10)]
    result = interval_meter_intervals(samples, interval_s=Q)
    assert [i.start for i in result.intervals] == [0, Q, 19 * Q]
    assert total_estimated(result) == 0


def test_filled_intervals_use_the_multiplied_neighbours() -> None:
    steps = ((0.0, 1.0), (2.0 * Q, 3.0))
    samples = [Sample(Q, 10), Sample(4 * Q, 10)]
    result = interval_meter_intervals(samples, interval_s=Q, multiplier=steps)
    assert quantities(result) == [10, 20, 20, 30]
    assert estimates(result) == [0, 20, 20, 0]


def test_negative_max_fill_is_refused() -> None:
    with pytest.raises(ValueError, match="max_fill"):
        interval_meter_intervals([Sample(Q, 1)], interval_s=Q, max_fill=-1)


# -- properties -----------------------------------------------------------------------------


@st.composite
def with_missing(draw: st.DrawFn) -> tuple[list[Sample], list[Sample]]:
    """Any readings (not necessarily monotone, unaligned, duplicated timestamps) and the
    same readings, in the same order, with ``missing`` ones interleaved anywhere, with any
    values and timestamps."""
    n = draw(st.integers(min_value=0, max_value=40))
    values = draw(st.lists(st.floats(-1e4, 1e6, allow_nan=False), min_size=n, max_size=n))
    times = draw(st.lists(st.integers(0, 40 * Q), min_size=n, max_size=n))
    good = [Sample(t, v, flagged=draw(st.booleans())) for t, v in zip(times, values, strict=True)]
    lost = draw(st.lists(st.tuples(st.integers(-Q, 41 * Q), st.floats(-1e9, 1e9)), max_size=20))
    bad = [Sample(t, v, flagged=True, missing=True) for t, v in lost]
    mixed = list(good)
    for sample in bad:
        mixed.insert(draw(st.integers(0, len(mixed))), sample)
    return good, mixed


def _without_estimates(result: IntervalResult) -> list[tuple[int, float, int, float]]:
    return [(i.start, i.quantity, i.readings, i.covered) for i in result.intervals]


@settings(max_examples=EXAMPLES, deadline=None)
@given(with_missing(), st.sampled_from([None, 1e6]))
def test_dropping_missing_samples_equals_never_having_had_them(
    history: tuple[list[Sample], list[Sample]], modulus: float | None
) -> None:
    good, mixed = history
    clean = counter_intervals(good, interval_s=Q, modulus=modulus)
    dirty = counter_intervals(mixed, interval_s=Q, modulus=modulus)
    assert _without_estimates(dirty) == _without_estimates(clean)
    assert (dirty.spikes, dirty.resets, dirty.rollovers) == (
        clean.spikes, clean.resets, clean.rollovers)
    for d, c in zip(dirty.intervals, clean.intervals, strict=True):
        assert c.estimated - 1e-9 <= d.estimated <= d.quantity + 1e-9
    # interval meters: a missing reading carries no quantity, whatever its value
    assert interval_meter_intervals(mixed, interval_s=Q) == interval_meter_intervals(
        good, interval_s=Q)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=40), min_size=2, max_size=80), st.data())
def test_missing_samples_never_change_a_monotone_total_beyond_the_estimate(
    usage: list[float], data: st.DataObject
) -> None:
    """Readings replaced by ``missing`` ones (any value) anywhere but at the ends: the total
    stays the true advance and the estimated part is the advance over the bridged spans."""
    values = [0.0]
    for use in usage:
        values.append(values[-1] + use)
    lost = [False] + [data.draw(st.booleans()) for _ in usage[1:]] + [False]
    junk = st.floats(-1e9, 1e9, allow_nan=False)
    samples = [Sample(i * Q, data.draw(junk), missing=True) if gone else Sample(i * Q, v)
               for i, (v, gone) in enumerate(zip(values, lost, strict=True))]
    result = counter_intervals(samples, interval_s=Q)
    assert total(result) == pytest.approx(values[-1])
    bridged = sum(use for i, use in enumerate(usage) if lost[i] or lost[i + 1])
    assert total_estimated(result) == pytest.approx(bridged, abs=1e-6)
    assert sum(i.readings for i in result.intervals) == lost.count(False)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=1, max_value=40),
                          st.floats(min_value=-0.04 * Q, max_value=0.04 * Q)),
                min_size=2, max_size=80))
def test_jitter_within_the_tolerance_is_never_estimated(
    readings: list[tuple[float, float]]
) -> None:
    values, times = [0.0], [0.0]
    for i, (use, jitter) in enumerate(readings, start=1):
        values.append(values[-1] + use)
        times.append(i * Q + jitter)
    result = counter_intervals(samples_at(values, times), interval_s=Q)
    assert total(result) == pytest.approx(values[-1])
    assert total_estimated(result) == 0


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(st.integers(1, 60), st.floats(min_value=0, max_value=1e4), max_size=40),
       st.integers(0, 6))
def test_interval_meter_fills_only_short_gaps(received: dict[int, float], max_fill: int) -> None:
    samples = [Sample(k * Q, v) for k, v in received.items()]
    result = interval_meter_intervals(samples, interval_s=Q, max_fill=max_fill)
    rows = by_start(result)
    keys = sorted(received)
    for k in keys:
        row = rows[(k - 1) * Q]
        assert (row.quantity, row.estimated, row.readings, row.covered) == (
            received[k], 0, 1, Q)
    expected_filled = {}
    for before, after in zip(keys, keys[1:], strict=False):
        if after - before - 1 <= max_fill:
            for k in range(before + 1, after):
                expected_filled[(k - 1) * Q] = (received[before] + received[after]) / 2
    filled = {s: r for s, r in rows.items() if r.readings == 0}
    assert set(filled) == set(expected_filled)
    for start, row in filled.items():
        assert row.quantity == pytest.approx(expected_filled[start])
        assert (row.estimated, row.covered) == (row.quantity, 0)


# -- the store's modulus: declared maximum plus one register step ------------------------------

@pytest.mark.parametrize(("rollover_max", "step", "modulus"), [
    ("99999999", None, 100_000_000.0),           # the last digit as written: a step of 1
    ("9999999999.9", None, 10_000_000_000.0),    # a step of 0.1
    ("42949672.95", "0.01", 42_949_673.0),       # uint32 x 0.01 from a register map
    ("1E+8", None, 100_000_001.0),               # written as a power of ten: step 1
    (None, None, None),
])
def test_store_modulus(rollover_max: str | None, step: str | None,
                       modulus: float | None) -> None:
    from decimal import Decimal

    from accounting.store import MeterRow

    row = MeterRow(1, "p", "360000", "m", "electricity", "counter", "kWh", 1.0,
                   None if rollover_max is None else Decimal(rollover_max), 900,
                   None if step is None else Decimal(step))
    assert row.modulus == (None if modulus is None else pytest.approx(modulus))


def test_a_value_above_the_modulus_is_never_a_negative_rollover() -> None:
    # a register reading above its declared modulus (a misdeclared width) then a low value:
    # M - a + b = 1 000 000 - 1 000 005 + 3 < 0 would be a negative delta; it is a reset
    result = counter_intervals(samples_at([1_000_000.0, 1_000_005.0, 3.0]), interval_s=Q,
                               modulus=1_000_000.0)
    assert result.rollovers == 0 and len(result.resets) == 1
    assert all(i.quantity >= 0 and i.estimated <= i.quantity + 1e-9 for i in result.intervals)
