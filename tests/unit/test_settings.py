from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import MqttEndpoint, Settings, load_settings


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
