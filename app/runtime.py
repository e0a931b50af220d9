"""Process wiring shared by CLI subcommands: settings -> database URL, logging."""

from __future__ import annotations

import logging
import re

from app.devservices.embedded_pg import EmbeddedPostgres
from core.settings import Settings


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.data_dir / "pg", port=settings.embedded_pg_port)


def database_url(settings: Settings) -> str:
    """The configured database URL, or the embedded server's (started on demand)."""
    if settings.database_url:
        return settings.database_url
    return embedded_postgres(settings).start()


def redact(url: str) -> str:
    """A URL with its password replaced, for logs and printed summaries."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
