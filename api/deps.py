"""Dependencies of the routes, and :func:`db_route`, the way a route gets its database.

A route that reads or writes the store is a plain (synchronous) function whose first parameter
is ``db: Db``, decorated with :func:`db_route` under the router's decorator::

    @router.get("/plants/{plant}", response_model=schemas.Plant)
    @db_route
    def get_plant(db: Db, plant: PlantCode) -> schemas.Plant:
        return plant_out(plant_in_scope(db, plant))

:func:`db_route` serves the request in ONE worker-thread hop: take a pooled connection,
authenticate the bearer token (which opens the transaction with the principal's scope), apply
the rate limit, run the function, render its pydantic result to JSON, commit and give the
connection back. (FastAPI's own handling of a synchronous ``yield`` dependency and endpoint
costs four hops and a re-validation of the result; on a 2-core machine that was about 0.6 ms
of a 1.7 ms request.) The objects named in a path are then resolved with
:func:`plant_in_scope`, :func:`unit_in_scope` and :func:`meter_in_scope`, which answer 404 for
anything outside the scope.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Annotated, Any, BinaryIO, get_type_hints
from zoneinfo import ZoneInfo

import anyio
import psycopg
from fastapi import Depends, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.types import Message, Send

from api import queries
from api.auth import Principal, authenticate, bearer_token
from api.config import ApiConfig
from api.db import Database
from api.metrics import ApiMetrics
from api.problems import Problem, not_found
from api.queries import MeterRow, PlantRow, UnitRow
from api.ratelimit import RateLimiter, Slots, retry_after
from api.tokens import hash_secret
from benchmarks.catalogue import Catalogue
from core.settings import Settings
from ingest import IngestPipeline

log = logging.getLogger(__name__)


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
    exports: Slots                          # heavy exports at once (api.exports_at_once)
    pipeline: IngestPipeline | None = None  # when push is enabled
    default_edition: int | None = None
    extra_registries: list[CollectorRegistry] = field(default_factory=list)


def get_state(request: Request) -> AppState:
    state = getattr(request.app.state, "api", None)
    if state is None:  # only before the lifespan has run (or after it failed)
        raise Problem(503, "not-ready", "the API is not connected to its database yet; retry "
                      "in a few seconds", headers={"Retry-After": "5"})
    assert isinstance(state, AppState)
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
    secret: str = field(default="", repr=False)  # the request's token (export workers)

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


def _admitted(state: AppState, request: Request, secret: str) -> None:
    """The rate limits, consulted before any database work (security review L1): the
    token's own bucket (keyed by its hash, so even a valid token over its limit costs no
    lookup), and the client address's bucket of failed authentications, which sheds floods
    of made-up tokens once it is empty."""
    wait = state.anonymous_limiter.blocked(_client(request))
    if wait is not None:
        raise _limited(state, wait, "anonymous")
    wait = state.limiter.acquire("token:" + hash_secret(secret).hex())
    if wait is not None:
        raise _limited(state, wait, "token")


def _authenticated(state: AppState, request: Request, conn: psycopg.Connection,
                   secret: str) -> Principal:
    state.metrics.token_lookups.inc()
    try:
        return authenticate(conn, secret,
                            statement_timeout_ms=state.config.statement_timeout_ms,
                            timezone=str(state.tz))
    except Problem as problem:
        raise _auth_failed(state, request, problem) from None


def _render(result: object, sub_response: Response) -> Response:
    """The route's result as the response: a pydantic model as JSON (by alias, as FastAPI
    renders a ``response_model``), a :class:`Response` as it is; status code and headers set
    on the injected ``response`` parameter are carried over."""
    if isinstance(result, Response):
        response = result
    elif isinstance(result, BaseModel):
        response = Response(result.__pydantic_serializer__.to_json(result, by_alias=True),
                            media_type="application/json")
    else:
        raise TypeError(f"a db_route returned {type(result).__name__}; return a pydantic "
                        "model or a Response")
    if sub_response.status_code is not None:
        response.status_code = sub_response.status_code
    for name, value in sub_response.headers.items():
        if name != "content-length":
            response.headers.append(name, value)
    return response


class TimedStream(StreamingResponse):
    """A streamed download whose client must take each chunk within ``write_timeout`` seconds
    (a client that stalls longer is cut off), and whose :meth:`_close` runs in a worker thread
    however the body ends: complete, client gone mid-stream, or cut off."""

    def __init__(self, content: Iterator[bytes], *, write_timeout: float,
                 **kwargs: Any) -> None:
        self.write_timeout = write_timeout
        super().__init__(iterate_in_threadpool(content), **kwargs)

    async def stream_response(self, send: Send) -> None:
        async def timed(message: Message) -> None:
            with anyio.fail_after(self.write_timeout):
                await send(message)

        try:
            await super().stream_response(timed)
        except TimeoutError:
            log.warning("a streamed download stalled for %.0f s: cut off", self.write_timeout)
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(self._close)

    def _close(self) -> None:
        raise NotImplementedError


class DbStream(TimedStream):
    """A streamed body read from the request's database connection (a COPY, a server-side
    cursor): give the route the source iterator, and this response closes it and only then
    gives the connection back, in a worker thread, when the body ends, when the client goes
    away mid-stream, and when the client stops reading for ``write_timeout`` seconds.

    Closing the source first matters: psycopg holds the connection's lock for a whole COPY
    block, so a suspended generator would block the pool's rollback forever (security review
    H1); closing it cancels the COPY on the server and unwinds the block.
    """

    def __init__(self, source: Iterator[bytes], *, write_timeout: float,
                 **kwargs: Any) -> None:
        self.source = source
        self.release: Callable[[], None] | None = None   # set by db_route
        super().__init__(source, write_timeout=write_timeout, **kwargs)

    def _close(self) -> None:
        try:
            close = getattr(self.source, "close", None)
            if close is not None:
                close()
        finally:
            if self.release is not None:
                self.release()


class FileStream(TimedStream):
    """A download from a file the route has finished writing (an XLSX or Parquet export built
    in :func:`api.exports.spool_file`): the request's connection is committed and given back
    before the first byte is sent, the body goes out in ``chunk``-byte reads with its
    Content-Length, and the file is closed (and so gone: it was unlinked at creation) when the
    body ends, the client goes away, or stalls for ``write_timeout`` seconds."""

    def __init__(self, file: BinaryIO, *, write_timeout: float, chunk: int = 256 * 1024,
                 headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        self.file = file
        file.flush()
        size = os.fstat(file.fileno()).st_size
        file.seek(0)

        def chunks() -> Iterator[bytes]:
            while block := file.read(chunk):
                yield block

        super().__init__(chunks(), write_timeout=write_timeout,
                         headers={**(headers or {}), "Content-Length": str(size)}, **kwargs)

    def _close(self) -> None:
        self.file.close()


async def _release_after(body: AsyncIterable[Any], release: Callable[[], None]
                         ) -> AsyncIterator[Any]:
    """A streamed body that gives the request's connection back when it ends (also when the
    client goes away mid-stream)."""
    try:
        async for chunk in body:
            yield chunk
    finally:
        with anyio.CancelScope(shield=True):
            await run_in_threadpool(release)


def _serve(state: AppState, request: Request, secret: str, func: Callable[..., Any],
           kwargs: dict[str, Any], sub_response: Response) -> Response:
    """One request in one worker thread: connection, authentication + scope (one round trip),
    the route, rendering, commit."""
    _admitted(state, request, secret)
    with ExitStack() as stack:  # on an error: rolls back and returns the connection
        conn = stack.enter_context(state.database.connection())
        principal = _authenticated(state, request, conn, secret)
        response = _render(func(Db(conn, principal, state, secret), **kwargs),
                           sub_response)
        if isinstance(response, DbStream):  # closes its source, then gives conn back
            response.release = stack.pop_all().close
        elif isinstance(response, FileStream):  # written and closed: committed now
            pass
        elif isinstance(response, StreamingResponse):  # the body still reads from conn
            response.body_iterator = _release_after(response.body_iterator,
                                                    stack.pop_all().close)
    return response  # otherwise committed before the first byte is sent


_REQUEST = "energymon_request_"
_CREDENTIALS = "energymon_credentials_"
_RESPONSE = "energymon_response_"


def db_route(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ``func(db: Db, **params)`` into an endpoint served in one worker-thread hop (see
    the module docstring). ``func`` keeps its parameters (FastAPI reads them as before,
    including ``request: Request`` and ``response: Response``); ``db`` is supplied here."""
    hints = get_type_hints(func, include_extras=True)
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].name != "db":
        raise TypeError(f"{func.__qualname__}: a db_route takes db: Db first")
    own = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in params[1:]]
    names = {p.name for p in own}
    request_name = next((p.name for p in own if p.annotation is Request), _REQUEST)
    response_name = next((p.name for p in own if p.annotation is Response), _RESPONSE)
    extra = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind)
             for name, kind in ((_REQUEST, Request), (_RESPONSE, Response))
             if name in (request_name, response_name)]
    extra.append(inspect.Parameter(
        _CREDENTIALS, inspect.Parameter.KEYWORD_ONLY,
        annotation=Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]))

    async def endpoint(**kwargs: Any) -> Response:
        # the route's own request/response parameters stay in kwargs; ours are taken out
        request: Request = kwargs[request_name] if request_name in names else kwargs.pop(
            _REQUEST)
        sub_response: Response = (kwargs[response_name] if response_name in names
                                  else kwargs.pop(_RESPONSE))
        credentials = kwargs.pop(_CREDENTIALS)
        state = get_state(request)
        header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
        try:
            secret = bearer_token(header)
        except Problem as problem:
            raise _auth_failed(state, request, problem) from None
        return await run_in_threadpool(_serve, state, request, secret, func, kwargs,
                                       sub_response)

    # FastAPI reads parameters by name; keyword-only ones may follow defaults in any order
    signature = inspect.Signature(
        [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + extra)
    endpoint.__signature__ = signature  # type: ignore[attr-defined]  # read by inspect/FastAPI
    endpoint.__name__ = func.__name__
    endpoint.__qualname__ = func.__qualname__
    endpoint.__doc__ = func.__doc__
    endpoint.__module__ = func.__module__
    endpoint.db_route = func  # type: ignore[attr-defined]  # the undecorated route, for tests
    return endpoint


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
