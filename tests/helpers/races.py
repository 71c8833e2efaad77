"""Racing callers on the real engine: threads released together, and grants on the real clock."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

from usercredits.domain import spending
from usercredits.domain.models import LedgerEntry
from usercredits.domain.ports import CreditsRepository
from usercredits.kernel.clock import SystemClock

#: Client threads for the 200-request races (DynamoDB Local on 2 cores: more only queues).
WORKERS = 32


def race[T](count: int, work: Callable[[int], T], *, workers: int = WORKERS) -> list[T | Exception]:
    """Run ``work(0..count-1)`` on ``workers`` threads released together; each outcome is a result or the exception."""
    start = Barrier(min(count, workers))

    def guarded(index: int) -> T | Exception:
        if index < min(count, workers):
            start.wait(timeout=30)
        try:
            return work(index)
        except Exception as exc:  # noqa: BLE001 - the test counts outcomes
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(guarded, range(count)))


def grant(user_id: str, group: str, tokens: int, credits: CreditsRepository, **expires: float) -> LedgerEntry:
    return spending.grant_credits(
        user_id,
        group,
        tokens,
        expires=SystemClock().now() + timedelta(**expires) if expires else None,
        reason="test",
        credits=credits,
        clock=SystemClock(),
    )
