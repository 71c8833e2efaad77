"""Lots past their expiry, through the real repositories on moto with a controllable clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from devtools.catalog import load_catalog

from tests.conftest import DEMO_CATALOG
from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.fakes.payments import RecordingPaymentGateway
from tests.helpers.present import present
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.domain import balances, expiry_check, lapses, ordering, payments, reservations, spending
from usercredits.domain.models import GroupPolicy, OrderStatus
from usercredits.errors import ConflictError, InsufficientCreditsError
from usercredits.kernel.models import Caller


@pytest.fixture
def repos(moto_tables: None):
    return DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository(), FixedClock()


def test_expired_lot_loses_exactly_its_unused_tokens_once(repos) -> None:
    catalog, credits, clock = repos
    # Given a lot of 10 expiring in 5 days, another without expiry, and 4 tokens spent (from the soonest lot)
    spending.grant_credits(
        "u", "G", 10, expires=clock.now() + timedelta(days=5), reason="a", credits=credits, clock=clock
    )
    spending.grant_credits("u", "G", 7, expires=None, reason="b", credits=credits, clock=clock)
    spending.consume_credits(
        "u",
        "G",
        4,
        idempotency_key=None,
        catalog=catalog,
        credits=credits,
        clock=clock,
        events=RecordingEventPublisher(),
    )
    # When the expiry passes and the lots are checked twice
    clock.advance(days=6)
    assert lapses.expire_group("u", "G", credits=credits, clock=clock, catalog=catalog).tokens == 6
    assert lapses.expire_group("u", "G", credits=credits, clock=clock, catalog=catalog).tokens == 0
    # Then only the unused 6 left, once, and the other lot is untouched
    group = balances.get_credit_group("u", "G", credits=credits, clock=clock, catalog=catalog)
    assert (group.balance, [lot.remaining for lot in group.lots]) == (7, [7])
    ledger = balances.list_ledger("u", offer_group="G", limit=50, cursor=None, credits=credits).items
    assert [(e.kind.value, e.tokens) for e in ledger][:1] == [("expire", -6)]


def test_fully_used_lot_expires_silently(repos) -> None:
    catalog, credits, clock = repos
    spending.grant_credits(
        "u", "G", 3, expires=clock.now() + timedelta(days=1), reason="a", credits=credits, clock=clock
    )
    spending.consume_credits(
        "u",
        "G",
        3,
        idempotency_key=None,
        catalog=catalog,
        credits=credits,
        clock=clock,
        events=RecordingEventPublisher(),
    )
    clock.advance(days=2)
    assert lapses.expire_group("u", "G", credits=credits, clock=clock, catalog=catalog).tokens == 0
    kinds = [
        e.kind.value for e in balances.list_ledger("u", offer_group="G", limit=50, cursor=None, credits=credits).items
    ]
    assert kinds == ["consume", "grant"]  # no expire entry of 0
    assert balances.get_credit_group("u", "G", credits=credits, clock=clock, catalog=catalog).lots == []


def test_a_lot_past_expiry_cannot_be_spent_even_before_any_scan(repos) -> None:
    catalog, credits, clock = repos
    spending.grant_credits(
        "u", "G", 10, expires=clock.now() + timedelta(days=1), reason="a", credits=credits, clock=clock
    )
    clock.advance(days=2)
    # The spend finds the lot due, closes it, and is then refused: the expired tokens are gone
    with pytest.raises(InsufficientCreditsError):
        spending.consume_credits(
            "u",
            "G",
            1,
            idempotency_key=None,
            catalog=catalog,
            credits=credits,
            clock=clock,
            events=RecordingEventPublisher(),
        )
    assert balances.get_credit_group("u", "G", credits=credits, clock=clock, catalog=catalog).balance == 0


def test_expiry_of_a_paid_order_moves_it_to_expired(repos) -> None:
    catalog, credits, clock = repos
    load_catalog(DEMO_CATALOG)
    orders = DynamoOrderRepository()
    placed = ordering.place_order(
        ordering.PlaceOrder("StartupM"),
        Caller(user_id="u"),
        default_currency="usd",
        catalog=catalog,
        orders=orders,
        payments=RecordingPaymentGateway(),
        clock=clock,
    )
    paid = payments.apply_order_paid("u", placed.order.order_id, orders=orders, clock=clock, message="paid")
    clock.current = present(paid.expires) + timedelta(seconds=1)
    groups = {g.offer_group: g for g in balances.list_credits("u", credits=credits, clock=clock, catalog=catalog)}
    assert groups["Startup"].balance == 0  # the lazy check on read closed it
    assert present(orders.get_order("u", paid.order_id)).status is OrderStatus.EXPIRED
    # The bundle item (no appendDate) shared the root purchase's window (seed T19), so it expired with it
    assert groups["AiTokens"].balance == 0
    child = orders.get_order("u", paid.combined_items[0].child_order_id or "")
    assert child is not None and child.status is OrderStatus.EXPIRED


def test_a_hold_that_reaches_its_expiry_returns_by_itself(repos) -> None:
    catalog, credits, clock = repos
    spending.grant_credits("u", "G", 10, expires=None, reason="a", credits=credits, clock=clock)
    hold = reservations.create_reservation(
        "u", "G", 8, expires_in_seconds=60, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    clock.advance(seconds=61)
    # Read lazily releases it; a capture after expiry is refused
    group = balances.get_credit_group("u", "G", credits=credits, clock=clock, catalog=catalog)
    assert (group.held, group.available) == (0, 10)
    with pytest.raises(ConflictError):
        reservations.capture_reservation(
            "u",
            hold.reservation_id,
            None,
            credits=credits,
            clock=clock,
            catalog=catalog,
            events=RecordingEventPublisher(),
        )
    ledger = balances.list_ledger("u", offer_group="G", limit=10, cursor=None, credits=credits).items
    assert [(e.kind.value, e.held, e.reason) for e in ledger][0] == ("release", -8, "hold expired")


def test_an_expired_hold_frees_its_tokens_for_a_new_hold(repos) -> None:
    catalog, credits, clock = repos
    spending.grant_credits("u", "G", 5, expires=None, reason="a", credits=credits, clock=clock)
    reservations.create_reservation(
        "u", "G", 5, expires_in_seconds=10, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    clock.advance(seconds=11)
    again = reservations.create_reservation(
        "u", "G", 5, expires_in_seconds=10, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    assert again.count == 5


def grant_expiring(credits, clock, group: str, tokens: int, days: float) -> None:
    spending.grant_credits(
        "u", group, tokens, expires=clock.now() + timedelta(days=days), reason="t", credits=credits, clock=clock
    )


def test_expiry_check_expires_due_groups_once_and_warns(repos) -> None:
    # Seed T23/T25: G1 and G2 lapse (one day and one week from now), A1/A2 later; a 4-day warning window
    catalog, credits, clock = repos
    grant_expiring(credits, clock, "G1", 5, 1)
    grant_expiring(credits, clock, "G2", 6, 7)
    grant_expiring(credits, clock, "A1", 7, 10)
    grant_expiring(credits, clock, "A2", 8, 20)
    clock.advance(days=8)
    report = expiry_check.check_expiry(
        "u",
        warn_before_seconds=4 * 86400,
        low={"A2": 8, "Never": 0},
        credits=credits,
        clock=clock,
        catalog=catalog,
    )
    assert [group.offer_group for group in report.expired] == ["G1", "G2"]
    assert all(group.balance == 0 for group in report.expired)
    assert [(w.offer_group, w.kind, w.balance) for w in report.warnings] == [
        ("A1", "expiring", 7),
        ("A2", "low", 8),
        ("Never", "low", 0),  # at the minimum and zero both warn
    ]
    # Issue 12, defect 10: the groups whose lots expired are reported whoever closed them (a second check, a read,
    # the scan), as long as nothing valid is left in them; nothing expires twice.
    again = expiry_check.check_expiry("u", warn_before_seconds=0, low={}, credits=credits, clock=clock, catalog=catalog)
    assert [group.offer_group for group in again.expired] == ["G1", "G2"] and again.warnings == []
    expired = [
        e
        for e in balances.list_ledger("u", offer_group=None, limit=50, cursor=None, credits=credits).items
        if e.kind.value == "expire"
    ]
    assert sorted((e.offer_group, e.tokens) for e in expired) == [("G1", -5), ("G2", -6)]


def test_credits_low_is_published_once_per_crossing(repos) -> None:
    catalog, credits, clock = repos
    catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    events = RecordingEventPublisher()
    spending.grant_credits("u", "G", 10, expires=None, reason="t", credits=credits, clock=clock)

    def spend(count: int) -> None:
        spending.consume_credits(
            "u", "G", count, idempotency_key=None, catalog=catalog, credits=credits, clock=clock, events=events
        )

    spend(3)  # 7: above
    spend(3)  # 4: crosses
    spend(1)  # 3: still below, no new event
    spending.grant_credits("u", "G", 10, expires=None, reason="t", credits=credits, clock=clock)  # 13
    spend(8)  # 5: crosses again (at the threshold counts)
    figures = [{k: v for k, v in detail.items() if k != "eventId"} for detail in events.details()]
    assert figures == [
        {"userId": "u", "offerGroup": "G", "balance": 4, "threshold": 5},
        {"userId": "u", "offerGroup": "G", "balance": 5, "threshold": 5},
    ]
    # Each crossing is its own fact, with its own event id (consumers dedupe on it)
    event_ids = [str(detail["eventId"]) for detail in events.details()]
    assert all(event_id.startswith("CreditsLow#") for event_id in event_ids)
    assert len(set(event_ids)) == 2


def test_credits_low_on_capture(repos) -> None:
    catalog, credits, clock = repos
    catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=2))
    events = RecordingEventPublisher()
    spending.grant_credits("u", "G", 5, expires=None, reason="t", credits=credits, clock=clock)
    hold = reservations.create_reservation(
        "u", "G", 4, expires_in_seconds=60, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    reservations.capture_reservation(
        "u", hold.reservation_id, 4, credits=credits, clock=clock, catalog=catalog, events=events
    )
    assert [detail["balance"] for detail in events.details()] == [1]


def test_a_failed_publish_does_not_undo_or_fail_the_spend(repos) -> None:
    catalog, credits, clock = repos
    catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    spending.grant_credits("u", "G", 6, expires=None, reason="t", credits=credits, clock=clock)

    result = spending.consume_credits(
        "u",
        "G",
        2,
        idempotency_key=None,
        catalog=catalog,
        credits=credits,
        clock=clock,
        events=RecordingEventPublisher(failure=RuntimeError("bus down")),
    )
    assert result.balance == 4


def test_usage_totals_port_seed_t06(repos) -> None:
    """Seed T06 (checkTokens / consumptionInDateRange), per user (docs/rules.md#usage-totals); another user's movements
    at the same times must not count (the seed summed every user's)."""
    catalog, credits, clock = repos
    now = clock.now()
    times = [
        now - timedelta(days=91),
        now - timedelta(days=91),
        now - timedelta(days=61),
        now - timedelta(days=30),
        now - timedelta(weeks=3),
        now - timedelta(weeks=2),
        now - timedelta(weeks=1),
    ]
    rows = {"G1": [100, -1, -2, -3, -4, -5, -6], "G2": [200, -1, 2, -3, 5, -8, 13]}
    for user in ("u", "someone-else"):
        for group, amounts in rows.items():
            for when, amount in zip(times, amounts, strict=True):
                clock.current = when
                if amount > 0:
                    spending.grant_credits(user, group, amount, expires=None, reason="t", credits=credits, clock=clock)
                else:
                    spending.consume_credits(
                        user,
                        group,
                        -amount,
                        idempotency_key=None,
                        catalog=catalog,
                        credits=credits,
                        clock=clock,
                        events=RecordingEventPublisher(),
                    )
    clock.current = now + timedelta(seconds=1)
    three_months_ago, three_weeks_ago = now - timedelta(days=91), now - timedelta(weeks=3)

    def totals(end: datetime, spent_only: bool) -> dict[str, int]:
        return balances.usage_totals(
            "u",
            start=three_months_ago,
            end=end,
            spent_only=spent_only,
            credits=credits,
        )

    assert totals(clock.now(), True) == {"G1": -21, "G2": -12}
    assert totals(three_weeks_ago, True) == {"G1": -6, "G2": -4}  # the end is exclusive
    assert totals(clock.now(), False) == {"G1": 79, "G2": 208}
    assert totals(three_weeks_ago, False) == {"G1": 94, "G2": 198}


def test_a_soonest_expiry_left_behind_by_a_closed_lot_never_blocks_spends(repos) -> None:
    # Issue 12: a group remembering the expiry of a lot that closed otherwise (a full refund closes its lots) refused
    # every spend forever ("a lot is past its expiry"); the next spend writes the soonest expiry again and goes on.
    from usercredits.adapters.dynamodb.credits_table import CreditGroupItem
    from usercredits.adapters.dynamodb.keys import group_sk, user_pk

    catalog, credits, clock = repos
    spending.grant_credits("u", "G", 5, expires=None, reason="a", credits=credits, clock=clock)
    CreditGroupItem(pk=user_pk("u"), sk=group_sk("G")).update(
        actions=[CreditGroupItem.next_expiry.set(clock.now() + timedelta(hours=1))]
    )
    clock.advance(hours=2)
    spent = spending.consume_credits(
        "u",
        "G",
        2,
        idempotency_key=None,
        catalog=catalog,
        credits=credits,
        clock=clock,
        events=RecordingEventPublisher(),
    )
    assert spent.balance == 3
    assert credits.group_state("u", "G").next_expiry is None


def test_an_expiry_that_takes_held_tokens_cuts_the_holds_first(repos) -> None:
    # Issue 12: a hold set aside tokens of a lot that then expired; capturing it afterwards took the balance below 0.
    catalog, credits, clock = repos
    spending.grant_credits(
        "u", "G", 10, expires=clock.now() + timedelta(days=1), reason="a", credits=credits, clock=clock
    )
    spending.grant_credits("u", "G", 3, expires=None, reason="b", credits=credits, clock=clock)
    older = reservations.create_reservation(
        "u", "G", 5, expires_in_seconds=3 * 86400, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    newer = reservations.create_reservation(
        "u", "G", 8, expires_in_seconds=3 * 86400, idempotency_key=None, catalog=catalog, credits=credits, clock=clock
    )
    clock.advance(days=2)
    # the 10 expire: balance 3, held 13 -> 10 must be cut, newest first: the 8 go, then 2 of the 5
    captured = reservations.capture_reservation(
        "u", older.reservation_id, None, credits=credits, clock=clock, catalog=catalog, events=RecordingEventPublisher()
    )
    assert (captured.count, captured.reduced, captured.captured) == (3, 2, 3)
    gone = reservations.get_reservation("u", newer.reservation_id, credits=credits)
    assert (gone.status.value, gone.count, gone.reduced) == ("released", 0, 8)
    group = balances.get_credit_group("u", "G", credits=credits, clock=clock, catalog=catalog)
    assert (group.balance, group.held, group.available) == (0, 0, 0)
