"""The plant model: pure, deterministic, consistent (counters = sums, energy = output × intensity
+ base load), schedules in local time, value faults as declared."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from benchmarks.catalogue import CatalogueEntry
from benchmarks.evaluate import Status, evaluate
from fleet import IntensityLevel, RelativeIntensity
from simulators.model import STEP_S, FleetModel, SimulationError, relative_intensity
from simulators.truth import compute_truth, summarise
from tests.sim_support import NOON, example_data, example_model, fleet, model

SHANGHAI = ZoneInfo("Asia/Shanghai")
K_NOON = int(NOON.timestamp() // STEP_S)


def test_model_is_pure_and_order_independent() -> None:
    a, b = FleetModel(fleet()), FleetModel(fleet())
    t_late, t_early = NOON.timestamp() + 3 * 86400 + 123.4, NOON.timestamp() - 40 * 86400 + 7.7
    for mm in a.meters():
        late = mm.reading(t_late)                    # a: late first, then early
        early = mm.reading(t_early)
        other = b.meter(mm.plant_id, mm.id)
        assert other.reading(t_early) == early       # b: early first, then late
        assert other.reading(t_late) == late
    assert not np.array_equal(
        FleetModel(fleet(), seed=99).meter("jx-yujiang-cement", "k1-coal").quantities(
            K_NOON, K_NOON + 96),
        a.meter("jx-yujiang-cement", "k1-coal").quantities(K_NOON, K_NOON + 96))


def test_counters_are_the_sum_of_interval_quantities() -> None:
    m = example_model()
    k0, k1 = K_NOON - 96 * 20, K_NOON
    for mm in m.meters():
        if mm.meter.kind.value not in ("counter", "production"):
            continue
        q = mm.quantities(k0, k1)
        assert np.all(q >= 0)
        # primary quantity = counter delta x multiplier, interval by interval
        cums = mm.cums(k0, k1)
        assert np.allclose(np.diff(cums), q, rtol=1e-9, atol=1e-9)
        delta = mm.cum_t(k1 * STEP_S) - mm.cum_t(k0 * STEP_S)
        assert math.isclose(delta, q.sum(), rel_tol=1e-9)
        # linear inside an interval
        k = K_NOON - 5
        mid = mm.cum_t((k + 0.5) * STEP_S)
        assert math.isclose(mid, (mm.cum_t(k * STEP_S) + mm.cum_t((k + 1) * STEP_S)) / 2,
                            rel_tol=1e-12)


def test_readings_wrap_and_equal_counter_deltas_where_no_fault_applies() -> None:
    m = example_model()
    k0, k1 = K_NOON - 96 * 10, K_NOON
    truth = compute_truth(m, k0, k1)
    for (plant, meter), mt in truth.meters.items():
        mm = m.meter(plant, meter)
        if mm.meter.kind.value not in ("counter", "production"):
            continue
        prev = mm.reading(k0 * STEP_S)
        for i in range(truth.n):
            cur = mt.reading[i]
            if not mt.notes[i] and not (i and mt.notes[i - 1]):
                delta = cur - prev
                if mm.modulus is not None and delta < 0:
                    delta += mm.modulus
                assert math.isclose(delta * mm.multiplier, mt.quantity[i], rel_tol=1e-6,
                                    abs_tol=1e-6), (meter, i)
            prev = cur


def test_energy_balance_output_times_intensity_plus_base_load() -> None:
    m = example_model()
    k0, k1 = K_NOON - 96 * 7, K_NOON
    truth = compute_truth(m, k0, k1)
    for (plant, _unit), ut in truth.units.items():
        um = ut.model
        assert np.allclose(ut.net_kgce, ut.expected_net_kgce, rtol=1e-9, atol=1e-6)
        consumed = ut.output * um.gross_kgce + um.base_kgce_h * 0.25
        assert np.allclose(ut.consumed_kgce, consumed, rtol=1e-9, atol=1e-6)
        # the energy mix: each consumed meter carries its share of the unit's kgce
        for meter_id, share in um.mix.items():
            kg = truth.meters[plant, meter_id].kgce
            assert np.allclose(kg, share * ut.consumed_kgce, rtol=1e-9, atol=1e-6)
        # native units: kgce / GB/T 2589 coefficient
        for meter_id in um.mix:
            mt = truth.meters[plant, meter_id]
            coef = float(m.factors.to_kgce(m.meter(plant, meter_id).meter.energy_type, 1,
                                           mt.eng_unit))
            assert np.allclose(mt.quantity * coef, mt.kgce)
    # plant totals include plant-level meters (waste-heat power export of the cement plant)
    cement = truth.plants["jx-yujiang-cement"]
    whr = truth.meters["jx-yujiang-cement", "whr-export"]
    units_net = sum(truth.units["jx-yujiang-cement", u].net_kgce for u in ("kiln-1", "kiln-2"))
    assert np.allclose(cement.net_kgce, units_net - whr.kgce)
    output = truth.units["jx-yujiang-cement", "kiln-1"].output + truth.units[
        "jx-yujiang-cement", "kiln-2"].output
    assert np.allclose(whr.quantity, 28 * output)


def test_converter_recovers_more_than_it_consumes() -> None:
    m = example_model()
    truth = compute_truth(m, K_NOON - 96 * 7, K_NOON)
    bof = truth.units["gx-liuzhou-steel", "bof-1"]
    assert bof.exported_kgce.sum() > bof.consumed_kgce.sum() > 0
    assert bof.net_kgce.sum() / bof.output.sum() < -10


def test_example_units_land_in_their_declared_levels() -> None:
    truth = compute_truth(example_model(), K_NOON - 96 * 28, K_NOON)
    summary = summarise(truth)
    assert len(summary) == 9
    for s in summary:
        assert s.status == s.declared, s
    assert {s.status for s in summary} == {"at_benchmark", "below_benchmark", "below_baseline"}


def test_schedules_follow_local_time() -> None:
    m = example_model()
    day = datetime(2026, 11, 16, tzinfo=SHANGHAI)          # a Monday, local midnight
    k0 = int(day.timestamp() // STEP_S)
    eaf = m.plant("gx-liuzhou-steel").units["eaf-1"].output.values(k0, k0 + 96)
    hours = np.arange(96) / 4
    off = (hours >= 14) & (hours < 22)                     # EAF runs 22:00-14:00 local
    assert np.all(eaf[off] == 0) and np.all(eaf[~off & (hours >= 2)] > 0)
    sunday = datetime(2026, 11, 15, tzinfo=SHANGHAI)
    ks = int(sunday.timestamp() // STEP_S)
    copper = m.meter("jx-yujiang-copper", "main-gas")
    assert np.all(copper.quantities(ks, ks + 96) == 0)      # days off: Sunday
    monday = copper.quantities(k0, k0 + 96)
    assert np.all(monday[hours < 8] == 0) and np.all(monday[(hours >= 10) & (hours < 24)] > 0)
    # ramp-up after 08:00 start: 2 h linear
    assert 0 < monday[32] < monday[36] and monday[31] == 0


def test_maintenance_stops_output_and_ramps_up_after() -> None:
    m = example_model()
    unit = m.plant("jx-yujiang-cement").units["kiln-1"]
    sim = unit.unit.simulation
    window = sim.schedule.maintenance[0]                       # every 30 d for 36 h, offset 10 d
    start = m.epoch_s + window.offset + 20 * window.every
    k0 = int(start // STEP_S)
    n = int((window.duration + 24 * 3600) // STEP_S)
    out = unit.output.values(k0, k0 + n)
    stop_n = int(window.duration // STEP_S)
    assert np.all(out[:stop_n] == 0)
    after = out[stop_n:]
    full = unit.rate_h * 0.25 * sim.utilisation
    assert after[0] < 0.05 * full                              # ramp 12 h
    assert after[4 * 6] == pytest.approx(0.5 * full, rel=0.2)
    assert after[4 * 13] == pytest.approx(full, rel=0.2)


def test_vectorised_readings_equal_point_readings_with_faults() -> None:
    m = example_model()
    k0 = K_NOON - 96 * 8
    for mm in m.meters():
        vec = mm.readings(k0, K_NOON)
        for i in range(0, K_NOON - k0, 7):
            assert vec[i] == mm.reading((k0 + i) * STEP_S), mm.id      # to the bit


def test_rollover_fault_wraps_at_the_declared_instant() -> None:
    m = example_model()
    gas = m.meter("jx-shangyou-glass", "f1-gas")
    at = datetime(2026, 11, 25, 10, 0, tzinfo=SHANGHAI).timestamp()
    assert gas.modulus == pytest.approx(429496729.6)
    before, after = gas.reading(at - 60), gas.reading(at + 60)
    assert before > gas.modulus - 1000 and after < 1000
    assert (after - before + gas.modulus) * gas.multiplier == pytest.approx(
        gas.cum_t(at + 60) - gas.cum_t(at - 60), rel=1e-6)


def test_reset_stuck_and_spike_faults() -> None:
    m = example_model()
    steam = m.meter("cq-jiangjin-chem", "ca1-steam")
    at = datetime(2026, 10, 15, 9, 30, tzinfo=SHANGHAI).timestamp()
    assert steam.reading(at - 1) > 1000
    assert steam.reading(at) == 0
    assert steam.reading(at + 900) == pytest.approx(steam.cum_t(at + 900) - steam.cum_t(at))

    elec = m.meter("cq-jiangjin-chem", "am1-elec")           # stuck every 3 d for 2 h, +5 h
    fault = elec.stuck[0]
    opens = m.epoch_s + fault.offset + 100 * fault.every
    frozen = elec.reading(opens)
    assert elec.reading(opens + 3600) == frozen == elec.reading(opens + 7199)
    assert elec.reading(opens + 7200 + 900) > frozen

    bf = m.meter("gx-liuzhou-steel", "bf1-elec")              # spike every 7 d for 15 min, +1 d
    spike = bf.spikes[0]
    t = m.epoch_s + spike.offset + 50 * spike.every + 60
    clean = bf.wrap(bf.unwrapped(t))
    assert bf.reading(t) == pytest.approx(clean * 1000)
    assert bf.reading(t + 900) == pytest.approx(bf.wrap(bf.unwrapped(t + 900)))


def test_rollover_of_a_declared_width_without_a_fault() -> None:
    data = example_data()
    for meter in data["plants"][0]["meters"]:
        if meter["id"] == "k1-elec":
            meter["rollover_max"] = 99999
            meter["simulation"] = {"initial": 99000}
    m = model(data, plants=["jx-yujiang-cement"])
    mm = m.meter("jx-yujiang-cement", "k1-elec")
    values = mm.readings(K_NOON - 96, K_NOON)
    assert values.max() < 99999 and np.any(np.diff(values) < 0)     # it wrapped, more than once


def test_readings_before_the_epoch_are_refused() -> None:
    m = example_model()
    with pytest.raises(SimulationError, match="before the simulation epoch"):
        m.meter("jx-yujiang-cement", "k1-elec").reading(
            (datetime(2025, 1, 1, tzinfo=SHANGHAI) - timedelta(hours=1)).timestamp())


def _entry(benchmark: str, baseline: str, lower: bool = True) -> CatalogueEntry:
    return CatalogueEntry("x/y", 2021, "x", "x", "x", "m", "kgce/t", Decimal(benchmark),
                          Decimal(baseline), lower_is_better=lower)


@pytest.mark.parametrize("lower", [True, False])
@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_relative_intensity_lands_strictly_inside_its_band(lower: bool, where: float) -> None:
    entry = _entry("100", "117") if lower else _entry("80", "60", lower=False)
    for level in IntensityLevel:
        value = relative_intensity(entry, RelativeIntensity(level=level, where=where))
        assert evaluate(entry, Decimal(repr(value)), 1).status is Status(level.value)


def test_negative_levels_of_the_converter() -> None:
    entry = _entry("-30", "-10")
    at = relative_intensity(entry, RelativeIntensity(level=IntensityLevel.AT_BENCHMARK,
                                                     where=0.6))
    assert -50 < at < -30
