"""Registry: regions, plants, production units and meters.

Reads: every role, within its scope. Writes (PUT, create or replace): admin only, validated
exactly like a fleet file (``fleet`` models and ``fleet.checks.cross_check``), so the API
cannot store what ``energymon check-config`` would refuse, and written by the registry's one
upsert (:mod:`fleet.registry`, the same as ``energymon registry load``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api import queries, schemas
from api.db import set_scope
from api.deps import Db, db_route, meter_in_scope, plant_in_scope, unit_in_scope
from api.problems import READ, Problem, not_found, responses
from api.routes._common import (
    LimitQuery,
    OffsetQuery,
    check_limit,
    page_links,
    parse_body,
    raw_body,
    request_body_doc,
)
from core.contract import CODE_PATTERN
from fleet import FleetError, parse_fleet
from fleet.checks import cross_check
from fleet.registry import upsert_meter, upsert_plant, upsert_unit

router = APIRouter(tags=["registry"])

PlantCode = Annotated[str, Path(pattern=CODE_PATTERN, description="Plant code.",
                                examples=["jx-yujiang-cement"])]
UnitCode = Annotated[str, Path(pattern=CODE_PATTERN, description="Production unit code.",
                               examples=["kiln-1"])]
MeterCode = Annotated[str, Path(pattern=CODE_PATTERN, description="Meter code.",
                                examples=["k1-elec"])]


def plant_out(row: queries.PlantRow) -> schemas.Plant:
    return schemas.Plant(id=row.id, uscc=row.uscc, name=row.name, region=row.region,
                         region_name=row.region_name, industry=row.industry,
                         energy_class=row.energy_class, annual_energy_tce=row.annual_energy_tce,
                         key_unit=row.key_unit, timezone=row.timezone, units=row.units,
                         meters=row.meters, updated_at=row.updated_at)


def unit_out(row: queries.UnitRow) -> schemas.ProductionUnit:
    return schemas.ProductionUnit(
        plant=row.plant, id=row.id, name=row.name, catalogue_key=row.catalogue_key,
        catalogue_edition=row.catalogue_edition, product=row.product,
        product_unit=row.product_unit, design_capacity=row.design_capacity,
        capacity_unit=row.capacity_unit, meters=row.meters, updated_at=row.updated_at)


def meter_out(row: queries.MeterRow) -> schemas.Meter:
    return schemas.Meter(
        plant=row.plant, id=row.id, name=row.name, unit=row.unit, energy_type=row.energy_type,
        kind=row.kind, eng_unit=row.eng_unit, multiplier=row.multiplier,
        direction=row.direction, rollover_max=row.rollover_max, model=row.model,
        interval_s=row.interval_s, installed_at=row.installed_at, removed_at=row.removed_at,
        updated_at=row.updated_at)


# -- reads -------------------------------------------------------------------------------------
@router.get("/regions", response_model=schemas.Page[schemas.Region],
            responses=responses(401, 422, 429, 503),
            summary="Administrative regions (GB/T 2260), reference data")
@db_route
def list_regions(db: Db, request: Request, response: Response, limit: LimitQuery = 100,
                 offset: OffsetQuery = 0) -> schemas.Page[schemas.Region]:
    check_limit(limit, db.config.page_max)
    rows, total = queries.regions(db.conn, limit=limit, offset=offset)
    data = [schemas.Region(code=c, name=n, level=lv, parent=p) for c, n, lv, p in rows]
    return schemas.Page[schemas.Region](
        data=data, count=total, limit=limit, offset=offset,
        next=page_links(request, response, count=total, limit=limit, offset=offset))


@router.get("/plants", response_model=schemas.Page[schemas.Plant], responses=responses(*READ),
            summary="Plants in this token's scope")
@db_route
def list_plants(
    db: Db, request: Request, response: Response,
    region: Annotated[str | None, Query(pattern=r"^[0-9]{6}$", description="Only plants in "
                                        "this region's subtree (GB/T 2260 code).")] = None,
    limit: LimitQuery = 100, offset: OffsetQuery = 0,
) -> schemas.Page[schemas.Plant]:
    check_limit(limit, db.config.page_max)
    rows, total = queries.plants(db.conn, region=region, limit=limit, offset=offset)
    rows = [r for r in rows if db.principal.sees_plant(r.pk)]  # RLS did this already
    return schemas.Page[schemas.Plant](
        data=[plant_out(r) for r in rows], count=total, limit=limit, offset=offset,
        next=page_links(request, response, count=total, limit=limit, offset=offset))


@router.get("/plants/{plant}", response_model=schemas.Plant, responses=responses(*READ),
            summary="One plant")
@db_route
def get_plant(db: Db, plant: PlantCode) -> schemas.Plant:
    return plant_out(plant_in_scope(db, plant))


@router.get("/plants/{plant}/units", response_model=schemas.Page[schemas.ProductionUnit],
            responses=responses(*READ), summary="Production units of a plant")
@db_route
def list_units(db: Db, plant: PlantCode, request: Request, response: Response,
               limit: LimitQuery = 100, offset: OffsetQuery = 0
               ) -> schemas.Page[schemas.ProductionUnit]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    rows, total = queries.units(db.conn, p.pk, limit=limit, offset=offset)
    return schemas.Page[schemas.ProductionUnit](
        data=[unit_out(r) for r in rows], count=total, limit=limit, offset=offset,
        next=page_links(request, response, count=total, limit=limit, offset=offset))


@router.get("/plants/{plant}/units/{unit}", response_model=schemas.ProductionUnit,
            responses=responses(*READ), summary="One production unit")
@db_route
def get_unit(db: Db, plant: PlantCode, unit: UnitCode) -> schemas.ProductionUnit:
    p = plant_in_scope(db, plant)
    return unit_out(unit_in_scope(db, p, unit))


@router.get("/plants/{plant}/meters", response_model=schemas.Page[schemas.Meter],
            responses=responses(*READ), summary="Meters of a plant")
@db_route
def list_meters(
    db: Db, plant: PlantCode, request: Request, response: Response,
    unit: Annotated[str | None, Query(pattern=CODE_PATTERN,
                                      description="Only the meters of this unit.")] = None,
    limit: LimitQuery = 100, offset: OffsetQuery = 0,
) -> schemas.Page[schemas.Meter]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    unit_pk = unit_in_scope(db, p, unit).pk if unit is not None else None
    rows, total = queries.meters(db.conn, p.pk, unit_pk=unit_pk, limit=limit, offset=offset)
    return schemas.Page[schemas.Meter](
        data=[meter_out(r) for r in rows], count=total, limit=limit, offset=offset,
        next=page_links(request, response, count=total, limit=limit, offset=offset))


@router.get("/plants/{plant}/meters/{meter}", response_model=schemas.Meter,
            responses=responses(*READ), summary="One meter")
@db_route
def get_meter(db: Db, plant: PlantCode, meter: MeterCode) -> schemas.Meter:
    p = plant_in_scope(db, plant)
    return meter_out(meter_in_scope(db, p, meter))


# -- writes (admin) ------------------------------------------------------------------------------
def _require_admin(db: Db, plant: str) -> None:
    """Registry writes are for admin tokens. Another token learns nothing new from the answer:
    404 for a plant outside its scope (existing or not), 403 for its own plant(s)."""
    if not db.principal.may_write_registry:
        plant_in_scope(db, plant)
        raise Problem(403, "forbidden", f"registry writes need an admin token; this "
                      f"{db.principal.role.value} token is read-only for the registry")


def _validate(db: Db, region: str, plant: dict[str, Any]) -> None:
    """Validate one plant as a fleet file would be (models + catalogue cross-checks)."""
    chain = queries.region_chain(db.conn, region)
    if not chain:
        raise Problem(422, "invalid-request", f"body field region: {region!r} is not a "
                      "registered region (load it with `energymon registry load`)")
    data = {"fleet": "api", "regions": [
        {"code": c, "name": n, "level": lv, **({"parent": p} if p else {})}
        for c, n, lv, p in chain], "plants": [plant]}
    try:
        fleet = parse_fleet(data, "request body")
    except FleetError as exc:
        raise Problem(422, "invalid-registry-object", "; ".join(exc.problems),
                      errors=[{"location": "body", "message": m} for m in exc.problems]
                      ) from None
    problems = cross_check(fleet)
    if problems:
        raise Problem(422, "invalid-registry-object", "; ".join(problems),
                      errors=[{"location": "body", "message": m} for m in problems])


def _plant_dict(row: queries.PlantRow, **override: Any) -> dict[str, Any]:
    base = {"id": row.id, "uscc": row.uscc, "name": row.name, "region": row.region,
            "industry": row.industry, "energy_class": row.energy_class,
            "annual_energy_tce": row.annual_energy_tce, "key_unit": row.key_unit,
            "timezone": row.timezone}
    return {**base, **override}


def _unit_dict(row: queries.UnitRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "catalogue": row.catalogue_key,
            "edition": row.catalogue_edition, "product": row.product,
            "product_unit": row.product_unit, "design_capacity": row.design_capacity,
            "capacity_unit": row.capacity_unit}


WRITE = (401, 403, 404, 409, 413, 415, 422, 429, 503)


# the body of a registry write, read only after a well-formed bearer token (401 first,
# security review L3) and within the push size limit (413)
RawBody = Annotated[bytes, Depends(raw_body)]
#: the bodies of the registry writes, documented in the OpenAPI components (api.app)
BODY_MODELS = (schemas.PlantWrite, schemas.UnitWrite, schemas.MeterWrite)


def created(model: type) -> dict[int | str, dict[str, Any]]:
    return {201: {"model": model, "description": "Created (200: replaced)."}}


@router.put("/plants/{plant}", response_model=schemas.Plant,
            responses={**responses(*WRITE), **created(schemas.Plant)},
            openapi_extra=request_body_doc(schemas.PlantWrite, ref=True),
            summary="Create or replace a plant (admin)")
@db_route
def put_plant(db: Db, plant: PlantCode, raw: RawBody, response: Response
              ) -> schemas.Plant:
    _require_admin(db, plant)
    body = parse_body(schemas.PlantWrite, raw)
    fields = body.model_dump(mode="json")
    fields["timezone"] = fields["timezone"] or "Asia/Shanghai"
    _validate(db, body.region, {"id": plant, **{k: v for k, v in fields.items()
                                                if v is not None}})
    owner = queries.uscc_owner(db.conn, body.uscc.upper())
    if owner is not None and owner != plant:
        raise Problem(409, "conflict", f"USCC {body.uscc} already belongs to plant {owner!r}")
    created = upsert_plant(
        db.conn, code=plant, uscc=body.uscc.upper(), name=body.name, region=body.region,
        industry=body.industry, energy_class=body.energy_class,
        annual_energy_tce=body.annual_energy_tce, key_unit=body.key_unit,
        timezone=fields["timezone"]).inserted
    response.status_code = 201 if created else 200
    _refresh_ingest(db)
    row = queries.plant(db.conn, plant)
    assert row is not None
    return plant_out(row)


@router.put("/plants/{plant}/units/{unit}", response_model=schemas.ProductionUnit,
            responses={**responses(*WRITE), **created(schemas.ProductionUnit)},
            openapi_extra=request_body_doc(schemas.UnitWrite, ref=True),
            summary="Create or replace a production unit (admin)")
@db_route
def put_unit(db: Db, plant: PlantCode, unit: UnitCode, raw: RawBody,
             response: Response) -> schemas.ProductionUnit:
    _require_admin(db, plant)
    p = plant_in_scope(db, plant)
    body = parse_body(schemas.UnitWrite, raw)
    unit_data = {"id": unit, **{k: v for k, v in body.model_dump(mode="json").items()
                                if v is not None}}
    _validate(db, p.region, {**_plant_dict(p), "units": [unit_data]})
    created = upsert_unit(
        db.conn, plant_pk=p.pk, code=unit, name=body.name, catalogue=body.catalogue,
        edition=body.edition, product=body.product, product_unit=body.product_unit,
        design_capacity=body.design_capacity, capacity_unit=body.capacity_unit).inserted
    response.status_code = 201 if created else 200
    row = queries.unit(db.conn, p.pk, unit)
    assert row is not None
    return unit_out(row)


@router.put("/plants/{plant}/meters/{meter}", response_model=schemas.Meter,
            responses={**responses(*WRITE), **created(schemas.Meter)},
            openapi_extra=request_body_doc(schemas.MeterWrite, ref=True),
            summary="Create or replace a meter (admin)")
@db_route
def put_meter(db: Db, plant: PlantCode, meter: MeterCode, raw: RawBody,
              response: Response) -> schemas.Meter:
    _require_admin(db, plant)
    p = plant_in_scope(db, plant)
    body = parse_body(schemas.MeterWrite, raw)
    unit_pk = None
    if body.unit is not None:
        unit_row = queries.unit(db.conn, p.pk, body.unit)
        if unit_row is None:
            raise not_found(f"production unit {body.unit!r} of plant {plant!r}")
        unit_pk = unit_row.pk
    all_units, _ = queries.units(db.conn, p.pk, limit=100_000, offset=0)
    meter_data = {"id": meter, **{k: v for k, v in body.model_dump(mode="json").items()
                                  if v is not None}}
    _validate(db, p.region, {**_plant_dict(p), "units": [_unit_dict(u) for u in all_units],
                             "meters": [meter_data]})
    created = upsert_meter(
        db.conn, plant_pk=p.pk, unit_pk=unit_pk, code=meter, name=body.name,
        energy_type=body.energy_type, kind=body.kind, eng_unit=body.eng_unit,
        multiplier=body.multiplier, direction=body.direction, rollover_max=body.rollover_max,
        model=body.model, interval_s=body.interval_s, installed_at=body.installed_at,
        removed_at=body.removed_at,
        actor=db.principal.actor).inserted
    response.status_code = 201 if created else 200
    _refresh_ingest(db)
    row = queries.meter(db.conn, p.pk, meter)
    assert row is not None
    return meter_out(row)


def _refresh_ingest(db: Db) -> None:
    """New plants and meters are known to the push path right after the commit (its registry
    cache also reloads on a miss, at most every few seconds)."""
    pipeline = db.state.pipeline
    if pipeline is None:
        return
    db.conn.commit()  # the cache reads over its own connection
    # the scope was transaction-local
    set_scope(db.conn, db.principal, db.config.statement_timeout_ms, str(db.state.tz))
    pipeline.registry.refresh()
