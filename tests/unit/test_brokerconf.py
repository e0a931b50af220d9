"""The generated broker configuration: the files shipped in deploy/mosquitto are the
generator's output, and the sizing arithmetic is what docs/reliability.md says."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.brokerconf import PROVINCE, TESTING, BrokerSizing, acl_lines
from app.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_deploy_files_are_the_generators_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["broker-config"]) == 0
    conf = capsys.readouterr().out
    assert (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text() == conf, \
        "regenerate: energymon broker-config > deploy/mosquitto/mosquitto.conf"
    assert main(["broker-config", "--acl"]) == 0
    assert (REPO / "deploy" / "mosquitto" / "energymon.acl").read_text() == \
        capsys.readouterr().out


def test_province_sizing_holds_a_day_of_every_plant_in_one_session() -> None:
    # 1 000 plants x 96 batches a day, +25 %: one worker left alone takes it all
    assert PROVINCE.queued_messages == 120_000
    assert PROVINCE.queued_bytes == 120_000 * 20_000
    assert TESTING.queued_messages >= 1_000_000      # the tests' floods of small messages
    with pytest.raises(ValueError):
        BrokerSizing(plants=0, cycle_s=900, held_hours=1, message_bytes=1, loss_window_s=1)


def test_acl_gives_plants_only_their_own_topics() -> None:
    lines = acl_lines()
    assert "pattern write plants/%u/readings" in lines
    assert "pattern read plants/%u/acks/#" in lines
    assert not any(line.startswith("pattern write") and "acks" in line for line in lines)
    assert "topic write plants/+/acks/#" in lines          # ingest acknowledges
    assert "topic readwrite #" not in lines
