"""Racing and repeated expiry scans on the real engine: every due lot expires once (one ledger entry, one CreditsExpired
in the outbox), every lot is warned once per window, every lapsed hold is released once, and the ledger adds up.

moto is not atomic (toolchain-notes.md), so these run against DynamoDB Local. The tables are shared by the session:
each test scans under a state item of its own, at a clock years before the other tests' lots, so only its own items
are due or within a window.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest

from tests.fakes.events import RecordingEventPublisher
from tests.helpers.ledger import assert_ledger_consistent
from tests.helpers.races import race
from tests.helpers.scan_setup import DAY, WEEK, ScanSetup
from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
from usercredits.domain import balances, reservations, spending
from usercredits.domain.expiry_index import ScanState
from usercredits.domain.expiry_scan import ScanReport
from usercredits.domain.models import LedgerKind

pytestmark = pytest.mark.dynamodb_local


class LeaseAlwaysFree(DynamoExpiryIndex):
    """As if every run found the lease expired (e.g. a run outliving its lease): nothing keeps runs apart."""

    def begin(self, run_id: str, now: datetime, lease_until: datetime) -> ScanState | None:
        return super().begin(run_id, now, now)


def prepare(setup: ScanSetup) -> dict[str, dict[str, str]]:
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


def assert_expired_once(setup: ScanSetup, lots: dict[str, dict[str, str]]) -> None:
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
    setup = ScanSetup(datetime(2021, 3, 1, 12, tzinfo=UTC))
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
    setup = ScanSetup(datetime(2021, 6, 1, 12, tzinfo=UTC))
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
