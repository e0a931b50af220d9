"""The export worker: one XLSX or Parquet export built in a process of its own.

The API process starts ``python -m api.export_worker`` for each XLSX or Parquet download
(:func:`build`), hands it the unlinked file to write (an inherited descriptor, so the file never
has a name on disk) and the job as JSON on standard input, and waits. The worker connects as
the API's database role, authenticates the request's own token (the same row-level security
scope as the request), reads the rows through a server-side cursor, writes them with
:func:`api.exports.write_parquet` or :func:`api.exports.write_xlsx` and answers one JSON line
on standard output: ``{"rows": N}``, or ``{"problem": {...}}``.

Why a process (security review M2): building an export is pure Python work for every row.
In a thread of the API process it holds the interpreter lock for seconds: another tenant's
small request had a p99 of 557 ms during two exports, against 16 ms with worker processes and
4.7 ms alone (``perf/exports_bench.py``), and the memory stayed with the API process. A
worker runs at a lower CPU priority (``api.export_nice``) and gives all its memory back when
it exits.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import psycopg

from api import exports, queries
from api.auth import authenticate
from api.db import configure_connection
from api.problems import Problem

log = logging.getLogger(__name__)

APPLICATION_NAME = "energymon-api-export"


def build(job: dict[str, Any], out: BinaryIO, *, timeout: float) -> int:
    """Run one export job in a worker process writing to ``out``; the number of rows.
    Raises :class:`Problem` with the worker's answer (401 for a token revoked meanwhile, 503
    for a statement timeout or an unreachable database, 504 past ``timeout`` seconds)."""
    fd = out.fileno()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "api.export_worker", str(fd)], input=json.dumps(job),
            capture_output=True, text=True, pass_fds=(fd,), timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise Problem(504, "export-timeout",
                      f"the {job['format']} export took longer than {timeout:g} s; narrow the "
                      "range, choose a coarser resolution, or use format=csv (streamed)"
                      ) from None
    answer: dict[str, Any] = {}
    lines = done.stdout.strip().splitlines()
    if lines:
        try:
            answer = json.loads(lines[-1])
        except ValueError:
            answer = {}
    if done.returncode == 0 and isinstance(answer.get("rows"), int):
        out.seek(0, os.SEEK_END)
        return int(answer["rows"])
    problem = answer.get("problem")
    if isinstance(problem, dict):
        raise Problem(int(problem["status"]), str(problem["code"]), str(problem["detail"]),
                      headers=dict(problem.get("headers") or {}))
    log.error("the export worker failed (exit %s): %s", done.returncode,
              done.stderr.strip()[-2000:])
    raise Problem(500, "export-failed", f"the {job['format']} export failed on the server "
                  "(the server log says why); retry, or use format=csv")


def _run(job: dict[str, Any], out: BinaryIO) -> int:
    tz = ZoneInfo(job["timezone"])
    args = dict(job["args"])
    args["start"] = datetime.fromisoformat(args["start"])
    args["end"] = datetime.fromisoformat(args["end"])
    with psycopg.connect(job["url"], application_name=APPLICATION_NAME,
                         connect_timeout=10) as conn:
        configure_connection(conn, job["db_role"])
        principal = authenticate(conn, job["secret"],
                                 statement_timeout_ms=job["statement_timeout_ms"],
                                 timezone=job["timezone"])
        if principal.token_id != job["token_id"]:
            raise Problem(401, "unauthenticated", "the export ran for another token")
        query, params = queries.history_query(limit=None, **args)
        write = exports.write_xlsx if job["format"] == "xlsx" else exports.write_parquet
        n = write(queries.history_stream(conn, query, params), tz, job["meta"], out)
        conn.commit()
    out.flush()
    return n


def main(argv: list[str]) -> int:
    job = json.loads(sys.stdin.read())
    nice = int(job.get("nice", 0))
    if nice:
        os.nice(nice)
    out = os.fdopen(int(argv[0]), "wb")
    try:
        answer: dict[str, Any] = {"rows": _run(job, out)}
    except Problem as problem:
        answer = {"problem": {"status": problem.status, "code": problem.code,
                              "detail": problem.detail, "headers": problem.headers}}
    except psycopg.errors.QueryCanceled:
        answer = {"problem": {"status": 503, "code": "query-timeout", "detail":
                              "the query took longer than the statement timeout; narrow the "
                              "range or choose a coarser resolution",
                              "headers": {"Retry-After": "1"}}}
    except psycopg.OperationalError as exc:
        print(f"export worker: database unavailable: {str(exc).strip()}", file=sys.stderr)
        answer = {"problem": {"status": 503, "code": "database-unavailable", "detail":
                              "the database is not reachable right now; retry in a few "
                              "seconds", "headers": {"Retry-After": "5"}}}
    finally:
        out.close()
    print(json.dumps(answer))
    return 0 if "rows" in answer else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
