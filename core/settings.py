"""Typed settings for every energymon process.

Precedence (highest first): explicit keyword arguments, ``ENERGYMON_*`` environment variables,
the YAML config file named by ``ENERGYMON_CONFIG`` (or passed as ``config_file``), defaults.

No module-level settings object exists: each process builds one in its composition root
(``core.cli``) and passes it down.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

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

    @property
    def mqtt5(self) -> bool:
        return self.protocol == "5"

    @classmethod
    def parse(cls, url: str) -> MqttEndpoint:
        """``mqtt[s]://[user:pass@]host[:port][?protocol=3.1.1]``."""
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
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            protocol=protocol,  # type: ignore[arg-type]
        )


class Settings(BaseSettings):
    """Settings shared by the CLI, collectors, ingest workers and the API."""

    model_config = SettingsConfigDict(
        env_prefix="ENERGYMON_",
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
        config_file = os.environ.get("ENERGYMON_CONFIG")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings; ``config_file`` (YAML) takes the place of ``ENERGYMON_CONFIG``."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        previous = os.environ.get("ENERGYMON_CONFIG")
        os.environ["ENERGYMON_CONFIG"] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop("ENERGYMON_CONFIG", None)
            else:
                os.environ["ENERGYMON_CONFIG"] = previous
    return Settings(**overrides)
