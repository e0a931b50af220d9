"""Intensity per production unit and its verdict, from already fetched rows (no database).

For a unit and a period on the local calendar:

- comprehensive energy (kgce) = sum of consumed meters' kgce - sum of exported/recovered
  meters' kgce (DESIGN rule 3); net electricity (kWh) and net CO2 likewise;
- output: the declared (statistical) production records when they cover the whole period and
  the period is a month, year, ytd or r12 (statistical output is the reference) or the
  production meters are incomplete; otherwise the unit's production meters; otherwise the
  declared records, pro-rated by time where a record reaches outside the period (then not
  evaluable unless they cover it). When both exist and differ by
  more than ``output_deviation_share`` of the declared output, both are reported and a
  warning ``output_deviation`` says so;
- data sufficiency (:func:`sufficiency`), per meter per local day: the readings expected from
  the meter's interval and its service dates (installed / removed; up to one interval before
  ``now``), the readings received capped at that per day; a meter's completeness over the
  period = capped received / expected; a unit's completeness = the share of its energy and
  production meter-days that reach ``day_min_completeness`` (90 %: the national monitoring
  system's rule);
- a verdict only when the data suffice (:class:`core.settings.VerdictSettings`, defaults):
  every energy meter in service >= 90 % complete over the period, and every production meter
  too when output is metered; the estimated share of the energy (consumed and exported kgce)
  <= 10 % and of metered output <= 10 %; no interval of an energy meter whose kgce could not
  be computed (no coefficient, no measured calorific value); energy meters that report some
  energy when there is output. Otherwise the unit is ``not_evaluable`` with the reasons
  (which meters, which days, how much). A unit with energy data but no output is
  ``no_output``; one with output but no energy data is ``not_evaluable``: never judged;
- intensity in the catalogue entry's unit: kgce/<product>, kgoe/<product> (kgce / 1.4286),
  or kWh/<product> (the unit's net electricity in kWh);
- the verdict (status, gap to benchmark in %, saving potential in tce) from
  ``benchmarks.evaluate`` against the catalogue edition that applies: the unit's pinned
  edition, else the one asked for, else the edition policy for the unit's catalogue key or
  area, else the newest with values; the entry's source and stated confidence travel with
  the result;
- no verdict either: ``unmapped`` (no catalogue key, or one the catalogue does not know),
  ``not_evaluable`` (the entry has no values, or counts output in another unit than the
  unit's product unit).

CO2 that could not be computed for some intervals (no grid factor for that year ...) does
not withhold the energy verdict: the unit's CO2 is then reported as ``None`` with a warning
``co2_incomplete``.

:func:`judge_units` and :func:`area_kpis` are pure; :func:`accounting.verdicts.unit_results`
fetches their input.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import lru_cache

from accounting.periods import Period
from accounting.rows import ConversionIssue, DeclaredOutput, MeterDay, UnitInfo, UnitMeterTotals
from benchmarks.catalogue import Catalogue, CatalogueEntry, UnknownEntryError
from benchmarks.evaluate import FLAGGED, JUDGED, Status, evaluate, kgce_per_energy_unit
from benchmarks.factors import convert_quantity
from core.settings import VerdictSettings

__all__ = ["FLAGGED", "JUDGED", "AreaKpi", "Evidence", "MeterSufficiency", "Reason", "Status",
           "UnitResult", "annual_capacity", "area_kpis", "judge_units", "sufficiency"]

ENERGY_KINDS = frozenset({"counter", "interval"})
#: periods whose output is taken from declared statistics when they cover it
STATISTICAL_PERIODS = frozenset({"month", "year", "ytd", "r12"})
#: days listed per meter in a reason (the count is always whole)
MAX_DAYS_LISTED = 31
#: declared records must cover this share of the period to stand for its output
FULL_COVER = 0.999


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a unit is not judged (a reason) or what qualifies its result (a warning)."""

    code: str                         # meter_incomplete, energy_estimated, unconvertible ...
    message: str                      # one sentence for people
    meter: str | None = None
    value: float | None = None        # the measured share / completeness / deviation
    limit: float | None = None        # the rule's threshold
    days: tuple[str, ...] = ()        # local dates concerned (at most MAX_DAYS_LISTED)
    day_count: int = 0                # how many days in all

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class MeterSufficiency:
    """One meter's data over the period."""

    meter: str
    kind: str                         # counter | interval | production
    role: str                         # energy | output
    expected: float                   # readings expected over the period
    received: float                   # readings received, capped per day at the expectation
    completeness: float               # received / expected (1.0 when nothing was expected)
    days: int                         # meter-days with something expected
    complete_days: int                # of which >= day_min_completeness
    incomplete_days: tuple[str, ...]  # local dates below it (at most MAX_DAYS_LISTED)
    estimated_share: float            # estimated share of its quantity
    conversion_issues: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
    intensity: float | None           # None unless judged (or judgeable and mapped)
    intensity_unit: str | None
    benchmark: float | None
    baseline: float | None
    gap_to_benchmark_pct: float | None
    saving_potential_tce: float | None
    output: float                     # the output used (see output_source)
    output_unit: str
    energy_kgce: float                # comprehensive energy (consumed - exported)
    electricity_kwh: float            # net electricity
    co2_kg: float | None              # None when some intervals' CO2 is unknown
    carbon_intensity: float | None    # kg CO2 per output unit
    estimated_share: float            # share of the energy (kgce) resting on estimated data
    completeness: float               # share of the unit's meter-days >= 90 % complete
    design_capacity: float
    capacity_unit: str
    catalogue_version: str
    factor_versions: tuple[str, ...]
    output_source: str | None = None  # meter | declared | None (no output data)
    metered_output: float | None = None
    declared_output: float | None = None
    declared_prorated: bool = False   # a declared record reaches outside the period
    estimated_output_share: float = 0.0
    reasons: tuple[Reason, ...] = ()  # why not judged (empty when judged)
    warnings: tuple[Reason, ...] = ()
    meters: tuple[MeterSufficiency, ...] = ()
    catalogue_confidence: str | None = None
    catalogue_source: str | None = None

    def as_dict(self) -> dict[str, object]:
        """Plain values, field by field: the period as its label, the status as its string."""
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["period"] = self.period.label
        out["status"] = self.status.value
        out["reasons"] = [r.as_dict() for r in self.reasons]
        out["warnings"] = [r.as_dict() for r in self.warnings]
        out["meters"] = [m.as_dict() for m in self.meters]
        return out


@dataclass(frozen=True)
class Evidence:
    """What the judge needs besides the meter totals, fetched by ``accounting.verdicts``."""

    declared: Mapping[int, DeclaredOutput] = field(default_factory=dict)   # unit id ->
    versions: Mapping[int, tuple[str, str]] = field(default_factory=dict)  # factor set id ->
    days: Mapping[int, Sequence[MeterDay]] = field(default_factory=dict)   # meter id ->
    issues: Mapping[int, Sequence[ConversionIssue]] = field(default_factory=dict)  # meter id ->


@dataclass(frozen=True)
class AreaKpi:
    """Regional KPIs of one catalogue entry (area/product) over the period asked.

    The denominator is ALL registered capacity of the entry's units in scope, normalised to
    a yearly unit (``t/a``); capacity whose status is unknown (not evaluable, no output) is
    shown separately, never dropped.
    """

    catalogue_key: str
    units: int
    capacity_unit: str                      # normalised, e.g. t/a
    capacity_total: float                   # all registered capacity
    share_capacity_at_benchmark: float      # 2025 target >= 30 %
    share_capacity_below_benchmark: float
    share_capacity_below_baseline: float    # 2025 target 0 %
    share_capacity_unknown: float           # not judged: not evaluable, no output
    counts: dict[str, int]
    plants_below_benchmark: list[str]
    completeness: float                     # mean of the units' completeness
    capacity_not_normalised: list[str] = field(default_factory=list)  # units left out


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
    entry: CatalogueEntry | None = None
    reason: Reason | None = None


def _norm(unit: str) -> str:
    return unit.strip().lower().replace("-", "_").replace(" ", "_")


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _pct(x: float) -> str:
    return f"{x * 100:.1f} %"


# -- sufficiency --------------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _local_days(period: Period) -> tuple[tuple[str, float, float], ...]:
    """(local date, start, end) of every local day of the period, the bounds as epoch
    seconds (a DST day is 23 or 25 hours long); cached, as every meter of a verdict run walks
    the same days."""
    tz = period.start.tzinfo
    out = []
    day = period.start.date()
    while True:
        start = datetime(day.year, day.month, day.day, tzinfo=tz)
        if start >= period.end:
            break
        nxt = day + timedelta(days=1)
        end = min(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz), period.end)
        out.append((day.isoformat(), max(start, period.start).timestamp(), end.timestamp()))
        day = nxt
    return tuple(out)


def _seconds(lo: datetime, hi: datetime) -> float:
    # aware datetimes sharing a tzinfo subtract as wall clocks: go through UTC
    return (hi.astimezone(UTC) - lo.astimezone(UTC)).total_seconds()


@lru_cache(maxsize=64)
def _day_labels(period: Period) -> dict[float, str]:
    """Local midnight (epoch seconds, as the daily rollup buckets are) -> local date."""
    return {lo: day for day, lo, _ in _local_days(period)}


def _day_of(bucket: float, tz: tzinfo | None) -> str:
    return datetime.fromtimestamp(bucket, tz).date().isoformat()


def sufficiency(meter: UnitMeterTotals, days: Sequence[MeterDay], period: Period,
                now: datetime, rules: VerdictSettings, role: str,
                issues: Sequence[ConversionIssue] = ()) -> MeterSufficiency:
    """One meter's completeness over ``period``, per local day (see the module docstring)."""
    interval = float(meter.interval_s)
    due = now.timestamp() - interval                   # the running interval is not due yet
    if meter.removed_at is not None:
        due = min(due, meter.removed_at.timestamp())
    since = meter.installed_at.timestamp() if meter.installed_at is not None else -math.inf
    received_by_day: dict[str, float] = defaultdict(float)
    tz = period.start.tzinfo
    label = _day_labels(period)
    for d in days:
        key = label.get(d.day)
        received_by_day[key if key is not None else _day_of(d.day, tz)] += d.readings
    expected = received = 0.0
    n_days = complete = 0
    incomplete: list[str] = []
    threshold = rules.day_min_completeness
    for day, lo, hi in _local_days(period):
        seconds = min(hi, due) - max(lo, since)
        if seconds <= 0:
            continue
        exp = seconds / interval
        got = min(received_by_day.get(day, 0.0), exp)
        expected += exp
        received += got
        if exp >= 1:
            n_days += 1
            if got >= threshold * exp:
                complete += 1
            else:
                incomplete.append(day)
    share = meter.estimated / meter.quantity if meter.quantity > 0 else 0.0
    return MeterSufficiency(
        meter=meter.meter_code, kind=meter.kind, role=role, expected=expected,
        received=received, completeness=received / expected if expected > 0 else 1.0,
        days=n_days, complete_days=complete,
        incomplete_days=tuple(incomplete[:MAX_DAYS_LISTED]),
        estimated_share=min(1.0, share),
        conversion_issues=tuple(sorted({i.issue for i in issues})))


def _incomplete_reason(s: MeterSufficiency, rules: VerdictSettings) -> Reason:
    what = "production meter" if s.role == "output" else "energy meter"
    n = s.days - s.complete_days
    days = f"; {n} day(s) below {_pct(rules.day_min_completeness)}" if n else ""
    if s.received == 0:
        message = f"{what} {s.meter} sent no readings in the period ({s.expected:.0f} expected)"
    else:
        message = (f"{what} {s.meter} is {_pct(s.completeness)} complete "
                   f"({s.received:.0f} of {s.expected:.0f} readings; at least "
                   f"{_pct(rules.meter_min_completeness)} needed){days}")
    return Reason("meter_incomplete", message, meter=s.meter, value=s.completeness,
                  limit=rules.meter_min_completeness,
                  days=s.incomplete_days, day_count=n)


# -- the judge ------------------------------------------------------------------------------------

def judge_units(
    units: Sequence[UnitInfo],
    rows: Iterable[UnitMeterTotals],
    evidence: Evidence,
    catalogue: Catalogue,
    period: Period,
    *,
    now: datetime,
    edition: int | None = None,
    default_edition: int | None = None,
    rules: VerdictSettings | None = None,
) -> list[UnitResult]:
    """One result per unit of ``units`` (in their order), its meters from ``rows``.

    The catalogue edition of a unit: its pinned edition, else ``edition`` (asked for), else
    the edition policy of ``rules`` for its key or area, else ``default_edition`` (the
    server's setting), else the newest with values. ``now`` is the instant after which no
    reading is expected yet.
    """
    rules = rules or VerdictSettings()
    by_unit: dict[int, list[UnitMeterTotals]] = defaultdict(list)
    for row in rows:
        by_unit[row.unit_id].append(row)
    return [_judge_unit(u, by_unit.get(u.unit_id, []), evidence, catalogue, period, now,
                        _edition_for(u, edition, rules, default_edition), rules)
            for u in units]


def _edition_for(unit: UnitInfo, asked: int | None, rules: VerdictSettings,
                 default: int | None) -> int | None:
    if unit.catalogue_edition is not None:
        return unit.catalogue_edition
    if asked is not None:
        return asked
    key = unit.catalogue_key or ""
    policy = rules.editions
    return policy.get(key, policy.get(key.split("/")[0], default))


def _judge_unit(unit: UnitInfo, meters: Sequence[UnitMeterTotals], evidence: Evidence,
                catalogue: Catalogue, period: Period, now: datetime, edition: int | None,
                rules: VerdictSettings) -> UnitResult:
    consumed = exported = estimated_kgce = gross_kgce = kwh = co2 = 0.0
    metered = metered_estimated = 0.0
    reasons: list[Reason] = []
    warnings: list[Reason] = []
    checks: list[MeterSufficiency] = []
    co2_known = True
    energy_meters = production_meters = 0
    for m in meters:
        issues = evidence.issues.get(m.meter_id, ())
        if m.kind == "production":
            s = sufficiency(m, evidence.days.get(m.meter_id, ()), period, now, rules, "output")
            if s.expected > 0:
                production_meters += 1
                checks.append(s)
            metered += m.quantity
            metered_estimated += m.estimated
            continue
        if m.kind not in ENERGY_KINDS:
            continue  # instantaneous meters carry no energy
        s = sufficiency(m, evidence.days.get(m.meter_id, ()), period, now, rules, "energy",
                        issues)
        if s.expected > 0 or m.quantity > 0:
            energy_meters += 1
            checks.append(s)
        sign = -1.0 if m.direction == "exported" else 1.0
        if sign > 0:
            consumed += m.kgce
        else:
            exported += m.kgce
        gross_kgce += abs(m.kgce)
        if m.quantity > 0:
            estimated_kgce += abs(m.kgce) * min(1.0, m.estimated / m.quantity)
        co2 += sign * m.co2_kg
        if m.energy_type.startswith("electricity"):
            kwh += sign * m.quantity * float(convert_quantity(1, m.eng_unit, "kWh"))
        for issue in issues:
            where = (f"{issue.intervals} interval(s) from {issue.first:%Y-%m-%d %H:%M} to "
                     f"{issue.last:%Y-%m-%d %H:%M}")
            text = issue.issue.split(":", 1)[-1].strip()
            if issue.issue.startswith("co2:"):
                co2_known = False
                warnings.append(Reason("co2_incomplete", f"CO2 of meter {m.meter_code} is "
                                       f"unknown for {where}: {text}", meter=m.meter_code))
            else:
                reasons.append(Reason("unconvertible", f"energy of meter {m.meter_code} "
                                      f"cannot be converted to standard coal for {where}: "
                                      f"{text}", meter=m.meter_code,
                                      value=float(issue.intervals)))

    # output: declared statistics or the production meters
    declared = evidence.declared.get(unit.unit_id)
    elapsed_s = _seconds(period.start, max(period.start, min(period.end, now)))
    covered = (declared is not None and elapsed_s > 0
               and declared.covered_s >= FULL_COVER * elapsed_s)
    exact = covered and declared is not None and not declared.prorated
    metered_ok = production_meters > 0 and all(
        s.completeness >= rules.meter_min_completeness for s in checks if s.role == "output")
    output_source: str | None
    if exact and (period.kind in STATISTICAL_PERIODS or not metered_ok):
        # statistical output is the reference for months and years; for a day it stands in
        # for incomplete production meters
        output_source = "declared"
        if production_meters and not metered_ok:
            warnings.append(Reason(
                "production_meter_incomplete", "the production meters are incomplete over "
                "the period; the declared production records, which cover it, are used"))
    elif production_meters:
        output_source = "meter"    # incomplete meters are a reason below
    elif covered:
        output_source = "declared"  # pro-rated records: flagged with declared_prorated
    elif declared is not None:
        output_source = "declared"
        reasons.append(Reason(
            "declared_output_partial", f"declared production records cover "
            f"{_pct(declared.covered_s / elapsed_s if elapsed_s else 0.0)} of the period and "
            "no production meter measures the rest",
            value=declared.covered_s / elapsed_s if elapsed_s else 0.0, limit=FULL_COVER))
    else:
        output_source = None
        reasons.append(Reason("no_output_data", "the unit has neither a production meter in "
                              "service nor declared production records for the period"))
    output = (declared.quantity if output_source == "declared" and declared is not None
              else metered)
    if covered and declared is not None and metered_ok and declared.quantity > 0:
        deviation = (metered - declared.quantity) / declared.quantity
        if abs(deviation) > rules.output_deviation_share:
            prorated = " (pro-rated to the period)" if declared.prorated else ""
            warnings.append(Reason(
                "output_deviation", f"metered output {metered:,.1f} and declared output "
                f"{declared.quantity:,.1f}{prorated} {unit.product_unit} differ by "
                f"{_pct(deviation)} (more than {_pct(rules.output_deviation_share)}); "
                f"{'declared' if output_source == 'declared' else 'metered'} output used",
                value=deviation, limit=rules.output_deviation_share))

    # sufficiency of every meter that matters
    if not meters:
        reasons.append(Reason("no_meters", "the unit has no meters"))
    elif energy_meters == 0:
        reasons.append(Reason("no_energy_meters", "the unit has no energy meter in service "
                              "in the period"))
    for s in checks:
        if s.role == "output" and output_source != "meter":
            continue
        if s.completeness < rules.meter_min_completeness:
            reasons.append(_incomplete_reason(s, rules))
    estimated_share = min(1.0, estimated_kgce / gross_kgce) if gross_kgce > 0 else 0.0
    if estimated_share > rules.max_estimated_energy_share:
        reasons.append(Reason(
            "energy_estimated", f"{_pct(estimated_share)} of the energy rests on estimated "
            f"intervals (at most {_pct(rules.max_estimated_energy_share)})",
            value=estimated_share, limit=rules.max_estimated_energy_share))
    output_estimated = (min(1.0, metered_estimated / metered)
                        if output_source == "meter" and metered > 0 else 0.0)
    if output_estimated > rules.max_estimated_output_share:
        reasons.append(Reason(
            "output_estimated", f"{_pct(output_estimated)} of the metered output rests on "
            f"estimated intervals (at most {_pct(rules.max_estimated_output_share)})",
            value=output_estimated, limit=rules.max_estimated_output_share))
    if energy_meters and gross_kgce == 0 and output > 0 and not any(
            r.code in ("meter_incomplete", "unconvertible") for r in reasons):
        reasons.append(Reason("no_energy_data", f"the energy meters report no energy while "
                              f"output is {output:,.1f} {unit.product_unit}"))

    energy = consumed - exported
    used_sets = {fs for m in meters
                 for fs in range(m.factor_set_min or 0, (m.factor_set_max or -1) + 1)}
    factor_versions = tuple(sorted({v for s in used_sets for v in evidence.versions.get(s, ())}))
    verdict = _verdict(unit.catalogue_key, edition, catalogue,
                       energy, kwh, output, unit.product_unit, judge=not reasons)
    if verdict.reason is not None:
        reasons.append(verdict.reason)
    status = verdict.status   # with insufficient data: not_evaluable (or unmapped)
    days = sum(s.days for s in checks)
    complete = sum(s.complete_days for s in checks)
    co2_out = co2 if co2_known else None
    return UnitResult(
        plant=unit.plant_code, plant_name=unit.plant_name, region=unit.region_code,
        unit=unit.unit_code, period=period, catalogue_key=verdict.catalogue_key,
        edition=verdict.edition, status=status, intensity=verdict.intensity,
        intensity_unit=verdict.intensity_unit, benchmark=verdict.benchmark,
        baseline=verdict.baseline, gap_to_benchmark_pct=verdict.gap_to_benchmark_pct,
        saving_potential_tce=verdict.saving_potential_tce, output=output,
        output_unit=unit.product_unit, energy_kgce=energy, electricity_kwh=kwh, co2_kg=co2_out,
        carbon_intensity=co2_out / output if co2_out is not None and output > 0 else None,
        estimated_share=estimated_share,
        completeness=complete / days if days else 0.0,
        design_capacity=unit.design_capacity, capacity_unit=unit.capacity_unit,
        catalogue_version=catalogue.version, factor_versions=factor_versions,
        output_source=output_source,
        metered_output=metered if production_meters else None,
        declared_output=declared.quantity if declared is not None else None,
        declared_prorated=bool(declared is not None and declared.prorated),
        estimated_output_share=output_estimated,
        reasons=tuple(reasons), warnings=tuple(warnings), meters=tuple(checks),
        catalogue_confidence=verdict.entry.confidence if verdict.entry else None,
        catalogue_source=verdict.entry.source or None if verdict.entry else None,
    )


def _verdict(key: str | None, edition: int | None, catalogue: Catalogue, energy_kgce: float,
             kwh: float, output: float, product_unit: str, *, judge: bool) -> _Verdict:
    """The catalogue side; ``judge=False`` (insufficient data) resolves the entry but gives
    no intensity and no verdict."""
    if key is None:
        return _Verdict(Status.UNMAPPED, reason=Reason(
            "unmapped", "the unit has no catalogue entry (field 'catalogue' of the fleet)"))
    try:
        entry = catalogue.resolve(key, edition)
    except UnknownEntryError as exc:
        return _Verdict(Status.UNMAPPED, catalogue_key=key, edition=edition,
                        reason=Reason("unmapped", str(exc.args[0])))
    numerator, _, denominator = entry.unit.partition("/")
    base = _Verdict(Status.NOT_EVALUABLE, key, entry.edition, entry.unit,
                    benchmark=_float(entry.benchmark), baseline=_float(entry.baseline),
                    entry=entry)
    if _norm(denominator) != _norm(product_unit):
        return replace(base, reason=Reason(
            "unit_mismatch", f"catalogue entry {key} counts output in {denominator!r}, the "
            f"unit's product unit is {product_unit!r}"))
    if not judge:
        return base
    if output <= 0:
        return replace(base, status=Status.NO_OUTPUT, reason=Reason(
            "no_output", "no output in the period (the data are complete)"))
    if numerator == "kWh":
        intensity = Decimal(repr(kwh)) / Decimal(repr(output))
    else:
        intensity = (Decimal(repr(energy_kgce)) / kgce_per_energy_unit(entry.unit)
                     / Decimal(repr(output)))
    if intensity <= 0 and entry.benchmark is not None and entry.benchmark > 0:
        # the levels assume consumption (only a few entries, such as converter steelmaking,
        # are net producers): no or negative net energy of the measured kind is a data fault
        what = "electricity" if numerator == "kWh" else "energy"
        return replace(base, reason=Reason(
            "energy_not_positive", f"net {what} of the unit is {float(intensity):,.2f} "
            f"{entry.unit} while the catalogue levels assume consumption (benchmark "
            f"{entry.benchmark}); check the meters' directions and coverage",
            value=float(intensity)))
    if not entry.evaluable:  # the intensity is sound; there is nothing to judge it against
        return replace(base, intensity=float(intensity), reason=Reason(
            "catalogue_no_values", f"catalogue entry {key} edition {entry.edition} has no "
            "benchmark and baseline values"))
    verdict = evaluate(entry, intensity, Decimal(repr(output)))
    return _Verdict(
        verdict.status, key, entry.edition, entry.unit, intensity=float(intensity),
        benchmark=_float(verdict.benchmark), baseline=_float(verdict.baseline),
        gap_to_benchmark_pct=_float(verdict.gap_to_benchmark_pct),
        saving_potential_tce=_float(verdict.saving_potential_tce), entry=entry,
    )


# -- regional KPIs --------------------------------------------------------------------------------

_PER = {"a": 1.0, "y": 1.0, "yr": 1.0, "year": 1.0, "年": 1.0, "month": 12.0, "mo": 12.0,
        "月": 12.0, "d": 365.0, "day": 365.0, "日": 365.0, "天": 365.0, "h": 8760.0}
_SCALE = {"万": 1e4, "10^4": 1e4, "10⁴": 1e4, "10k": 1e4, "k": 1e3, "M": 1e6}
_NAMES = {"吨": "t", "重量箱": "weight_box", "平方米": "m2"}


def annual_capacity(value: float, unit: str) -> tuple[float, str] | None:
    """``value`` in ``unit`` (``t/d``, ``t/a``, ``万t/a``, ``10^4 t/a``, ``weight_box/d``)
    as a yearly capacity (``t/a``, ``weight_box/a``): per day x 365 (calendar days; the
    shares of one area do not depend on the factor as long as every unit gets the same),
    None when the unit is not understood."""
    numerator, sep, per = unit.replace(" ", "").partition("/")
    if not sep or per.lower() not in _PER:
        return None
    scale = 1.0
    for prefix, factor in _SCALE.items():
        if numerator.startswith(prefix) and len(numerator) > len(prefix):
            rest = numerator[len(prefix):]
            if prefix in ("k", "M") and rest != "t":
                continue  # only kt, Mt
            scale, numerator = factor, rest
            break
    return value * scale * _PER[per.lower()], f"{_NAMES.get(numerator, numerator)}/a"


def area_kpis(results: Iterable[UnitResult]) -> list[AreaKpi]:
    """Regional KPIs per catalogue entry over already computed unit results (DESIGN rule 6):
    shares of ALL registered capacity (normalised to a yearly unit) at benchmark, below
    benchmark, below baseline and unknown (not judged); units per status; plants with a
    flagged unit; mean completeness."""
    groups: dict[str, list[UnitResult]] = defaultdict(list)
    for r in results:
        if r.catalogue_key:
            groups[r.catalogue_key].append(r)
    kpis = []
    for key in sorted(groups):
        items = groups[key]
        normal = [(r, annual_capacity(r.design_capacity, r.capacity_unit)) for r in items]
        # one yearly unit per entry (t/a); a unit in another one (m2/a beside t/a) or in a
        # unit not understood is listed, not added
        totals: dict[str, float] = defaultdict(float)
        for _, n in normal:
            if n is not None:
                totals[n[1]] += n[0]
        # the unit most capacity is registered in (t/a first on a tie, then by name)
        unit = min(totals, key=lambda u: (-totals[u], u != "t/a", u)) if totals else ""
        capacity: dict[Status, float] = defaultdict(float)
        left_out: list[str] = []
        for r, n in normal:
            if n is None or n[1] != unit:
                left_out.append(f"{r.plant}/{r.unit} ({r.capacity_unit})")
            else:
                capacity[r.status] += n[0]
        total = sum(capacity.values())

        def share(*statuses: Status, cap: Mapping[Status, float] = capacity,
                  total: float = total) -> float:
            return sum(cap.get(s, 0.0) for s in statuses) / total if total else 0.0

        counts: dict[str, int] = defaultdict(int)
        for r in items:
            counts[str(r.status)] += 1
        kpis.append(AreaKpi(
            catalogue_key=key, units=len(items),
            capacity_unit=unit,
            capacity_total=total,
            share_capacity_at_benchmark=share(Status.AT_BENCHMARK),
            share_capacity_below_benchmark=share(Status.BELOW_BENCHMARK),
            share_capacity_below_baseline=share(Status.BELOW_BASELINE),
            share_capacity_unknown=share(*(s for s in Status if s not in JUDGED)),
            counts=dict(counts),
            plants_below_benchmark=sorted({r.plant for r in items if r.status in FLAGGED}),
            completeness=sum(r.completeness for r in items) / len(items),
            capacity_not_normalised=left_out,
        ))
    return kpis

