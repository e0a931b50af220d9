"""Settings of the HTTP API (``ENERGYMON_API_*``), beside :class:`core.settings.Settings`.

Every limit the API enforces is here, with its default; the OpenAPI description and the
problem messages quote them, so what is documented is what is enforced.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENERGYMON_API_", extra="forbid", frozen=True)

    # -- rate limiting (token bucket per principal, in-process) --------------------------------
    rate_per_second: float = Field(
        default=20.0, ge=0,
        description="Sustained requests per second per token; 0 disables rate limiting.")
    rate_burst: int = Field(default=60, ge=1, description="Bucket size: requests in a burst.")
    anonymous_rate_per_second: float = Field(
        default=5.0, ge=0,
        description="Requests per second per client address for failed authentication.")

    # -- sizes -----------------------------------------------------------------------------------
    page_max: int = Field(default=1000, ge=1, description="Largest page of a list (limit).")
    history_json_max_rows: int = Field(
        default=10_000, ge=1, description="Largest page of history rows as JSON (limit).")
    csv_max_rows: int = Field(
        default=5_000_000, ge=1,
        description="Most rows one CSV export may hold (streamed from a server-side cursor).")
    xlsx_max_rows: int = Field(
        default=200_000, ge=1, le=1_048_575,
        description="Most rows one XLSX export may hold (built in memory; Excel's own limit is "
        "1 048 576 rows).")
    parquet_max_rows: int = Field(
        default=2_000_000, ge=1, description="Most rows one Parquet export may hold.")
    push_max_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest readings push body in bytes.")

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
