"""Example gateway files, one per Modbus plant of the example fleet (``gateway-*.yaml``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_gateway_paths() -> list[Path]:
    """Paths of the example gateway files, sorted."""
    return sorted(Path(str(resources.files(__name__))).glob("gateway-*.yaml"))
