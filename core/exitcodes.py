"""Exit codes of every energymon process (the CLI, collectors, ingest, the API server)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0           # success
    FAILURE = 1      # a runtime failure (database unreachable, a worker stopped, ...)
    CONFIG = 2       # invalid configuration or usage: nothing was started
    INTERRUPTED = 130  # Ctrl-C


EXIT_OK, EXIT_FAILURE, EXIT_CONFIG, EXIT_INTERRUPTED = (
    Exit.OK, Exit.FAILURE, Exit.CONFIG, Exit.INTERRUPTED)
