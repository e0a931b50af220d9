"""Liveness, readiness and Prometheus metrics (no token needed; bind the API privately)."""

from __future__ import annotations

import logging

import psycopg
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import queries, schemas
from api.deps import StateDep
from api.problems import Problem
from storage.meta import Backend
from storage.migrate import available_migrations

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.get("/health", response_model=schemas.Health, summary="Liveness: the process answers")
async def health() -> schemas.Health:  # no I/O: answered on the event loop
    return schemas.Health(status="ok")


@router.get("/ready", response_model=schemas.Readiness,
            responses={503: {"model": schemas.Readiness,
                             "description": "Database unreachable or schema not migrated."}},
            summary="Readiness: database reachable and schema migrated")
def ready(state: StateDep, response: Response) -> schemas.Readiness:
    try:
        with state.database.connection() as conn:
            backend_row = conn.execute(
                "SELECT value FROM energymon_meta WHERE key = 'backend'").fetchone()
            latest, applied = queries.schema_version(conn)
    except (psycopg.Error, OSError) as exc:
        # the error names hosts and ports: it goes to the server log, not to anonymous
        # callers (security review L4)
        log.warning("readiness: the database is unreachable: %s",
                    str(exc).strip() or type(exc).__name__)
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return schemas.Readiness(status="not_ready", database="unreachable",
                                 schema_version=None, pending_migrations=[],
                                 detail="the database is unreachable (the server log says why)")

    backend = Backend(backend_row[0]) if backend_row else Backend.POSTGRES
    pending = [f"{m.version:04d}_{m.name}" for m in available_migrations(backend)
               if m.version not in set(applied)]
    if pending:
        response.status_code = 503
        return schemas.Readiness(status="not_ready", database="reachable",
                                 schema_version=latest, pending_migrations=pending,
                                 detail="run `energymon migrate`")
    return schemas.Readiness(status="ready", database="reachable", schema_version=latest,
                             pending_migrations=[])


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format."}})
def metrics(state: StateDep, request: Request) -> Response:
    if not state.config.metrics_public:
        raise Problem(404, "not-found", "metrics are not served on this address")
    pool = state.database.pool.get_stats()
    state.metrics.pool_size.set(pool.get("pool_size", 0))
    state.metrics.pool_available.set(pool.get("pool_available", 0))
    state.metrics.pool_waiting.set(pool.get("requests_waiting", 0))
    body = generate_latest(state.metrics.registry)
    for registry in state.extra_registries:
        body += generate_latest(registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
