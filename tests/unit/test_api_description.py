"""The OpenAPI description quotes the limits the API is configured with."""

from api.app import create_app
from api.config import ApiConfig
from core.settings import Settings

URL = "postgresql://u:p@127.0.0.1:1/none"


def test_description_quotes_the_configured_limits() -> None:
    config = ApiConfig(page_max=77, rate_per_second=3, rate_burst=9, history_json_max_rows=4321,
                       csv_max_rows=12_345_678, xlsx_max_rows=654_321,
                       parquet_max_rows=7_654_321, push_max_bytes=65_536)
    description = create_app(Settings(database_url=URL), config).description
    for quoted in ("list pages ≤ 77 items", "3 requests/s, bursts of 9", "≤ 4321\nrows",
                   "12 345 678 rows", "XLSX ≤ 654 321", "7 654 321", "a push ≤ 64 KiB",
                   "this server's"):
        assert quoted in description, quoted
    assert "1000" not in description and "default" not in description.split("**Units**")[0]


def test_description_quotes_the_defaults() -> None:
    defaults = ApiConfig()
    description = create_app(Settings(database_url=URL), defaults).description
    assert "(defaults, `ENERGYMON_API_*`)" in description
    assert f"default {defaults.rate_per_second:g} requests/s" in description
    assert f"list pages ≤ {defaults.page_max} items" in description
    assert "a push ≤ 1 MiB" in description


def test_description_says_when_rate_limiting_is_off() -> None:
    description = create_app(Settings(database_url=URL), ApiConfig(rate_per_second=0)).description
    assert "**Rate limit**: none" in description and "requests/s" not in description
