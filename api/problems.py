"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns is a :class:`Problem`: ``type`` (a stable URN naming the kind of
problem), ``title``, ``status``, ``detail`` (a sentence a person can act on) and ``instance``
(the request path). Validation problems add ``errors`` (where and what).

Authorisation: an object outside the caller's scope answers **404 not-found**, exactly like an
object that does not exist, so a token never learns which other plants, units or meters exist
(OWASP API1). 403 is used only when the object is in scope but the role may not do the action
(e.g. an auditor writing), which leaks nothing.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:energymon:problem:"

_TITLES = {
    400: "Bad request", 401: "Authentication required", 403: "Not allowed",
    404: "Not found", 405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
    413: "Request too large", 415: "Unsupported media type", 422: "Invalid request",
    429: "Too many requests", 500: "Internal error", 503: "Service unavailable",
}


class ProblemDetail(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"examples": [{
            "type": "urn:energymon:problem:not-found", "title": "Not found", "status": 404,
            "detail": "plant 'jx-yujiang-cement' not found (or not in this token's scope)",
            "instance": "/api/v1/plants/jx-yujiang-cement"}]},
    )

    type: str = Field(description="URN naming the kind of problem, e.g. "
                      "urn:energymon:problem:not-found.")
    title: str = Field(description="Short summary of the kind of problem.")
    status: int = Field(description="HTTP status code. Unit: none (an HTTP status code).",
                        json_schema_extra={"x-unit": "1"})
    detail: str = Field(description="What went wrong and what to do about it.")
    instance: str | None = Field(default=None, description="The request path.")


class Problem(Exception):
    """Raise to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, *,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def not_found(what: str) -> Problem:
    return Problem(404, "not-found", f"{what} not found (or not in this token's scope)")


def problem_response(request: Request, status: int, code: str, detail: str, *,
                     headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code, "title": _TITLES.get(status, "Error"), "status": status,
        "detail": detail, "instance": request.url.path, **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _code_for(status: int) -> str:
    return {401: "unauthenticated", 403: "forbidden", 404: "not-found",
            405: "method-not-allowed", 406: "not-acceptable", 413: "too-large",
            415: "unsupported-media-type", 429: "rate-limited"}.get(status, f"http-{status}")


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header", "body", "cookie"):
        return f"{parts[0]} parameter {'.'.join(parts[1:]) or '(body)'}"
    return ".".join(parts)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(request, exc.status, exc.code, exc.detail,
                                headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"location": _location(e.get("loc", ())), "message": e.get("msg", "")}
                  for e in exc.errors()]
        first = errors[0] if errors else {"location": "request", "message": "invalid"}
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        return problem_response(request, 422, "invalid-request",
                                f"{first['location']}: {first['message']}{more}",
                                errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code,
                                                                             "Error")
        if exc.status_code == 404 and detail == "Not Found":
            detail = (f"no such endpoint: {request.method} {request.url.path} "
                      "(see /docs for the API)")
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(request, exc.status_code, _code_for(exc.status_code), detail,
                                headers=dict(exc.headers or {}))

    @app.exception_handler(psycopg.OperationalError)
    async def _db_down(request: Request, exc: psycopg.OperationalError) -> JSONResponse:
        if isinstance(exc, psycopg.errors.QueryCanceled):  # statement_timeout
            return problem_response(request, 503, "query-timeout",
                                    "the query took longer than the statement timeout; narrow "
                                    "the range or choose a coarser resolution",
                                    headers={"Retry-After": "1"})
        log.warning("database unavailable for %s: %s", request.url.path, str(exc).strip())
        return problem_response(request, 503, "database-unavailable",
                                "the database is not reachable right now; retry in a few "
                                "seconds", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        ref = uuid.uuid4().hex[:12]
        log.exception("internal error %s on %s %s", ref, request.method, request.url.path)
        return problem_response(request, 500, "internal-error",
                                f"an internal error occurred (reference {ref}); it was logged "
                                "for the operators", reference=ref)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the problem statuses a route can answer."""
    described = {
        400: "Bad request.",
        401: "No token, or a token that is invalid, revoked or expired.",
        403: "The object is in scope but this role may not do this.",
        404: "No such object, or not in this token's scope (the two are indistinguishable).",
        409: "Conflicts with the registry (e.g. a USCC of another plant).",
        413: "Request body too large.",
        422: "Invalid parameters or body; `errors` lists each problem.",
        429: "Rate limited; retry after `Retry-After` seconds.",
        503: "Database or ingest queue unavailable; retry after `Retry-After` seconds.",
    }
    return {code: {"description": described.get(code, _TITLES.get(code, "Error")),
                   "model": ProblemDetail,
                   "content": {PROBLEM_JSON: {"schema": {"$ref":
                                                         "#/components/schemas/ProblemDetail"}}}}
            for code in codes}


READ = (401, 404, 422, 429, 503)
