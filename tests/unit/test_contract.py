from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from core.contract import Quality, QualityCode, Reading


def test_reading_round_trip() -> None:
    reading = Reading(plant_id="p1", meter_id="m-1", ts=datetime(2026, 1, 1, tzinfo=UTC),
                      value=12.5)
    assert reading.quality is Quality.GOOD
    assert Reading.model_validate_json(reading.model_dump_json()) == reading


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ts": datetime(2026, 1, 1)}, "UTC offset"),
        ({"value": float("nan")}, "finite"),
        ({"value": float("inf")}, "finite"),
        ({"meter_id": "Bad Id"}, "pattern"),
        ({"quality": "great"}, "quality"),
        ({"extra": 1}, "extra"),
    ],
)
def test_reading_rejects(changes: dict[str, object], message: str) -> None:
    data: dict[str, object] = {"plant_id": "p1", "meter_id": "m1",
                               "ts": datetime(2026, 1, 1, tzinfo=UTC), "value": 1.0}
    data.update(changes)
    with pytest.raises(ValidationError, match=message):
        Reading.model_validate(data)


@pytest.mark.parametrize("quality", list(Quality))
def test_quality_codes_round_trip(quality: Quality) -> None:
    assert Quality.from_code(quality.code) is quality
    assert QualityCode(quality.code).name == quality.name
