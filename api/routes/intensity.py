"""Intensity and verdicts per unit and plant, flagged units, regional KPIs.

Every number comes from :func:`accounting.verdicts.unit_results` and
:func:`accounting.verdicts.area_kpis`, the code behind ``energymon verdicts``: the API adds
scope, filters and pagination, never its own arithmetic (tce = kgce / 1000 aside).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from accounting.judge import Reason
from accounting.periods import Period
from accounting.verdicts import UnitResult, area_kpis, unit_results
from api import schemas
from api.deps import Db, db_route, plant_in_scope, region_in_scope, unit_in_scope
from api.problems import READ, Problem, responses
from api.routes._common import (
    LimitQuery,
    OffsetQuery,
    PeriodQuery,
    check_limit,
    page_links,
    period_of,
)
from api.routes.registry import PlantCode, UnitCode
from benchmarks.evaluate import FLAGGED, Status

router = APIRouter(tags=["intensity"])

STATUSES: tuple[Status, ...] = tuple(Status)
EditionQuery = Annotated[int | None, Query(
    ge=2021, le=2100, description="Catalogue edition to judge against (default: the server's "
    "configured edition, else the newest with values; a unit's pinned edition wins).")]
RegionCode = Annotated[str, Path(pattern=r"^[0-9]{6}$", description="GB/T 2260 region code.",
                                 examples=["360000"])]


def _reason(r: Reason) -> schemas.VerdictReason:
    return schemas.VerdictReason(code=r.code, message=r.message, meter=r.meter, value=r.value,
                                 limit=r.limit, days=list(r.days), day_count=r.day_count)


def unit_out(r: UnitResult) -> schemas.UnitIntensity:
    return schemas.UnitIntensity(
        plant=r.plant, plant_name=r.plant_name, region=r.region, unit=r.unit,
        period=r.period.label, catalogue_key=r.catalogue_key, status=r.status,
        intensity=r.intensity,
        intensity_unit=r.intensity_unit, benchmark=r.benchmark, baseline=r.baseline,
        gap_to_benchmark_pct=r.gap_to_benchmark_pct,
        saving_potential_tce=r.saving_potential_tce, output=r.output,
        output_unit=r.output_unit, energy_kgce=r.energy_kgce,
        energy_tce=r.energy_kgce / 1000.0, electricity_kwh=r.electricity_kwh,
        co2_kg=r.co2_kg, carbon_intensity=r.carbon_intensity,
        estimated_share=r.estimated_share, estimated_output_share=r.estimated_output_share,
        completeness=r.completeness, output_source=r.output_source,
        metered_output=r.metered_output, declared_output=r.declared_output,
        declared_prorated=r.declared_prorated,
        reasons=[_reason(x) for x in r.reasons], warnings=[_reason(x) for x in r.warnings],
        meters=[schemas.MeterData(
            meter=m.meter, kind=m.kind, role=m.role,
            expected=m.expected, received=m.received, completeness=m.completeness,
            days=m.days, complete_days=m.complete_days,
            incomplete_days=list(m.incomplete_days), estimated_share=m.estimated_share,
            conversion_issues=list(m.conversion_issues)) for m in r.meters],
        design_capacity=r.design_capacity, capacity_unit=r.capacity_unit,
        provenance=schemas.Provenance(catalogue_version=r.catalogue_version,
                                      edition=r.edition,
                                      factor_versions=list(r.factor_versions),
                                      catalogue_confidence=r.catalogue_confidence,
                                      catalogue_source=r.catalogue_source))


def _results(db: Db, period_spec: str, *, plant: str | None = None,
             region: str | None = None, edition: int | None = None
             ) -> tuple[Period, list[UnitResult]]:
    """The parsed period and the results of the units in scope."""
    period = period_of(period_spec, db.state.tz)
    # the application's scope check (row-level security repeats it under the query)
    principal = db.principal
    if principal.scope_plant is not None:
        if plant is not None and plant != principal.scope_plant:
            return period, []
        plant = principal.scope_plant
    if region is None and principal.scope_region is not None:
        region = principal.scope_region
    return period, unit_results(db.conn, period, region=region, plant=plant,
                                catalogue=db.state.catalogue,
                                edition=edition, default_edition=db.state.default_edition,
                                rules=db.state.settings.verdicts)


def _plant_payload(plant: str, period: str, results: list[UnitResult]
                   ) -> schemas.PlantIntensity:
    return schemas.PlantIntensity(
        plant=plant, period=period, units=[unit_out(r) for r in results],
        energy_kgce=sum(r.energy_kgce for r in results),
        saving_potential_tce=sum(r.saving_potential_tce or 0.0 for r in results
                                 if r.status in FLAGGED),
        flagged_units=sum(r.status in FLAGGED for r in results))


@router.get("/plants/{plant}/intensity", response_model=schemas.PlantIntensity,
            responses=responses(*READ),
            summary="Intensity of every unit of a plant vs benchmark and baseline")
@db_route
def plant_intensity(db: Db, plant: PlantCode, period: PeriodQuery,
                    edition: EditionQuery = None) -> schemas.PlantIntensity:
    p = plant_in_scope(db, plant)
    parsed, results = _results(db, period, plant=p.id, edition=edition)
    return _plant_payload(p.id, parsed.label, results)


@router.get("/plants/{plant}/units/{unit}/intensity", response_model=schemas.UnitIntensity,
            responses=responses(*READ),
            summary="Intensity of one unit vs benchmark and baseline, with provenance")
@db_route
def unit_intensity(db: Db, plant: PlantCode, unit: UnitCode, period: PeriodQuery,
                   edition: EditionQuery = None) -> schemas.UnitIntensity:
    p = plant_in_scope(db, plant)
    u = unit_in_scope(db, p, unit)
    _, results = _results(db, period, plant=p.id, edition=edition)
    results = [r for r in results if r.unit == u.id]
    if not results:  # a unit without meters has no result row
        raise Problem(404, "no-data", f"production unit {unit!r} has no meters, so no "
                      "intensity can be computed")
    return unit_out(results[0])


@router.get("/flagged", response_model=schemas.Page[schemas.UnitIntensity],
            responses=responses(*READ),
            summary="Units below benchmark or baseline, in this token's scope")
@db_route
def flagged_units(
    db: Db, request: Request, response: Response, period: PeriodQuery,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only plants in "
                                        "this region's subtree.")] = None,
    area: Annotated[str | None, Query(pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)?$",
                                      description="Catalogue area (`cement`) or key "
                                      "(`cement/clinker`).")] = None,
    status: Annotated[list[str] | None, Query(description="Statuses to list (repeatable); "
                                              "default below_benchmark and below_baseline. "
                                              f"One of {', '.join(STATUSES)}.")] = None,
    edition: EditionQuery = None, limit: LimitQuery = 100, offset: OffsetQuery = 0,
) -> schemas.Page[schemas.UnitIntensity]:
    check_limit(limit, db.config.page_max)
    wanted: tuple[str, ...] = tuple(status) if status else FLAGGED
    bad = [s for s in wanted if s not in STATUSES]
    if bad:
        raise Problem(422, "invalid-request", f"query parameter status: {bad[0]!r} is not one "
                      f"of {', '.join(STATUSES)}")
    if region is not None and db.principal.scope_plant is None:
        region_in_scope(db, region)
    _, results = _results(db, period, region=region, edition=edition)
    if area is not None:
        results = [r for r in results if r.catalogue_key is not None and (
            r.catalogue_key == area or r.catalogue_key.split("/")[0] == area)]
    results = [r for r in results if r.status in wanted]
    results.sort(key=lambda r: (-(r.saving_potential_tce or 0.0), r.plant, r.unit))
    page = results[offset: offset + limit]
    return schemas.Page[schemas.UnitIntensity](
        data=[unit_out(r) for r in page], count=len(results), limit=limit, offset=offset,
        next=page_links(request, response, count=len(results), limit=limit, offset=offset))


@router.get("/regions/{region}/kpis", response_model=schemas.RegionKpis,
            responses=responses(401, 403, 404, 422, 429, 503),
            summary="Regional summary KPIs per catalogue area (regulators, auditors, admin)")
@db_route
def region_kpis(
    db: Db, region: RegionCode, period: PeriodQuery,
    area: Annotated[str | None, Query(pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)?$",
                                      description="Catalogue area or key.")] = None,
    edition: EditionQuery = None,
) -> schemas.RegionKpis:
    code, name, _level, _parent = region_in_scope(db, region)
    parsed, results = _results(db, period, region=code, edition=edition)
    if area is not None:
        results = [r for r in results if r.catalogue_key is not None and (
            r.catalogue_key == area or r.catalogue_key.split("/")[0] == area)]
    flagged = [r for r in results if r.status in FLAGGED]
    return schemas.RegionKpis(
        region=code, region_name=name, period=parsed.label,
        plants=len({r.plant for r in results}), units=len(results),
        flagged_units=len(flagged),
        saving_potential_tce=sum(r.saving_potential_tce or 0.0 for r in flagged),
        energy_tce=sum(r.energy_kgce for r in results) / 1000.0,
        co2_t=(None if any(r.co2_kg is None for r in results)
               else sum(r.co2_kg or 0.0 for r in results) / 1000.0),
        completeness=(sum(r.completeness for r in results) / len(results)) if results else 0.0,
        areas=[schemas.AreaKpi(**k.__dict__) for k in area_kpis(results)])
