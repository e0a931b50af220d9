"""History for audits: any meter, unit or plant, any range, at 15 min / hour / day / month
(and raw readings for a meter), as JSON pages or CSV / XLSX / Parquet downloads.

Sources: ``energy_intervals`` (15 min), ``energy_by_meter_{hour,day,month}`` (local calendar),
``readings`` (raw). A bucket is included when its start lies in ``[from, to)``.

Limits (``ENERGYMON_API_*``, see :class:`api.config.ApiConfig`):

- JSON: pages of at most ``history_json_max_rows`` rows (default 10 000); ``next`` resumes
  at the first bucket not on the page (keyset, so deep pages cost the same as the first);
- CSV: streamed from a server-side cursor, at most ``csv_max_rows`` (default 5 000 000);
- XLSX: at most ``xlsx_max_rows`` (default 200 000); Parquet: ``parquet_max_rows``
  (default 2 000 000); both are written by a worker process (:mod:`api.export_worker`) to an
  unlinked file in ``export_dir`` in bounded memory (Parquet row groups of 65 536 rows,
  openpyxl's write-only sheets), at most
  ``exports_at_once`` at a time (``exports_at_once_per_token`` per token), then sent from
  the file with the connection already given back.

A download is refused *before* any work with 422 ``export-too-large`` when the range can
hold more rows than the limit (buckets in the range x series; raw: counted up to the limit).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, tzinfo
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, Response

from api import export_worker, exports, queries, schemas
from api.deps import (
    Db,
    DbStream,
    FileStream,
    db_route,
    meter_in_scope,
    plant_in_scope,
    unit_in_scope,
)
from api.problems import READ, Problem, responses
from api.routes._common import instant
from api.routes.registry import MeterCode, PlantCode, UnitCode

router = APIRouter(tags=["history"])

Resolution = Literal["raw", "15min", "hour", "day", "month"]
Format = Literal["json", "csv", "xlsx", "parquet"]
FromQuery = Annotated[str, Query(alias="from", max_length=40, examples=["2026-10-01"],
                                 description="Start: a date (local midnight) or ISO 8601 with "
                                 "offset.")]
ToQuery = Annotated[str, Query(alias="to", max_length=40, examples=["2026-11-01"],
                               description="End (exclusive): a date or ISO 8601 with offset.")]
ResolutionQuery = Annotated[Resolution, Query(
    description="15min (intervals), hour, day or month (local calendar rollups); raw = "
    "stored readings, meters only.")]
FormatQuery = Annotated[Format, Query(
    description="json (paged) or a download: csv (streamed), xlsx, parquet.")]
LimitQuery = Annotated[int, Query(ge=1, description="JSON page size (at most "
                                  "history_json_max_rows, default 10 000).")]

_DOWNLOAD: dict[int | str, dict[str, Any]] = {
    200: {"description": "History rows; a download for format=csv|xlsx|parquet.",
          "content": {"text/csv": {"schema": {"type": "string"}},
                      exports.MEDIA["xlsx"]: {"schema": {"type": "string", "format": "binary"}},
                      exports.MEDIA["parquet"]: {"schema": {"type": "string",
                                                            "format": "binary"}}}}}


def _buckets(start: datetime, end: datetime, resolution: str, tz: tzinfo) -> int:
    seconds = (end - start).total_seconds()
    if resolution == "15min":
        return math.ceil(seconds / 900) + 1
    if resolution == "hour":
        return math.ceil(seconds / 3600) + 1
    if resolution == "day":
        return math.ceil(seconds / 86400) + 2
    a, b = start.astimezone(tz), end.astimezone(tz)
    return (b.year - a.year) * 12 + (b.month - a.month) + 2


def _history(db: Db, request: Request, *, level: str, plant: queries.PlantRow,
             unit: queries.UnitRow | None, meter: queries.MeterRow | None, start_s: str,
             end_s: str, resolution: str, fmt: str, limit: int) -> object:
    tz = db.state.tz
    start, end = instant(start_s, tz, "from"), instant(end_s, tz, "to")
    if start >= end:
        raise Problem(422, "invalid-request", "query parameter from: must be before `to`")
    if resolution == "raw" and level != "meter":
        raise Problem(422, "invalid-request", "resolution raw (stored readings) is available "
                      "for a meter: /plants/{plant}/meters/{meter}/history")
    cfg = db.config

    def series() -> int:
        """Series in the range's buckets (a meter's are one; else counted)."""
        return 1 if level == "meter" else max(1, queries.series_count(
            db.conn, level=level, plant_pk=plant.pk, unit_pk=unit.pk if unit else None))

    meta = {"level": level, "plant": plant.id, "unit": unit.id if unit else None,
            "meter": meter.id if meter else None, "resolution": resolution,
            "from": start.astimezone(tz), "to": end.astimezone(tz), "timezone": str(tz)}
    args: dict[str, Any] = dict(level=level, resolution=resolution, plant_pk=plant.pk,
                unit_pk=unit.pk if unit else None, meter_pk=meter.pk if meter else None,
                start=start, end=end)
    if fmt == "json":
        if limit > cfg.history_json_max_rows:
            raise Problem(422, "invalid-request", f"query parameter limit: at most "
                          f"{cfg.history_json_max_rows} rows per JSON page (got {limit}); "
                          "follow `next`, or download csv")
        if limit < plant.meters:  # a page holds at least one whole bucket: each meter
            limit = max(limit, series())  # adds at most one series, so count only if needed
        query, params = queries.history_query(limit=limit + 1, **args)
        data, rows, boundary = queries.history_json_page(db.conn, query, params, limit)
        next_url = None if boundary is None else str(request.url.include_query_params(
            **{"from": boundary.astimezone(tz).isoformat()}))
        meta_json = schemas.HistoryMeta(columns=exports.COLUMN_UNITS, **meta).model_dump_json(
            by_alias=True)
        db.state.metrics.export_rows.labels("json").inc(rows)
        # the rows are rendered by queries.history_json_page (same fields as schemas.HistoryRow)
        body = b"".join((b'{"meta":', meta_json.encode(), b',"data":', data, b',"next":',
                         orjson.dumps(next_url), b"}"))
        return Response(body, media_type="application/json")
    bound = {"csv": cfg.csv_max_rows, "xlsx": cfg.xlsx_max_rows,
             "parquet": cfg.parquet_max_rows}[fmt]
    if resolution == "raw":
        query, params = queries.history_query(limit=bound + 1, **args)
        possible = queries.count_bounded(db.conn, query, params, bound)
        what = "readings"
    else:
        n_series = series()
        possible = _buckets(start, end, resolution, tz) * n_series
        what = f"{resolution} buckets x {n_series} series"
    if possible > bound:
        raise Problem(422, "export-too-large",
                      f"this range can hold up to {possible} rows ({what}); a {fmt} download "
                      f"holds at most {bound}: narrow the range, choose a coarser resolution"
                      + (", or use format=csv (streamed)" if fmt != "csv" else ""),
                      limit=bound, rows=possible)
    query, params = queries.history_query(limit=None, **args)
    name = "_".join(x for x in (plant.id, unit.id if unit else None,
                                meter.id if meter else None) if x)
    filename = (f"{name}_{resolution}_{start.astimezone(tz):%Y%m%d}-"
                f"{end.astimezone(tz):%Y%m%d}.{fmt}")
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    text_meta = {k: (v.isoformat() if isinstance(v, datetime) else str(v or ""))
                 for k, v in meta.items()}
    metric = db.state.metrics.export_rows.labels(fmt)
    if fmt == "csv":
        def stream() -> Iterator[bytes]:
            rows = -1  # the header line
            for block in queries.history_csv(db.conn, query, params):
                rows += block.count(b"\n")
                yield block
            metric.inc(max(rows, 0))

        return DbStream(stream(), write_timeout=db.config.stream_write_timeout,
                        media_type=exports.MEDIA["csv"], headers=headers)
    # XLSX and Parquet are built by a worker process (api.export_worker: the interpreter lock
    # and the memory stay out of this process) into an unlinked file, in bounded memory
    # (Parquet row groups, openpyxl's write-only sheets), a bounded number at once (security
    # review M2: three in-memory Parquet exports took 3.2 GB, one XLSX slowed other tenants
    # 30-fold); the connection and the slot are given back once the file is written
    slot = f"token:{db.principal.token_id}"
    if not db.state.exports.acquire(slot):
        raise Problem(429, "exports-busy",
                      f"{db.config.exports_at_once} {fmt} exports are running (at most "
                      f"{db.config.exports_at_once_per_token} per token); retry in a minute, "
                      "or use format=csv (streamed)", headers={"Retry-After": "30"})
    try:
        out = exports.spool_file(cfg.export_dir, fmt)
        try:
            if cfg.export_in_worker:
                job = {"format": fmt, "url": db.state.database.url, "db_role": cfg.db_role,
                       "secret": db.secret, "token_id": db.principal.token_id,
                       "statement_timeout_ms": cfg.statement_timeout_ms, "timezone": str(tz),
                       "nice": cfg.export_nice, "meta": text_meta,
                       "args": {**args, "start": start.isoformat(), "end": end.isoformat()}}
                n = export_worker.build(job, out, timeout=cfg.export_timeout)
            else:  # in this process (settings: api.export_in_worker)
                write = exports.write_xlsx if fmt == "xlsx" else exports.write_parquet
                n = write(queries.history_stream(db.conn, query, params), tz, text_meta, out)
        except BaseException:
            out.close()
            raise
    finally:
        db.state.exports.release(slot)
    metric.inc(n)
    return FileStream(out, write_timeout=db.config.stream_write_timeout,
                      media_type=exports.MEDIA[fmt], headers=headers)


@router.get("/plants/{plant}/history", response_model=schemas.History,
            responses={**_DOWNLOAD, **responses(*READ)},
            summary="History of a plant per energy type (JSON, CSV, XLSX, Parquet)")
@db_route
def plant_history(db: Db, request: Request, plant: PlantCode, start: FromQuery, end: ToQuery,
                  resolution: ResolutionQuery = "hour", format: FormatQuery = "json",
                  limit: LimitQuery = 1000) -> object:
    p = plant_in_scope(db, plant)
    return _history(db, request, level="plant", plant=p, unit=None, meter=None, start_s=start,
                    end_s=end, resolution=resolution, fmt=format, limit=limit)


@router.get("/plants/{plant}/units/{unit}/history", response_model=schemas.History,
            responses={**_DOWNLOAD, **responses(*READ)},
            summary="History of a production unit per energy type")
@db_route
def unit_history(db: Db, request: Request, plant: PlantCode, unit: UnitCode,
                 start: FromQuery, end: ToQuery, resolution: ResolutionQuery = "hour",
                 format: FormatQuery = "json", limit: LimitQuery = 1000) -> object:
    p = plant_in_scope(db, plant)
    u = unit_in_scope(db, p, unit)
    return _history(db, request, level="unit", plant=p, unit=u, meter=None, start_s=start,
                    end_s=end, resolution=resolution, fmt=format, limit=limit)


@router.get("/plants/{plant}/meters/{meter}/history", response_model=schemas.History,
            responses={**_DOWNLOAD, **responses(*READ)},
            summary="History of one meter (raw readings too)")
@db_route
def meter_history(db: Db, request: Request, plant: PlantCode, meter: MeterCode,
                  start: FromQuery, end: ToQuery, resolution: ResolutionQuery = "hour",
                  format: FormatQuery = "json", limit: LimitQuery = 1000) -> object:
    p = plant_in_scope(db, plant)
    m = meter_in_scope(db, p, meter)
    return _history(db, request, level="meter", plant=p, unit=None, meter=m, start_s=start,
                    end_s=end, resolution=resolution, fmt=format, limit=limit)

