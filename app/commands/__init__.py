"""The ``energymon`` subcommands, one module per command group.

Each module has ``register(sub)``, which adds its subcommands to the parser and sets each one's
``handler(settings, args) -> exit code``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]
Subparsers = argparse._SubParsersAction  # type: ignore[type-arg]  # argparse has no public name
