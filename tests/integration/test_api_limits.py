"""Rate limits shed database work (security review L1): a token over its limit, and a flood
of made-up tokens from one address, are refused before any token lookup, and a rotating
X-Forwarded-For does not get around the per-address limit unless it comes from a configured
proxy. A real uvicorn server on loopback and a real PostgreSQL."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from api.config import ApiConfig
from api.server import serve_in_thread
from core.settings import Settings
from tests.integration.api_support import ApiEnv, api_env

CONFIG = ApiConfig(rate_per_second=0.5, rate_burst=3, anonymous_rate_per_second=0.5)


@pytest.fixture(scope="module")
def env(pg_server: object) -> Iterator[ApiEnv]:
    url = pg_server.create_database("limits")  # type: ignore[attr-defined]
    try:
        with api_env(url, config=CONFIG) as e:
            yield e
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


def token_lookups(server_url: str) -> int:
    """Tokens the server has looked up in the database so far (its Prometheus counter)."""
    text = httpx.get(f"{server_url}/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("energymon_api_token_lookups_total")]
    return int(float(line.split()[-1]))


@pytest.mark.parametrize("proxies", [[], ["127.0.0.1"]], ids=["no-proxy", "behind-a-proxy"])
def test_limits_are_checked_before_the_token_lookup(env: ApiEnv, proxies: list[str]) -> None:
    config = CONFIG.model_copy(update={"trusted_proxies": proxies})
    server = serve_in_thread(Settings(database_url=env.url), database_url=env.url,
                             config=config)
    try:
        url = f"{server.url}/api/v1/plants"
        # a valid token over its limit: 3 served (the burst), the rest 429, no lookups
        before = token_lookups(server.url)
        valid = {"Authorization": f"Bearer {env.tokens['regulator-jx']}"}
        codes = [httpx.get(url, headers=valid).status_code for _ in range(30)]
        assert codes.count(200) == 3 and codes.count(429) == 27
        assert token_lookups(server.url) - before <= 4
        # made-up tokens with a rotating X-Forwarded-For: 3 failures (the address's burst),
        # then 429 before any lookup, unless the header comes from a trusted proxy
        before = token_lookups(server.url)
        codes = []
        for i in range(30):
            made_up = {"Authorization": f"Bearer emk_{secrets.token_urlsafe(32)}",
                       "X-Forwarded-For": f"10.9.{i // 250}.{i % 250}"}
            codes.append(httpx.get(url, headers=made_up).status_code)
        lookups = token_lookups(server.url) - before
        if proxies:   # each forwarded address has its own bucket: all looked up, all 401
            assert codes.count(401) == 30 and lookups >= 30
        else:         # the peer address counts: 3 looked up, then refused unseen
            assert codes.count(401) == 3 and codes.count(429) == 27
            assert lookups <= 4
    finally:
        server.stop()


def test_a_write_without_a_token_is_refused_before_its_body_is_read(env: ApiEnv) -> None:
    """Security review L3: bodies were read (and 413/415/422 answered) before authentication,
    first for the push, then still for the registry writes. Every operation with a request
    body, found in the OpenAPI document, answers 401 unseen."""
    server = serve_in_thread(Settings(database_url=env.url), database_url=env.url,
                             config=CONFIG)
    try:
        spec = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
        writes = [(method.upper(), path) for path, item in spec["paths"].items()
                  for method, op in item.items() if "requestBody" in op]
        assert len(writes) >= 9, writes          # push, 5 declared kinds, 3 registry PUTs
        fill = {"{plant}": "jx-yujiang-cement", "{unit}": "kiln-1", "{meter}": "k1-elec",
                "{year}": "2025"}
        big = b"x" * (2 * 1024 * 1024)
        for method, template in writes:
            url = server.url + template
            for key, value in fill.items():
                url = url.replace(key, value)
            for headers in ({}, {"Authorization": "Basic Zm9vOmJhcg=="},
                            {"Content-Type": "text/plain"}):
                r = httpx.request(method, url, content=big, headers=headers, timeout=30)
                assert r.status_code == 401, (method, template, headers, r.status_code)
                assert r.headers["www-authenticate"].startswith("Bearer")
            r = httpx.request(method, url, content=b'{"junk": 1}', timeout=30)
            assert r.status_code == 401, (method, template, r.status_code)
        # with a token the body limits apply as before
        url = f"{server.url}/api/v1/plants/jx-yujiang-cement/readings"
        token = {"Authorization": f"Bearer {env.tokens['plant-cement']}"}
        assert httpx.post(url, content=big, headers=token, timeout=30).status_code == 413
        admin = {"Authorization": f"Bearer {env.tokens['admin']}"}
        r = httpx.put(f"{server.url}/api/v1/plants/jx-yujiang-cement", content=big,
                      headers=admin, timeout=30)
        assert r.status_code == 413
        r = httpx.put(f"{server.url}/api/v1/plants/jx-yujiang-cement", content=b'{"junk": 1}',
                      headers=admin, timeout=30)
        assert r.status_code == 422 and r.json()["errors"][0]["location"].startswith("body")
    finally:
        server.stop()
