from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.contract import NaiveTimestampError, Quality, QualityCode, aware_datetime


@pytest.mark.parametrize("quality", list(Quality))
def test_quality_codes_round_trip(quality: Quality) -> None:
    assert Quality.from_code(quality.code) is quality
    assert QualityCode(quality.code).name == quality.name


def test_aware_datetime_needs_an_offset() -> None:
    assert aware_datetime("2026-01-01T08:00:00+08:00") == datetime(
        2026, 1, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    assert aware_datetime("2026-01-01T00:00:00Z") == datetime(2026, 1, 1, tzinfo=UTC)
    with pytest.raises(NaiveTimestampError, match="no UTC offset"):
        aware_datetime("2026-01-01T08:00:00")
    with pytest.raises(ValueError, match="Invalid isoformat") as exc:
        aware_datetime("yesterday")
    assert not isinstance(exc.value, NaiveTimestampError)
