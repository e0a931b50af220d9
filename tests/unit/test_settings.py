import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import MqttEndpoint, Settings, load_settings
from core.yamlfile import ConfigFileError


def test_defaults_need_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ENERGYMON_DATABASE_URL", "ENERGYMON_MQTT_URL", "ENERGYMON_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    settings = Settings()
    assert settings.database_url is None
    assert settings.mqtt is None
    assert settings.timezone == "Asia/Shanghai"


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", "postgresql://u:p@db:5432/energymon")
    monkeypatch.setenv("ENERGYMON_MQTT_URL", "mqtt://gw%40plant:s3cr%2Ft@broker.local:1884")
    settings = Settings()
    assert settings.database_url == "postgresql://u:p@db:5432/energymon"
    assert settings.mqtt == MqttEndpoint(host="broker.local", port=1884, username="gw@plant",
                                         password="s3cr/t", tls=False)


def test_config_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "energymon.yaml"
    config.write_text("timezone: Asia/Urumqi\nmqtt_url: mqtts://broker:8883\n"
                      "database_url: postgresql://file/db\n")
    monkeypatch.setenv("ENERGYMON_DATABASE_URL", "postgresql://env/db")
    settings = load_settings(config)
    assert settings.timezone == "Asia/Urumqi"
    assert settings.mqtt is not None and settings.mqtt.tls and settings.mqtt.port == 8883
    assert settings.database_url == "postgresql://env/db"  # environment wins over the file


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("database_url", "mysql://x", "postgresql://"),
        ("mqtt_url", "http://broker", "mqtt://"),
        ("mqtt_url", "mqtt://", "no host"),
        ("timezone", "Mars/Olympus", "unknown IANA time zone"),
    ],
)
def test_invalid_settings_name_the_field(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**{field: value})
    text = str(info.value)
    assert field in text and message in text


def test_unknown_key_in_config_file_is_rejected(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("databse_url: postgresql://typo/db\n")
    with pytest.raises(ValidationError, match="databse_url"):
        load_settings(config)


def test_api_and_ingest_sections_from_file_and_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "energymon.yaml"
    config.write_text("api:\n  page_max: 50\n  rate_burst: 9\n"
                      "ingest:\n  batch_size: 500\n  group: plants-east\n")
    monkeypatch.setenv("ENERGYMON_API_RATE_BURST", "11")
    monkeypatch.setenv("ENERGYMON_INGEST_MAX_PENDING", "4000")
    settings = load_settings(config)
    assert settings.api.page_max == 50
    assert settings.api.rate_burst == 11            # environment wins over the file
    assert settings.api.csv_max_rows == 5_000_000   # untouched default
    assert settings.ingest.batch_size == 500 and settings.ingest.group == "plants-east"
    assert settings.ingest.max_pending == 4000


def test_loading_a_config_file_leaves_the_environment_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENERGYMON_CONFIG", raising=False)
    config = tmp_path / "energymon.yaml"
    config.write_text("timezone: Asia/Urumqi\n")
    before = dict(os.environ)
    assert load_settings(config).timezone == "Asia/Urumqi"
    assert dict(os.environ) == before
    assert Settings().timezone == "Asia/Shanghai"  # the file applied to that load only


def test_duplicated_key_in_config_file_is_refused_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "dup.yaml"
    config.write_text("api:\n  page_max: 50\n  page_max: 5000\n")
    with pytest.raises(ConfigFileError) as info:
        load_settings(config)
    text = str(info.value)
    assert str(config) in text and "line 3" in text and "duplicate key 'page_max'" in text


def test_invalid_section_value_names_the_section_and_field(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("ingest:\n  batch_size: 0\n")
    with pytest.raises(ValidationError) as info:
        load_settings(config)
    assert "ingest.batch_size" in str(info.value)


def test_cli_flags_override_the_ingest_section(tmp_path: Path) -> None:
    from app.cli import build_parser
    from app.commands.ingest import options_from_args

    settings = Settings(ingest={"batch_size": 500, "flush_interval": 0.5})
    args = build_parser().parse_args(["ingest", "--batch-size", "700"])
    options = options_from_args(args, settings.ingest)
    assert options.config.batch_size == 700           # the flag
    assert options.config.flush_interval == 0.5       # the setting
    assert options.receive_maximum == 20_000          # the default


def test_verdict_rules_from_file_and_environment(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "energymon.yaml"
    path.write_text("verdicts: {editions: {cement: 2021}, max_estimated_energy_share: 0.05}\n")
    monkeypatch.setenv("ENERGYMON_CONFIG", str(path))
    monkeypatch.setenv("ENERGYMON_VERDICTS_METER_MIN_COMPLETENESS", "0.95")
    rules = Settings().verdicts
    assert rules.meter_min_completeness == 0.95
    assert rules.max_estimated_energy_share == 0.05
    assert rules.editions == {"cement": 2021}
    assert Settings(verdicts={}).verdicts.day_min_completeness == 0.9     # the default
    with pytest.raises(ValidationError, match="implausible edition"):
        Settings(verdicts={"editions": {"cement": 1999}})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Settings(verdicts={"meter_min_completeness": 1.5})
