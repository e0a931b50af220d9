"""Intensity per production unit and its verdict against the benchmark and baseline levels.

For a unit and a period on the local calendar:

- comprehensive energy (kgce) = sum of consumed meters' kgce - sum of exported/recovered
  meters' kgce (DESIGN rule 3);
- output = the unit's production meters over the period, or, when they have no data in it,
  declared production records lying wholly inside the period;
- intensity in the catalogue entry's unit: kgce/<product>, kgoe/<product> (kgce / 1.4286),
  or kWh/<product> (the unit's net electricity in kWh);
- the verdict (status, gap to benchmark in %, saving potential in tce) from
  ``benchmarks.evaluate``, with the catalogue edition used, the share of the energy that rests
  on estimated data, data completeness, and the factor and catalogue versions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal

import psycopg

from accounting import queries
from accounting.periods import Period
from benchmarks.catalogue import Catalogue, UnknownEntryError
from benchmarks.evaluate import Status, evaluate, kgce_per_energy_unit
from benchmarks.factors import convert_quantity

NO_OUTPUT = "no_output"
UNMAPPED = "unmapped"


@dataclass(frozen=True)
class UnitResult:
    plant: str
    plant_name: str
    region: str
    unit: str
    period: str
    catalogue_key: str | None
    edition: int | None
    status: str                       # at_benchmark | below_benchmark | below_baseline |
    #                                   not_evaluable | no_output | unmapped
    intensity: float | None
    intensity_unit: str | None
    benchmark: float | None
    baseline: float | None
    gap_to_benchmark_pct: float | None
    saving_potential_tce: float | None
    output: float
    output_unit: str
    energy_kgce: float                # comprehensive energy (consumed - exported)
    electricity_kwh: float            # net electricity
    co2_kg: float
    carbon_intensity: float | None    # kg CO2 per output unit
    estimated_share: float            # share of consumed kgce resting on estimated data
    completeness: float               # received / expected readings of the unit's meters
    design_capacity: float
    capacity_unit: str
    catalogue_version: str
    factor_versions: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _norm(unit: str) -> str:
    return unit.strip().lower().replace("-", "_").replace(" ", "_")


def _expected_readings(interval_s: int, start: datetime, end: datetime,
                       installed_at: datetime | None, now: datetime) -> float:
    lo = max(start, installed_at) if installed_at else start
    hi = min(end, now)
    return max(0.0, (hi - lo).total_seconds() / interval_s)


def unit_results(
    conn: psycopg.Connection,
    period: Period,
    *,
    region: str | None = None,
    plant: str | None = None,
    catalogue: Catalogue | None = None,
    edition: int | None = None,
    now: datetime | None = None,
) -> list[UnitResult]:
    """Results for every production unit in scope (a region subtree and/or one plant)."""
    catalogue = catalogue or Catalogue.load()
    now = now or datetime.now(UTC)
    rows = queries.unit_meter_totals(conn, period.start, period.end, period.granularity,
                                     region=region, plant=plant)
    by_unit: dict[int, list[tuple]] = defaultdict(list)
    for row in rows:
        by_unit[row[0]].append(row)
    declared = queries.declared_output(conn, list(by_unit), period.start, period.end)
    versions = queries.factor_versions(conn)
    results = []
    for unit_id, meters in by_unit.items():
        head = meters[0]
        (_, unit_code, plant_code, plant_name, region_code, key, pinned, product_unit,
         capacity, capacity_unit) = head[:10]
        consumed = exported = estimated = kwh = co2 = output = 0.0
        has_production_meter = False
        received = expected = 0.0
        for m in meters:
            (meter_id, _code, energy_type, kind, direction, eng_unit, interval_s, quantity,
             est, kgce, co2_kg, readings, installed_at, _fs_min, _fs_max) = m[10:]
            expected += _expected_readings(interval_s, period.start, period.end, installed_at,
                                           now)
            received += readings
            if kind == "production":
                # a production meter counts when it has data in the period; a unit whose
                # production meters have none falls back to declared production records
                has_production_meter = has_production_meter or readings > 0 or quantity > 0
                output += quantity
                continue
            sign = -1.0 if direction == "exported" else 1.0
            if sign > 0:
                consumed += kgce
                if quantity > 0:
                    estimated += kgce * est / quantity
            else:
                exported += kgce
            co2 += sign * co2_kg
            if energy_type.startswith("electricity"):
                kwh += sign * quantity * float(convert_quantity(1, eng_unit, "kWh"))
        if not has_production_meter:
            output = declared.get(unit_id, 0.0)
        energy = consumed - exported
        used_sets = {fs for m in meters for fs in range(m[23] or 0, (m[24] or -1) + 1)}
        factor_versions = tuple(sorted({v for s in used_sets for v in versions.get(s, ())}))
        base = dict(
            plant=plant_code, plant_name=plant_name, region=region_code, unit=unit_code,
            period=period.label, output=output, output_unit=product_unit, energy_kgce=energy,
            electricity_kwh=kwh, co2_kg=co2,
            carbon_intensity=co2 / output if output > 0 else None,
            estimated_share=min(1.0, estimated / consumed) if consumed > 0 else 0.0,
            completeness=min(1.0, received / expected) if expected > 0 else 0.0,
            design_capacity=capacity, capacity_unit=capacity_unit,
            catalogue_version=catalogue.version, factor_versions=factor_versions,
        )
        results.append(_judge(base, key, pinned or edition, catalogue, energy, kwh, output,
                              product_unit))
    return results


def _judge(base: dict, key: str | None, edition: int | None, catalogue: Catalogue,
           energy_kgce: float, kwh: float, output: float, product_unit: str) -> UnitResult:
    empty = dict(intensity=None, benchmark=None, baseline=None, gap_to_benchmark_pct=None,
                 saving_potential_tce=None)
    if key is None:
        return UnitResult(**base, catalogue_key=None, edition=None, status=UNMAPPED,
                          intensity_unit=None, **empty)
    try:
        entry = catalogue.resolve(key, edition)
    except UnknownEntryError:
        return UnitResult(**base, catalogue_key=key, edition=edition, status=UNMAPPED,
                          intensity_unit=None, **empty)
    numerator, _, denominator = entry.unit.partition("/")
    common = dict(catalogue_key=key, edition=entry.edition, intensity_unit=entry.unit)
    if output <= 0:
        return UnitResult(**base, status=NO_OUTPUT, **common, **empty)
    if _norm(denominator) != _norm(product_unit):
        return UnitResult(**base, status=Status.NOT_EVALUABLE.value, **common, **empty)
    if numerator == "kWh":
        intensity = Decimal(repr(kwh)) / Decimal(repr(output))
    else:
        intensity = (Decimal(repr(energy_kgce)) / kgce_per_energy_unit(entry.unit)
                     / Decimal(repr(output)))
    verdict = evaluate(entry, intensity, Decimal(repr(output)))

    def f(value: Decimal | None) -> float | None:
        return None if value is None else float(value)

    return UnitResult(
        **base, **common, status=verdict.status.value, intensity=float(intensity),
        benchmark=f(verdict.benchmark), baseline=f(verdict.baseline),
        gap_to_benchmark_pct=f(verdict.gap_to_benchmark_pct),
        saving_potential_tce=f(verdict.saving_potential_tce),
    )


@dataclass(frozen=True)
class AreaKpi:
    catalogue_key: str
    units: int
    capacity_unit: str
    capacity_total: float
    share_capacity_at_benchmark: float      # 2025 target >= 30 %
    share_capacity_below_baseline: float    # 2025 target 0 %
    counts: dict[str, int]
    plants_below_benchmark: list[str]
    completeness: float


def area_kpis(results: list[UnitResult]) -> list[AreaKpi]:
    """Regional KPIs per catalogue area/product over already computed unit results."""
    groups: dict[str, list[UnitResult]] = defaultdict(list)
    for r in results:
        if r.catalogue_key:
            groups[r.catalogue_key].append(r)
    kpis = []
    for key in sorted(groups):
        items = groups[key]
        judged = [r for r in items if r.status in ("at_benchmark", "below_benchmark",
                                                   "below_baseline")]
        cap = sum(r.design_capacity for r in judged)
        counts: dict[str, int] = defaultdict(int)
        for r in items:
            counts[r.status] += 1
        kpis.append(AreaKpi(
            catalogue_key=key, units=len(items),
            capacity_unit=items[0].capacity_unit,
            capacity_total=sum(r.design_capacity for r in items),
            share_capacity_at_benchmark=(sum(r.design_capacity for r in judged
                                             if r.status == "at_benchmark") / cap) if cap else 0,
            share_capacity_below_baseline=(sum(r.design_capacity for r in judged
                                               if r.status == "below_baseline") / cap)
            if cap else 0,
            counts=dict(counts),
            plants_below_benchmark=sorted({r.plant for r in judged
                                           if r.status != "at_benchmark"}),
            completeness=sum(r.completeness for r in items) / len(items),
        ))
    return kpis
