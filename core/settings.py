"""Typed settings for every energymon process.

Precedence (highest first): explicit keyword arguments, ``ENERGYMON_*`` environment variables,
the YAML config file named by ``ENERGYMON_CONFIG`` (or passed as ``config_file``), defaults.
The file uses the same keys in lower case, with the ``api:`` and ``ingest:`` sections as
mappings (``ENERGYMON_API_RATE_PER_SECOND`` is ``api: {rate_per_second: ...}``); it is read with
the strict loader, so a duplicated key is refused with its line.

No module-level settings object exists: each process builds one in its composition root
(``app.cli``) and passes it down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from core.yamlfile import ConfigFileError, read_yaml

DEFAULT_TIMEZONE = "Asia/Shanghai"


class MqttEndpoint(BaseModel):
    """A broker address parsed from ``ENERGYMON_MQTT_URL`` (``mqtt://user:pass@host:1883``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    port: int
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls: bool = False
    protocol: Literal["5", "3.1.1"] = "5"
    #: mqtts only: the CA certificate (PEM file) the broker's certificate must chain to, in
    #: place of the system's CAs (``?ca=/etc/energymon/broker-ca.pem``: pinning the platform's CA)
    ca: str | None = None

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        """``mqtt[s]://[user:pass@]host[:port][?protocol=3.1.1][&ca=/path/ca.pem]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(
                "ENERGYMON_MQTT_URL must start with mqtt:// or mqtts:// "
                f"(got scheme {parts.scheme!r})"
            )
        if not parts.hostname:
            raise ValueError("ENERGYMON_MQTT_URL has no host (expected mqtt://user:pass@host:1883)")
        tls = parts.scheme in ("mqtts", "ssl")
        query = parse_qs(parts.query)
        protocol = query.get("protocol", ["5"])[-1]
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"ENERGYMON_MQTT_URL protocol must be 5 or 3.1.1 (got {protocol!r})")
        ca = query.get("ca", [None])[-1]
        if ca is not None and not tls:
            raise ValueError("ENERGYMON_MQTT_URL: ca= pins the CA of a TLS broker; use mqtts://")
        if ca is not None and not Path(ca).is_file():
            raise ValueError(f"ENERGYMON_MQTT_URL: ca file {ca} does not exist")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            protocol=protocol,
            ca=ca,
        )


class ApiSettings(BaseModel):
    """The HTTP API (``ENERGYMON_API_*``, or the config file's ``api:`` section).

    Every limit the API enforces is here, with its default; the OpenAPI description and the
    problem messages quote them, so what is documented is what is enforced.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # -- rate limiting (token bucket per principal, in-process) --------------------------------
    rate_per_second: float = Field(
        default=20.0, ge=0,
        description="Sustained requests per second per token; 0 disables rate limiting.")
    rate_burst: int = Field(default=60, ge=1, description="Bucket size: requests in a burst.")
    anonymous_rate_per_second: float = Field(
        default=5.0, ge=0,
        description="Requests per second per client address for failed authentication; "
        "once an address has used up its burst of failures, its requests are refused before "
        "any token lookup until the bucket refills.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For is believed for the "
        "client address (rate limits); empty = none, the peer address counts.")

    # -- sizes -----------------------------------------------------------------------------------
    page_max: int = Field(default=1000, ge=1, description="Largest page of a list (limit).")
    history_json_max_rows: int = Field(
        default=10_000, ge=1, description="Largest page of history rows as JSON (limit).")
    csv_max_rows: int = Field(
        default=5_000_000, ge=1,
        description="Most rows one CSV export may hold (streamed from a server-side cursor).")
    xlsx_max_rows: int = Field(
        default=200_000, ge=1, le=1_048_575,
        description="Most rows one XLSX export may hold (Excel's own limit is 1 048 576 rows).")
    parquet_max_rows: int = Field(
        default=2_000_000, ge=1, description="Most rows one Parquet export may hold.")
    exports_at_once: int = Field(
        default=2, ge=1,
        description="XLSX and Parquet exports being built in the API process at once; more "
        "are answered 429, so exports cannot starve other tenants.")
    exports_at_once_per_token: int = Field(
        default=1, ge=1, description="XLSX and Parquet exports one token may run at once.")
    export_dir: str | None = Field(
        default=None,
        description="Directory XLSX and Parquet exports are written to while they are built "
        "and sent (each file is unlinked when created, so none is left behind, not even by a "
        "crash); empty = the system's temporary directory. Needs room for the exports running "
        "at once (a 2 M-row Parquet file is about 13 MB).")
    export_in_worker: bool = Field(
        default=True,
        description="Build XLSX and Parquet exports in a worker process (api.export_worker); "
        "false = in a thread of the API process, which then holds the interpreter lock while "
        "it builds (another tenant's p99 rose from 16 to 557 ms in perf/exports_bench.py) "
        "and keeps the memory; only for platforms that cannot start processes.")
    export_nice: int = Field(
        default=10, ge=0, le=19,
        description="CPU priority given up by the worker process that builds an XLSX or "
        "Parquet export (nice increment; 0 = the API's own), so that other requests go first.")
    export_timeout: float = Field(
        default=600.0, gt=0,
        description="Seconds an XLSX or Parquet export may take to build; past it the worker "
        "is stopped and the request answered 504 export-timeout.")
    push_max_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest readings push body in bytes.")
    stream_write_timeout: float = Field(
        default=30.0, gt=0,
        description="Seconds a download (CSV, XLSX, Parquet) may wait for the client to take the "
        "next chunk; a client that stalls longer is cut off and its database connection "
        "given back.")

    # -- database --------------------------------------------------------------------------------
    pool_min: int = Field(default=2, ge=1)
    pool_max: int = Field(default=16, ge=1)
    pool_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a request waits for a database connection.")
    statement_timeout_ms: int = Field(
        default=60_000, ge=0, description="Per statement; 0 = none.")
    db_role: str = Field(
        default="energymon_api", pattern=r"^[a-z_][a-z0-9_]*$",
        description="Role every API connection switches to (SET ROLE); row-level security "
        "applies to it.")

    # -- readings push -----------------------------------------------------------------------------
    push_enabled: bool = Field(
        default=True, description="Start the ingest pipeline for POST .../readings.")
    push_wait_seconds: float = Field(
        default=10.0, ge=0,
        description="How long a push waits for its readings to be committed before answering "
        "202 (queued) instead of 200 (stored).")

    # -- observability ---------------------------------------------------------------------------
    metrics_public: bool = Field(
        default=True,
        description="Serve /metrics without a token (bind the API to a private network).")


class IngestSettings(BaseModel):
    """The MQTT ingest worker (``ENERGYMON_INGEST_*``, or the config file's ``ingest:``
    section); the flags of ``energymon ingest`` override them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    group: str = Field(
        default="ingest", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="MQTT 5 shared-subscription group; workers of one group split the stream.")
    client_id: str | None = Field(
        default=None, min_length=1,
        description="Stable MQTT client id of this worker, unique per worker (default: "
        "energymon-<group>-<hostname>).")
    batch_size: int = Field(default=20_000, ge=1, description="Readings per transaction.")
    flush_interval: float = Field(
        default=0.2, gt=0, description="Seconds a queued reading may wait for its batch.")
    max_pending: int = Field(
        default=200_000, ge=1,
        description="Bound of the queue in readings; receiving waits when full.")
    future_tolerance: float = Field(
        default=300, ge=0, description="Seconds a reading may be ahead of its receive time.")
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Prometheus metrics port (unset: off).")
    metrics_addr: str = Field(default="127.0.0.1", description="Address of the metrics endpoint.")
    receive_maximum: int = Field(
        default=20_000, ge=1, le=65_535,
        description="Unacknowledged messages the broker may send at once; also the bound "
        "of the hand-off queue between the network thread and the ingest queue "
        "(memory: up to this many messages besides max_pending readings).")
    session_expiry: int = Field(
        default=60, ge=0,
        description="Seconds the broker keeps this worker's session while it is away. Short "
        "on purpose: while a dead worker's session lives, the broker queues that worker's "
        "share of the stream for it instead of giving it to the others; when it expires, "
        "the collectors resend what the platform never confirmed (docs/reliability.md).")
    drain_timeout: float = Field(
        default=30, ge=0, description="Seconds to commit what was received at shutdown.")
    dead_letter_max_bytes: int = Field(
        default=65_536, ge=0,
        description="Bytes of a rejected payload kept in dead_letters (its full size and "
        "SHA-256 are kept too).")
    dead_letter_quota_per_minute: int = Field(
        default=6_000, ge=1,
        description="Dead letters stored per plant per minute by one worker; more are counted "
        "in dead_letter_overflow, not stored.")
    dead_letter_retention_days: float = Field(
        default=90, gt=0, description="Days dead letters are kept.")


class VerdictSettings(BaseModel):
    """When a unit may be judged (data sufficiency) and which catalogue edition applies
    (``verdicts:`` in the settings file; ``ENERGYMON_VERDICTS_<FIELD>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meter_min_completeness: float = Field(
        default=0.9, ge=0, le=1,
        description="Least completeness over the period of every energy meter (and production "
        "meter, when output is metered) for a verdict: received readings, capped per local "
        "day at the expected count, over the expected readings.")
    day_min_completeness: float = Field(
        default=0.9, ge=0, le=1,
        description="A meter-day counts as complete at this share of its expected readings "
        "(the national monitoring system's 90 % rule); a unit's completeness is the share of "
        "its meter-days that are complete.")
    max_estimated_energy_share: float = Field(
        default=0.1, ge=0, le=1,
        description="Largest share of the unit's energy (consumed and exported, kgce) that may "
        "rest on estimated intervals for a verdict.")
    max_estimated_output_share: float = Field(
        default=0.1, ge=0, le=1,
        description="Largest share of metered output that may rest on estimated intervals.")
    output_deviation_share: float = Field(
        default=0.05, ge=0,
        description="Declared (statistical) and metered output of a unit that differ by more "
        "than this share of the declared output are both reported and flagged; the declared "
        "output is used for month and year verdicts.")
    editions: dict[str, int] = Field(
        default_factory=dict,
        description="Edition policy per catalogue area or key (`cement: 2021`, "
        "`steel/bof: 2021`): the edition those units are judged against unless a request asks "
        "for one or the unit pins its own.")

    @field_validator("editions")
    @classmethod
    def _plausible_editions(cls, value: dict[str, int]) -> dict[str, int]:
        for key, edition in value.items():
            if not re.fullmatch(r"[a-z0-9_]+(/[a-z0-9_]+)?", key):
                raise ValueError(f"editions: {key!r} is not a catalogue area or area/product key")
            if not 2021 <= edition <= 2100:
                raise ValueError(f"editions: {key}: implausible edition {edition}")
        return value


_CONFIG_FILE: ContextVar[Path | None] = ContextVar("energymon_config_file", default=None)


class Settings(BaseSettings):
    """Settings shared by the CLI, collectors, ingest workers and the API."""

    model_config = SettingsConfigDict(
        env_prefix="ENERGYMON_",
        # ENERGYMON_API_RATE_PER_SECOND -> api.rate_per_second (one level of sections)
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL (postgresql://user:pass@host:5432/db). Unset: an embedded "
        "PostgreSQL is started under data_dir/pg.",
    )
    mqtt_url: str | None = Field(
        default=None,
        description="Broker URL (mqtt://user:pass@host:1883). Unset: the demo starts a local "
        "broker.",
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version; 3.1.1 disables shared subscriptions (one ingest "
        "worker), for brokers without MQTT 5 such as the demo's embedded Python broker.",
    )
    data_dir: Path = Field(
        default=Path(".data"),
        description="Where embedded services and local state (embedded PostgreSQL, spools) live.",
    )
    timezone: str = Field(
        default=DEFAULT_TIMEZONE,
        description="Local calendar for days and months (IANA name); a day is 00:00-24:00 local.",
    )
    embedded_pg_port: int = Field(
        default=0, ge=0, le=65535,
        description="TCP port of the embedded PostgreSQL on 127.0.0.1; 0 picks a free port once.",
    )
    catalogue_edition: int | None = Field(
        default=None, ge=2021,
        description="Benchmark catalogue edition units are judged against; unset = the newest "
        "edition with values for each unit's area and product. A unit's own pinned edition "
        "(fleet file) wins.",
    )
    log_level: str = Field(default="INFO")
    api: ApiSettings = Field(default_factory=ApiSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    verdicts: VerdictSettings = Field(default_factory=VerdictSettings)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _valid_mqtt_url(cls, value: str | None) -> str | None:
        if value is not None:
            MqttEndpoint.parse(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _valid_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                "ENERGYMON_DATABASE_URL must be a postgresql:// URL "
                "(e.g. postgresql://energymon:secret@db.example:5432/energymon)"
            )
        return value

    @property
    def mqtt(self) -> MqttEndpoint | None:
        if not self.mqtt_url:
            return None
        endpoint = MqttEndpoint.parse(self.mqtt_url)
        if "protocol=" not in self.mqtt_url and self.mqtt_protocol != endpoint.protocol:
            endpoint = endpoint.model_copy(update={"protocol": self.mqtt_protocol})
        return endpoint

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get() or os.environ.get("ENERGYMON_CONFIG")
        if config_file:
            sources.append(InitSettingsSource(settings_cls, _read_config(Path(config_file))))
        return tuple(sources)


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigFileError(str(path), ["the file must be a mapping of settings "
                                          "(database_url: ..., api: {...}, ...)"])
    return data


@contextmanager
def _config_file(path: Path) -> Iterator[None]:
    token = _CONFIG_FILE.set(path)
    try:
        yield
    finally:
        _CONFIG_FILE.reset(token)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``config_file`` (YAML) takes the place of ``ENERGYMON_CONFIG``.

    Raises ``FileNotFoundError``, :class:`~core.yamlfile.ConfigFileError` (syntax, duplicated
    key) or ``pydantic.ValidationError`` (a value).
    """
    if config_file is None:
        return Settings(**overrides)
    with _config_file(Path(config_file)):
        return Settings(**overrides)
