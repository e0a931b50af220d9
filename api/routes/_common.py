"""Parameters and helpers shared by the routers: periods, time ranges, pagination, request
bodies read raw (after the token, see :func:`raw_body`)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Query, Request, Response
from pydantic import BaseModel, ValidationError

from accounting.periods import Period, parse_period
from api.auth import bearer_token
from api.problems import Problem
from core.contract import NaiveTimestampError, aware_datetime

PERIOD_DOC = ("Reporting period on the local calendar: a day `2026-10-05`, a month `2026-10`, "
              "a year `2026`, year to date `ytd:2026-10` or rolling twelve months "
              "`r12:2026-10`.")
PeriodQuery = Annotated[str, Query(description=PERIOD_DOC, examples=["2026-10"],
                                   min_length=4, max_length=16)]
LimitQuery = Annotated[int, Query(ge=1, description="Page size (at most the configured "
                                  "page_max, default 1000).")]
OffsetQuery = Annotated[int, Query(ge=0, le=10_000_000,
                                   description="Index of the first item to return.")]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def period_of(spec: str, tz: ZoneInfo) -> Period:
    try:
        period = parse_period(spec, tz)
    except ValueError as exc:
        raise Problem(422, "invalid-period", str(exc)) from None
    if not 1900 <= period.start.year <= 2200:
        raise Problem(422, "invalid-period", f"period {spec!r}: year outside 1900..2200")
    return period


def instant(value: str, tz: ZoneInfo, name: str) -> datetime:
    """A query-string instant: a date (local midnight) or ISO 8601 with a UTC offset."""
    text = value.strip()
    try:
        if _DATE.match(text):
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=tz)
        # 'Z' read as +00:00 (as before: '2026-10-01Z' is a time without offset here)
        parsed = aware_datetime(text.replace("Z", "+00:00"))
    except NaiveTimestampError:
        raise Problem(422, "invalid-request",
                      f"query parameter {name}: {value!r} has no UTC offset; write e.g. "
                      f"{text}+08:00, or a plain date for local midnight") from None
    except ValueError:
        raise Problem(422, "invalid-request",
                      f"query parameter {name}: {value!r} is neither a date (2026-10-01) nor "
                      "an ISO 8601 time with offset (2026-10-01T08:00:00+08:00)") from None
    if not 1900 <= parsed.year <= 2200:
        raise Problem(422, "invalid-request", f"query parameter {name}: year {parsed.year} is "
                      "outside 1900..2200")
    return parsed


def check_limit(limit: int, maximum: int, name: str = "limit") -> int:
    if limit > maximum:
        raise Problem(422, "invalid-request",
                      f"query parameter {name}: at most {maximum} (got {limit}); page with "
                      "offset/next instead")
    return limit


def page_links(request: Request, response: Response, *, count: int, limit: int,
               offset: int) -> str | None:
    """URL of the next page (also set as a Link header), or None on the last page."""
    if offset + limit >= count:
        return None
    url = str(request.url.include_query_params(offset=offset + limit, limit=limit))
    response.headers["Link"] = f'<{url}>; rel="next"'
    return url


M = TypeVar("M", bound=BaseModel)


def request_body_doc(model: type[BaseModel], *, ref: bool = False) -> dict[str, Any]:
    """The OpenAPI request body of a write whose body is read raw (see :func:`parse_body`);
    ``ref``: a reference to the model in the components (which the app's OpenAPI document
    then adds, see ``api.app``), else the schema inline."""
    schema = ({"$ref": f"#/components/schemas/{model.__name__}"} if ref
              else model.model_json_schema())
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": schema}}}}


def parse_body(model: type[M], raw: bytes) -> M:
    """The request body as ``model``, validated only once the token is checked, the plant
    (and meter) resolved in its scope and the role may write: without a token nothing is read
    (401), a plant outside the scope answers 404 and a read-only role 403 whatever the body
    holds. Problems as FastAPI's own 422 (``errors`` with ``body parameter <field>``)."""
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = [{"location": f"body parameter {'.'.join(str(p) for p in e['loc']) or '(body)'}",
                   "message": e["msg"]} for e in exc.errors()]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise Problem(422, "invalid-request",
                      f"{errors[0]['location']}: {errors[0]['message']}{more}",
                      errors=errors) from None


async def raw_body(request: Request) -> bytes:
    """The request body, refused with 413 beyond ``push_max_bytes`` (never read whole).

    Nothing is read for a request without a well-formed bearer token (401 first, security
    review L3: up to 1 MiB was buffered per unauthenticated request); the token itself is
    checked with the request's database transaction, as for every route."""
    bearer_token(request.headers.get("authorization"))
    limit = request.app.state.api.config.push_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too-large", f"the body has {declared} bytes; a request may carry "
                      f"at most {limit} bytes (readings: split them into several batches)")
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype not in ("application/json", ""):
        raise Problem(415, "unsupported-media-type", f"send the body as application/json "
                      f"(got {ctype!r})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "too-large", f"a request may carry at most {limit} bytes "
                          "(readings: split them into several batches)")
        chunks.append(chunk)
    return b"".join(chunks)
