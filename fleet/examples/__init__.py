"""The example fleet shipped with the package (``fleet.yaml``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def example_fleet_path() -> Path:
    """Path of the example fleet file."""
    return Path(str(resources.files(__name__) / "fleet.yaml"))
