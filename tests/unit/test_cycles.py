from datetime import UTC, datetime, timedelta

import pytest

from usercredits.kernel.cycles import add_months, cycle_end
from usercredits.kernel.models import Cycle

START = datetime(2026, 1, 31, 10, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cycle", "units", "expected"),
    [
        (Cycle.DAILY, 2, START + timedelta(days=2)),  # seed T14
        (Cycle.WEEKLY, 3, START + timedelta(days=21)),
        (Cycle.BI_WEEKLY, 1, START + timedelta(days=14)),
        (Cycle.MONTHLY, 1, datetime(2026, 2, 28, 10, 30, tzinfo=UTC)),  # clamped, not March 3rd
        (Cycle.MONTHLY, 2, datetime(2026, 3, 31, 10, 30, tzinfo=UTC)),  # counted from the start, not month by month
        (Cycle.TRIMESTER, 1, datetime(2026, 4, 30, 10, 30, tzinfo=UTC)),
        (Cycle.SEMESTER, 1, datetime(2026, 7, 31, 10, 30, tzinfo=UTC)),  # 6 months, not the seed's 4
        (Cycle.YEARLY, 2, datetime(2028, 1, 31, 10, 30, tzinfo=UTC)),
    ],
)
def test_cycle_end_calendar_arithmetic_in_utc(cycle: Cycle, units: int, expected: datetime) -> None:
    assert cycle_end(START, cycle, units) == expected


def test_cycle_end_leap_year_clamps_to_february_29() -> None:
    assert add_months(datetime(2028, 1, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    assert add_months(datetime(2028, 2, 29, tzinfo=UTC), 12) == datetime(2029, 2, 28, tzinfo=UTC)


def test_cycle_end_once_never_expires() -> None:
    assert cycle_end(START, Cycle.ONCE, 5) is None


def test_cycle_end_custom_uses_seconds_times_units() -> None:
    assert cycle_end(START, Cycle.CUSTOM, 3, custom_cycle_seconds=3600) == START + timedelta(hours=3)


def test_cycle_end_custom_without_seconds_is_refused() -> None:
    with pytest.raises(ValueError, match="customCycleSeconds"):
        cycle_end(START, Cycle.CUSTOM, 1, None)


def test_cycle_end_rejects_zero_units() -> None:
    with pytest.raises(ValueError, match="units"):
        cycle_end(START, Cycle.DAILY, 0)


def test_cycle_unknown_value_is_refused() -> None:
    with pytest.raises(ValueError):  # seed T14: "Invalid or missing cycle value"
        Cycle("fortnightly")
