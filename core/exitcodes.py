"""Exit codes of every energymon process (the CLI, collectors, ingest, the API server)."""

from __future__ import annotations

EXIT_OK = 0             # success
EXIT_FAILURE = 1        # a runtime failure (database unreachable, a worker stopped, ...)
EXIT_CONFIG = 2         # invalid configuration or usage: nothing was started
EXIT_INTERRUPTED = 130  # Ctrl-C
