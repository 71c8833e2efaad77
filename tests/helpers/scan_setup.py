"""An expiry-scan setup on the real engine, shared by the scan's race tests and its limit tests."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from tests.fakes.clock import FixedClock
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.credits_table import LotItem, OutboxItem
from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
from usercredits.adapters.dynamodb.keys import user_pk
from usercredits.domain import spending
from usercredits.domain.expiry_scan import ScanReport, Unlimited, scan_expiry
from usercredits.kernel.models import DomainEvent

DAY = 86400
WEEK = 7 * DAY


class SharedPublisher:
    """``publish_each`` accepting everything, safe to share between threads."""

    def __init__(self) -> None:
        self.accepted: list[DomainEvent] = []
        self._lock = threading.Lock()

    def publish_each(self, events: list[DomainEvent]) -> list[bool]:
        with self._lock:
            self.accepted += events
        return [True] * len(events)


class ScanSetup:
    """Users with lots on the real engine, scanned under a scan state of their own at a clock of their own (the
    tables are shared by the session)."""

    def __init__(self, start: datetime) -> None:
        self.clock = FixedClock(start)
        self.credits = DynamoCreditsRepository()
        self.catalog = DynamoCatalogRepository(cache_seconds=0)
        self.name = f"test-{uuid.uuid4().hex[:12]}"
        self.events = SharedPublisher()
        self.users = [f"scan-{uuid.uuid4().hex[:10]}" for _ in range(8)]

    def grant(self, user: str, group: str, tokens: int, **expires_in: float) -> str:
        entry = spending.grant_credits(
            user,
            group,
            tokens,
            expires=self.clock.now() + timedelta(**expires_in),
            reason="t",
            credits=self.credits,
            clock=self.clock,
        )
        assert entry.lot_id is not None
        return entry.lot_id

    def scan(self, index: DynamoExpiryIndex | None = None) -> ScanReport:
        return scan_expiry(
            run_id=str(uuid.uuid4()),
            lease=timedelta(minutes=2),
            windows=(WEEK, DAY),
            budget=Unlimited(),
            index=index or DynamoExpiryIndex(self.name),
            credits=self.credits,
            catalog=self.catalog,
            events=self.events,
            clock=self.clock,
            page_size=5,
        )

    def outbox(self, user: str) -> list[tuple[str, dict[str, Any]]]:
        return [
            (event.kind, json.loads(event.detail))
            for item in OutboxItem.query(user_pk(user), OutboxItem.sk.startswith("OUTBOX#"), consistent_read=True)
            for event in item.events
        ]

    def warned(self, user: str, group: str, lot_id: str) -> set[int]:
        # Open or closed (the key of an open lot is its burn order; of a closed one its id): found by its id.
        [item] = LotItem.query(user_pk(user), filter_condition=LotItem.lot_id == lot_id, consistent_read=True)
        assert item.offer_group == group
        return {int(window) for window in item.warned or ()}
