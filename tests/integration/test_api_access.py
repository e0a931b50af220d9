"""Tokens (hashed, revocable, expiring), the CLI, rate limiting, registry writes and the HTTP
readings push, against a real PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from api.config import ApiConfig
from api.tokens import create_token
from app.cli import main
from core.ports import free_port
from fleet import load_fleet, uscc_check_char
from fleet.registry import load_registry
from storage.migrate import migrate
from tests.integration.api_support import EXAMPLE, ApiEnv, api_env

API = "/api/v1"


def _registry_only(url: str) -> None:
    migrate(url, backend="postgres")
    with psycopg.connect(url) as conn:
        load_registry(conn, load_fleet(EXAMPLE))


@pytest.fixture(scope="module")
def env(pg_server: object) -> Iterator[ApiEnv]:
    """Registry only (no readings); push enabled; a strict rate limit for one test."""
    url = pg_server.create_database("api")  # type: ignore[attr-defined]
    _registry_only(url)
    try:
        with api_env(url, load=False, config=ApiConfig(rate_per_second=0,
                                                       push_wait_seconds=10)) as e:
            yield e
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


# -- tokens -------------------------------------------------------------------------------------
def test_secrets_are_never_stored(env: ApiEnv) -> None:
    with psycopg.connect(env.url) as conn:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM api_tokens t").fetchone()[0]
        hashes = {bytes(r[0]) for r in conn.execute("SELECT secret_sha256 FROM api_tokens")}
    assert len(rows) == len(env.tokens)
    for secret in env.tokens.values():
        assert secret.startswith("emk_") and len(secret) == 47
        assert secret not in dump and secret[4:] not in dump
        assert hashlib.sha256(secret.encode()).digest() in hashes


def test_missing_malformed_and_unknown_tokens_are_401(env: ApiEnv) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"},
                    {"Authorization": "Bearer nonsense"},
                    {"Authorization": "Bearer emk_" + "A" * 43}):
        r = env.client.get(f"{API}/plants", headers=headers)
        assert r.status_code == 401, headers
        assert r.headers["content-type"] == "application/problem+json"
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "token" in r.json()["detail"]


def test_revocation_takes_effect_at_once(env: ApiEnv, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", env.url)
    assert main(["token", "create", "--role", "regulator", "--region", "450000",
                 "--name", "guangxi dashboard"]) == 0
    out = capsys.readouterr()
    secret = out.out.strip()
    assert secret.startswith("emk_") and "shown once" in out.err
    token_id = int(out.err.split()[1])
    headers = {"Authorization": f"Bearer {secret}"}
    plants = env.client.get(f"{API}/plants", headers=headers).json()
    assert {p["id"] for p in plants["data"]} == {"gx-liuzhou-steel", "gx-liujiang-aluminium"}
    assert main(["token", "list"]) == 0
    listing = capsys.readouterr().out
    assert "guangxi dashboard" in listing and "region:450000" in listing
    assert secret not in listing
    with psycopg.connect(env.url) as conn:
        assert conn.execute("SELECT last_used_at FROM api_tokens WHERE id = %s",
                            (token_id,)).fetchone()[0] is not None
    assert main(["token", "revoke", str(token_id)]) == 0
    r = env.client.get(f"{API}/plants", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert main(["token", "revoke", str(token_id)]) == 1  # already revoked
    assert main(["token", "create", "--role", "plant", "--name", "x"]) == 2
    assert "needs --plant" in capsys.readouterr().err
    assert main(["token", "create", "--role", "plant", "--plant", "no-such-plant",
                 "--name", "x"]) == 2
    assert "not in the registry" in capsys.readouterr().err


def test_expired_tokens_are_refused(env: ApiEnv) -> None:
    with psycopg.connect(env.url) as conn:
        _, old = create_token(conn, name="old", role="auditor",
                              expires_at=datetime.now(UTC) - timedelta(seconds=1))
        _, fresh = create_token(conn, name="fresh", role="auditor",
                                expires_at=datetime.now(UTC) + timedelta(hours=1))
    r = env.client.get(f"{API}/plants", headers={"Authorization": f"Bearer {old}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    r = env.client.get(f"{API}/plants", headers={"Authorization": f"Bearer {fresh}"})
    assert r.status_code == 200


def test_rate_limit_answers_429_with_retry_after(pg_server: object) -> None:
    url = pg_server.create_database("api")  # type: ignore[attr-defined]
    _registry_only(url)
    try:
        config = ApiConfig(rate_per_second=0.5, rate_burst=3, anonymous_rate_per_second=0.5,
                           push_enabled=False)
        with api_env(url, load=False, config=config) as e:
            codes = [e.get("admin", f"{API}/plants").status_code for _ in range(4)]
            assert codes == [200, 200, 200, 429]
            r = e.get("admin", f"{API}/plants")
            assert r.status_code == 429 and r.headers["retry-after"] in ("1", "2")
            assert r.json()["type"].endswith("rate-limited")
            assert "wait" in r.json()["detail"]
            # another token has its own bucket
            assert e.get("auditor-all", f"{API}/plants").status_code == 200
            # failed authentication is limited per client address
            bad = {"Authorization": "Bearer emk_" + "B" * 43}
            codes = [e.client.get(f"{API}/plants", headers=bad).status_code for _ in range(4)]
            assert codes == [401, 401, 401, 429]
            metrics = e.client.get("/metrics").text
            assert 'energymon_api_rate_limited_total{kind="token"}' in metrics
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


# -- registry writes ------------------------------------------------------------------------------
def _uscc(seed: str) -> str:
    first17 = f"91360622MA35{seed}"[:17]
    return first17 + uscc_check_char(first17)


def test_admin_writes_the_registry_and_others_cannot(env: ApiEnv) -> None:
    plant = {"uscc": _uscc("NEW01"), "name": "新示例 plant", "region": "360622",
             "industry": "cement", "energy_class": "ge_10000_tce", "key_unit": True}
    r = env.client.put(f"{API}/plants/jx-new-plant", json=plant, headers=env.headers("admin"))
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "jx-new-plant" and r.json()["region_name"] == "余江区"
    r = env.client.put(f"{API}/plants/jx-new-plant", json={**plant, "name": "renamed"},
                       headers=env.headers("admin"))
    assert r.status_code == 200 and r.json()["name"] == "renamed"
    # validated like a fleet file
    bad = env.client.put(f"{API}/plants/jx-bad", json={**plant, "uscc": plant["uscc"][:17]
                                                        + "0"}, headers=env.headers("admin"))
    assert bad.status_code in (409, 422) and "check character" in bad.text
    clash = env.client.put(f"{API}/plants/jx-other",
                           json={**plant, "uscc": "91360622MA35CEM01A"},
                           headers=env.headers("admin"))
    assert clash.status_code == 409 and "jx-yujiang-cement" in clash.json()["detail"]
    nowhere = env.client.put(f"{API}/plants/jx-other", json={**plant, "region": "999999"},
                             headers=env.headers("admin"))
    assert nowhere.status_code == 422 and "not a registered region" in nowhere.text
    unit = {"name": "mill", "catalogue": "cement/no_such", "product": "cement",
            "product_unit": "t", "design_capacity": 100, "capacity_unit": "t/d"}
    r = env.client.put(f"{API}/plants/jx-new-plant/units/mill-1", json=unit,
                       headers=env.headers("admin"))
    assert r.status_code == 422 and "unknown catalogue key" in r.json()["detail"]
    unit["catalogue"] = "cement/clinker"
    r = env.client.put(f"{API}/plants/jx-new-plant/units/mill-1", json=unit,
                       headers=env.headers("admin"))
    assert r.status_code == 201, r.text
    meter = {"name": "feeder", "unit": "mill-1", "energy_type": "product",
             "kind": "counter", "eng_unit": "kWh"}
    r = env.client.put(f"{API}/plants/jx-new-plant/meters/m1", json=meter,
                       headers=env.headers("admin"))
    assert r.status_code == 422 and "energy_type" in r.json()["detail"]
    meter["energy_type"] = "electricity"
    r = env.client.put(f"{API}/plants/jx-new-plant/meters/m1", json=meter,
                       headers=env.headers("admin"))
    assert r.status_code == 201, r.text
    # the new meter is known to the push path at once
    push = env.client.post(f"{API}/plants/jx-new-plant/readings", headers=env.headers("admin"),
                           content=json.dumps({"meter": "m1", "ts": "2026-10-30T12:00:00+08:00",
                                               "value": 5.0}))
    assert push.status_code == 200 and push.json()["accepted"] == 1, push.text
    # other roles: 403 on what they may see, 404 on what they may not
    for token, code in (("regulator-jx", 403), ("auditor-all", 403), ("plant-cement", 404),
                        ("regulator-gx", 404)):
        r = env.client.put(f"{API}/plants/jx-new-plant", json=plant,
                           headers=env.headers(token))
        assert r.status_code == code, token
    r = env.client.put(f"{API}/plants/jx-yujiang-cement/units/kiln-1", json=unit,
                       headers=env.headers("plant-cement"))
    assert r.status_code == 403


# -- readings push ------------------------------------------------------------------------------
def _stored(env: ApiEnv, plant: str) -> list[tuple[str, float]]:
    with psycopg.connect(env.url) as conn:
        return conn.execute(
            "SELECT m.code, r.value FROM readings r JOIN meters m ON m.id = r.meter_id "
            "JOIN plants p ON p.id = m.plant_id WHERE p.code = %s ORDER BY r.ts, m.code",
            (plant,)).fetchall()


def test_push_uses_the_ingest_pipeline(env: ApiEnv) -> None:
    ts = "2026-10-30T10:15:00+08:00"
    batch = {"v": 1, "gateway": "gw-1", "seq": 7, "readings": [
        {"meter": "main-elec", "ts": ts, "value": 1000.5},
        {"meter": "main-gas", "ts": ts, "value": 20.25, "quality": "estimated"}]}
    path = f"{API}/plants/jx-yujiang-copper/readings"
    r = env.client.post(path, json=batch, headers=env.headers("plant-copper"))
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2 and r.json()["outcome"] == "committed"
    assert _stored(env, "jx-yujiang-copper") == [("main-elec", 1000.5), ("main-gas", 20.25)]
    again = env.client.post(path, json=batch, headers=env.headers("plant-copper"))
    assert again.status_code == 200  # redelivery absorbed
    assert len(_stored(env, "jx-yujiang-copper")) == 2
    # a meter of another plant is refused as the MQTT path refuses it, and kept
    r = env.client.post(path, json={"meter": "k1-elec", "ts": ts, "value": 1.0},
                        headers=env.headers("plant-copper"))
    assert r.status_code == 422
    rejected = r.json()["rejected"][0]
    # security review M1: the same answer as for a meter that exists nowhere, no owner named
    assert rejected["reason_code"] == "unknown_meter"
    assert "jx-yujiang-cement" not in r.text and "cement" not in rejected["reason"]
    r = env.client.post(path, content=b"{not json", headers=env.headers("plant-copper"))
    assert r.status_code == 422 and r.json()["rejected"][0]["reason_code"] == "invalid_json"
    with psycopg.connect(env.url) as conn:
        dead = conn.execute("SELECT reason_code, source FROM dead_letters ORDER BY id"
                            ).fetchall()
    assert [d[0] for d in dead] == ["unknown_meter", "invalid_json"]
    assert dead[0][1] == "http:/api/v1/plants/jx-yujiang-copper/readings"
    # partial acceptance lists what was refused
    mixed = {"v": 1, "gateway": "gw-1", "seq": 8, "readings": [
        {"meter": "main-elec", "ts": "2026-10-30T10:30:00+08:00", "value": 1001.0},
        {"meter": "nope", "ts": "2026-10-30T10:30:00+08:00", "value": 1.0}]}
    r = env.client.post(path, json=mixed, headers=env.headers("plant-copper"))
    assert r.status_code == 200 and r.json()["accepted"] == 1
    assert r.json()["rejected"][0]["reason_code"] == "unknown_meter"
    # who may push: the plant itself (and admin); others 403 (in scope) or 404
    for token, code in (("plant-cement", 404), ("regulator-jx", 403), ("auditor-all", 403),
                        ("regulator-gx", 404)):
        assert env.client.post(path, json=batch, headers=env.headers(token)).status_code == code
    big = env.client.post(path, content=b"[" + b" " * 1_100_000 + b"]",
                          headers=env.headers("plant-copper"))
    assert big.status_code == 413
    xml = env.client.post(path, content=b"<x/>", headers={**env.headers("plant-copper"),
                                                          "Content-Type": "text/xml"})
    assert xml.status_code == 415


def test_health_ready_and_metrics(env: ApiEnv) -> None:
    assert env.client.get("/health").json() == {"status": "ok"}
    ready = env.client.get("/ready").json()
    assert ready["status"] == "ready" and ready["pending_migrations"] == []
    env.get("admin", f"{API}/plants")
    text = env.client.get("/metrics").text
    assert 'energymon_api_requests_total{method="GET",route="/api/v1/plants",status="200"}' \
        in text
    assert "energymon_api_request_seconds_bucket" in text
    assert "energymon_ingest_messages_total" in text  # the push pipeline's own metrics
    assert "energymon_api_db_pool_connections" in text


def test_serve_in_thread_answers_over_http(env: ApiEnv) -> None:
    import httpx

    from api.server import serve_in_thread
    from core.settings import Settings

    server = serve_in_thread(Settings(database_url=env.url), database_url=env.url,
                             config=ApiConfig(push_enabled=False))
    try:
        started = time.monotonic()
        r = httpx.get(f"{server.url}/api/v1/plants",
                      headers={"Authorization": f"Bearer {env.tokens['plant-glass']}"})
        assert r.status_code == 200 and r.json()["data"][0]["id"] == "jx-shangyou-glass"
        assert httpx.get(f"{server.url}/docs").status_code == 200
        assert time.monotonic() - started < 10
    finally:
        server.stop()
    assert not server.thread.is_alive()


def _ready(proc: subprocess.Popen[str], port: int, timeout: float = 30) -> int | None:
    """Status of the child's /ready once it answers (None if it exits or never answers)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code
        except httpx.HTTPError:
            time.sleep(0.1)
    return None


def test_energymon_serve_runs_the_api(env: ApiEnv) -> None:
    """`energymon serve` in a child process: ready, then answers, then stops on SIGTERM."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env={**os.environ, "ENERGYMON_DATABASE_URL": env.url,
             "ENERGYMON_API_PUSH_ENABLED": "false"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _ready(proc, port) == 200
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/plants/jx-yujiang-cement",
                      headers=env.headers("plant-cement"))
        assert r.status_code == 200
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully; energymon then exits 0 (api.server._Server)
    assert proc.returncode == 0, "a graceful stop on SIGTERM exits 0"
    assert "Application shutdown complete" in out
    assert f"docs: http://127.0.0.1:{port}/docs" in out



def test_energymon_config_file_configures_serve(env: ApiEnv, tmp_path: Path) -> None:
    """`energymon --config s.yaml serve` applies the file's api: section (here a page limit of
    7 and push off); the environment still wins over the file (rate limit 0)."""
    import httpx

    settings = tmp_path / "s.yaml"
    settings.write_text(f"database_url: {env.url}\n"
                        "api:\n  page_max: 7\n  push_enabled: false\n  rate_per_second: 0.01\n"
                        "  rate_burst: 2\n")
    port = free_port()
    child_env = {k: v for k, v in os.environ.items()
                 if not k.startswith("ENERGYMON_") or k.startswith("ENERGYMON_TEST_")}
    child_env["ENERGYMON_API_RATE_PER_SECOND"] = "0"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "--config", str(settings), "serve", "--port",
         str(port)], env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert _ready(proc, port) == 200
        base = f"http://127.0.0.1:{port}/api/v1"
        headers = env.headers("admin")
        too_many = httpx.get(f"{base}/regions?limit=8", headers=headers)
        assert too_many.status_code == 422
        assert "at most 7 (got 8)" in too_many.json()["detail"]
        assert httpx.get(f"{base}/regions?limit=7", headers=headers).status_code == 200
        # rate_per_second 0 from the environment disables the limiter the file asked for
        # (with the file's 0.01/s and burst 2, the third request would be refused)
        codes = {httpx.get(f"{base}/regions?limit=1", headers=headers).status_code
                 for _ in range(5)}
        assert codes == {200}
        push = httpx.post(f"{base}/plants/jx-yujiang-cement/readings",
                          headers=env.headers("plant-cement"), json={"v": 1, "readings": []})
        assert push.status_code == 503 and "push-disabled" in push.json()["type"]
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert proc.returncode == 0
