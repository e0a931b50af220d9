"""Pure parts of the API: tokens, principals, the rate limiter, time parameters, exports and
the OpenAPI document (no database)."""

from __future__ import annotations

import hashlib
import io
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from api.auth import Principal, bearer_token
from api.deps import Db
from api.exports import COLUMN_UNITS, SPOOL_PREFIX, spool_file, write_parquet, write_xlsx
from api.problems import Problem
from api.ratelimit import RateLimiter, retry_after
from api.routes._common import instant, period_of
from api.routes.history import _buckets
from api.tokens import Role, TokenError, create_token, hash_secret, looks_like_token, new_secret

SH = ZoneInfo("Asia/Shanghai")


# -- tokens and principals ---------------------------------------------------------------------
def test_secrets_are_256_bit_and_hashed_with_sha256() -> None:
    secrets = {new_secret() for _ in range(200)}
    assert len(secrets) == 200
    for s in list(secrets)[:5]:
        assert s.startswith("emk_") and len(s) == 4 + 43 and looks_like_token(s)
        assert hash_secret(s) == hashlib.sha256(s.encode()).digest()
        assert len(hash_secret(s)) == 32


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"role": "plant"}, "needs --plant"),
    ({"role": "plant", "plant": "p", "region": "360000"}, "needs --plant"),
    ({"role": "regulator"}, "needs --region"),
    ({"role": "auditor", "plant": "p"}, "not --plant"),
    ({"role": "admin", "region": "360000"}, "takes no --region"),
    ({"role": "auditor", "name": " "}, "must not be empty"),
    ({"role": "auditor", "expires_at": datetime(2030, 1, 1)}, "UTC offset"),
])
def test_token_scope_rules(kwargs: dict, message: str) -> None:
    kwargs = {"name": "n", **kwargs}
    with pytest.raises(TokenError, match=message):
        create_token(None, **kwargs)  # type: ignore[arg-type]  # refused before any query


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer short",
                                    "Token emk_" + "a" * 43])
def test_bearer_header_problems_are_401(header: str | None) -> None:
    with pytest.raises(Problem) as info:
        bearer_token(header)
    assert info.value.status == 401 and "WWW-Authenticate" in info.value.headers


def test_bearer_header_accepts_a_token() -> None:
    token = new_secret()
    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token(f"bearer  {token} ") == token


def test_principal_scope_settings() -> None:
    plant = Principal(1, "p", Role.PLANT, "jx-yujiang-cement", None, frozenset({7}))
    assert plant.settings() == ("off", "7", "off", "on")
    assert plant.sees_plant(7) and not plant.sees_plant(8)
    assert plant.may_push(7) and not plant.may_push(8)
    assert plant.may_declare and not plant.may_write_registry
    regulator = Principal(2, "r", Role.REGULATOR, None, "360000", frozenset({3, 1}))
    assert regulator.settings() == ("off", "1,3", "off", "off") and not regulator.may_push(1)
    nobody = Principal(3, "r", Role.REGULATOR, None, "999999", frozenset())
    assert nobody.settings() == ("off", "", "off", "off") and not nobody.sees_plant(1)
    admin = Principal(4, "a", Role.ADMIN, None, None, None)
    assert admin.settings() == ("on", "", "on", "on") and admin.sees_plant(12345)
    auditor = Principal(5, "a", Role.AUDITOR, None, None, None)
    assert auditor.settings() == ("on", "", "off", "off") and not auditor.may_write_registry
    assert not auditor.may_declare and not regulator.may_declare and admin.may_declare


# -- rate limiting -----------------------------------------------------------------------------
def test_token_bucket_with_burst_refill_and_retry_after() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.5) and retry_after(wait) == "1"
    assert limiter.acquire("b") is None  # per key
    now[0] = 0.5
    assert limiter.acquire("a") is None
    assert limiter.acquire("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [limiter.acquire("a") for _ in range(4)][-1] is not None  # burst caps the refill
    assert RateLimiter(rate=0, burst=1).acquire("a") is None  # disabled
    assert retry_after(0.01) == "1" and retry_after(2.2) == "3"


def test_limiter_bounds_its_memory() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=1, clock=lambda: now[0], max_keys=10)
    for i in range(50):
        now[0] += 0.01
        limiter.acquire(f"k{i}")
    assert len(limiter._buckets) <= 10


# -- time parameters ---------------------------------------------------------------------------
def test_instants_are_dates_or_offset_times() -> None:
    assert instant("2026-10-01", SH, "from") == datetime(2026, 10, 1, tzinfo=SH)
    assert instant("2026-10-01T08:00:00Z", SH, "from") == datetime(2026, 10, 1, 8, tzinfo=UTC)
    for bad, why in (("2026-10-01T08:00", "no UTC offset"), ("yesterday", "neither a date"),
                     ("0001-01-01T00:00:00+14:00", "outside 1900..2200")):
        with pytest.raises(Problem, match=why):
            instant(bad, SH, "from")
    assert period_of("2026-10", SH).start == datetime(2026, 10, 1, tzinfo=SH)
    with pytest.raises(Problem, match="outside 1900..2200"):
        period_of("0001-02", SH)
    with pytest.raises(Problem, match="not understood"):
        period_of("2026-13", SH)


def test_bucket_bounds_are_upper_bounds() -> None:
    a, b = datetime(2026, 1, 1, tzinfo=SH), datetime(2027, 1, 1, tzinfo=SH)
    assert _buckets(a, b, "15min", SH) == 365 * 96 + 1
    assert _buckets(a, b, "hour", SH) == 365 * 24 + 1
    assert _buckets(a, b, "day", SH) == 367
    assert _buckets(a, b, "month", SH) == 14


# -- exports -----------------------------------------------------------------------------------
ROWS = [
    (datetime(2026, 10, 30, 16, 0, tzinfo=UTC), "electricity", "consumed", 1234.5, "kWh", None,
     None, 0.25, 151.71505, 710.1, 4),
    (datetime(2026, 10, 30, 16, 0, tzinfo=UTC), "product", "production", 1 / 3, "t", None,
     None, 0.0, None, None, 4),
    (datetime(2026, 10, 30, 17, 0, tzinfo=UTC), "electricity", "reading", None, "kWh",
     98765.4321, 2, None, None, None, None),
]


def _read(fmt: str, rows: list[tuple], **kwargs: int) -> pd.DataFrame:
    out = io.BytesIO()
    if fmt == "xlsx":
        assert write_xlsx(rows, SH, {"plant": "p"}, out) == len(rows)
        return pd.read_excel(io.BytesIO(out.getvalue()), sheet_name="history")
    assert write_parquet(rows, SH, {"plant": "p"}, out, **kwargs) == len(rows)
    return pd.read_parquet(io.BytesIO(out.getvalue()))


@pytest.mark.parametrize("fmt", ["xlsx", "parquet"])
def test_exports_round_trip_exactly(fmt: str) -> None:
    frame = _read(fmt, ROWS)
    assert list(frame.columns) == list(COLUMN_UNITS)
    assert [pd.Timestamp(t).isoformat() for t in frame["ts"]] == [
        "2026-10-31T00:00:00+08:00", "2026-10-31T00:00:00+08:00", "2026-10-31T01:00:00+08:00"]
    assert frame["quantity"].iloc[1] == 1 / 3  # shortest round-trip text, no precision lost
    assert frame["kgce"].iloc[0] == 151.71505
    assert frame["value"].iloc[2] == 98765.4321 and frame["quality"].iloc[2] == "suspect"
    assert pd.isna(frame["kgce"].iloc[1])


def test_empty_exports_still_have_headers() -> None:
    for fmt in ("xlsx", "parquet"):
        frame = _read(fmt, [])
        assert list(frame.columns) == list(COLUMN_UNITS) and len(frame) == 0


def test_parquet_is_written_in_row_groups_of_the_given_size() -> None:
    # at most one row group is held in memory: 7 rows in groups of 3 are 3 + 3 + 1
    import pyarrow.parquet as pq

    rows = [(datetime(2026, 10, 30, 16, tzinfo=UTC) + timedelta(hours=i), "electricity",
             "consumed", float(i), "kWh", None, None, 0.0, i * 0.1229, i * 0.58, 4)
            for i in range(7)]
    out = io.BytesIO()
    assert write_parquet(rows, SH, {"plant": "p"}, out, row_group_rows=3) == 7
    meta = pq.ParquetFile(io.BytesIO(out.getvalue())).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [3, 3, 1]
    assert meta.metadata[b"energymon.plant"] == b"p"
    assert "DELTA_BINARY_PACKED" in meta.row_group(0).column(0).encodings  # ts
    frame = _read("parquet", rows, row_group_rows=3)
    assert frame["quantity"].tolist() == [float(i) for i in range(7)]


def test_an_export_file_is_gone_from_its_directory_when_created(tmp_path: Path) -> None:
    out = spool_file(str(tmp_path), "parquet")
    try:
        out.write(b"x" * 10)
        assert list(tmp_path.iterdir()) == []  # unlinked at once: a crash leaves nothing
        link = os.readlink(f"/proc/self/fd/{out.fileno()}")
        assert link.startswith(str(tmp_path / SPOOL_PREFIX)) and link.endswith("(deleted)")
    finally:
        out.close()


# -- the OpenAPI document ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def spec() -> dict:
    from api.app import create_app
    from core.settings import Settings

    return create_app(Settings(database_url="postgresql://u:p@127.0.0.1:1/none")).openapi()


def _numbers(schema: dict, path: str, components: dict) -> list[tuple[str, dict]]:
    out = []
    for name, prop in schema.get("properties", {}).items():
        kinds = {prop.get("type")} | {s.get("type") for s in prop.get("anyOf", [])}
        if kinds & {"number", "integer"}:
            out.append((f"{path}.{name}", prop))
        if prop.get("type") == "object" and "additionalProperties" in prop:
            if prop["additionalProperties"].get("type") in ("number", "integer"):
                out.append((f"{path}.{name}", prop))
    return out


def test_every_numeric_field_states_its_unit(spec: dict) -> None:
    components = spec["components"]["schemas"]
    missing = []
    for cname, schema in components.items():
        for where, prop in _numbers(schema, cname, components):
            if "x-unit" not in prop:
                missing.append(where)
    assert not missing, missing
    # parameters too
    for path, item in spec["paths"].items():
        for method, op in item.items():
            for p in op.get("parameters", []):
                s = p.get("schema", {})
                kinds = {s.get("type")} | {x.get("type") for x in s.get("anyOf", [])}
                if kinds & {"number", "integer"}:
                    assert p.get("description"), (path, method, p["name"])


def test_every_operation_is_documented_with_problems_and_examples(spec: dict) -> None:
    components = spec["components"]["schemas"]
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert op.get("summary"), (path, method)
            if not path.startswith("/api/v1"):
                continue
            assert op.get("security"), (path, method)
            for code in ("401", "404" if "{" in path else "401", "422", "429"):
                content = op["responses"][code]["content"]
                assert "application/problem+json" in content, (path, method, code)
    for name in ("Plant", "ProductionUnit", "Meter", "UnitIntensity", "AreaKpi",
                 "EnergySummary", "PushReceipt", "MeterStatus", "ProblemDetail",
                 "PlantWrite", "UnitWrite", "MeterWrite"):
        assert components[name].get("examples"), name
    assert "BatchPayload" in components and "SingleReadingPayload" in components
    push = spec["paths"]["/api/v1/plants/{plant}/readings"]["post"]
    assert push["requestBody"]["content"]["application/json"]["examples"]
    assert "Limits" in spec["info"]["description"] and "404" in spec["info"]["description"]


def test_health_and_problems_without_a_database() -> None:
    from fastapi.testclient import TestClient

    from api.app import create_app
    from core.settings import Settings

    app = create_app(Settings(database_url="postgresql://u:p@127.0.0.1:1/none"))
    client = TestClient(app)  # no lifespan: nothing touches the database
    assert client.get("/health").json() == {"status": "ok"}
    r = client.get("/api/v1/nowhere")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = client.get("/api/v1/plants")
    assert r.status_code == 503 and r.json()["type"] == "urn:energymon:problem:not-ready"
    assert r.headers["retry-after"] == "5"
    r = client.delete("/api/v1/plants")
    assert r.status_code == 405 and "not allowed" in r.json()["detail"]



def _route_without_db(plant: str) -> None:
    return None


def _route(db: Db, plant: str, limit: int = 10) -> None:
    return None


def test_db_route_keeps_the_route_signature_and_needs_db_first() -> None:
    import inspect

    from api.app import create_app
    from api.deps import db_route
    from core.settings import Settings

    with pytest.raises(TypeError, match="db: Db first"):
        db_route(_route_without_db)
    endpoint = db_route(_route)
    assert endpoint.__name__ == "_route" and endpoint.db_route is _route
    assert inspect.iscoroutinefunction(endpoint)
    assert list(inspect.signature(endpoint).parameters)[:2] == ["plant", "limit"]
    # the parameters db_route adds (request, response, credentials) never reach the document
    spec = create_app(Settings(database_url="postgresql://u:p@127.0.0.1:1/none")).openapi()
    names = {p["name"] for ops in spec["paths"].values() for op in ops.values()
             for p in op.get("parameters", [])}
    assert names and not [n for n in names if n.startswith("energymon_")], names
    assert "db" not in names


@pytest.mark.parametrize("day", [None, "2026-11-20", "2026-12-31"])
def test_example_history_query_covers_one_day(day: str | None) -> None:
    """The demo prints these: the CSV example must ask for [day, day + 1)."""
    import re
    from datetime import date, timedelta

    from app.demo import example_queries

    kwargs = {"day": day, "period": day[:7]} if day else {}
    last = [q for q in example_queries("http://h", "emk_x", **kwargs) if "format=csv" in q][0]
    start, end = re.search(r"from=([0-9-]+)&to=([0-9-]+)", last).groups()  # type: ignore[union-attr]
    assert date.fromisoformat(end) - date.fromisoformat(start) == timedelta(days=1)
    if day:
        assert start == day


def test_blocked_looks_without_taking() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=1.0, burst=2, clock=lambda: now[0])
    assert limiter.blocked("a") is None                   # unknown key: not blocked
    assert [limiter.acquire("a") for _ in range(2)] == [None, None]
    assert limiter.blocked("a") == pytest.approx(1.0)      # empty: a second to wait
    assert limiter.blocked("a") == pytest.approx(1.0)      # looking takes nothing
    now[0] = 1.0
    assert limiter.blocked("a") is None and limiter.acquire("a") is None
    assert RateLimiter(rate=0, burst=1).blocked("a") is None   # disabled


def test_slots_bound_the_total_and_each_key() -> None:
    from api.ratelimit import Slots

    slots = Slots(total=2, per_key=1)
    assert slots.acquire("a") and not slots.acquire("a")      # one per key
    assert slots.acquire("b") and not slots.acquire("c")      # two in all
    slots.release("a")
    assert slots.acquire("c") and slots.held == 2
    slots.release("b")
    slots.release("c")
    assert slots.held == 0 and slots.acquire("a")
