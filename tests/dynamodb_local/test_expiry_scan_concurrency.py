"""Racing and repeated expiry scans on the real engine: every due lot expires once (one ledger entry, one CreditsExpired
in the outbox), every lot is warned once per window, every lapsed hold is released once, and the ledger adds up.

moto is not atomic (toolchain-notes.md), so these run against DynamoDB Local. The tables are shared by the session:
each test scans under a state item of its own, at a clock years before the other tests' lots, so only its own items
are due or within a window.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.dynamodb_local.test_consumption_concurrency import assert_ledger_consistent, race
from tests.fakes import FixedClock, RecordingEventPublisher
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
from usercredits.adapters.dynamodb.keys import user_pk
from usercredits.adapters.dynamodb.tables import LotItem, OutboxItem
from usercredits.domain import balances, reservations, spending
from usercredits.domain.expiry_index import ScanState
from usercredits.domain.expiry_scan import ScanReport, Unlimited, scan_expiry
from usercredits.domain.models import DomainEvent, LedgerKind

pytestmark = pytest.mark.dynamodb_local
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


class LeaseAlwaysFree(DynamoExpiryIndex):
    """As if every run found the lease expired (e.g. a run outliving its lease): nothing keeps runs apart."""

    def begin(self, run_id: str, now: datetime, lease_until: datetime) -> ScanState | None:
        return super().begin(run_id, now, now)


class Setup:
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


def prepare(setup: Setup) -> dict[str, dict[str, str]]:
    """Per user: a lot of 10 (3 spent) due in an hour, a lot entering the 7-day window in a day, one entering the
    1-day window in a day and a half (granted inside the 7-day one), and a hold of 2 lapsing in 10 minutes."""
    lots: dict[str, dict[str, str]] = {}
    for user in setup.users:
        lots[user] = {
            "G": setup.grant(user, "G", 10, hours=1),
            "W": setup.grant(user, "W", 7, days=8),
            "D": setup.grant(user, "D", 5, days=2, hours=12),
        }
        spending.consume_credits(
            user,
            "G",
            3,
            idempotency_key=None,
            catalog=setup.catalog,
            credits=setup.credits,
            clock=setup.clock,
            events=RecordingEventPublisher(),
        )
        reservations.create_reservation(
            user,
            "W",
            2,
            expires_in_seconds=600,
            idempotency_key=None,
            catalog=setup.catalog,
            credits=setup.credits,
            clock=setup.clock,
        )
    setup.scan()  # the cursors start here: nothing is due or within a window yet
    setup.clock.advance(days=1, hours=13)
    return lots


def assert_expired_once(setup: Setup, lots: dict[str, dict[str, str]]) -> None:
    for user in setup.users:
        by_group = assert_ledger_consistent(user, setup.credits)
        expires = [(e.lot_id, e.tokens) for e in by_group["G"] if e.kind is LedgerKind.EXPIRE]
        assert expires == [(lots[user]["G"], -7)]
        releases = [e for e in by_group["W"] if e.kind is LedgerKind.RELEASE]
        assert [(e.held, e.reason) for e in releases] == [(-2, "hold expired")]
        told = [(d["lotId"], d["tokens"]) for kind, d in setup.outbox(user) if kind == "CreditsExpired"]
        assert told == [(lots[user]["G"], 7)]


def test_racing_and_repeated_scans_expire_warn_and_release_exactly_once(dynamodb_local: str) -> None:
    # Given 8 users, each with a due lot, two lots entering warning windows and a lapsed hold
    setup = Setup(datetime(2021, 3, 1, 12, tzinfo=UTC))
    lots = prepare(setup)
    # When 6 scans start together, then 2 more run one after the other
    outcomes = race(6, lambda _: setup.scan(), workers=6)
    outcomes += [setup.scan(), setup.scan()]
    # Then no run failed; the overlapping ones skipped
    reports = [outcome for outcome in outcomes if isinstance(outcome, ScanReport)]
    assert len(reports) == len(outcomes) and any(r.skipped for r in reports)
    assert sum(r.lots_expired for r in reports) == 8 and sum(r.tokens_expired for r in reports) == 56
    assert sum(r.holds_released for r in reports) == 8
    # and every lot expired once, every hold was released once, the ledgers add up
    assert_expired_once(setup, lots)
    # and every lot was warned once per window it entered after it was granted
    sent = Counter((e.detail["lotId"], e.detail["windowSeconds"]) for e in setup.events.accepted)
    expected = {(lots[u]["W"], WEEK) for u in setup.users} | {(lots[u]["D"], DAY) for u in setup.users}
    assert sent == dict.fromkeys(expected, 1)
    assert all(setup.warned(u, "W", lots[u]["W"]) == {WEEK} for u in setup.users)


def test_without_the_lease_racing_scans_and_reads_still_expire_each_lot_once(dynamodb_local: str) -> None:
    # Given the same, and nothing keeping the scans apart
    setup = Setup(datetime(2021, 6, 1, 12, tzinfo=UTC))
    lots = prepare(setup)

    def work(n: int) -> object:
        user = setup.users[n % len(setup.users)]
        if n % 3 == 0:
            return setup.scan(LeaseAlwaysFree(setup.name))
        if n % 3 == 1:
            return balances.list_credits(user, credits=setup.credits, clock=setup.clock, catalog=setup.catalog)
        return spending.consume_credits(
            user,
            "W",
            1,
            idempotency_key=None,
            catalog=setup.catalog,
            credits=setup.credits,
            clock=setup.clock,
            events=RecordingEventPublisher(),
        )

    # When scans race each other and the users' own reads and spends (which also expire due lots)
    outcomes = race(24, work, workers=12)
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    setup.scan()
    # Then each lot still expired once, with one CreditsExpired; each hold was released once
    assert_expired_once(setup, lots)
    # and each warning was recorded once on its lot (racing runs may both have sent it: same eventId, dropped
    # downstream)
    for user in setup.users:
        assert setup.warned(user, "W", lots[user]["W"]) == {WEEK}
        assert setup.warned(user, "D", lots[user]["D"]) == {DAY}
    ids = {e.detail["eventId"] for e in setup.events.accepted}
    assert len(ids) == 2 * len(setup.users)
