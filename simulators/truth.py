"""Ground truth: what the simulators generated, so the platform's numbers can be checked.

For every 15-minute interval of a run (``interval_start`` .. ``interval_end``, local time with
offset):

- per meter: ``energy`` (true quantity in the meter's engineering unit, primary side, i.e.
  after the multiplier) or ``output`` for production meters, ``kgce`` (GB/T 2589, electricity at
  the equivalent value) and ``reading`` (what the meter shows at the interval end — its counter,
  wrapped at its declared width, with value faults; the value a perfect collector would store
  for a reading stamped ``interval_end``, before the register's own resolution). ``note`` names
  the faults active at that reading;
- per production unit: ``output`` (product unit), ``consumed_kgce``, ``exported_kgce`` and
  ``net_kgce`` (comprehensive energy = consumed − exported);
- per plant: ``consumed_kgce``, ``exported_kgce``, ``net_kgce`` (units and plant-level meters).

Files are tidy (one value per row) CSV with the columns
``interval_start, interval_end, plant, unit, meter, quantity, value, uom, note``; a ``.parquet``
name writes the same table with pandas when it is installed.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import numpy as np

from benchmarks.evaluate import evaluate
from fleet import ExceptionFault, OfflineFault, SlowFault, SpikeFault, StuckFault, TimeoutFault
from simulators.model import STEP_H, STEP_S, FleetModel, MeterModel, UnitModel, in_window

COLUMNS = ("interval_start", "interval_end", "plant", "unit", "meter", "quantity", "value",
           "uom", "note")


@dataclass
class MeterTruth:
    plant: str
    meter: str
    unit: str | None
    role: str
    eng_unit: str
    quantity: np.ndarray            # per interval, primary side
    kgce: np.ndarray | None
    reading: np.ndarray             # at each interval end
    notes: list[str]


@dataclass
class UnitTruth:
    plant: str
    unit: str
    product_unit: str
    model: UnitModel
    output: np.ndarray
    consumed_kgce: np.ndarray
    exported_kgce: np.ndarray

    @property
    def net_kgce(self) -> np.ndarray:
        net: np.ndarray = self.consumed_kgce - self.exported_kgce
        return net

    @property
    def expected_net_kgce(self) -> np.ndarray:
        """The model's definition: output × intensity + base load (kgce per interval)."""
        return self.output * self.model.intensity_kgce + self.model.base_kgce_h * STEP_H


@dataclass
class PlantTruth:
    plant: str
    consumed_kgce: np.ndarray
    exported_kgce: np.ndarray

    @property
    def net_kgce(self) -> np.ndarray:
        net: np.ndarray = self.consumed_kgce - self.exported_kgce
        return net


@dataclass
class Truth:
    """The generated truth for intervals k0 .. k1−1."""

    k0: int
    k1: int
    meters: dict[tuple[str, str], MeterTruth] = field(default_factory=dict)
    units: dict[tuple[str, str], UnitTruth] = field(default_factory=dict)
    plants: dict[str, PlantTruth] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return self.k1 - self.k0


def _notes(mm: MeterModel, k0: int, k1: int) -> list[str]:
    notes = [""] * (k1 - k0)
    faults: list[StuckFault | SpikeFault | OfflineFault | TimeoutFault | SlowFault
                 | ExceptionFault] = [
        *mm.stuck, *mm.spikes, *[f for f in mm.protocol_faults if f.kind == "offline"]]
    events = [(f.at.timestamp(), "reset") for f in mm.resets]
    for i in range(k1 - k0):
        t = (k0 + i + 1) * STEP_S
        active: list[str] = []
        for f in faults:
            if in_window(f, t, mm.epoch_s):
                if f.kind == "spike" and mm.spiked(t) is None:
                    continue
                active.append(f.kind)
        for at, name in events:
            if t - STEP_S < at <= t:
                active.append(name)
        notes[i] = " ".join(active)
    return notes


def compute_truth(model: FleetModel, k0: int, k1: int,
                  plants: Iterable[str] | None = None) -> Truth:
    """The ground truth of intervals k0..k1−1 for every simulated plant (or those named)."""
    truth = Truth(k0, k1)
    n = k1 - k0
    names = list(plants) if plants is not None else list(model.plants)
    for plant_id in names:
        pm = model.plant(plant_id)
        p_cons, p_exp = np.zeros(n), np.zeros(n)
        unit_cons = {u: np.zeros(n) for u in pm.units}
        unit_exp = {u: np.zeros(n) for u in pm.units}
        for mm in pm.meters.values():
            q = mm.quantities(k0, k1)
            kg = mm.kgce(q) if mm.role != "production" else None
            readings = mm.readings(k0 + 1, k1 + 1)
            notes = _notes(mm, k0, k1)
            if mm.modulus is not None and mm.meter.kind.value in ("counter", "production"):
                # mark the intervals in which the counter wrapped at its declared width
                prev = mm.readings(k0, k0 + 1)[0] if n else 0.0
                for i in range(n):
                    if readings[i] < prev and "reset" not in notes[i] and "stuck" not in notes[i] \
                            and "spike" not in notes[i]:
                        notes[i] = (notes[i] + " rollover").strip()
                    prev = readings[i]
            truth.meters[plant_id, mm.id] = MeterTruth(
                plant_id, mm.id, mm.meter.unit, mm.role, mm.meter.eng_unit, q, kg, readings,
                notes)
            if kg is None:
                continue
            if mm.role == "consumed":
                p_cons += kg
                if mm.meter.unit in unit_cons:
                    unit_cons[mm.meter.unit] += kg
            else:
                p_exp += kg
                if mm.meter.unit in unit_exp:
                    unit_exp[mm.meter.unit] += kg
        for unit_id, um in pm.units.items():
            truth.units[plant_id, unit_id] = UnitTruth(
                plant_id, unit_id, um.unit.product_unit, um, um.output.values(k0, k1),
                unit_cons[unit_id], unit_exp[unit_id])
        truth.plants[plant_id] = PlantTruth(plant_id, p_cons, p_exp)
    return truth


# ------------------------------------------------------------------------------ summaries


@dataclass(frozen=True)
class UnitSummary:
    plant: str
    unit: str
    catalogue: str | None
    output: float
    product_unit: str
    net_kgce: float
    intensity: float | None        # in the catalogue entry's unit
    intensity_unit: str
    status: str | None             # benchmarks verdict of the true intensity
    declared: str                  # the fleet's declared intensity (level or number)

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def summarise(truth: Truth) -> list[UnitSummary]:
    """Per unit over the whole run: output, comprehensive energy, true intensity, verdict."""
    out: list[UnitSummary] = []
    for (plant, unit), ut in truth.units.items():
        um = ut.model
        output = float(ut.output.sum())
        net = float(ut.net_kgce.sum())
        intensity = net / output / um.kgce_per_numerator if output > 0 else None
        status = None
        if um.entry is not None and intensity is not None and math.isfinite(intensity):
            verdict = evaluate(um.entry, Decimal(repr(intensity)), Decimal(repr(output)))
            status = verdict.status.value
        sim = um.unit.simulation
        assert sim is not None
        declared = (sim.intensity.level.value if hasattr(sim.intensity, "level")
                    else str(sim.intensity))
        out.append(UnitSummary(plant, unit, um.unit.catalogue, output, ut.product_unit, net,
                               intensity, um.intensity_unit, status, declared))
    return out


# ------------------------------------------------------------------------------ writing


def _stamps(model: FleetModel, plant_id: str, k0: int, k1: int) -> list[str]:
    tz = model.plant(plant_id).tz
    return [datetime.fromtimestamp(k * STEP_S, tz).isoformat() for k in range(k0, k1 + 1)]


def rows(model: FleetModel, truth: Truth) -> Iterable[tuple[object, ...]]:
    """The truth as tidy rows (see :data:`COLUMNS`)."""
    stamps: dict[str, list[str]] = {}
    for plant_id in truth.plants:
        stamps[plant_id] = _stamps(model, plant_id, truth.k0, truth.k1)
    for (plant, meter), mt in truth.meters.items():
        s = stamps[plant]
        unit = mt.unit or ""
        name = "output" if mt.role == "production" else "energy"
        for i in range(truth.n):
            yield (s[i], s[i + 1], plant, unit, meter, name, float(mt.quantity[i]), mt.eng_unit,
                   "")
            if mt.kgce is not None:
                yield (s[i], s[i + 1], plant, unit, meter, "kgce", float(mt.kgce[i]), "kgce", "")
            yield (s[i], s[i + 1], plant, unit, meter, "reading", float(mt.reading[i]),
                   mt.eng_unit, mt.notes[i])
    for (plant, unit), ut in truth.units.items():
        s = stamps[plant]
        for i in range(truth.n):
            yield (s[i], s[i + 1], plant, unit, "", "output", float(ut.output[i]),
                   ut.product_unit, "")
            yield (s[i], s[i + 1], plant, unit, "", "consumed_kgce", float(ut.consumed_kgce[i]),
                   "kgce", "")
            yield (s[i], s[i + 1], plant, unit, "", "exported_kgce", float(ut.exported_kgce[i]),
                   "kgce", "")
            yield (s[i], s[i + 1], plant, unit, "", "net_kgce", float(ut.net_kgce[i]), "kgce",
                   "")
    for plant, pt in truth.plants.items():
        s = stamps[plant]
        for i in range(truth.n):
            yield (s[i], s[i + 1], plant, "", "", "consumed_kgce", float(pt.consumed_kgce[i]),
                   "kgce", "")
            yield (s[i], s[i + 1], plant, "", "", "exported_kgce", float(pt.exported_kgce[i]),
                   "kgce", "")
            yield (s[i], s[i + 1], plant, "", "", "net_kgce", float(pt.net_kgce[i]), "kgce", "")


def write_truth(model: FleetModel, truth: Truth, path: str | Path) -> int:
    """Write the truth to ``path`` (CSV, or Parquet for a ``.parquet`` name); returns rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            import pandas as pd
        except ImportError:
            raise RuntimeError("writing Parquet needs pandas (and pyarrow); use a .csv name "
                               "or install them") from None
        frame = pd.DataFrame(list(rows(model, truth)), columns=list(COLUMNS))
        frame.to_parquet(path, index=False)
        return len(frame)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for row in rows(model, truth):
            writer.writerow(row)
            count += 1
    return count


def write_summary(summary: list[UnitSummary], path: str | Path) -> None:
    Path(path).write_text(json.dumps([s.as_dict() for s in summary], indent=2,
                                     ensure_ascii=False) + "\n", encoding="utf-8")


def read_truth_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a truth CSV (for tests and audits)."""
    with Path(path).open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))
