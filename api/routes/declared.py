"""Declared data: production records, measured calorific values, meter replacements, CT x PT
multiplier changes and plant grid factors (issue 13).

Reads: every role, within its scope. Writes: a plant token for its own plant, an admin token
for any plant; regulators and auditors answer 403 (a plant outside the scope: 404, as
everywhere). Every write goes through :mod:`accounting.declared`, the same writer as
``energymon declare``: validated (422 naming the body field, 409 for an overlapping production
record), then written in the request's one transaction with its ``declared_input_log`` row
(actor ``token:<id> (<name>)``) and the recompute of the affected meters, queued through
``energymon_api_queue_recompute`` (the API role has no access to ``accounting_dirty``). Under
all of it, row-level security admits the writes only with ``energymon.scope_declare`` on and
for plants in scope (migration 0031).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from accounting.declared import (
    CalorificValue,
    Declared,
    DeclaredConflict,
    DeclaredInputError,
    DeclaredNotFound,
    GridFactor,
    MeterReplacement,
    MultiplierChange,
    ProductionRecord,
    QueuedRange,
    R,
    add_calorific_value,
    add_meter_replacement,
    add_multiplier_change,
    add_production_record,
    calorific_values,
    grid_factors,
    meter_replacements,
    multiplier_changes,
    production_records,
    queue_via_api,
    set_grid_factor,
)
from api import schemas
from api.deps import Db, db_route, meter_in_scope, plant_in_scope, unit_in_scope
from api.problems import READ, Problem, responses
from api.routes._common import (
    LimitQuery,
    OffsetQuery,
    check_limit,
    page_links,
    parse_body,
    raw_body,
    request_body_doc,
)
from api.routes.registry import MeterCode, PlantCode
from core.contract import CODE_PATTERN

router = APIRouter(tags=["declared"])

# The year is read as text and checked after the plant's scope, like the body (see _body):
# documented as the integer it must be.
Year = Annotated[str, Path(description="Local calendar year, 2000..2100.", examples=[2025],
                           json_schema_extra={"type": "integer", "minimum": 2000,
                                              "maximum": 2100})]
RawBody = Annotated[bytes, Depends(raw_body)]
WRITE = (401, 403, 404, 413, 415, 422, 429, 503)
_PATH_FIELDS = frozenset({"plant", "meter", "year"})
M = TypeVar("M", bound=BaseModel)
ReceiptT = TypeVar("ReceiptT", bound=BaseModel)
PageT = TypeVar("PageT", bound=BaseModel)


def _year(text: str) -> int:
    if re.fullmatch(r"[0-9]{4}", text, flags=re.ASCII):
        return int(text)
    raise Problem(422, "invalid-request", f"path parameter year: {text!r} is not a year "
                  "(2000..2100)", errors=[{"location": "path parameter year",
                                          "message": "not a whole year"}])


def _overlap() -> dict[int | str, dict[str, Any]]:
    """The 409 of production records: an overlapping record."""
    documented = responses(409)
    documented[409] = {**documented[409], "description": "Overlaps another production record "
                       "of the unit with a different period (declare exactly that period to "
                       "replace it)."}
    return documented


def _created(model: Any) -> dict[int | str, dict[str, Any]]:
    return {201: {"model": model, "description": "Stored (a new key)."},
            200: {"model": model, "description": "Replaced the record with the same key (its "
                  "old values are in `replaced` and in the audit log)."}}


# -- the write path ----------------------------------------------------------------------------
def _require_declare(db: Db) -> None:
    """After the plant (and meter) resolved in scope: 403 for roles that only read."""
    if not db.principal.may_declare:
        raise Problem(403, "forbidden", "declared data is written by the plant's own token or "
                      f"an admin token; this {db.principal.role.value} token reads it only")


def _location(field: str) -> str:
    return f"{'path' if field in _PATH_FIELDS else 'body'} parameter {field}"


def _write(db: Db, write: Callable[..., Declared[R]], **kwargs: Any) -> Declared[R]:
    """``write`` with the principal as actor and the API's recompute queue; its errors as
    problem documents naming the field."""
    actor = db.principal.actor
    try:
        return write(db.conn, actor=actor, queue=queue_via_api, **kwargs)
    except DeclaredInputError as exc:
        where = _location(exc.field)
        errors = [{"location": where, "message": str(exc)}]
        if isinstance(exc, DeclaredConflict):
            raise Problem(409, "conflict", str(exc), errors=errors) from None
        if isinstance(exc, DeclaredNotFound):
            raise Problem(404, "not-found", f"{exc} (or not in this token's scope)") from None
        raise Problem(422, "invalid-declared-data", f"{where}: {exc}", errors=errors) from None


def _ranges(queued: Sequence[QueuedRange]) -> list[schemas.RecomputeRange]:
    return [schemas.RecomputeRange(meter=r.meter, from_=r.start, to=r.end) for r in queued]


def _receipt(model: type[ReceiptT], out: Callable[[Any], Any], result: Declared[Any],
             response: Response) -> ReceiptT:
    """The answer to a write: 201 for a new row, 200 for a replaced one."""
    response.status_code = 201 if result.action == "insert" else 200
    return model(action=result.action, record=out(result.record),
                 replaced=out(result.old) if result.old else None,
                 recompute=_ranges(result.queued))


def _page(model: type[PageT], data: list[Any], total: int, limit: int, offset: int,
          request: Request, response: Response) -> PageT:
    return model(data=data, count=total, limit=limit, offset=offset,
                 next=page_links(request, response, count=total, limit=limit, offset=offset))


# -- record shapes -----------------------------------------------------------------------------
def production_out(r: ProductionRecord) -> schemas.ProductionRecord:
    return schemas.ProductionRecord(
        plant=r.plant, unit=r.unit, period_start=r.period_start, period_end=r.period_end,
        quantity=r.quantity, quantity_unit=r.quantity_unit, source=r.source,
        entered_by=r.entered_by, entered_at=r.entered_at)


def calorific_out(r: CalorificValue) -> schemas.CalorificValue:
    return schemas.CalorificValue(
        plant=r.plant, energy_type=r.energy_type, valid_from=r.valid_from,
        lhv_kj_per_unit=r.lhv_kj_per_unit, lhv_unit=r.per_unit, kgce_per_unit=r.kgce_per_unit,
        source=r.source, entered_by=r.entered_by, entered_at=r.entered_at)


def replacement_out(r: MeterReplacement) -> schemas.MeterReplacement:
    return schemas.MeterReplacement(
        plant=r.plant, meter=r.meter, ts=r.ts, old_final=r.old_final,
        new_initial=r.new_initial, eng_unit=r.eng_unit, note=r.note,
        entered_by=r.entered_by, entered_at=r.entered_at)


def multiplier_out(r: MultiplierChange) -> schemas.MeterMultiplier:
    return schemas.MeterMultiplier(
        plant=r.plant, meter=r.meter, valid_from=r.valid_from, multiplier=float(r.multiplier),
        source=r.source, entered_by=r.entered_by, entered_at=r.entered_at)


def grid_out(r: GridFactor) -> schemas.GridFactor:
    return schemas.GridFactor(plant=r.plant, year=r.year, kgco2_per_kwh=r.kgco2_per_kwh,
                              source=r.source, entered_by=r.entered_by,
                              entered_at=r.entered_at)


# -- production records ------------------------------------------------------------------------
@router.post("/plants/{plant}/production-records",
             response_model=schemas.DeclaredReceipt[schemas.ProductionRecord],
             status_code=201,
             responses={**responses(*WRITE), **_overlap(),
                        **_created(schemas.DeclaredReceipt[schemas.ProductionRecord])},
             openapi_extra=request_body_doc(schemas.ProductionRecordWrite),
             summary="Declare a unit's production over a period (plant, admin)")
@db_route
def post_production_record(db: Db, plant: PlantCode, raw: RawBody, response: Response
                           ) -> schemas.DeclaredReceipt[schemas.ProductionRecord]:
    """Statistical output of a production unit over a local-calendar day, month or year
    (`period`) or over `period_start` .. `period_end`, in the unit's product unit. A record
    overlapping another record of the unit answers 409, unless it has exactly the same
    period: then it replaces it. Nothing is recomputed: verdicts read the records directly
    (they count for units whose production meters have no data)."""
    p = plant_in_scope(db, plant)
    _require_declare(db)
    body = parse_body(schemas.ProductionRecordWrite, raw)
    result = _write(db, add_production_record, plant=p.id, unit=body.unit,
                    start=body.period_start, end=body.period_end, period=body.period,
                    quantity=body.quantity, quantity_unit=body.quantity_unit,
                    source=body.source)
    return _receipt(schemas.DeclaredReceipt[schemas.ProductionRecord], production_out, result,
                    response)


@router.get("/plants/{plant}/production-records",
            response_model=schemas.Page[schemas.ProductionRecord], responses=responses(*READ),
            summary="Declared production records of a plant")
@db_route
def get_production_records(
    db: Db, plant: PlantCode, request: Request, response: Response,
    unit: Annotated[str | None, Query(pattern=CODE_PATTERN,
                                      description="Only the records of this unit.")] = None,
    limit: LimitQuery = 100, offset: OffsetQuery = 0,
) -> schemas.Page[schemas.ProductionRecord]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    if unit is not None:
        unit_in_scope(db, p, unit)
    rows, total = production_records(db.conn, p.id, unit=unit, limit=limit, offset=offset)
    return _page(schemas.Page[schemas.ProductionRecord], [production_out(r) for r in rows], total,
                 limit, offset, request, response)


# -- measured calorific values -------------------------------------------------------------------
@router.post("/plants/{plant}/calorific-values",
             response_model=schemas.DeclaredReceipt[schemas.CalorificValue],
             status_code=201,
             responses={**responses(*WRITE),
                        **_created(schemas.DeclaredReceipt[schemas.CalorificValue])},
             openapi_extra=request_body_doc(schemas.CalorificValueWrite),
             summary="Declare a measured calorific value (plant, admin)")
@db_route
def post_calorific_value(db: Db, plant: PlantCode, raw: RawBody, response: Response
                         ) -> schemas.DeclaredReceipt[schemas.CalorificValue]:
    """A measured low calorific value of an energy type (kJ per the GB/T 2589 row's unit)
    from `valid_from` on; it replaces the table's default coefficient for the plant's meters
    of that type. Refused (422) for types the table does not know or converts by definition
    (electricity at the equivalent value, heat), and for implausible values. Queues the
    plant's meters of that type from `valid_from` to the next declared value (or on)."""
    p = plant_in_scope(db, plant)
    _require_declare(db)
    body = parse_body(schemas.CalorificValueWrite, raw)
    result = _write(db, add_calorific_value, plant=p.id, energy_type=body.energy_type,
                    valid_from=body.valid_from, lhv_kj_per_unit=body.lhv_kj_per_unit,
                    source=body.source)
    return _receipt(schemas.DeclaredReceipt[schemas.CalorificValue], calorific_out, result,
                    response)


@router.get("/plants/{plant}/calorific-values",
            response_model=schemas.Page[schemas.CalorificValue], responses=responses(*READ),
            summary="Measured calorific values of a plant")
@db_route
def get_calorific_values(
    db: Db, plant: PlantCode, request: Request, response: Response,
    energy_type: Annotated[str | None, Query(pattern=r"^[a-z0-9]+(?:_[a-z0-9]+)*$",
                                             max_length=64,
                                             description="Only this energy type.")] = None,
    limit: LimitQuery = 100, offset: OffsetQuery = 0,
) -> schemas.Page[schemas.CalorificValue]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    rows, total = calorific_values(db.conn, p.id, energy_type=energy_type, limit=limit,
                                   offset=offset)
    return _page(schemas.Page[schemas.CalorificValue], [calorific_out(r) for r in rows], total,
                 limit, offset, request, response)


# -- meter replacements ------------------------------------------------------------------------
@router.post("/plants/{plant}/meters/{meter}/replacements",
             response_model=schemas.DeclaredReceipt[schemas.MeterReplacement],
             status_code=201,
             responses={**responses(*WRITE),
                        **_created(schemas.DeclaredReceipt[schemas.MeterReplacement])},
             openapi_extra=request_body_doc(schemas.MeterReplacementWrite),
             summary="Declare a meter replacement or reset (plant, admin)")
@db_route
def post_meter_replacement(db: Db, plant: PlantCode, meter: MeterCode, raw: RawBody,
                           response: Response
                           ) -> schemas.DeclaredReceipt[schemas.MeterReplacement]:
    """The old register's final value and the new one's initial value at `ts` (counter and
    production meters only; 422 for interval and instantaneous meters). Queues the meter one
    day either side of `ts`."""
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    _require_declare(db)
    body = parse_body(schemas.MeterReplacementWrite, raw)
    result = _write(db, add_meter_replacement, plant=p.id, meter=m.id, ts=body.ts,
                    old_final=body.old_final, new_initial=body.new_initial, note=body.note)
    return _receipt(schemas.DeclaredReceipt[schemas.MeterReplacement], replacement_out, result,
                    response)


@router.get("/plants/{plant}/meters/{meter}/replacements",
            response_model=schemas.Page[schemas.MeterReplacement], responses=responses(*READ),
            summary="Declared replacements of a meter")
@db_route
def get_meter_replacements(db: Db, plant: PlantCode, meter: MeterCode, request: Request,
                           response: Response, limit: LimitQuery = 100,
                           offset: OffsetQuery = 0) -> schemas.Page[schemas.MeterReplacement]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    rows, total = meter_replacements(db.conn, p.id, meter=m.id, limit=limit, offset=offset)
    return _page(schemas.Page[schemas.MeterReplacement], [replacement_out(r) for r in rows], total,
                 limit, offset, request, response)


# -- CT x PT multiplier changes ------------------------------------------------------------------
@router.post("/plants/{plant}/meters/{meter}/multipliers",
             response_model=schemas.DeclaredReceipt[schemas.MeterMultiplier],
             status_code=201,
             responses={**responses(*WRITE),
                        **_created(schemas.DeclaredReceipt[schemas.MeterMultiplier])},
             openapi_extra=request_body_doc(schemas.MeterMultiplierWrite),
             summary="Declare a CT x PT multiplier change (plant, admin)")
@db_route
def post_multiplier_change(db: Db, plant: PlantCode, meter: MeterCode, raw: RawBody,
                           response: Response
                           ) -> schemas.DeclaredReceipt[schemas.MeterMultiplier]:
    """The meter's multiplier from `valid_from` on. The first change also keeps the
    registry's multiplier for all time before it (a row with `valid_from` null), so history
    is not rescaled; the meter's registry multiplier follows the one in force now. Queues the
    meter from `valid_from` to its next change (or on)."""
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    _require_declare(db)
    body = parse_body(schemas.MeterMultiplierWrite, raw)
    result = _write(db, add_multiplier_change, plant=p.id, meter=m.id,
                    valid_from=body.valid_from, multiplier=body.multiplier, source=body.source)
    return _receipt(schemas.DeclaredReceipt[schemas.MeterMultiplier], multiplier_out, result,
                    response)


@router.get("/plants/{plant}/meters/{meter}/multipliers",
            response_model=schemas.Page[schemas.MeterMultiplier], responses=responses(*READ),
            summary="Multiplier history of a meter")
@db_route
def get_multiplier_changes(db: Db, plant: PlantCode, meter: MeterCode, request: Request,
                           response: Response, limit: LimitQuery = 100,
                           offset: OffsetQuery = 0) -> schemas.Page[schemas.MeterMultiplier]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    rows, total = multiplier_changes(db.conn, p.id, meter=m.id, limit=limit, offset=offset)
    return _page(schemas.Page[schemas.MeterMultiplier], [multiplier_out(r) for r in rows], total,
                 limit, offset, request, response)


# -- plant grid factors ------------------------------------------------------------------------
@router.put("/plants/{plant}/grid-factors/{year}",
            response_model=schemas.DeclaredReceipt[schemas.GridFactor],
            responses={**responses(*WRITE),
                       **_created(schemas.DeclaredReceipt[schemas.GridFactor])},
            openapi_extra=request_body_doc(schemas.GridFactorWrite),
            summary="Set the plant's own grid emission factor for a year (plant, admin)")
@db_route
def put_grid_factor(db: Db, plant: PlantCode, year: Year, raw: RawBody, response: Response
                    ) -> schemas.DeclaredReceipt[schemas.GridFactor]:
    """The plant's purchased-electricity emission factor for a local calendar year (it holds
    for later years until the plant declares another one). Queues the plant's electricity
    meters from 1 January of `year` to the next year the plant declared (or on)."""
    p = plant_in_scope(db, plant)
    _require_declare(db)
    body = parse_body(schemas.GridFactorWrite, raw)
    result = _write(db, set_grid_factor, plant=p.id, year=_year(year),
                    kgco2_per_kwh=body.kgco2_per_kwh, source=body.source)
    return _receipt(schemas.DeclaredReceipt[schemas.GridFactor], grid_out, result,
                    response)


@router.get("/plants/{plant}/grid-factors", response_model=schemas.Page[schemas.GridFactor],
            responses=responses(*READ), summary="The plant's own grid emission factors")
@db_route
def get_grid_factors(db: Db, plant: PlantCode, request: Request, response: Response,
                     limit: LimitQuery = 100, offset: OffsetQuery = 0
                     ) -> schemas.Page[schemas.GridFactor]:
    check_limit(limit, db.config.page_max)
    p = plant_in_scope(db, plant)
    rows, total = grid_factors(db.conn, p.id, limit=limit, offset=offset)
    return _page(schemas.Page[schemas.GridFactor], [grid_out(r) for r in rows], total,
                 limit, offset, request, response)
