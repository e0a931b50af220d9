"""Helpers shared by the simulator tests: the example fleet as data, edited per test."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from fleet import Fleet, parse_fleet
from simulators.model import FleetModel

EXAMPLE = Path(__file__).resolve().parent.parent / "fleet" / "examples" / "fleet.yaml"
# a Thursday, 12:00 in Asia/Shanghai; the kilns and the potline run, no declared window is open
NOON = datetime(2026, 11, 19, 4, 0, tzinfo=UTC)


@cache
def _example_data() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))


def example_data() -> dict[str, Any]:
    """A fresh, editable copy of the example fleet's parsed YAML."""
    return copy.deepcopy(_example_data())


def plant_of(data: dict[str, Any], plant_id: str) -> dict[str, Any]:
    return next(p for p in data["plants"] if p["id"] == plant_id)


def meter_of(data: dict[str, Any], plant_id: str, meter_id: str) -> dict[str, Any]:
    return next(m for m in plant_of(data, plant_id)["meters"] if m["id"] == meter_id)


def unit_of(data: dict[str, Any], plant_id: str, unit_id: str) -> dict[str, Any]:
    return next(u for u in plant_of(data, plant_id)["units"] if u["id"] == unit_id)


def with_faults(data: dict[str, Any], plant_id: str, meter_id: str,
                faults: list[dict[str, Any]]) -> dict[str, Any]:
    meter = meter_of(data, plant_id, meter_id)
    meter["simulation"] = {**meter.get("simulation", {}), "faults": faults}
    return data


def fleet(data: dict[str, Any] | None = None) -> Fleet:
    return parse_fleet(data if data is not None else example_data(), "test-fleet")


@cache
def example_model() -> FleetModel:
    """The example fleet's model (cached: the model is pure)."""
    return FleetModel(fleet())


def model(data: dict[str, Any], **kwargs: Any) -> FleetModel:
    return FleetModel(fleet(data), **kwargs)
