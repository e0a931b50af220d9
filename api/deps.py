"""Dependencies of the routes, as ``Annotated`` aliases.

``DbDep`` is the one most routes need: it authenticates the bearer token, applies the rate
limit, opens the request transaction with the principal's scope and yields a :class:`Db`. The
objects named in a path are then resolved with :func:`plant_in_scope`, :func:`unit_in_scope`
and :func:`meter_in_scope`, which answer 404 for anything outside the scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api import queries
from api.auth import Principal, authenticate, bearer_token
from api.config import ApiConfig
from api.db import Database
from api.metrics import ApiMetrics
from api.problems import Problem, not_found
from api.queries import MeterRow, PlantRow, UnitRow
from api.ratelimit import RateLimiter, retry_after
from benchmarks.catalogue import Catalogue
from core.settings import Settings


@dataclass
class AppState:
    """Everything the lifespan builds; lives on ``app.state.api``."""

    settings: Settings
    config: ApiConfig
    database: Database
    catalogue: Catalogue
    tz: ZoneInfo
    metrics: ApiMetrics
    limiter: RateLimiter
    anonymous_limiter: RateLimiter
    pipeline: object | None = None          # ingest.IngestPipeline when push is enabled
    default_edition: int | None = None
    extra_registries: list[object] = field(default_factory=list)


def get_state(request: Request) -> AppState:
    state = getattr(request.app.state, "api", None)
    if state is None:  # only before the lifespan has run (or after it failed)
        raise Problem(503, "not-ready", "the API is not connected to its database yet; retry "
                      "in a few seconds", headers={"Retry-After": "5"})
    return state


StateDep = Annotated[AppState, Depends(get_state)]

bearer = HTTPBearer(auto_error=False, description="An energymon API token: `Authorization: "
                    "Bearer emk_...` (`energymon token create`).")


@dataclass
class Db:
    """The request's database transaction and who it runs for."""

    conn: psycopg.Connection
    principal: Principal
    state: AppState

    @property
    def config(self) -> ApiConfig:
        return self.state.config


def _client(request: Request) -> str:
    return f"addr:{request.client.host if request.client else 'unknown'}"


def _limited(state: AppState, seconds: float, kind: str) -> Problem:
    state.metrics.rate_limited.labels(kind).inc()
    return Problem(429, "rate-limited",
                   f"too many requests: wait {retry_after(seconds)} s (limit "
                   f"{state.limiter.rate:g} requests/s per token, bursts of "
                   f"{state.limiter.burst})", headers={"Retry-After": retry_after(seconds)})


def _auth_failed(state: AppState, request: Request, problem: Problem) -> Problem:
    state.metrics.auth_failures.inc()
    wait = state.anonymous_limiter.acquire(_client(request))
    if wait is not None:
        return _limited(state, wait, "anonymous")
    return problem


def get_db(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
           ) -> Iterator[Db]:
    state = get_state(request)
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    try:
        secret = bearer_token(header)
    except Problem as problem:
        raise _auth_failed(state, request, problem) from None
    with state.database.connection() as conn:
        try:
            principal = authenticate(conn, secret,
                                     statement_timeout_ms=state.config.statement_timeout_ms,
                                     timezone=str(state.tz))
        except Problem as problem:
            raise _auth_failed(state, request, problem) from None
        wait = state.limiter.acquire(principal.key)
        if wait is not None:
            raise _limited(state, wait, "token")
        request.state.principal = principal
        yield Db(conn, principal, state)


DbDep = Annotated[Db, Depends(get_db)]


# -- objects named in paths ------------------------------------------------------------------
def plant_in_scope(db: Db, code: str) -> PlantRow:
    row = queries.plant(db.conn, code)  # row-level security already hides other plants
    if row is None or not db.principal.sees_plant(row.pk):
        raise not_found(f"plant {code!r}")
    return row


def unit_in_scope(db: Db, plant: PlantRow, code: str) -> UnitRow:
    row = queries.unit(db.conn, plant.pk, code)
    if row is None or not db.principal.sees_plant(row.plant_pk):
        raise not_found(f"production unit {code!r} of plant {plant.id!r}")
    return row


def meter_in_scope(db: Db, plant: PlantRow, code: str) -> MeterRow:
    row = queries.meter(db.conn, plant.pk, code)
    if row is None or not db.principal.sees_plant(row.plant_pk):
        raise not_found(f"meter {code!r} of plant {plant.id!r}")
    return row


def region_in_scope(db: Db, code: str) -> tuple[str, str, str, str | None]:
    """A region the principal may see aggregates of: its scope region's subtree, or any for a
    principal that sees all plants. Plant tokens see no regional aggregates."""
    p = db.principal
    if p.scope_plant is not None:
        raise Problem(403, "forbidden", "regional figures are for regulator, auditor and admin "
                      "tokens; a plant token sees its own plant under /plants/{plant}")
    row = queries.region(db.conn, code)
    if row is None or (p.scope_region is not None
                       and not queries.region_within(db.conn, code, p.scope_region)):
        raise not_found(f"region {code!r}")
    return row
