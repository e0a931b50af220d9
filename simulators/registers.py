"""What each register of a simulated meter holds at a given instant.

A :class:`MeterRegisters` turns the plant model's state of one meter (counter, current rate,
faults) into the engineering value of every field of the meter's register map, and encodes those
values with :mod:`modbus` — the same register maps and codec the collector decodes with.

Conventions (so that a collector gets back exactly the fleet's quantities):

- register values are **secondary-side**: reading × fleet ``multiplier`` = primary quantity. The
  multiplier is split into CT × PT (PT = 100 for a 10 kV feeder when the multiplier is a
  multiple of 100 and ≥ 1000, else PT = 1) and maps with ``ct_ratio_field``/``pt_ratio_field``
  publish those ratios, so a collector using either the fleet multiplier or the meter's own CT/PT
  registers computes the same primary energy;
- the meter's counter is its **primary field** (:func:`simulators.model.primary_field`); other
  counters of the map are consistent with it (reactive energy = active × tan φ, heat totaliser =
  mass × calorific value, export = 0 for a consuming meter …) and wrap at their own declared
  widths;
- instantaneous values are the current 15-minute interval's mean (power = interval energy ÷
  0.25 h), with small deterministic variations for voltage and frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from benchmarks.factors import MJ_PER_KGCE
from fleet import MeterKind
from modbus import codec
from modbus.codec import Number
from modbus.registermap import Kind, Quantity, RegisterField, Table
from simulators import _hash
from simulators.model import (
    BELT_SCALE_DECIMALS,
    MeterModel,
    field_modulus,
)

STEAM_GJ_PER_T = 2.8          # enthalpy of saturated steam at ~1 MPa (GJ per tonne)
_MJ_PER_KGCE = float(MJ_PER_KGCE)   # benchmarks' Decimal constant, for float arithmetic
_SQRT3 = math.sqrt(3.0)

# (temperature degC, pressure MPa) of the medium by energy type
_PROCESS = {
    "heat": (245.0, 1.0),
    "steam_low_pressure": (180.0, 0.6),
    "natural_gas": (18.0, 0.35),
    "raw_coal": (35.0, 0.1),
    "coke": (40.0, 0.1),
}

_IMPORT_Q = {Quantity.ENERGY_IMPORT}
_EXPORT_Q = {Quantity.ENERGY_EXPORT}
_REACTIVE_CONSUMED = {Quantity.REACTIVE_ENERGY_IMPORT, Quantity.REACTIVE_ENERGY_Q1,
                      Quantity.REACTIVE_ENERGY_TOTAL}
_REACTIVE_EXPORTED = {Quantity.REACTIVE_ENERGY_EXPORT, Quantity.REACTIVE_ENERGY_Q2,
                      Quantity.REACTIVE_ENERGY_TOTAL}
_PHASE = {
    Quantity.VOLTAGE_L1: 0, Quantity.VOLTAGE_L2: 1, Quantity.VOLTAGE_L3: 2,
    Quantity.VOLTAGE_L1_L2: 0, Quantity.VOLTAGE_L2_L3: 1, Quantity.VOLTAGE_L3_L1: 2,
    Quantity.CURRENT_L1: 0, Quantity.CURRENT_L2: 1, Quantity.CURRENT_L3: 2,
    Quantity.ACTIVE_POWER_L1: 0, Quantity.ACTIVE_POWER_L2: 1, Quantity.ACTIVE_POWER_L3: 2,
}


def split_multiplier(multiplier: float) -> tuple[float, float]:
    """(CT, PT) with CT × PT = multiplier: a 10 kV feeder (PT 100) for large round ratios."""
    if multiplier >= 1000 and float(multiplier) % 100 == 0:
        return multiplier / 100.0, 100.0
    return multiplier, 1.0


class AddressError(LookupError):
    """The request touches addresses the meter does not have (illegal data address)."""


@dataclass
class _State:
    t: float          # the instant asked for
    te: float         # the instant whose values are shown (earlier when stuck)
    reading: float    # the primary field's value (wrapped, faults applied)
    counter: float    # unwrapped counter (register side, resets applied)
    rate: float       # primary quantity per hour in the current interval


class MeterRegisters:
    """The register image of one simulated Modbus meter, computed on demand."""

    def __init__(self, mm: MeterModel) -> None:
        if mm.regmap is None or mm.primary is None:
            raise ValueError(f"meter {mm.id!r} has no register map")
        self.mm = mm
        self.regmap = mm.regmap
        self.primary: RegisterField = mm.primary
        self.ct, self.pt = split_multiplier(mm.multiplier)
        self.pf = 0.86 + 0.11 * _hash.uniform1(mm.key, 20, 0)
        self.tan_phi = math.tan(math.acos(self.pf))
        self.v_phase = 230.0 if self.pt == 1 else 10000.0 / _SQRT3   # primary, V
        self.imbalance = [1.0 + 0.03 * (_hash.uniform1(mm.key, 21, i) - 0.5) for i in range(3)]
        s = sum(self.imbalance)
        self.imbalance = [x * 3 / s for x in self.imbalance]
        self.gj_per_unit = ((mm.kgce_per_unit or 0.0) * _MJ_PER_KGCE / 1000.0)
        self.process = _PROCESS.get(mm.meter.energy_type, (25.0, 0.1))
        self.sign = -1.0 if mm.role == "exported" else 1.0
        self.by_table: dict[Table, list[RegisterField]] = {t: [] for t in Table}
        for f in self.regmap.fields:
            self.by_table[f.table].append(f)
        for fields in self.by_table.values():
            fields.sort(key=lambda f: (f.address, f.name))
        self.moduli = {f.name: field_modulus(f) for f in self.regmap.fields}

    # -- values ----------------------------------------------------------------------------
    def state(self, t: float) -> _State:
        mm = self.mm
        te = mm.frozen_at(t)
        counter = mm.unwrapped(te) if mm.meter.kind in (MeterKind.COUNTER,
                                                        MeterKind.PRODUCTION) else 0.0
        return _State(t=t, te=te, reading=mm.reading(t), counter=counter, rate=mm.rate_h(te))

    def _wrap(self, f: RegisterField, value: float) -> float:
        modulus = self.moduli.get(f.name)
        return value % modulus if modulus else value

    def _variation(self, stream: int, te: float, amplitude: float) -> float:
        minute = int(te // 60)
        return amplitude * float(_hash.normal(self.mm.key, stream, minute))

    def value(self, f: RegisterField, st: _State) -> Number:
        """The engineering value of field ``f`` in state ``st``."""
        mm, q = self.mm, f.quantity
        if f.name == self.primary.name:
            return st.reading
        ratio = self.ct * self.pt
        p_prim = self.sign * st.rate                      # kW (kWh per hour), signed
        p_sec = p_prim / ratio
        phase = _PHASE.get(q, 0)
        if q in (Quantity.ENERGY_IMPORT, Quantity.ENERGY_EXPORT, Quantity.ENERGY_TOTAL):
            ours = (q in _IMPORT_Q and mm.role != "exported") or (
                q in _EXPORT_Q and mm.role == "exported") or q is Quantity.ENERGY_TOTAL
            return self._wrap(f, st.counter) if ours else 0.0
        if q in _REACTIVE_CONSUMED or q in _REACTIVE_EXPORTED:
            ours = q in (_REACTIVE_EXPORTED if mm.role == "exported" else _REACTIVE_CONSUMED)
            return self._wrap(f, st.counter * self.tan_phi) if ours else 0.0
        if q in (Quantity.REACTIVE_ENERGY_Q3, Quantity.REACTIVE_ENERGY_Q4):
            return 0.0
        if q in (Quantity.ACTIVE_POWER, Quantity.DEMAND_ACTIVE_POWER):
            return p_sec
        if q in (Quantity.ACTIVE_POWER_L1, Quantity.ACTIVE_POWER_L2, Quantity.ACTIVE_POWER_L3):
            return p_sec / 3 * self.imbalance[phase]
        if q is Quantity.REACTIVE_POWER:
            return p_sec * self.tan_phi
        if q is Quantity.APPARENT_POWER:
            return abs(p_sec) / self.pf
        if q is Quantity.POWER_FACTOR:
            return round(self.pf, 3)
        if q in (Quantity.VOLTAGE_L1, Quantity.VOLTAGE_L2, Quantity.VOLTAGE_L3):
            return self.v_phase / self.pt * (1 + self._variation(30 + phase, st.te, 0.004))
        if q in (Quantity.VOLTAGE_L1_L2, Quantity.VOLTAGE_L2_L3, Quantity.VOLTAGE_L3_L1):
            return self.v_phase * _SQRT3 / self.pt * (1 + self._variation(30 + phase, st.te,
                                                                          0.004))
        if q in (Quantity.CURRENT_L1, Quantity.CURRENT_L2, Quantity.CURRENT_L3):
            watts = abs(p_prim) * 1000.0 / 3 * self.imbalance[phase]
            return watts / (self.v_phase * self.pf) / self.ct
        if q is Quantity.CURRENT_N:
            return abs(p_prim) * 1000.0 / (3 * self.v_phase * self.pf) / self.ct * 0.02
        if q is Quantity.FREQUENCY:
            return 50.0 + max(-0.15, min(0.15, self._variation(40, st.te, 0.03)))
        if q is Quantity.CT_RATIO:
            return self.ct
        if q is Quantity.PT_RATIO:
            return self.pt
        if q is Quantity.FLOW_TOTAL:
            if mm.meter.eng_unit in ("GJ", "MJ", "MWh"):
                return self._wrap(f, st.counter * self.gj_per_unit / STEAM_GJ_PER_T)
            return self._wrap(f, st.counter)
        if q is Quantity.HEAT_TOTAL:
            return self._wrap(f, st.counter * self.gj_per_unit)
        if q is Quantity.FLOW_RATE:
            per_h = st.rate / mm.multiplier
            if mm.meter.eng_unit in ("GJ", "MJ", "MWh"):
                return per_h * self.gj_per_unit / STEAM_GJ_PER_T
            return per_h
        if q is Quantity.HEAT_RATE:
            return st.rate / mm.multiplier * self.gj_per_unit
        if q is Quantity.TEMPERATURE:
            return self.process[0] + self._variation(50, st.te, 0.5)
        if q is Quantity.PRESSURE:
            return max(0.0, self.process[1] * (1 + self._variation(51, st.te, 0.01)))
        if q is Quantity.PRODUCTION_TOTAL:
            if f.kind is Kind.INTERVAL:
                return max(0.0, st.counter - self._counter_at(self._shift_start(st.te)))
            return self._wrap(f, st.counter)
        if q is Quantity.PRODUCTION_RATE:
            return st.rate / mm.multiplier
        if q is Quantity.SCALE_FACTOR:
            return -BELT_SCALE_DECIMALS
        if q is Quantity.RUNNING:
            return st.rate > 0
        return 0

    def _shift_start(self, te: float) -> float:
        unit = self.mm.unit
        start_h = unit.unit.simulation.schedule.shift_start_h if unit and unit.unit.simulation \
            else 0.0
        offset = datetime.fromtimestamp(te, self.mm.tz).utcoffset()
        local_h = (te + (offset.total_seconds() if offset else 0.0)) / 3600.0
        return te - ((local_h - start_h) % 8.0) * 3600.0

    def _counter_at(self, t: float) -> float:
        return self.mm.unwrapped(max(t, self.mm.epoch_s))

    def values(self, t: float) -> dict[str, Number]:
        """Engineering value of every field at simulated instant ``t`` (seconds UTC)."""
        st = self.state(t)
        return {f.name: self.value(f, st) for f in self.regmap.fields}

    # -- registers -------------------------------------------------------------------------
    def encode(self, f: RegisterField, value: Number) -> tuple[int, ...]:
        """Registers (or the bit) for ``value``; out-of-range values saturate."""
        exponent = -BELT_SCALE_DECIMALS if f.scale_register is not None else None
        if f.dtype.is_integer and not isinstance(value, bool):
            value = float(value)
        try:
            return f.encode(value, scale_exponent=exponent)
        except OverflowError:
            if f.sentinels or f.dtype.is_float:
                return f.encode(None)
            raw = f.dtype.max_raw if float(value) > 0 else f.dtype.min_raw
            return codec.encode(int(raw), f.dtype, f.order)

    def read(self, table: Table, address: int, count: int, t: float) -> list[int] | list[bool]:
        """The response to a read of ``count`` registers (or bits) at ``address``.

        Raises :class:`AddressError` when an address is not a register of the map
        (register tables; unmapped bits of a bit table read as 0).
        """
        end = address + count
        fields = [f for f in self.by_table[table] if f.address < end and f.end > address]
        if table.is_bit:
            st = self.state(t)
            bits = [False] * count
            for f in fields:
                bits[f.address - address] = bool(self.value(f, st))
            return bits
        covered = {a for f in fields for a in range(f.address, f.end)}
        if any(a not in covered for a in range(address, end)):
            raise AddressError(f"{table} {address}..{end - 1}")
        st = self.state(t)
        words = dict.fromkeys(covered, 0)
        for f in fields:
            regs = self.encode(f, self.value(f, st))
            for i, reg in enumerate(regs):
                a = f.address + i
                words[a] = (words[a] | reg) if f.bit is not None else reg
        return [words[a] for a in range(address, end)]

    def expected(self, t: float) -> dict[str, Number | None]:
        """What a collector decodes for every field at ``t`` (codec round trip of the values)."""
        out: dict[str, Number | None] = {}
        exps = {f.name: -BELT_SCALE_DECIMALS for f in self.regmap.fields
                if f.scale_register is not None}
        for name, value in self.values(t).items():
            f = self.regmap.field(name)
            regs = self.encode(f, value)
            if f.scale_register is not None:
                out[name] = f.decode(regs, scale_exponent=exps[name])
            else:
                out[name] = f.decode(regs)
        return out
