"""Shared fixtures: a real PostgreSQL for the whole session, one fresh database per test.

- ``ENERGYMON_TEST_DATABASE_URL`` (a superuser URL) selects an existing server; otherwise the
  embedded PostgreSQL (pgserver binaries) is started in a temporary directory.
- TimescaleDB tests use ``ENERGYMON_TEST_TIMESCALE_URL`` or, when an installed PostgreSQL has
  the extension, a throwaway cluster of that installation with timescaledb preloaded; they
  skip with the reason otherwise.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from app.devservices.broker import Mosquitto
from app.devservices.embedded_pg import EmbeddedPostgres, find_postgres_with_extension
from storage.migrate import migrate

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def server_dir() -> Iterator[Path]:
    """A directory for PostgreSQL data outside pytest's basetemp.

    pytest resets its own basetemp (/tmp/pytest-of-<user>) to mode 0700 whenever a pytest
    session starts, which would lock out the embedded server's system user when tests run
    as root while another pytest session starts.
    """
    path = Path(tempfile.mkdtemp(prefix="energymon-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


class Server:
    """A PostgreSQL server on which tests create and drop their own databases."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_server(server_dir: Path) -> Iterator[Server]:
    url = os.environ.get("ENERGYMON_TEST_DATABASE_URL")
    if url:
        yield Server(url)
        return
    pg = EmbeddedPostgres(server_dir / "pg", unsafe_fast=True)
    admin = pg.start(database="postgres")
    yield Server(admin)
    pg.stop("immediate")


@pytest.fixture
def fresh_db(pg_server: Server) -> Iterator[str]:
    """URL of a new, empty database (dropped after the test)."""
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(url)


@pytest.fixture
def migrated_db(fresh_db: str) -> str:
    """URL of a new database with the energymon schema (plain PostgreSQL backend)."""
    migrate(fresh_db, backend="postgres")
    return fresh_db


@pytest.fixture(scope="session")
def timescale_server(server_dir: Path) -> Iterator[Server]:
    url = os.environ.get("ENERGYMON_TEST_TIMESCALE_URL")
    if url:
        yield Server(url)
        return
    bindir = find_postgres_with_extension("timescaledb")
    if bindir is None:
        pytest.skip("TimescaleDB is not installed on this machine (no PostgreSQL installation "
                    "with timescaledb found and ENERGYMON_TEST_TIMESCALE_URL unset)")
    pg = EmbeddedPostgres(server_dir / "tspg", bindir=bindir,
                          preload=["timescaledb"], unsafe_fast=True)
    admin = pg.start(database="postgres")
    yield Server(admin)
    pg.stop("immediate")


@pytest.fixture
def timescale_db(timescale_server: Server) -> Iterator[str]:
    url = timescale_server.create_database("ts")
    yield url
    timescale_server.drop_database(url)


@pytest.fixture
def example_fleet_path() -> Path:
    return REPO / "fleet" / "examples" / "fleet.yaml"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free loopback port, anonymous access (stopped after)."""
    broker = Mosquitto(tmp_path / "mosquitto")
    broker.start()
    yield broker
    broker.stop()
