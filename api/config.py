"""Settings of the HTTP API: the ``api`` section of :class:`core.settings.Settings`.

``ENERGYMON_API_*`` environment variables, or the ``api:`` section of the settings file given
to ``energymon --config FILE``; the class lives in ``core.settings`` so that one file
configures every process.
"""

from __future__ import annotations

from core.settings import ApiSettings as ApiConfig

__all__ = ["ApiConfig"]
