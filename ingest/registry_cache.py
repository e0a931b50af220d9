"""An in-memory view of the registry for validation: plant code -> meter code -> meter.

Refreshed periodically by the pipeline and on a miss (an unknown plant or meter), at most once
per ``miss_interval`` so a flood of unknown meters cannot hammer the database. A snapshot is
immutable and replaced whole, so readers on other threads never see a half-built one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import psycopg

from ingest.rows import to_micros

log = logging.getLogger(__name__)


class MeterEntry(NamedTuple):
    id: int
    installed_at: datetime | None
    installed_us: int | None = None   # installed_at as PostgreSQL microseconds (fast compare)

    @classmethod
    def of(cls, meter_id: int, installed_at: datetime | None) -> MeterEntry:
        return cls(int(meter_id), installed_at,
                   to_micros(installed_at) if installed_at is not None else None)


@dataclass(frozen=True)
class RegistrySnapshot:
    """plants: plant code -> {meter code -> MeterEntry}. Nothing maps a meter code to the
    plants that own it: a plant is judged only against its own meters (security review M1)."""

    plants: dict[str, dict[str, MeterEntry]] = field(default_factory=dict)

    @classmethod
    def from_rows(
        cls, rows: Iterable[tuple[str, str | None, int | None, datetime | None]]
    ) -> RegistrySnapshot:
        """From ``(plant code, meter code, meter id, installed_at)`` rows (meter may be None)."""
        plants: dict[str, dict[str, MeterEntry]] = {}
        for plant, meter, meter_id, installed_at in rows:
            meters = plants.setdefault(plant, {})
            if meter is not None and meter_id is not None:
                meters[meter] = MeterEntry.of(meter_id, installed_at)
        return cls(plants)

    @property
    def meter_count(self) -> int:
        return sum(len(m) for m in self.plants.values())


_SNAPSHOT_SQL = """
SELECT p.code, m.code, m.id, m.installed_at
FROM plants p LEFT JOIN meters m ON m.plant_id = p.id
"""


def load_snapshot(conn: psycopg.Connection) -> RegistrySnapshot:
    return RegistrySnapshot.from_rows(conn.execute(_SNAPSHOT_SQL).fetchall())


def database_loader(url: str, connect_timeout: float = 5) -> Callable[[], RegistrySnapshot]:
    """A loader that reads a snapshot over a short-lived connection to ``url``."""

    def load() -> RegistrySnapshot:
        with psycopg.connect(url, connect_timeout=max(1, int(connect_timeout)),
                             autocommit=True) as conn:
            return load_snapshot(conn)

    return load


class RegistryCache:
    """Thread-safe holder of the current snapshot with rate-limited refreshes."""

    def __init__(
        self,
        loader: Callable[[], RegistrySnapshot],
        *,
        miss_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._loader = loader
        self._miss_interval = miss_interval
        self._clock = clock
        self._snapshot = RegistrySnapshot()
        self._loaded_at: float | None = None
        self._last_attempt: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def fixed(cls, snapshot: RegistrySnapshot) -> RegistryCache:
        """A cache that always holds ``snapshot`` (tests, tools)."""
        cache = cls(lambda: snapshot)
        cache.refresh()
        return cache

    @property
    def snapshot(self) -> RegistrySnapshot:
        return self._snapshot

    @property
    def loaded(self) -> bool:
        return self._loaded_at is not None

    def refresh(self) -> bool:
        """Reload now; on failure keep the previous snapshot, log, and return False."""
        with self._lock:
            self._last_attempt = self._clock()
            try:
                snapshot = self._loader()
            except Exception as exc:  # a refresh failure never breaks ingest
                log.warning("registry refresh failed (keeping %d cached meters): %s",
                            self._snapshot.meter_count, str(exc).strip())
                return False
            self._snapshot = snapshot
            self._loaded_at = self._clock()
            return True

    def refresh_on_miss(self) -> bool:
        """Refresh after an unknown plant/meter unless one was tried within ``miss_interval``."""
        last = self._last_attempt
        if last is not None and self._clock() - last < self._miss_interval:
            return False
        return self.refresh()
