"""Fixtures of the integration tests beyond tests/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.devservices.broker import Mosquitto
from tests.integration.ingest_support import Publisher, load_example_fleet


@pytest.fixture
def db(migrated_db: str, example_fleet_path: Path) -> str:
    load_example_fleet(migrated_db, example_fleet_path)
    return migrated_db


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[Publisher]:
    pub = Publisher(mosquitto)
    yield pub
    pub.close()
