"""Counter arithmetic: hand-worked tables and hypothesis properties."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accounting.intervals import (
    Replacement,
    Sample,
    counter_intervals,
    interval_meter_intervals,
)

Q = 900  # 15 minutes


def run(values, *, modulus=None, multiplier=1.0, replacements=(), times=None):
    times = times or [i * Q for i in range(len(values))]
    samples = [Sample(t, v) for t, v in zip(times, values, strict=True)]
    return counter_intervals(samples, interval_s=Q, modulus=modulus, multiplier=multiplier,
                             replacements=replacements)


def quantities(result):
    return [round(i.quantity, 9) for i in result.intervals]


@pytest.mark.parametrize(
    ("values", "kwargs", "expected", "estimated"),
    [
        # plain advance, multiplier = CT x PT = 60
        ([100, 110, 125], {"multiplier": 60}, [600, 900, 0], [0, 0, 0]),
        # rollover of a 0..99 999 999 register (modulus 100 000 000)
        ([99_999_990, 5, 25], {"modulus": 100_000_000}, [15, 20, 0], [0, 0, 0]),
        # reset to zero: the new register counts from 0, the step is estimated
        ([5000, 5010, 7, 17], {}, [10, 7, 10, 0], [0, 7, 0, 0]),
        # backward step that is no reset (re-based register): 0, estimated, no negative
        ([5000, 5010, 4000, 4012], {}, [10, 0, 12, 0], [0, 0, 0, 0]),
        # declared replacement: old register ended at 5015, new one started at 3
        ([5000, 5010, 7, 17], {"replacements": [Replacement(2 * Q - 1, 5015, 3)]},
         [10, 9, 10, 0], [0, 0, 0, 0]),
        # upward spike set aside: 100, 110, 9999 (spike), 130 -> 10, 20 (over two intervals)
        ([100, 110, 9999, 130, 140], {}, [10, 10, 10, 10, 0], [0, 10, 10, 0, 0]),
    ],
)
def test_counter_tables(values, kwargs, expected, estimated) -> None:
    result = run(values, **kwargs)
    assert quantities(result) == expected
    assert [round(i.estimated, 9) for i in result.intervals] == estimated


def test_gap_is_apportioned_and_estimated() -> None:
    # readings at 00:00 and 01:00 only: 40 units over four 15-minute intervals
    result = run([0, 40], times=[0, 4 * Q])
    assert quantities(result) == [10, 10, 10, 10, 0]
    assert all(i.estimated_share == 1 for i in result.intervals[:4])
    assert result.intervals[0].readings == 1 and result.intervals[1].readings == 0


def test_unaligned_readings_split_by_time() -> None:
    # 00:10 -> 00:20 advances 30: 15 in [00:00, 00:15) (5 min) ... by time share
    result = run([0, 30], times=[600, 1200])
    assert quantities(result) == [15, 15]
    assert result.intervals[0].estimated == 0  # span <= one interval: measured


def test_quality_flag_marks_estimated() -> None:
    samples = [Sample(0, 0), Sample(Q, 10, flagged=True), Sample(2 * Q, 20)]
    result = counter_intervals(samples, interval_s=Q)
    assert [i.estimated for i in result.intervals] == [10, 10, 0]


def test_interval_meter_places_value_in_interval_ending_at_ts() -> None:
    result = interval_meter_intervals([Sample(Q, 5), Sample(2 * Q, 7)], interval_s=Q,
                                      multiplier=2)
    assert [(i.start, i.quantity) for i in result.intervals] == [(0, 10), (Q, 14)]


# -- properties -------------------------------------------------------------------------------
@st.composite
def counter_histories(draw):
    """True consumption per interval, and the readings a real register would show, with
    rollovers, resets to zero (declared or not) and gaps; also the number of undeclared
    resets."""
    modulus = draw(st.sampled_from([None, 10_000.0, 65_536.0, 1e8]))
    n = draw(st.integers(min_value=2, max_value=120))
    # at most 40 per interval: no span between kept readings advances half a modulus
    usage = draw(st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), min_size=n,
                          max_size=n))
    start = draw(st.floats(min_value=0, max_value=(modulus or 1e9) - 1))
    register = start
    times, values = [0.0], [register]
    true_total = 0.0
    replacements = []
    must_keep = set()
    keep_prob = draw(st.sampled_from([1.0, 0.7]))
    for i, use in enumerate(usage, start=1):
        register += use
        true_total += use
        if modulus is not None and register >= modulus:
            register -= modulus
        times.append(i * Q)
        values.append(register)
        reset = draw(st.integers(0, 30)) == 0
        if reset and i < n and register > 5_000:  # far from zero: unambiguous
            # an undeclared reset in the upper half of the range is indistinguishable from a
            # rollover (documented rule 3): only declared resets happen there
            declared = draw(st.booleans()) or (modulus is not None and register > modulus / 4)
            if declared:
                replacements.append(Replacement(i * Q + 1, register, 0.0))
            else:
                # the old register counted nothing after the last reading before the reset:
                # that reading must exist, so the true delta of the span is the new
                # register's count (rule 5 estimates the lost part from the typical rate)
                must_keep.add(i)
            register = 0.0  # the new register starts right after this reading
    # gaps: drop interior readings (never the first or last)
    keep = [True] + [draw(st.floats(0, 1)) < keep_prob or i in must_keep
                     for i in range(1, n)] + [True]
    samples = [Sample(t, v) for t, v, k in zip(times, values, keep, strict=True) if k]
    return samples, modulus, replacements, true_total, len(must_keep)


@settings(max_examples=int(os.environ.get("ENERGYMON_HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(counter_histories())
def test_counter_energy_is_non_negative_and_sums_to_truth(history) -> None:
    samples, modulus, replacements, true_total, undeclared = history
    result = counter_intervals(samples, interval_s=Q, modulus=modulus,
                               replacements=replacements)
    assert all(i.quantity >= 0 for i in result.intervals)
    assert all(0 <= i.estimated <= i.quantity + 1e-9 for i in result.intervals)
    total = sum(i.quantity for i in result.intervals)
    estimated = sum(i.estimated for i in result.intervals)
    if not undeclared:
        assert total == pytest.approx(true_total, rel=1e-9, abs=1e-6)
    else:
        # an undeclared reset estimates what the old register counted after the last
        # reading from the typical rate: never less than the truth, and the excess is
        # estimated (rule 5)
        assert true_total - 1e-6 <= total <= true_total + estimated + 1e-6
    # no single interval can exceed what the register could advance in the whole history
    # (plus what was estimated)
    assert (max((i.quantity for i in result.intervals), default=0)
            <= true_total + estimated + 1e-6)


@settings(max_examples=int(os.environ.get("ENERGYMON_HYPOTHESIS_EXAMPLES", "200")), deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100), min_size=3, max_size=50),
       st.integers(min_value=1, max_value=48), st.floats(min_value=1e3, max_value=1e7))
def test_a_single_spike_never_inflates_the_total(usage, where, height) -> None:
    register, values = 1000.0, [1000.0]
    for use in usage:
        register += use
        values.append(register)
    where = min(where, len(values) - 2)
    spiked = list(values)
    spiked[where] = values[where] + height
    result = run(spiked)
    assert sum(i.quantity for i in result.intervals) == pytest.approx(values[-1] - values[0])


@settings(max_examples=int(os.environ.get("ENERGYMON_HYPOTHESIS_EXAMPLES", "200")),
          deadline=None)
@given(st.lists(st.floats(min_value=1, max_value=100), min_size=20, max_size=80),
       st.integers(min_value=1, max_value=60), st.integers(min_value=2, max_value=4),
       st.floats(min_value=100, max_value=1e4), st.booleans())
def test_a_run_of_spikes_never_inflates_the_total(usage, where, length, factor, up) -> None:
    """A fault that multiplies (or divides) the register for several readings in a row."""
    register, values = 1_000_000.0, [1_000_000.0]
    for use in usage:
        register += use
        values.append(register)
    where = min(where, len(values) - length - 1)
    spiked = list(values)
    for i in range(where, where + length):
        spiked[i] = values[i] * factor if up else values[i] / factor
    result = run(spiked)
    total = sum(i.quantity for i in result.intervals)
    assert total == pytest.approx(values[-1] - values[0])
    assert all(i.quantity >= 0 for i in result.intervals)
