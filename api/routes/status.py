"""Latest values and meter status: online, last seen, completeness over a window; the plant's
gateway streams (what ingest has committed of each collector, gaps, drops)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated

from fastapi import APIRouter, Query

from api import queries, schemas
from api.deps import Db, db_route, meter_in_scope, plant_in_scope
from api.problems import READ, Problem, responses
from api.routes._common import instant
from api.routes.registry import MeterCode, PlantCode

router = APIRouter(tags=["status"])

ONLINE_INTERVALS = 3  # a meter is online when a reading arrived within 3 of its intervals
FromQuery = Annotated[str | None, Query(
    alias="from", description="Start of the completeness window: a date (local midnight) or "
    "ISO 8601 with offset. Default: 24 h before `to`.", max_length=40)]
ToQuery = Annotated[str | None, Query(
    alias="to", description="End of the window (exclusive). Default: now.", max_length=40)]


def _window(db: Db, start: str | None, end: str | None) -> tuple[datetime, datetime,
                                                                     datetime]:
    now = datetime.now(UTC)
    tz = db.state.tz
    hi = instant(end, tz, "to") if end else now
    lo = instant(start, tz, "from") if start else hi - timedelta(hours=24)
    if lo >= hi:
        raise Problem(422, "invalid-request", "query parameter from: must be before `to`")
    if hi - lo > timedelta(days=366):
        raise Problem(422, "invalid-request", "the completeness window may span at most 366 "
                      "days")
    return lo, hi, now


def _status(row: queries.MeterStatusRow, lo: datetime, hi: datetime, now: datetime,
            tz: tzinfo) -> schemas.MeterStatus:
    start = max(lo, row.installed_at) if row.installed_at else lo
    expected = max(0.0, (min(hi, now) - start).total_seconds() / row.interval_s)
    online = (row.last_seen is not None
              and now - row.last_seen <= timedelta(seconds=ONLINE_INTERVALS * row.interval_s))
    return schemas.MeterStatus(
        meter=row.meter, unit=row.unit, energy_type=row.energy_type, kind=row.kind,
        eng_unit=row.eng_unit, online=online,
        last_seen=row.last_seen.astimezone(tz) if row.last_seen else None,
        last_value=row.last_value,
        last_quality=queries.QUALITY.get(row.last_quality) if row.last_quality is not None
        else None,
        interval_s=row.interval_s, received=row.received, expected=expected,
        completeness=min(1.0, row.received / expected) if expected > 0 else 0.0)


@router.get("/plants/{plant}/status", response_model=schemas.PlantStatus,
            responses=responses(*READ),
            summary="Latest value, online state and completeness of every meter of a plant")
@db_route
def plant_status(db: Db, plant: PlantCode, start: FromQuery = None, end: ToQuery = None
                 ) -> schemas.PlantStatus:
    p = plant_in_scope(db, plant)
    lo, hi, now = _window(db, start, end)
    tz = db.state.tz
    meters = [_status(r, lo, hi, now, tz)
              for r in queries.meter_status(db.conn, p.pk, since=lo, until=hi)]
    return schemas.PlantStatus(plant=p.id, window_from=lo.astimezone(tz),
                               window_to=hi.astimezone(tz), now=now.astimezone(tz),
                               meters_online=sum(m.online for m in meters), meters=meters)


@router.get("/plants/{plant}/meters/{meter}/status", response_model=schemas.MeterStatus,
            responses=responses(*READ), summary="Latest value and status of one meter")
@db_route
def meter_status(db: Db, plant: PlantCode, meter: MeterCode, start: FromQuery = None,
                 end: ToQuery = None) -> schemas.MeterStatus:
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    lo, hi, now = _window(db, start, end)
    (row,) = queries.meter_status(db.conn, p.pk, since=lo, until=hi, meter_pk=m.pk)
    return _status(row, lo, hi, now, db.state.tz)


@router.get("/plants/{plant}/gateways", response_model=schemas.GatewayStreams,
            responses=responses(*READ),
            summary="The plant's collector gateways as ingest sees them: acknowledged, gaps, "
            "redeliveries and the spool's own drops")
@db_route
def plant_gateways(db: Db, plant: PlantCode) -> schemas.GatewayStreams:
    p = plant_in_scope(db, plant)
    tz = db.state.tz
    streams = [schemas.GatewayStream(
        gateway=r.gateway, epoch=r.epoch, acked_seq=r.acked_seq, max_seq=r.max_seq,
        gap=r.gap_since is not None,
        gap_since=r.gap_since.astimezone(tz) if r.gap_since else None,
        committed_batches=r.committed_batches, redeliveries=r.redeliveries,
        skipped_batches=r.skipped_batches, dropped_readings=r.dropped_readings,
        first_seen=r.first_seen.astimezone(tz), last_commit_at=r.last_commit_at.astimezone(tz))
        for r in queries.gateway_streams(db.conn, p.pk)]
    return schemas.GatewayStreams(plant=p.id, streams=streams,
                                  open_gaps=sum(s.gap for s in streams))
