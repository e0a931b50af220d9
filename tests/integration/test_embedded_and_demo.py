"""The fresh-machine path: no database URL, so the embedded PostgreSQL is started."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg

from app.devservices.embedded_pg import EmbeddedPostgres


def test_embedded_server_keeps_port_password_and_data_across_restarts(server_dir: Path) -> None:
    pg = EmbeddedPostgres(server_dir / "restart-pg", unsafe_fast=True)
    url = pg.start()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    pg.stop()
    assert not pg.is_running()
    assert pg.start() == url
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
    assert oct(pg.secret_file.stat().st_mode & 0o777) == "0o600"
    # TCP needs the password: no trust authentication on 127.0.0.1
    info = pg.info()
    try:
        psycopg.connect(f"postgresql://postgres:wrong@127.0.0.1:{info.port}/energymon").close()
        raise AssertionError("wrong password accepted")
    except psycopg.OperationalError as exc:
        assert "password authentication failed" in str(exc)
    pg.stop("immediate")


def test_demo_on_embedded_defaults(server_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENERGYMON_")}
    env["ENERGYMON_DATA_DIR"] = str(server_dir / "demo-data")
    energymon = [sys.executable, "-m", "app.cli"]
    try:
        # the whole pipeline: history, then 40 s of live data through broker, simulated
        # Modbus meters, collectors, ingest, accounting and the API
        run = subprocess.run([*energymon, "demo", "--live", "40", "--api-port", "0",
                              "--no-serve"], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
        assert run.returncode == 0, run.stderr
        assert "backend: postgres" in run.stdout
        assert "plants: 6 new" in run.stdout
        for plant in ("jx-yujiang-cement", "jx-shangyou-glass", "gx-liuzhou-steel",
                      "cq-jiangjin-chem"):
            assert plant in run.stdout
        # the demo ends with the verdicts: the example fleet has all three statuses
        verdicts = run.stdout[run.stdout.index("Verdicts for"):]
        for status in ("at benchmark (达到标杆)", "below benchmark: improve",
                       "BELOW BASELINE: retrofit"):
            assert status in verdicts
        assert "no output in period" not in verdicts
        live = run.stdout[run.stdout.index("watching the pipeline"):]
        stored = int(live.split(" live readings stored")[0].rsplit("\n", 1)[-1].strip())
        assert stored > 0, live  # collectors polled the simulated meters through ingest
        assert "API docs: http://127.0.0.1:" in run.stdout
        again = subprocess.run([*energymon, "demo", "--live", "0", "--no-serve"], env=env,
                               capture_output=True, text=True, timeout=240, check=False)
        assert again.returncode == 0, again.stderr
        assert "0 applied" in again.stdout and "plants: 0 new, 6 updated" in again.stdout
        status = subprocess.run([*energymon, "db", "status"], env=env, capture_output=True,
                                text=True, timeout=60, check=True)
        assert "running" in status.stdout
    finally:
        subprocess.run([*energymon, "db", "stop"], env=env, capture_output=True, timeout=60,
                       check=False)
