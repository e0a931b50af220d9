"""Intensity per production unit and its verdict, from already fetched rows (no database).

For a unit and a period on the local calendar:

- comprehensive energy (kgce) = sum of consumed meters' kgce - sum of exported/recovered
  meters' kgce (DESIGN rule 3); net electricity (kWh) and net CO2 likewise;
- output = the unit's production meters over the period, or, when they have no data in it
  (no readings and no quantity), the declared production records lying wholly inside the
  period;
- intensity in the catalogue entry's unit: kgce/<product>, kgoe/<product> (kgce / 1.4286),
  or kWh/<product> (the unit's net electricity in kWh);
- the verdict (status, gap to benchmark in %, saving potential in tce) from
  ``benchmarks.evaluate``, with the catalogue edition used (the unit's pinned edition, else the
  one asked for, else the newest with values), the share of the consumed energy that rests on
  estimated data, data completeness (received / expected readings of the unit's meters, the
  expectation running from the period start or the meter's installation to the period end or
  ``now``), and the factor and catalogue versions;
- no verdict: ``unmapped`` (no catalogue key, or one the catalogue does not know),
  ``no_output`` (output <= 0), ``not_evaluable`` (the entry has no values, or counts output in
  another unit than the unit's product unit).

:func:`judge_units` and :func:`area_kpis` are pure; :func:`accounting.verdicts.unit_results`
fetches their input.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

from accounting.periods import Period
from accounting.rows import UnitMeterTotals
from benchmarks.catalogue import Catalogue, UnknownEntryError
from benchmarks.evaluate import FLAGGED, JUDGED, Status, evaluate, kgce_per_energy_unit
from benchmarks.factors import convert_quantity

__all__ = ["FLAGGED", "JUDGED", "AreaKpi", "Status", "UnitResult", "area_kpis", "judge_units"]


@dataclass(frozen=True)
class UnitResult:
    plant: str
    plant_name: str
    region: str
    unit: str
    period: Period                    # the reporting period (``period.label`` on the wire)
    catalogue_key: str | None
    edition: int | None
    status: Status
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
        """Plain values, field by field: the period as its label, the status as its string."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["period"] = self.period.label
        out["status"] = self.status.value
        return out


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


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The catalogue part of a unit result."""

    status: Status
    catalogue_key: str | None = None
    edition: int | None = None
    intensity_unit: str | None = None
    intensity: float | None = None
    benchmark: float | None = None
    baseline: float | None = None
    gap_to_benchmark_pct: float | None = None
    saving_potential_tce: float | None = None


def _norm(unit: str) -> str:
    return unit.strip().lower().replace("-", "_").replace(" ", "_")


def _expected_readings(interval_s: int, start: datetime, end: datetime,
                       installed_at: datetime | None, now: datetime) -> float:
    lo = max(start, installed_at) if installed_at else start
    hi = min(end, now)
    return max(0.0, (hi - lo).total_seconds() / interval_s)


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def judge_units(
    rows: Iterable[UnitMeterTotals],
    declared: Mapping[int, float],
    versions: Mapping[int, tuple[str, str]],
    catalogue: Catalogue,
    period: Period,
    *,
    now: datetime,
    edition: int | None = None,
) -> list[UnitResult]:
    """One result per unit of ``rows`` (meter rows grouped by unit, in the order they come).

    ``declared`` is the declared output per unit id, ``versions`` the factor table versions per
    factor set id, ``edition`` the catalogue edition for units without a pinned one (None =
    the newest with values) and ``now`` the instant after which no reading is expected yet.
    """
    by_unit: dict[int, list[UnitMeterTotals]] = defaultdict(list)
    for row in rows:
        by_unit[row.unit_id].append(row)
    return [_judge_unit(meters, declared, versions, catalogue, period, now, edition)
            for meters in by_unit.values()]


def _judge_unit(meters: Sequence[UnitMeterTotals], declared: Mapping[int, float],
                versions: Mapping[int, tuple[str, str]], catalogue: Catalogue,
                period: Period, now: datetime, edition: int | None) -> UnitResult:
    head = meters[0]
    consumed = exported = estimated = kwh = co2 = output = 0.0
    has_production_meter = False
    received = expected = 0.0
    for m in meters:
        expected += _expected_readings(m.interval_s, period.start, period.end, m.installed_at,
                                       now)
        received += m.readings
        if m.kind == "production":
            # a production meter counts when it has data in the period; a unit whose
            # production meters have none falls back to declared production records
            has_production_meter = has_production_meter or m.readings > 0 or m.quantity > 0
            output += m.quantity
            continue
        sign = -1.0 if m.direction == "exported" else 1.0
        if sign > 0:
            consumed += m.kgce
            if m.quantity > 0:
                estimated += m.kgce * m.estimated / m.quantity
        else:
            exported += m.kgce
        co2 += sign * m.co2_kg
        if m.energy_type.startswith("electricity"):
            kwh += sign * m.quantity * float(convert_quantity(1, m.eng_unit, "kWh"))
    if not has_production_meter:
        output = declared.get(head.unit_id, 0.0)
    energy = consumed - exported
    used_sets = {fs for m in meters
                 for fs in range(m.factor_set_min or 0, (m.factor_set_max or -1) + 1)}
    factor_versions = tuple(sorted({v for s in used_sets for v in versions.get(s, ())}))
    verdict = _verdict(head.catalogue_key, head.catalogue_edition or edition, catalogue, energy,
                       kwh, output, head.product_unit)
    return UnitResult(
        plant=head.plant_code, plant_name=head.plant_name, region=head.region_code,
        unit=head.unit_code, period=period, catalogue_key=verdict.catalogue_key,
        edition=verdict.edition, status=verdict.status, intensity=verdict.intensity,
        intensity_unit=verdict.intensity_unit, benchmark=verdict.benchmark,
        baseline=verdict.baseline, gap_to_benchmark_pct=verdict.gap_to_benchmark_pct,
        saving_potential_tce=verdict.saving_potential_tce, output=output,
        output_unit=head.product_unit, energy_kgce=energy, electricity_kwh=kwh, co2_kg=co2,
        carbon_intensity=co2 / output if output > 0 else None,
        estimated_share=min(1.0, estimated / consumed) if consumed > 0 else 0.0,
        completeness=min(1.0, received / expected) if expected > 0 else 0.0,
        design_capacity=head.design_capacity, capacity_unit=head.capacity_unit,
        catalogue_version=catalogue.version, factor_versions=factor_versions,
    )


def _verdict(key: str | None, edition: int | None, catalogue: Catalogue, energy_kgce: float,
             kwh: float, output: float, product_unit: str) -> _Verdict:
    if key is None:
        return _Verdict(Status.UNMAPPED)
    try:
        entry = catalogue.resolve(key, edition)
    except UnknownEntryError:
        return _Verdict(Status.UNMAPPED, catalogue_key=key, edition=edition)
    numerator, _, denominator = entry.unit.partition("/")
    if output <= 0:
        return _Verdict(Status.NO_OUTPUT, key, entry.edition, entry.unit)
    if _norm(denominator) != _norm(product_unit):
        return _Verdict(Status.NOT_EVALUABLE, key, entry.edition, entry.unit)
    if numerator == "kWh":
        intensity = Decimal(repr(kwh)) / Decimal(repr(output))
    else:
        intensity = (Decimal(repr(energy_kgce)) / kgce_per_energy_unit(entry.unit)
                     / Decimal(repr(output)))
    verdict = evaluate(entry, intensity, Decimal(repr(output)))
    return _Verdict(
        verdict.status, key, entry.edition, entry.unit, intensity=float(intensity),
        benchmark=_float(verdict.benchmark), baseline=_float(verdict.baseline),
        gap_to_benchmark_pct=_float(verdict.gap_to_benchmark_pct),
        saving_potential_tce=_float(verdict.saving_potential_tce),
    )


def area_kpis(results: Iterable[UnitResult]) -> list[AreaKpi]:
    """Regional KPIs per catalogue area/product over already computed unit results: shares of
    the judged units' design capacity at benchmark and below baseline, units per status,
    plants with a judged unit not at benchmark, mean completeness (DESIGN rule 6)."""
    groups: dict[str, list[UnitResult]] = defaultdict(list)
    for r in results:
        if r.catalogue_key:
            groups[r.catalogue_key].append(r)
    kpis = []
    for key in sorted(groups):
        items = groups[key]
        judged = [r for r in items if r.status in JUDGED]
        cap = sum(r.design_capacity for r in judged)
        counts: dict[str, int] = defaultdict(int)
        for r in items:
            counts[str(r.status)] += 1
        kpis.append(AreaKpi(
            catalogue_key=key, units=len(items),
            capacity_unit=items[0].capacity_unit,
            capacity_total=sum(r.design_capacity for r in items),
            share_capacity_at_benchmark=(sum(r.design_capacity for r in judged
                                             if r.status == Status.AT_BENCHMARK) / cap)
            if cap else 0,
            share_capacity_below_baseline=(sum(r.design_capacity for r in judged
                                               if r.status == Status.BELOW_BASELINE) / cap)
            if cap else 0,
            counts=dict(counts),
            plants_below_benchmark=sorted({r.plant for r in judged
                                           if r.status != Status.AT_BENCHMARK}),
            completeness=sum(r.completeness for r in items) / len(items),
        ))
    return kpis
