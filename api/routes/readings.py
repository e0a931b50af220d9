"""Readings push over HTTP, for plants without MQTT: the same payloads, validation and writer
as MQTT ingest (:class:`ingest.IngestPipeline`).

``POST /plants/{plant}/readings`` takes exactly what a plant would publish on
``plants/{plant}/readings`` (a gateway batch or a single reading, JSON). The plant is the one
in the path, which must be the token's own plant (or any plant for an admin token); a payload
never names its plant. The body is validated per reading; what is rejected is kept in
``dead_letters`` with its raw bytes and reason, and listed in the answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from api import schemas
from api.deps import Db, db_route, plant_in_scope
from api.problems import Problem, responses
from api.routes._common import raw_body
from core.contract import CODE_PATTERN
from core.payload import BatchPayload, SingleReadingPayload
from ingest import Backpressure, Outcome, PipelineClosed

router = APIRouter(tags=["readings"])


_BODY_SCHEMA = {
    "required": True,
    "content": {"application/json": {
        "schema": {"anyOf": [{"$ref": "#/components/schemas/BatchPayload"},
                             {"$ref": "#/components/schemas/SingleReadingPayload"}]},
        "examples": {
            "batch": {"summary": "A gateway batch", "value": {
                "v": 1, "gateway": "gw-1", "seq": 1842,
                "sent_at": "2026-11-20T10:15:02+08:00",
                "readings": [{"meter": "cu-elec", "ts": "2026-11-20T10:15:00+08:00",
                              "value": 123456.7, "quality": "good"}]}},
            "single": {"summary": "One reading", "value": {
                "meter": "cu-elec", "ts": "2026-11-20T10:15:00+08:00", "value": 123456.7}},
        }}},
}


@router.post(
    "/plants/{plant}/readings", response_model=schemas.PushReceipt,
    responses={**responses(401, 403, 404, 413, 415, 422, 429, 503),
               202: {"model": schemas.PushReceipt,
                     "description": "Validated and queued; not yet committed."}},
    openapi_extra={"requestBody": _BODY_SCHEMA},
    summary="Push readings (plants without MQTT)",
)
@db_route
def push_readings(
    db: Db, plant: Annotated[str, Path(pattern=CODE_PATTERN, description="Plant code.",
                                          examples=["jx-yujiang-copper"])],
    body: Annotated[bytes, Depends(raw_body)], response: Response,
) -> schemas.PushReceipt:
    p = plant_in_scope(db, plant)
    if not db.principal.may_push(p.pk):
        raise Problem(403, "forbidden", f"a {db.principal.role.value} token may read plant "
                      f"{plant!r} but not push its readings; use the plant's own token")
    pipeline = db.state.pipeline
    if pipeline is None:
        raise Problem(503, "push-disabled", "readings push is disabled on this API server "
                      "(ENERGYMON_API_PUSH_ENABLED=false); publish over MQTT instead",
                      headers={"Retry-After": "60"})
    db.conn.commit()  # nothing to keep open while the writer works

    wait = db.config.push_wait_seconds
    try:
        receipt = pipeline.submit(p.id, body, f"http:/api/v1/plants/{p.id}/readings",
                                  timeout=wait)
    except Backpressure:
        raise Problem(503, "ingest-busy", "the ingest queue is full; retry this push later",
                      headers={"Retry-After": "5"}) from None
    except PipelineClosed:
        raise Problem(503, "ingest-closed", "the API is shutting down; retry this push",
                      headers={"Retry-After": "5"}) from None
    outcome = receipt.wait(wait)
    rejected = [schemas.PushRejection(reason_code=r.reason_code.value, reason=r.reason)
                for r in receipt.rejected]
    if outcome is Outcome.ABANDONED:
        raise Problem(503, "not-stored", "the readings could not be stored (database "
                      "unavailable); retry this push", headers={"Retry-After": "5"})
    if receipt.accepted == 0 and rejected:
        raise Problem(422, "readings-rejected",
                      f"no reading was accepted: {rejected[0].reason_code}: "
                      f"{rejected[0].reason}" + (f" (and {len(rejected) - 1} more)"
                                                 if len(rejected) > 1 else "")
                      + "; the payload is kept in dead_letters",
                      rejected=[r.model_dump() for r in rejected])
    if outcome is None:
        response.status_code = 202
    state = {Outcome.COMMITTED: "committed", Outcome.SET_ASIDE: "set_aside"}.get(
        outcome, "queued") if outcome is not None else "queued"
    return schemas.PushReceipt(plant=p.id, accepted=receipt.accepted, rejected=rejected,
                               outcome=state, received_at=receipt.received_at)


# referenced by the request body schema above
PAYLOAD_MODELS = (BatchPayload, SingleReadingPayload)
