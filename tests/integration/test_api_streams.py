"""Streamed exports over a real socket: a client that aborts or stalls a download gives its
database connection back (security review H1: every aborted CSV download of 0.7 MB or more
kept its pool connection in COPY, and 16 stalled ones made the API answer 503 to everyone);
XLSX and Parquet are sent from an unlinked file after the connection is given back, and the
file is closed (gone) when the client aborts or stalls (security review M2).

A real uvicorn server on loopback, a real PostgreSQL, real sockets: the client reads a chunk
and closes the socket (abort), or sends the request and never reads (stall).
"""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pyarrow.parquet as pq
import pytest

from api import export_worker
from api.config import ApiConfig
from api.exports import SPOOL_PREFIX, spool_file
from api.problems import Problem
from api.server import ServerHandle, serve_in_thread
from api.tokens import hash_secret
from core.settings import Settings
from tests.integration.api_support import ApiEnv, api_env

SH = ZoneInfo("Asia/Shanghai")
START = datetime(2025, 1, 1, tzinfo=SH)
READINGS = 300_000          # about 25 MB of raw CSV: far more than the socket buffers hold
POOL = 4
PATH = ("/api/v1/plants/jx-yujiang-cement/meters/k1-elec/history?from=2025-01-01"
        "&to=2026-01-01&resolution=raw&format=csv")


@pytest.fixture(scope="module")
def served(pg_server: object) -> Iterator[tuple[ApiEnv, ServerHandle]]:
    url = pg_server.create_database("streams")  # type: ignore[attr-defined]
    config = ApiConfig(pool_min=1, pool_max=POOL, pool_timeout=3, stream_write_timeout=2,
                       rate_per_second=0)
    try:
        with api_env(url, config=config) as env:
            with psycopg.connect(url) as conn:
                (meter,), = conn.execute("SELECT id FROM meters WHERE code = 'k1-elec'")
                with conn.cursor().copy("COPY readings (meter_id, ts, value, quality) "
                                        "FROM STDIN") as copy:
                    for i in range(READINGS):
                        copy.write_row((meter, START + timedelta(minutes=i), float(i), 0))
            server = serve_in_thread(Settings(database_url=url), database_url=url,
                                     config=config)
            try:
                yield env, server
            finally:
                server.stop()
    finally:
        pg_server.drop_database(url)  # type: ignore[attr-defined]


# XLSX: 30 days of minute readings (43 200 rows, about 1.1 MB; XLSX is slow to build), and
# for a stalled reader 80 days (115 200 rows, about 2.9 MB: more than loopback's socket
# buffers take in); Parquet: all of them (300 000 rows, about 2.9 MB)
FILE_ROWS = {"xlsx": 30 * 1440, "parquet": READINGS}
FILE_TO = {"xlsx": "2025-01-31", "parquet": "2026-01-01"}
STALLED_TO = {"xlsx": "2025-03-22", "parquet": "2026-01-01"}  # 1.1 MB were taken in whole


def _file_path(fmt: str, to: str | None = None) -> str:
    return (f"/api/v1/plants/jx-yujiang-cement/meters/k1-elec/history?from=2025-01-01"
            f"&to={to or FILE_TO[fmt]}&resolution=raw&format={fmt}")


def _export_files() -> list[str]:
    """The export files this process holds open (the test server runs in this process)."""
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if SPOOL_PREFIX in link:
            held.append(link)
    return held


def _headers(env: ApiEnv) -> dict[str, str]:
    return {"Authorization": f"Bearer {env.tokens['plant-cement']}"}


def _busy_api_connections(url: str) -> list[tuple[str, str | None]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT state, wait_event FROM pg_stat_activity WHERE application_name = "
            "'energymon-api' AND datname = current_database() AND state <> 'idle'").fetchall()


def _settles(url: str, timeout: float = 15.0) -> list[tuple[str, str | None]]:
    deadline = time.monotonic() + timeout
    busy = _busy_api_connections(url)
    while busy and time.monotonic() < deadline:
        time.sleep(0.2)
        busy = _busy_api_connections(url)
    return busy


def _small_request_works(env: ApiEnv, server: ServerHandle) -> None:
    started = time.monotonic()
    r = httpx.get(f"{server.url}/api/v1/plants", headers=_headers(env), timeout=10)
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 2.5   # not waiting out the pool timeout


def test_a_whole_download_streams_everything(served: tuple[ApiEnv, ServerHandle]) -> None:
    env, server = served
    with httpx.stream("GET", server.url + PATH, headers=_headers(env), timeout=60) as r:
        assert r.status_code == 200
        lines = sum(chunk.count(b"\n") for chunk in r.iter_bytes())
    assert lines == READINGS + 1                          # the header line
    assert _settles(env.url) == []


def test_aborted_downloads_give_their_connections_back(
        served: tuple[ApiEnv, ServerHandle]) -> None:
    env, server = served
    for _ in range(POOL * 3):                 # three times the pool
        with httpx.stream("GET", server.url + PATH, headers=_headers(env), timeout=30) as r:
            assert r.status_code == 200
            next(r.iter_bytes())              # one chunk, then leave
    assert _settles(env.url) == []
    _small_request_works(env, server)


def test_stalled_downloads_are_cut_off_and_give_their_connections_back(
        served: tuple[ApiEnv, ServerHandle]) -> None:
    env, server = served
    host, port = server.url.removeprefix("http://").split(":")
    request = (f"GET {PATH} HTTP/1.1\r\nHost: {host}\r\nAuthorization: "
               f"{_headers(env)['Authorization']}\r\n\r\n").encode()
    stalled = []
    for _ in range(POOL):                     # every pool connection held by a stalled reader
        s = socket.create_connection((host, int(port)))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(request)
        stalled.append(s)
    try:
        time.sleep(1.0)
        # cut off after the write timeout (2 s): the pool is free again while they still hang
        assert _settles(env.url, timeout=20) == []
        _small_request_works(env, server)
    finally:
        for s in stalled:
            s.close()


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_a_file_export_is_whole_and_leaves_no_file(served: tuple[ApiEnv, ServerHandle],
                                                   fmt: str) -> None:
    env, server = served
    r = httpx.get(server.url + _file_path(fmt), headers=_headers(env), timeout=60)
    assert r.status_code == 200, r.text
    assert int(r.headers["content-length"]) == len(r.content)
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(r.content))
        assert table.num_rows == FILE_ROWS[fmt]
        assert table.column("value").to_pylist()[:3] == [0.0, 1.0, 2.0]
    else:
        import pandas as pd

        frame = pd.read_excel(io.BytesIO(r.content), sheet_name="history")
        assert len(frame) == FILE_ROWS[fmt] and frame["value"].iloc[-1] == FILE_ROWS[fmt] - 1
    assert _settles(env.url) == [] and _export_files() == []


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_a_stalled_file_export_holds_no_connection_and_is_cut_off(
        served: tuple[ApiEnv, ServerHandle], fmt: str) -> None:
    env, server = served
    slots = server.server.config.app.state.api.exports  # type: ignore[attr-defined]
    host, port = server.url.removeprefix("http://").split(":")
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before the window is agreed
    s.connect((host, int(port)))
    s.sendall((f"GET {_file_path(fmt, STALLED_TO[fmt])} HTTP/1.1\r\nHost: {host}\r\nAuthorization: "
               f"{_headers(env)['Authorization']}\r\n\r\n").encode())
    try:
        # built, then sent to a reader that never reads: the file is held open, while the
        # connection and the export slot are already given back
        deadline = time.monotonic() + 30
        seen = False
        states = []
        while time.monotonic() < deadline and not seen:
            state = (_export_files(), _busy_api_connections(env.url), slots.held)
            states.append(state)
            seen = bool(state[0]) and not state[1] and state[2] == 0
            time.sleep(0.05)
        assert seen, ("never sending from the file with the connection and slot given back",
                      states[:5], states[-5:])
        _small_request_works(env, server)
        # cut off after the write timeout (2 s): the file is closed and so gone
        deadline = time.monotonic() + 15
        while _export_files() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _export_files() == []
    finally:
        s.close()


@pytest.mark.parametrize("fmt", ["parquet", "xlsx"])
def test_an_aborted_file_export_closes_its_file(served: tuple[ApiEnv, ServerHandle],
                                                fmt: str) -> None:
    env, server = served
    for _ in range(3 if fmt == "parquet" else 1):
        with httpx.stream("GET", server.url + _file_path(fmt), headers=_headers(env),
                          timeout=60) as r:
            assert r.status_code == 200
            next(r.iter_raw(4096))              # one chunk, then leave
    deadline = time.monotonic() + 10
    while _export_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _export_files() == [] and _settles(env.url) == []
    _small_request_works(env, server)


def _job(env: ApiEnv, token: str, meter_code: str, fmt: str = "parquet") -> dict:
    """An export job as the history route builds it, for ``token`` and a meter by code."""
    with psycopg.connect(env.url) as conn:
        (plant_pk, meter_pk), = conn.execute(
            "SELECT plant_id, id FROM meters WHERE code = %s", (meter_code,))
        (token_id,), = conn.execute("SELECT id FROM api_tokens WHERE secret_sha256 = %s",
                                    (hash_secret(env.tokens[token]),))
    config = ApiConfig()
    return {"format": fmt, "url": env.url, "db_role": config.db_role,
            "secret": env.tokens[token], "token_id": token_id,
            "statement_timeout_ms": config.statement_timeout_ms, "timezone": str(SH),
            "nice": 10, "meta": {"plant": "p"},
            "args": {"level": "meter", "resolution": "raw", "plant_pk": plant_pk,
                     "unit_pk": None, "meter_pk": meter_pk, "start": "2025-01-01T00:00:00+08:00",
                     "end": "2025-01-02T00:00:00+08:00"}}


def _worker_sessions(url: str) -> int:
    with psycopg.connect(url) as conn:
        return int(conn.execute("SELECT count(*) FROM pg_stat_activity WHERE "
                                "application_name = %s", (export_worker.APPLICATION_NAME,)
                                ).fetchone()[0])


def _worker_rows(job: dict) -> int:
    out = spool_file(None, job["format"])
    try:
        n = export_worker.build(job, out, timeout=60)
        out.seek(0)
        assert pq.read_table(out).num_rows == n
        return n
    finally:
        out.close()


def test_the_export_worker_reads_under_the_tokens_own_scope(
        served: tuple[ApiEnv, ServerHandle]) -> None:
    # the worker authenticates the request's own token: row-level security holds in it as in
    # the request, so even a job naming another plant's meter reads nothing of it
    env, _ = served
    assert _worker_rows(_job(env, "plant-cement", "k1-elec")) == 1440
    assert _worker_rows(_job(env, "plant-glass", "k1-elec")) == 0


def test_the_export_worker_refuses_a_bad_or_foreign_token(
        served: tuple[ApiEnv, ServerHandle]) -> None:
    env, _ = served
    job = _job(env, "plant-cement", "k1-elec")
    for bad in ({**job, "secret": "emk_" + "A" * 43}, {**job, "token_id": -1}):
        out = spool_file(None, "parquet")
        try:
            with pytest.raises(Problem) as caught:
                export_worker.build(bad, out, timeout=60)
            assert caught.value.status == 401 and caught.value.code == "unauthenticated"
            assert out.seek(0, os.SEEK_END) == 0   # nothing written
        finally:
            out.close()


def test_an_export_past_its_timeout_is_stopped(served: tuple[ApiEnv, ServerHandle]) -> None:
    env, _ = served
    job = {**_job(env, "plant-cement", "k1-elec"), "args": {
        **_job(env, "plant-cement", "k1-elec")["args"], "end": "2026-01-01T00:00:00+08:00"}}
    out = spool_file(None, "parquet")
    try:
        with pytest.raises(Problem) as caught:
            export_worker.build(job, out, timeout=0.2)
        assert caught.value.status == 504 and caught.value.code == "export-timeout"
    finally:
        out.close()
    deadline = time.monotonic() + 15   # the killed worker's session ends with it
    while _worker_sessions(env.url) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _worker_sessions(env.url) == 0


def test_ready_keeps_the_database_error_from_anonymous_callers(
        served: tuple[ApiEnv, ServerHandle]) -> None:
    # security review L4: /ready answered the first line of the database error (hosts, ports)
    env, server = served
    with psycopg.connect(env.url, autocommit=True) as conn:
        (name,), = conn.execute("SELECT current_database()")
    admin = env.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE datname = %s AND application_name = 'energymon-api'", (name,))
    try:
        deadline = time.monotonic() + 20
        r = httpx.get(server.url + "/ready", timeout=10)
        while r.status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            r = httpx.get(server.url + "/ready", timeout=10)
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["database"] == "unreachable"
        assert body["detail"] == "the database is unreachable (the server log says why)"
        assert name not in r.text and "127.0.0.1" not in r.text
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    deadline = time.monotonic() + 20
    while httpx.get(server.url + "/ready", timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the API did not recover"
        time.sleep(0.2)
