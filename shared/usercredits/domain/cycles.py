"""Cycle arithmetic in UTC with month-end clamping (Jan 31 + 1 month = Feb 28/29; semester = 6 months)."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from usercredits.domain.models import Cycle

_DAYS = {Cycle.DAILY: 1, Cycle.WEEKLY: 7, Cycle.BI_WEEKLY: 14}
_MONTHS = {Cycle.MONTHLY: 1, Cycle.TRIMESTER: 3, Cycle.SEMESTER: 6, Cycle.YEARLY: 12}


def add_months(start: datetime, months: int) -> datetime:
    """``start`` plus ``months`` calendar months, the day clamped to the target month's last day."""
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def cycle_end(start: datetime, cycle: Cycle, units: int, custom_cycle_seconds: int | None = None) -> datetime | None:
    """When ``units`` cycles that begin at ``start`` end; None for ``once`` (a purchase that never expires).

    Counting from ``start`` each time (not month by month) keeps the clamping exact: Jan 31 + 2 months = Mar 31.
    """
    if units < 1:
        raise ValueError("units must be at least 1")
    if cycle is Cycle.ONCE:
        return None
    if cycle in _DAYS:
        return start + timedelta(days=_DAYS[cycle] * units)
    if cycle in _MONTHS:
        return add_months(start, _MONTHS[cycle] * units)
    if custom_cycle_seconds is None or custom_cycle_seconds < 1:
        raise ValueError("cycle 'custom' needs a positive customCycleSeconds")
    return start + timedelta(seconds=custom_cycle_seconds * units)
