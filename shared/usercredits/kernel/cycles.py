"""Cycle arithmetic in UTC with month-end clamping (Jan 31 + 1 month = Feb 28/29; semester = 6 months)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

from usercredits.kernel.models import Cycle

#: The latest time a window may reach: cycle arithmetic saturates here instead of overflowing (``datetime`` ends in
#: year 9999), so a payment can always be applied. A day short of ``datetime.max``, so converting it to any timezone
#: (UTC+14 at most) or serialising it (PynamoDB's UTCDateTimeAttribute, ISO 8601) still works.
MAX_TIME = datetime(9999, 12, 31, tzinfo=UTC)
#: The earliest time ``add_months`` returns for a negative count (it saturates there instead of raising).
_MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
#: A purchase's window (of the order and of each bundle item) must end within this of the time it is ordered. The
#: longest real offer lasts a few years; beyond a century a window is a mistake (a yearly offer x 10,000) that would
#: otherwise reach ``MAX_TIME``, and no one is charged for credits that could only be granted saturated. It equals
#: the longest ``customCycleSeconds`` an offer may have (100 x 366 days), so one such cycle bought now still fits.
MAX_WINDOW = timedelta(days=100 * 366)
#: How far ahead an explicit ``starts`` may pin an order. Real pre-orders are months ahead, but the original
#: library's own test scenario starts in 2050 (~25 years): 50 years keeps it valid for decades, still leaves half of
#: ``MAX_WINDOW`` to the purchase itself, and refuses a typo or a probe (year 9999) with a message about ``starts``,
#: not ``quantity``.
MAX_START_AHEAD = timedelta(days=50 * 366)

_DAYS = {Cycle.DAILY: 1, Cycle.WEEKLY: 7, Cycle.BI_WEEKLY: 14}
_MONTHS = {Cycle.MONTHLY: 1, Cycle.TRIMESTER: 3, Cycle.SEMESTER: 6, Cycle.YEARLY: 12}


def add_months(start: datetime, months: int) -> datetime:
    """``start`` plus ``months`` calendar months, the day clamped to the target month's last day.

    Saturates instead of overflowing: a result after ``MAX_TIME`` is ``MAX_TIME`` (before year 1, year 1), in
    ``start``'s timezone.
    """
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    if year < 1:
        return _MIN_TIME.replace(tzinfo=start.tzinfo)
    ceiling = MAX_TIME.replace(tzinfo=start.tzinfo)
    if year > ceiling.year:
        return ceiling
    day = min(start.day, calendar.monthrange(year, month)[1])
    end = start.replace(year=year, month=month, day=day)
    return ceiling if months > 0 and end > ceiling else end


def cycle_end(start: datetime, cycle: Cycle, units: int, custom_cycle_seconds: int | None = None) -> datetime | None:
    """When ``units`` cycles that begin at ``start`` end; None for ``once`` (a purchase that never expires).

    Counting from ``start`` each time (not month by month) keeps the clamping exact: Jan 31 + 2 months = Mar 31.
    Never overflows: an end after ``MAX_TIME`` is ``MAX_TIME`` (so a paid order can always be settled; orders are
    refused long before that, see ``MAX_WINDOW``).
    """
    if units < 1:
        raise ValueError("units must be at least 1")
    if cycle is Cycle.ONCE:
        return None
    if cycle in _MONTHS:
        return add_months(start, _MONTHS[cycle] * units)
    seconds = _DAYS[cycle] * 86_400 if cycle in _DAYS else custom_cycle_seconds
    if seconds is None or seconds < 1:
        raise ValueError("cycle 'custom' needs a positive customCycleSeconds")
    ceiling = MAX_TIME.replace(tzinfo=start.tzinfo)
    try:
        end = start + timedelta(seconds=seconds * units)
    except OverflowError:  # past ``datetime.max``, or a timedelta longer than 999,999,999 days
        return ceiling
    return min(end, ceiling)
