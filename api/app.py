"""The FastAPI application factory: ``create_app(settings) -> FastAPI``.

Nothing is created at import time. The lifespan opens the database pool (role
``energymon_api``), reads the calendar time zone, loads the benchmark catalogue and, unless
disabled, starts the ingest pipeline used by the readings push; all of it lives on
``app.state.api`` (:class:`api.deps.AppState`) and is closed at shutdown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import problems
from api.config import ApiConfig
from api.db import Database
from api.deps import AppState
from api.metrics import ApiMetrics
from api.ratelimit import RateLimiter, Slots
from api.routes import (
    declared,
    energy,
    health,
    history,
    intensity,
    readings,
    registry,
    status,
)
from benchmarks.catalogue import Catalogue
from core.settings import IngestSettings, Settings
from ingest import IngestConfig, IngestPipeline
from ingest.writer import DeadLetterLimits
from storage.meta import calendar_timezone

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1"

_DESCRIPTION = """\
Energy, intensity and verdicts of key energy-using units (重点用能单位) for plants, regulators
and auditors.

**Authentication.** Every `/api/v1` endpoint needs `Authorization: Bearer emk_…`, a token an
operator creates with `energymon token create --role ROLE [--plant ID | --region CODE]`.
Roles: **plant** (its own plant; may push readings and declare its production, calorific
values, meter replacements, multipliers and grid factors), **regulator** (every plant of a
region subtree, read only), **auditor** (a region subtree or everything, read only), **admin**
(everything, registry writes, declared data of any plant).

**Scope.** An object outside the token's scope answers **404**, exactly like a missing one,
so a token never learns which other plants exist. Under the API, PostgreSQL row-level security
applies the same scope to every query.

**Errors** are RFC 9457 problem documents (`application/problem+json`) whose `detail` says what
to do. **Rate limit**: {rate_limit}

**Units**: every numeric field's schema states its unit (description and `x-unit`). Periods
and day/month buckets follow the local calendar (Asia/Shanghai by default): a day is
00:00–24:00 local.

{limits}
"""


def _count(n: int) -> str:
    """``1000``, ``10 000``, ``5 000 000``: digits grouped by spaces from five digits on."""
    return str(n) if n < 10_000 else f"{n:,}".replace(",", " ")


def _bytes(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size and n % size == 0:
            return f"{_count(n // size)} {unit}"
    return f"{_count(n)} bytes"


def describe(config: ApiConfig) -> str:
    """The OpenAPI description, quoting the limits ``config`` enforces (so what is documented
    is what is enforced)."""
    default = config == ApiConfig()
    if config.rate_per_second > 0:
        rate_limit = (f"per token ({'default ' if default else ''}"
                      f"{config.rate_per_second:g} requests/s, bursts of {config.rate_burst}); "
                      "beyond it 429 with\n`Retry-After`.")
    else:
        rate_limit = "none (disabled on this server)."
    which = "defaults" if default else "this server's"
    limits = (
        f"**Limits** ({which}, `ENERGYMON_API_*`): list pages ≤ {config.page_max} items; "
        f"history JSON pages ≤ {_count(config.history_json_max_rows)}\nrows (follow `next`); "
        f"CSV downloads ≤ {_count(config.csv_max_rows)} rows (streamed); "
        f"XLSX ≤ {_count(config.xlsx_max_rows)}; "
        f"Parquet ≤\n{_count(config.parquet_max_rows)}; a push ≤ "
        f"{_bytes(config.push_max_bytes)}. A download that could exceed its limit is refused "
        "up front (422\n`export-too-large`).")
    return _DESCRIPTION.format(rate_limit=rate_limit, limits=limits)


# units of the numbers in the wire payloads (core.payload models, shared with MQTT)
PAYLOAD_UNITS = {
    "BatchPayload": {"v": "1", "seq": "1", "epoch": "1", "held_from": "1", "dropped": "1"},
    "WireReading": {"value": "the meter's eng_unit (register value, before the multiplier)"},
    "SingleReadingPayload": {
        "value": "the meter's eng_unit (register value, before the multiplier)"},
}


class MetricsMiddleware:
    """Counts requests and time to first byte per route template (bounded label values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: AppState | None = getattr(scope["app"].state, "api", None)
        if state is None:
            await self.app(scope, receive, send)
            return
        metrics = state.metrics
        started = time.perf_counter()
        status = [500]

        def label() -> str:
            """The route template (bounded cardinality), with the API prefix."""
            path = getattr(scope.get("route"), "path", None)
            if path is None:
                return "unmatched"
            if scope["path"].startswith(API_PREFIX) and not path.startswith(API_PREFIX):
                path = API_PREFIX + path  # included routers report their own path
            return str(path)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                metrics.latency.labels(label()).observe(time.perf_counter() - started)
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            metrics.in_flight.dec()
            metrics.requests.labels(label(), scope["method"], str(status[0])).inc()


def _start_pipeline(url: str, config: ApiConfig, ingest: IngestSettings) -> IngestPipeline:
    pipeline = IngestPipeline.for_database(
        url, config=IngestConfig(max_payload_bytes=config.push_max_bytes,
                                 dead_letters=DeadLetterLimits.from_settings(ingest)))
    return pipeline.start(registry_timeout=30)


def create_app(settings: Settings, config: ApiConfig | None = None, *,
               database_url: str | None = None) -> FastAPI:
    """The API for ``settings``: its ``api`` section unless ``config`` is given, on
    ``database_url`` (or the settings' URL). The composition root resolves the URL (and
    starts an embedded server where none is configured); the API never does."""
    config = config or settings.api
    url = database_url or settings.database_url
    if url is None:
        raise ValueError("create_app needs a database URL (the caller resolves it: "
                         "app.runtime.database_url)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = Database(url, config)
        database.open()
        pipeline = None
        try:
            with database.connection() as conn:
                tz = ZoneInfo(calendar_timezone(conn))
            metrics = ApiMetrics()
            state = AppState(
                settings=settings, config=config, database=database,
                catalogue=Catalogue.load(), tz=tz, metrics=metrics,
                limiter=RateLimiter(config.rate_per_second, config.rate_burst),
                anonymous_limiter=RateLimiter(config.anonymous_rate_per_second,
                                              config.rate_burst),
                default_edition=settings.catalogue_edition,
                exports=Slots(config.exports_at_once, config.exports_at_once_per_token),
            )
            if config.push_enabled:
                pipeline = _start_pipeline(url, config, settings.ingest)
                state.pipeline = pipeline
                state.extra_registries.append(pipeline.metrics.registry)
            app.state.api = state
            yield
        finally:
            if pipeline is not None:
                pipeline.close(timeout=10)
            database.close()

    app = FastAPI(
        title="energymon API", version="1.0.0", description=describe(config),
        lifespan=lifespan,
        contact={"name": "energymon operators"},
        license_info={"name": "Apache-2.0", "identifier": "Apache-2.0"},
        openapi_tags=[
            {"name": "registry", "description": "Plants, production units, meters."},
            {"name": "readings", "description": "Readings push over HTTP."},
            {"name": "status", "description": "Latest values and meter status."},
            {"name": "energy", "description": "Energy by period and energy type."},
            {"name": "intensity", "description": "Intensity, verdicts, flagged units, KPIs."},
            {"name": "history", "description": "History and exports for audits."},
            {"name": "declared", "description": "Declared data: production records, "
             "measured calorific values, meter replacements, multiplier changes, plant grid "
             "factors (written by plant and admin tokens, audited)."},
            {"name": "health", "description": "Liveness, readiness, metrics."},
        ],
    )
    problems.install(app)
    app.add_middleware(MetricsMiddleware)

    for module in (registry, readings, status, energy, intensity, history, declared):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(health.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes,
                             tags=app.openapi_tags, contact=app.contact,
                             license_info=app.license_info)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (*readings.PAYLOAD_MODELS, *registry.BODY_MODELS):
            payload = TypeAdapter(model).json_schema(
                ref_template="#/components/schemas/{model}")
            components.update(payload.pop("$defs", {}))
            components[model.__name__] = payload
        for name, units in PAYLOAD_UNITS.items():
            for prop, unit in units.items():
                field = components.get(name, {}).get("properties", {}).get(prop)
                if field is not None:
                    field["x-unit"] = unit
                    field["description"] = (field.get("description", "") +
                                            f" Unit: {unit}.").strip()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    return app
