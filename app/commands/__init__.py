"""The ``energymon`` subcommands, one module per command group.

Each module has ``register(sub)``, which adds its subcommands to the parser and sets each one's
``handler(settings, args) -> exit code``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from core.settings import Settings

Handler = Callable[[Settings, argparse.Namespace], int]
# argparse has no public name for it; a string, so it is only evaluated by the type checker
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
