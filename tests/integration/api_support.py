"""Helpers shared by the API integration tests: a database with the example fleet, four days of
simulator data around a month boundary, accounting recomputed, and a token per role."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
from fastapi.testclient import TestClient

from accounting.store import Accountant
from api.app import create_app
from api.config import ApiConfig
from api.tokens import create_token
from core.settings import Settings
from fleet import load_fleet
from fleet.registry import load_registry
from simulators.backfill import backfill_copy
from simulators.model import FleetModel
from storage.migrate import migrate

SH = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parents[2] / "fleet" / "examples" / "fleet.yaml"
START = datetime(2026, 10, 29, tzinfo=SH)
END = datetime(2026, 11, 2, tzinfo=SH)
DAY = "2026-10-30"
MONTH = "2026-10"

# token name -> (role, plant, region)
TOKENS: dict[str, tuple[str, str | None, str | None]] = {
    "plant-cement": ("plant", "jx-yujiang-cement", None),
    "plant-glass": ("plant", "jx-shangyou-glass", None),
    "plant-steel": ("plant", "gx-liuzhou-steel", None),
    "plant-copper": ("plant", "jx-yujiang-copper", None),
    "regulator-jx": ("regulator", None, "360000"),
    "regulator-gx": ("regulator", None, "450000"),
    "auditor-all": ("auditor", None, None),
    "auditor-cq": ("auditor", None, "500000"),
    "admin": ("admin", None, None),
}


@dataclass
class ApiEnv:
    url: str
    tokens: dict[str, str]
    client: TestClient
    fleet_plants: dict[str, str] = field(default_factory=dict)   # plant -> region

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[token]}"}

    def get(self, token: str, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers(token))


def load_dataset(url: str, *, backend: str = "postgres") -> None:
    migrate(url, backend=backend)
    fleet = load_fleet(EXAMPLE)
    with psycopg.connect(url) as conn:
        load_registry(conn, fleet)
    model = FleetModel(fleet)
    k0, k1 = model.k_range(START, END)
    backfill_copy(model, url, k0, k1 + 1, progress=False, stream=io.StringIO())
    Accountant(url).recompute()


def make_tokens(url: str) -> dict[str, str]:
    out = {}
    with psycopg.connect(url) as conn:
        for name, (role, plant, region) in TOKENS.items():
            _, secret = create_token(conn, name=name, role=role, plant=plant, region=region)
            out[name] = secret
    return out


@contextmanager
def api_env(url: str, *, config: ApiConfig | None = None, load: bool = True,
            backend: str = "postgres") -> Iterator[ApiEnv]:
    if load:
        load_dataset(url, backend=backend)
    tokens = make_tokens(url)
    config = config or ApiConfig(rate_per_second=0, push_enabled=False)
    app = create_app(Settings(database_url=url), config, database_url=url)
    with TestClient(app, raise_server_exceptions=False) as client:
        with psycopg.connect(url) as conn:
            plants = dict(conn.execute("SELECT code, region_code FROM plants").fetchall())
        yield ApiEnv(url, tokens, client, plants)
