"""The plant model: a pure, deterministic function of (fleet, seed, time).

Time runs on a grid of 15-minute intervals aligned to the Unix epoch (interval ``k`` covers
``[k·900, (k+1)·900)`` seconds UTC; in Asia/Shanghai these are local quarter hours). For every
simulated production unit and interval the model computes

- the **output** ``O(k) = rate × 0.25 h × utilisation × running × ramp × noise`` where
  ``running`` follows the unit's schedule in the plant's local time (shifts, days off,
  maintenance stops), ``ramp`` rises linearly after every start and ``noise`` is a hash of
  (seed, unit, k);
- the **energy** ``consumed(k) = G × O(k) + B × 0.25 h`` in kgce, with ``G`` the gross
  consumption per unit of output (true intensity + exports) and ``B`` the base load, split over
  the unit's meters by the energy mix; exported meters carry ``E × O(k)``; so
  ``net = consumed − exported = intensity × O(k) + B × 0.25 h``;
- each meter's **quantity** in its engineering unit (kgce ÷ GB/T 2589 coefficient), its
  **counter** ``initial + Σ quantity / multiplier`` (linear inside an interval, so a reading at
  any instant is defined) and the **reading** a meter shows (counter wrapped at its declared
  width, with the declared value faults: rollover, reset, stuck, spike).

Everything is computed from cumulative sums cached per UTC day; the Modbus server, the MQTT
publisher, the backfill and the ground truth all call the same functions and so agree exactly.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import numpy as np

from benchmarks.catalogue import Catalogue, CatalogueEntry, UnknownEntryError
from benchmarks.evaluate import kgce_per_energy_unit
from benchmarks.factors import EnergyFactors
from fleet import (
    Direction,
    ExceptionFault,
    Fleet,
    FleetSimulation,
    IntensityLevel,
    Meter,
    MeterKind,
    ModbusTransport,
    MqttTransport,
    OfflineFault,
    Plant,
    PlantLoad,
    ProductionUnit,
    RelativeIntensity,
    ResetFault,
    RolloverFault,
    Schedule,
    SlowFault,
    SpikeFault,
    StuckFault,
    TimeoutFault,
    TimeWindow,
)
from modbus.registermap import Kind, Quantity, RegisterField, RegisterMap, load_register_map
from simulators import _hash

STEP_S = 900
STEP_H = STEP_S / 3600
BLOCK = 96                     # intervals per cached block (one UTC day)
_CHUNK_BLOCKS = 64             # blocks computed per numpy call when extending the prefix sums
_LRU_BLOCKS = 512
BELT_SCALE_DECIMALS = 2        # decimals the simulated belt scales publish in their register
_BAND_MARGIN = 0.02            # keep 'where' 2 % inside a band so a unit never sits on a level


class SimulationError(ValueError):
    """The fleet's simulation blocks cannot be simulated; the message names plant/unit/meter."""


def _s(dt: datetime) -> float:
    return dt.timestamp()


# ------------------------------------------------------------------------------ time windows


def window_mask(window: TimeWindow, t: np.ndarray, epoch_s: float) -> np.ndarray:
    """Which instants (seconds UTC) fall inside ``window``."""
    mask = np.ones(t.shape, dtype=bool)
    if window.start is not None:
        mask &= t >= _s(window.start)
    if window.end is not None:
        mask &= t < _s(window.end)
    if window.every is not None and window.duration is not None:
        mask &= np.mod(t - epoch_s - window.offset, window.every) < window.duration
    return mask


def in_window(window: TimeWindow, t: float, epoch_s: float) -> bool:
    return bool(window_mask(window, np.array([t]), epoch_s)[0])


def window_opened(window: TimeWindow, t: float, epoch_s: float) -> float:
    """When the window containing ``t`` opened (for a stuck value: the frozen instant)."""
    opened = _s(window.start) if window.start is not None else -math.inf
    if window.every is not None:
        opened = max(opened, t - (t - epoch_s - window.offset) % window.every)
    if opened == -math.inf:
        opened = epoch_s
    return min(opened, t)


# ------------------------------------------------------------------------------ schedules


def _offset_s(t: float, tz: tzinfo) -> float:
    """UTC offset (s) of ``tz`` at ``t``; an aware datetime always has one."""
    offset = datetime.fromtimestamp(t, tz).utcoffset()
    assert offset is not None
    return offset.total_seconds()


def _offsets(tz: tzinfo, mid: np.ndarray) -> np.ndarray:
    """UTC offsets (s) of the local zone at each instant; vectorised for fixed-offset spans."""
    if mid.size == 0:
        return mid
    probes = mid[:: BLOCK] if mid.size > BLOCK else mid[:1]
    probes = np.append(probes, mid[-1])
    offs = {_offset_s(float(p), tz) for p in probes}
    if len(offs) == 1:
        return np.full(mid.shape, offs.pop())
    return np.array([_offset_s(float(p), tz) for p in mid])


def running_mask(schedule: Schedule, k: np.ndarray, tz: tzinfo, epoch_s: float) -> np.ndarray:
    """Whether production runs in each interval (judged at the interval's midpoint)."""
    mid = (k.astype(np.float64) + 0.5) * STEP_S
    local = mid + _offsets(tz, mid)
    run = np.ones(k.shape, dtype=bool)
    if schedule.shifts < 3:
        hours = np.mod(local, 86400.0) / 3600.0
        run &= np.mod(hours - schedule.shift_start_h, 24.0) < schedule.shifts * 8
    if schedule.days_off:
        weekday = np.mod(np.floor_divide(local, 86400.0) + 3, 7)   # 1970-01-01 was a Thursday
        for day in schedule.days_off:
            run &= weekday != day.index
    for window in schedule.maintenance:
        run &= ~window_mask(window, mid, epoch_s)
    return run


def activity(schedule: Schedule, k0: int, n: int, *, tz: tzinfo, epoch_s: float, key: int,
             utilisation: float, variability: float) -> np.ndarray:
    """Full-rate hours in each interval k0..k0+n−1 (0 .. ~0.3): schedule × ramp × noise."""
    ramp_n = math.ceil(schedule.ramp_up_h * 4)
    k_ext = np.arange(k0 - ramp_n, k0 + n, dtype=np.int64)
    run_ext = running_mask(schedule, k_ext, tz, epoch_s)
    if ramp_n:
        idx = np.arange(k_ext.size)
        last_off = np.maximum.accumulate(np.where(run_ext, -1, idx))
        run_len = idx - last_off
        ramp = np.clip((run_len - 0.5) * STEP_H / schedule.ramp_up_h, 0.0, 1.0)
        factor = np.where(run_ext, ramp, 0.0)[ramp_n:]
    else:
        factor = run_ext.astype(np.float64)
    k = k_ext[ramp_n:]
    if variability:
        noise = 1.0 + variability * _hash.normal(key, 1, k)
        day = np.floor_divide(k, BLOCK)
        noise *= 1.0 + 0.5 * variability * _hash.normal(key, 2, day)
        factor = factor * np.clip(noise, 0.0, None)
    return factor * (utilisation * STEP_H)


# ------------------------------------------------------------------------------ cumulative sums


class Series:
    """A per-interval quantity with cached cumulative sums from the simulation epoch.

    ``fn(k0, n)`` returns the values of intervals k0..k0+n−1 (a numpy array). Prefix sums are
    kept per block of 96 intervals (one UTC day); blocks are computed 64 at a time.
    """

    def __init__(self, fn: Callable[[int, int], np.ndarray], origin_k: int, name: str) -> None:
        self._fn = fn
        self.origin_k = origin_k
        self.name = name
        self._prefix: list[float] = [0.0]
        self._blocks: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        # the Modbus server and the MQTT publisher may share a model from two threads
        self._lock = threading.RLock()

    def _check(self, k: int) -> int:
        rel = k - self.origin_k
        if rel < 0:
            when = datetime.fromtimestamp(k * STEP_S, UTC).isoformat()
            raise SimulationError(f"{self.name}: {when} is before the simulation epoch "
                                  "(fleet simulation.epoch)")
        return rel

    def _compute(self, b0: int, nb: int) -> np.ndarray:
        vals = np.asarray(self._fn(self.origin_k + b0 * BLOCK, nb * BLOCK), dtype=np.float64)
        return vals.reshape(nb, BLOCK)

    def _remember(self, b: int, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cum = np.empty(BLOCK + 1)
        cum[0] = 0.0
        np.cumsum(vals, out=cum[1:])
        entry = (vals, cum)
        self._blocks[b] = entry
        self._blocks.move_to_end(b)
        if len(self._blocks) > _LRU_BLOCKS:
            self._blocks.popitem(last=False)
        return entry

    def _ensure_prefix(self, b: int) -> None:
        if len(self._prefix) > b:
            return
        with self._lock:
            self._extend_prefix(b)

    def _extend_prefix(self, b: int) -> None:
        while len(self._prefix) <= b:
            b0 = len(self._prefix) - 1
            nb = min(_CHUNK_BLOCKS, b + 1 - b0)
            chunk = self._compute(b0, nb)
            running = self._prefix[-1]
            for i in range(nb):
                running += float(self._remember(b0 + i, chunk[i])[1][-1])
                self._prefix.append(running)

    def block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(values, cumulative-from-block-start with 97 entries) of block ``b``."""
        with self._lock:
            hit = self._blocks.get(b)
            if hit is not None:
                self._blocks.move_to_end(b)
                return hit
            self._ensure_prefix(b)
            hit = self._blocks.get(b)
            return hit if hit is not None else self._remember(b, self._compute(b, 1)[0])

    def cum_k(self, k: int) -> float:
        """Sum of the values of intervals origin .. k−1 (the cumulative at boundary k)."""
        b, i = divmod(self._check(k), BLOCK)
        self._ensure_prefix(b)
        return self._prefix[b] + float(self.block(b)[1][i])

    def value(self, k: int) -> float:
        b, i = divmod(self._check(k), BLOCK)
        return float(self.block(b)[0][i])

    def cum_t(self, t: float) -> float:
        """Cumulative at instant ``t`` (seconds UTC), linear inside the interval."""
        x = t / STEP_S
        k = math.floor(x)
        frac = x - k
        b, i = divmod(self._check(k), BLOCK)
        self._ensure_prefix(b)
        vals, cum = self.block(b)
        return self._prefix[b] + float(cum[i]) + frac * float(vals[i])

    def values(self, k0: int, k1: int) -> np.ndarray:
        """Values of intervals k0..k1−1."""
        out = np.empty(max(k1 - k0, 0))
        k = k0
        while k < k1:
            b, i = divmod(self._check(k), BLOCK)
            take = min(BLOCK - i, k1 - k)
            out[k - k0: k - k0 + take] = self.block(b)[0][i: i + take]
            k += take
        return out

    def cums(self, k0: int, k1: int) -> np.ndarray:
        """Cumulative at boundaries k0..k1 (k1 − k0 + 1 entries), computed exactly as
        :meth:`cum_k` does (block prefix + in-block cumulative), so both agree to the bit."""
        out = np.empty(max(k1 - k0, 0) + 1)
        k = k0
        while k <= k1:
            b, i = divmod(self._check(k), BLOCK)
            self._ensure_prefix(b)
            take = min(BLOCK - i, k1 + 1 - k)
            out[k - k0: k - k0 + take] = self._prefix[b] + self.block(b)[1][i: i + take]
            k += take
        return out


# ------------------------------------------------------------------------------ model objects


@dataclass
class UnitModel:
    plant_id: str
    unit: ProductionUnit
    entry: CatalogueEntry | None
    intensity: float            # true (marginal) intensity in the entry's unit
    intensity_unit: str
    kgce_per_numerator: float   # kgce per unit of the intensity's energy part (kWh -> 0.1229)
    rate_h: float               # output per hour at 100 % (product unit/h)
    gross_kgce: float           # consumed kgce per unit of output (intensity + exports)
    base_kgce_h: float          # consumed kgce per hour regardless of output
    exports_kgce: dict[str, float]
    mix: dict[str, float]
    output: Series

    @property
    def id(self) -> str:
        return self.unit.id

    @property
    def intensity_kgce(self) -> float:
        return self.intensity * self.kgce_per_numerator


@dataclass
class Source:
    """One term of a meter's quantity: factor × series(k) (+ a constant per hour)."""

    series: Series
    factor: float


@dataclass
class MeterModel:
    plant_id: str
    meter: Meter
    tz: tzinfo
    epoch_s: float
    key: int
    role: str                     # consumed | exported | production
    kgce_per_unit: float | None   # GB/T 2589 kgce per engineering unit (None for production)
    multiplier: float
    sources: list[Source]
    const_h: float                # constant quantity per hour (base load), primary side
    initial: float
    modulus: float | None         # counter wraps to 0 at this reading (register side)
    regmap: RegisterMap | None
    primary: RegisterField | None
    unit: UnitModel | None
    resets: list[ResetFault] = field(default_factory=list)
    stuck: list[StuckFault] = field(default_factory=list)
    spikes: list[SpikeFault] = field(default_factory=list)
    protocol_faults: list[OfflineFault | TimeoutFault | SlowFault | ExceptionFault] = field(
        default_factory=list)

    @property
    def id(self) -> str:
        return self.meter.id

    # -- quantities (primary side, engineering unit) ---------------------------------------
    def quantities(self, k0: int, k1: int) -> np.ndarray:
        """True quantity in each interval k0..k1−1 (primary side, e.g. kWh, t, m3, GJ)."""
        out = np.full(max(k1 - k0, 0), self.const_h * STEP_H)
        for s in self.sources:
            out += s.factor * s.series.values(k0, k1)
        return out

    def quantity_at(self, k: int) -> float:
        return self.const_h * STEP_H + sum(s.factor * s.series.value(k) for s in self.sources)

    def rate_h(self, t: float) -> float:
        """Mean rate of the current interval (engineering unit per hour, primary side)."""
        return self.quantity_at(math.floor(t / STEP_S)) / STEP_H

    def cum_t(self, t: float) -> float:
        """True cumulative quantity since the epoch at instant ``t`` (primary side)."""
        total = self.const_h * (t - self.epoch_s) / 3600.0
        for s in self.sources:
            total += s.factor * s.series.cum_t(t)
        return total

    def cums(self, k0: int, k1: int) -> np.ndarray:
        """True cumulative quantity at boundaries k0..k1."""
        ks = np.arange(k0, k1 + 1, dtype=np.float64)
        out = self.const_h * (ks * STEP_S - self.epoch_s) / 3600.0
        for s in self.sources:
            out = out + s.factor * s.series.cums(k0, k1)
        return out

    # -- counters and readings (register side) -------------------------------------------
    def unwrapped(self, t: float) -> float:
        """The counter without wrapping: initial + cumulative / multiplier (resets applied)."""
        value = self.initial + self.cum_t(t) / self.multiplier
        for reset in self.resets:
            at = _s(reset.at)
            if t >= at:
                value = reset.value + (self.cum_t(t) - self.cum_t(at)) / self.multiplier
        return value

    def wrap(self, value: float) -> float:
        if self.modulus is None:
            return value
        r = value % self.modulus
        if self.modulus - r < 1e-9 * max(1.0, self.modulus):
            r = 0.0
        return r

    def frozen_at(self, t: float) -> float:
        """The instant whose values a reading at ``t`` shows (earlier when stuck)."""
        for fault in self.stuck:
            if in_window(fault, t, self.epoch_s):
                return window_opened(fault, t, self.epoch_s)
        return t

    def spiked(self, t: float) -> float | None:
        """The spike factor applied to a reading at ``t``, or None."""
        for fault in self.spikes:
            if in_window(fault, t, self.epoch_s) and (
                fault.probability >= 1
                or _hash.uniform1(self.key, 90, int(round(t))) < fault.probability
            ):
                return fault.factor
        return None

    def reading(self, t: float) -> float:
        """What the meter shows at ``t``: its counter (or interval quantity), with value faults."""
        te = self.frozen_at(t)
        if self.meter.kind is MeterKind.INTERVAL:
            value = self.quantity_at(math.floor(te / STEP_S) - 1) / self.multiplier
        elif self.meter.kind is MeterKind.INSTANTANEOUS:
            value = self.rate_h(te) / self.multiplier
        else:
            value = self.wrap(self.unwrapped(te))
        factor = self.spiked(t)
        return value * factor if factor is not None else value

    def readings(self, k0: int, k1: int) -> np.ndarray:
        """Readings at boundaries k0..k1−1 (timestamp k·900 s), vectorised; equal to
        ``[reading(k·900) for k in range(k0, k1)]``."""
        n = max(k1 - k0, 0)
        if self.meter.kind is MeterKind.INTERVAL:
            values = self.quantities(k0 - 1, k1 - 1) / self.multiplier
        elif self.meter.kind is MeterKind.INSTANTANEOUS:
            values = self.quantities(k0, k1) / STEP_H / self.multiplier
        else:
            cums = self.cums(k0, k1)[:n]
            values = self.initial + cums / self.multiplier
            ts = np.arange(k0, k1, dtype=np.float64) * STEP_S
            for reset in self.resets:
                at = _s(reset.at)
                if n and at <= ts[-1]:
                    base = self.cum_t(at)
                    values = np.where(ts >= at, reset.value + (cums - base) / self.multiplier,
                                      values)
            if self.modulus is not None:
                values = np.mod(values, self.modulus)
                values[self.modulus - values < 1e-9 * max(1.0, self.modulus)] = 0.0
        if self.stuck or self.spikes:
            values = values.copy()
            for i, k in enumerate(range(k0, k1)):
                t = k * STEP_S
                if self.stuck and self.frozen_at(t) != t:
                    values[i] = self.reading(t)
                elif self.spikes:
                    factor = self.spiked(t)
                    if factor is not None:
                        values[i] *= factor
        return values

    def kgce(self, quantities: np.ndarray) -> np.ndarray:
        return quantities * (self.kgce_per_unit or 0.0)


@dataclass
class PlantModel:
    plant: Plant
    tz: tzinfo
    units: dict[str, UnitModel]
    meters: dict[str, MeterModel]

    @property
    def id(self) -> str:
        return self.plant.id

    @property
    def transport(self) -> ModbusTransport | MqttTransport:
        assert self.plant.simulation is not None
        return self.plant.simulation.transport


class FleetModel:
    """The whole simulated fleet; build once, query at any time (pure and cached)."""

    def __init__(self, fleet: Fleet, *, catalogue: Catalogue | None = None,
                 factors: EnergyFactors | None = None, seed: int | None = None,
                 plants: Iterable[str] | None = None) -> None:
        self.fleet = fleet
        self.sim: FleetSimulation = fleet.simulation or FleetSimulation()
        self.seed = self.sim.seed if seed is None else seed
        self.epoch_s = _s(self.sim.epoch)
        if self.epoch_s % STEP_S:
            raise SimulationError("field 'simulation.epoch': must fall on a quarter hour")
        self.origin_k = int(self.epoch_s // STEP_S)
        self.catalogue = catalogue or Catalogue.load()
        self.factors = factors or EnergyFactors.load()
        wanted = set(plants) if plants is not None else None
        self.plants: dict[str, PlantModel] = {}
        for plant in fleet.plants:
            if plant.simulation is None or (wanted is not None and plant.id not in wanted):
                continue
            self.plants[plant.id] = self._build_plant(plant)
        if wanted is not None and (missing := wanted - set(self.plants)):
            raise SimulationError(f"no simulated plant {', '.join(sorted(missing))} in the fleet "
                                  "(plants need a simulation block)")

    # -- building ---------------------------------------------------------------------------
    def _build_plant(self, plant: Plant) -> PlantModel:
        sim = plant.simulation
        assert sim is not None
        tz = ZoneInfo(plant.timezone or self.fleet.timezone)
        units: dict[str, UnitModel] = {}
        for unit in plant.units:
            units[unit.id] = self._build_unit(plant, unit, tz)
        meters: dict[str, MeterModel] = {}
        for meter_id in sim.loads:
            if meter_id not in {m.id for m in plant.meters}:
                raise SimulationError(f"plant {plant.id!r} > field 'simulation.loads."
                                      f"{meter_id}': no meter {meter_id!r} in this plant")
        plant_series: dict[str, Series] = {}
        for position, meter in enumerate(plant.meters, start=1):
            meters[meter.id] = self._build_meter(plant, meter, tz, units, plant_series, position)
        return PlantModel(plant, tz, units, meters)

    def _where(self, plant: Plant, unit: ProductionUnit | None = None,
               meter: Meter | None = None) -> str:
        parts = [f"plant {plant.id!r}"]
        if unit is not None:
            parts.append(f"unit {unit.id!r}")
        if meter is not None:
            parts.append(f"meter {meter.id!r}")
        return " > ".join(parts)

    def _intensity(self, plant: Plant, unit: ProductionUnit) -> tuple[float, str,
                                                                    CatalogueEntry | None]:
        sim = unit.simulation
        assert sim is not None
        where = self._where(plant, unit)
        entry: CatalogueEntry | None = None
        if unit.catalogue is not None:
            try:
                entry = self.catalogue.resolve(unit.catalogue, unit.edition)
            except UnknownEntryError as exc:
                raise SimulationError(f"{where} > field 'catalogue': {exc}") from None
        if isinstance(sim.intensity, RelativeIntensity):
            if entry is None or not entry.evaluable:
                raise SimulationError(
                    f"{where} > field 'simulation.intensity': a position relative to the "
                    "benchmark needs a catalogue entry with values; give a number instead")
            return (relative_intensity(entry, sim.intensity), entry.unit, entry)
        unit_text = entry.unit if entry is not None else f"kgce/{unit.product_unit}"
        return float(sim.intensity), unit_text, entry

    def _rate(self, plant: Plant, unit: ProductionUnit) -> float:
        sim = unit.simulation
        assert sim is not None
        if sim.output_rate is not None:
            return float(sim.output_rate)
        per = {"h": 1.0, "d": 24.0, "a": 8760.0}
        num, _, den = unit.capacity_unit.partition("/")
        if num.strip() == unit.product_unit and den.strip() in per:
            return float(unit.design_capacity) / per[den.strip()]
        raise SimulationError(
            f"{self._where(plant, unit)} > field 'simulation.output_rate': the capacity unit "
            f"{unit.capacity_unit!r} is not {unit.product_unit}/h, /d or /a; give output_rate "
            f"({unit.product_unit} per hour at 100 %)")

    def _build_unit(self, plant: Plant, unit: ProductionUnit, tz: tzinfo) -> UnitModel:
        sim = unit.simulation
        assert sim is not None and plant.simulation is not None
        intensity, intensity_unit, entry = self._intensity(plant, unit)
        numerator = intensity_unit.split("/", 1)[0]
        try:
            kpn = float(kgce_per_energy_unit(intensity_unit, self.factors)) \
                if numerator != "kgce" else 1.0
        except (ValueError, KeyError) as exc:
            raise SimulationError(f"{self._where(plant, unit)} > field 'catalogue': cannot "
                                  f"convert {intensity_unit!r} to kgce: {exc}") from None
        exports = {m: v * kpn for m, v in sim.exports.items()}
        gross = intensity * kpn + sum(exports.values())
        if gross <= 0:
            raise SimulationError(
                f"{self._where(plant, unit)} > field 'simulation.exports': consumption per unit "
                f"of output would be {gross:g} kgce (intensity + exports must be > 0)")
        rate = self._rate(plant, unit)
        key = _hash.key64(self.seed, plant.simulation.seed, plant.id, "unit", unit.id)
        epoch_s = self.epoch_s
        schedule = sim.schedule
        util, var = sim.utilisation, sim.variability

        def fn(k0: int, n: int) -> np.ndarray:
            return rate * activity(schedule, k0, n, tz=tz, epoch_s=epoch_s, key=key,
                                   utilisation=util, variability=var)

        return UnitModel(
            plant_id=plant.id, unit=unit, entry=entry, intensity=intensity,
            intensity_unit=intensity_unit, kgce_per_numerator=kpn, rate_h=rate,
            gross_kgce=gross, base_kgce_h=sim.base_load * rate * gross,
            exports_kgce=exports, mix=dict(sim.mix),
            output=Series(fn, self.origin_k, f"{plant.id}/{unit.id}"))

    def _plant_series(self, plant: Plant, meter: Meter, load: PlantLoad, tz: tzinfo) -> Series:
        assert plant.simulation is not None
        key = _hash.key64(self.seed, plant.simulation.seed, plant.id, "load", meter.id)
        schedule, var, epoch_s = plant.simulation.schedule, load.variability, self.epoch_s

        def fn(k0: int, n: int) -> np.ndarray:
            return activity(schedule, k0, n, tz=tz, epoch_s=epoch_s, key=key, utilisation=1.0,
                            variability=var)

        return Series(fn, self.origin_k, f"{plant.id}/{meter.id}")

    def _build_meter(self, plant: Plant, meter: Meter, tz: tzinfo, units: dict[str, UnitModel],
                     plant_series: dict[str, Series], position: int) -> MeterModel:
        assert plant.simulation is not None
        where = self._where(plant, meter=meter)
        msim = meter.simulation
        regmap = primary = None
        if meter.model is not None:
            regmap = load_register_map(meter.model)
            primary = primary_field(meter, regmap)
        coef: float | None = None
        if meter.kind is not MeterKind.PRODUCTION:
            try:
                coef = float(self.factors.to_kgce(meter.energy_type, 1, meter.eng_unit))
            except (ValueError, KeyError) as exc:  # unknown type, measured value required
                raise SimulationError(f"{where} > field 'energy_type': {exc}") from None
        sources: list[Source] = []
        const_h = 0.0
        unit_model = units.get(meter.unit) if meter.unit else None
        if unit_model is not None:
            if meter.kind is MeterKind.PRODUCTION:
                role = "production"
                sources.append(Source(unit_model.output, 1.0))
            elif meter.direction is Direction.EXPORTED:
                role = "exported"
                assert coef is not None
                sources.append(Source(unit_model.output, unit_model.exports_kgce[meter.id] / coef))
            else:
                role = "consumed"
                assert coef is not None
                share = unit_model.mix[meter.id]
                sources.append(Source(unit_model.output, share * unit_model.gross_kgce / coef))
                const_h = share * unit_model.base_kgce_h / coef
        else:
            role = "production" if meter.kind is MeterKind.PRODUCTION else (
                "exported" if meter.direction is Direction.EXPORTED else "consumed")
            load = plant.simulation.loads.get(meter.id)
            if load is None:
                raise SimulationError(f"{where} > field 'simulation': plant-level meter without "
                                      "a load (simulation.loads)")
            if load.rate is not None:
                sources.append(Source(self._plant_series(plant, meter, load, tz), load.rate))
            else:
                assert load.per_output is not None
                for unit_id in load.follows:
                    sources.append(Source(units[unit_id].output, load.per_output))
        multiplier = float(meter.multiplier)
        key = _hash.key64(self.seed, plant.simulation.seed, plant.id, "meter", meter.id)
        modulus = counter_modulus(meter, primary)
        faults = msim.faults if msim is not None else ()
        rollovers = [f for f in faults if isinstance(f, RolloverFault)]
        if len(rollovers) > 1:
            raise SimulationError(f"{where} > field 'simulation.faults': at most one rollover")
        if msim is not None and msim.initial is not None:
            initial = float(msim.initial)
        else:
            span = min(1e5, modulus / 10) if modulus else 1e5
            initial = round(_hash.uniform1(key, 7, 0) * span, 2)
        mm = MeterModel(
            plant_id=plant.id, meter=meter, tz=tz, epoch_s=self.epoch_s, key=key, role=role,
            kgce_per_unit=coef, multiplier=multiplier, sources=sources, const_h=const_h,
            initial=initial, modulus=modulus, regmap=regmap, primary=primary, unit=unit_model,
            resets=sorted((f for f in faults if isinstance(f, ResetFault)),
                          key=lambda f: f.at),
            stuck=[f for f in faults if isinstance(f, StuckFault)],
            spikes=[f for f in faults if isinstance(f, SpikeFault)],
            protocol_faults=[f for f in faults if f.kind in ("offline", "timeout", "slow",
                                                                "exception")],
        )
        if rollovers:
            if modulus is None:
                raise SimulationError(
                    f"{where} > field 'simulation.faults': a rollover needs a declared counter "
                    "width (rollover_max, or a register map with a rollover)")
            at = _s(rollovers[0].at)
            if at < self.epoch_s:
                raise SimulationError(f"{where} > field 'simulation.faults': rollover before "
                                      "the simulation epoch")
            mm.initial = (-mm.cum_t(at) / multiplier) % modulus
        return mm

    # -- queries ---------------------------------------------------------------------------
    def plant(self, plant_id: str) -> PlantModel:
        return self.plants[plant_id]

    def meter(self, plant_id: str, meter_id: str) -> MeterModel:
        return self.plants[plant_id].meters[meter_id]

    def meters(self) -> Iterable[MeterModel]:
        for p in self.plants.values():
            yield from p.meters.values()

    def units(self) -> Iterable[UnitModel]:
        for p in self.plants.values():
            yield from p.units.values()

    def k_range(self, start: datetime | float, end: datetime | float) -> tuple[int, int]:
        """Intervals fully inside [start, end) (boundaries rounded inwards to quarter hours)."""
        s = _s(start) if isinstance(start, datetime) else float(start)
        e = _s(end) if isinstance(end, datetime) else float(end)
        k0, k1 = math.ceil(s / STEP_S), math.floor(e / STEP_S)
        if k0 < self.origin_k:
            raise SimulationError(f"{datetime.fromtimestamp(s).astimezone().isoformat()} is "
                                  f"before the simulation epoch {self.sim.epoch.isoformat()}")
        return k0, max(k0, k1)


# ------------------------------------------------------------------------------ helpers


def relative_intensity(entry: CatalogueEntry, position: RelativeIntensity) -> float:
    """The intensity at ``position`` inside a band of ``entry``'s levels (see RelativeIntensity)."""
    assert entry.benchmark is not None and entry.baseline is not None
    bm, bl = float(entry.benchmark), float(entry.baseline)
    span = abs(bl - bm) or max(abs(bm), 1.0) * 0.1
    w = _BAND_MARGIN + (1 - 2 * _BAND_MARGIN) * position.where
    sign = 1.0 if entry.lower_is_better else -1.0     # +1: larger is worse
    if position.level is IntensityLevel.AT_BENCHMARK:
        return bm - sign * span * (1 - w)
    if position.level is IntensityLevel.BELOW_BENCHMARK:
        return bm + (bl - bm) * w if bl != bm else bm + sign * span * w
    return bl + sign * span * w


_ENERGY_QUANTITIES = {
    Direction.CONSUMED: (Quantity.ENERGY_IMPORT, Quantity.ENERGY_TOTAL),
    Direction.EXPORTED: (Quantity.ENERGY_EXPORT, Quantity.ENERGY_TOTAL),
}
_HEAT_UNITS = ("GJ", "MJ", "MWh")


def primary_field(meter: Meter, regmap: RegisterMap) -> RegisterField:
    """The register a collector reads as this meter's reading (its counter).

    electricity: energy_import (consumed) / energy_export (exported), else energy_total;
    production: production_total; heat in GJ/MJ: heat_total; other carriers: flow_total.
    """
    counters = [f for f in regmap.fields if f.kind is Kind.COUNTER]
    if meter.kind is MeterKind.PRODUCTION:
        wanted: Sequence[Quantity] = (Quantity.PRODUCTION_TOTAL,)
    elif meter.energy_type == "electricity":
        wanted = _ENERGY_QUANTITIES[meter.direction]
    elif meter.eng_unit in _HEAT_UNITS:
        wanted = (Quantity.HEAT_TOTAL, Quantity.FLOW_TOTAL)
    else:
        wanted = (Quantity.FLOW_TOTAL, Quantity.HEAT_TOTAL)
    for quantity in wanted:
        for f in counters:
            if f.quantity is quantity:
                return f
    if counters:
        return counters[0]
    raise SimulationError(f"meter {meter.id!r} > field 'model': register map {regmap.model!r} "
                          "has no counter field")


def field_step(f: RegisterField) -> float:
    """Resolution of an integer register in engineering units (0 for floats)."""
    if not f.dtype.is_integer:
        return 0.0
    exponent = -BELT_SCALE_DECIMALS if f.scale_register is not None else f.scale_exponent
    return abs(float(f.scale)) * 10.0 ** exponent


def field_modulus(f: RegisterField) -> float | None:
    """Where a register counter wraps (engineering units), from the map's ``rollover``."""
    raw = f.rollover_raw
    if raw is None:
        return None
    if f.dtype.is_integer:
        return (int(raw) + 1) * field_step(f)
    exponent = f.scale_exponent
    return float(raw) * abs(float(f.scale)) * 10.0 ** exponent


def counter_modulus(meter: Meter, primary: RegisterField | None) -> float | None:
    """The reading at which the meter's counter wraps to 0: rollover_max plus one register
    step (integer registers), else the register map's declared rollover, else none."""
    if meter.kind not in (MeterKind.COUNTER, MeterKind.PRODUCTION):
        return None
    if meter.rollover_max is not None:
        step = field_step(primary) if primary is not None else 0.0
        return float(meter.rollover_max) + step
    if primary is not None:
        return field_modulus(primary)
    return None
