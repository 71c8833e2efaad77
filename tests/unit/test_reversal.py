"""The pure rules of money going back (``usercredits.domain.reversal``): shares, rounding, floors, disputes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from usercredits.domain.models import (
    Cycle,
    DisputeStatus,
    GroupPolicy,
    GroupState,
    LedgerKind,
    Lot,
    Money,
    Order,
    OrderStatus,
)
from usercredits.domain.reversal import ChargeReport, merge_report, owed_share, plan_reversal

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def order(**update: object) -> Order:
    base = Order(
        offer_id="pack",
        offer_group="G",
        quantity=1,
        unit_tokens=100,
        total_tokens=100,
        cycle=Cycle.YEARLY,
        order_id="o1",
        user_id="u",
        offer_name="pack",
        status=OrderStatus.PAID,
        total=Money(amount=999, currency="usd"),
        payment_intent_id="pi_1",
        created_at=NOW,
        updated_at=NOW,
    )
    return base.model_copy(update=update)


def lot(revoked: int = 0, tokens: int = 100) -> Lot:
    return Lot(lot_id="o1", offer_group="G", tokens=tokens, starts=NOW, order_id="o1", granted_at=NOW, revoked=revoked)


def group(balance: int, held: int = 0) -> GroupState:
    return GroupState(offer_group="G", balance=balance, held=held, version=3)


def report(**fields: object) -> ChargeReport:
    return ChargeReport(payment_intent_id="pi_1", currency="usd", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tokens", "returned", "total", "owed"),
    [(100, 999, 999, 100), (100, 1, 999, 1), (100, 500, 999, 51), (300, 1000, 9900, 31), (7, 0, 999, 0), (5, 10, 0, 0)],
)
def test_a_lot_owes_its_share_rounded_up(tokens: int, returned: int, total: int, owed: int) -> None:
    assert owed_share(tokens, returned, total) == owed


def test_reports_only_move_forward() -> None:
    refunded = merge_report(order(), report(refunded_amount=500))
    assert merge_report(refunded, report(refunded_amount=300)) == refunded  # an older, smaller figure
    assert merge_report(refunded, report(refunded_amount=5000)).refunded_amount == 999  # capped at the total
    won = merge_report(order(), report(dispute_amount=999, dispute_status=DisputeStatus.WON))
    assert merge_report(won, report(dispute_amount=999, dispute_status=DisputeStatus.OPEN)) == won
    opened = merge_report(order(), report(dispute_amount=999, dispute_status=DisputeStatus.OPEN))
    assert (opened.disputed_amount, opened.returned_amount) == (999, 999)
    assert merge_report(opened, report(dispute_amount=999, dispute_status=DisputeStatus.WON)).returned_amount == 0


def test_held_tokens_are_not_revoked_and_the_rest_is_shortfall() -> None:
    read = order()
    plan = plan_reversal(
        merge_report(read, report(refunded_amount=999)),
        read,
        groups={"G": group(balance=100, held=60)},
        open_lots=[lot()],
        policies={"G": GroupPolicy(offer_group="G")},
        now=NOW,
    )
    [movement] = plan.movements["G"]
    assert (movement.kind, movement.tokens, movement.shortfall) == (LedgerKind.REVOKE, -40, 60)
    assert plan.net == {"G": -40} and plan.floors == {"G": 0}
    assert [change.revoked for change in plan.lot_changes] == [40]
    assert plan.order.status is OrderStatus.REFUNDED and plan.order.revoked_for_amount == 999


def test_unlimited_overdraft_takes_everything_even_below_zero() -> None:
    read = order()
    plan = plan_reversal(
        merge_report(read, report(refunded_amount=999)),
        read,
        groups={"G": group(balance=10)},  # 90 spent
        open_lots=[lot()],
        policies={"G": GroupPolicy(offer_group="G", overdraft="unlimited")},
        now=NOW,
    )
    assert plan.net == {"G": -100} and plan.movements["G"][0].shortfall is None and plan.floors == {"G": None}


def test_a_closed_lot_gives_nothing_and_its_share_is_shortfall() -> None:
    read = order(status=OrderStatus.EXPIRED)
    plan = plan_reversal(
        merge_report(read, report(refunded_amount=999)),
        read,
        groups={"G": group(balance=0)},
        open_lots=[],
        policies={},
        now=NOW,
    )
    [movement] = plan.movements["G"]
    assert (movement.tokens, movement.shortfall) == (0, 100) and plan.lot_changes == []


def test_a_won_dispute_restores_what_the_dispute_revoked() -> None:
    read = order(dispute_status=DisputeStatus.OPEN, disputed_amount=999, revoked_for_amount=999)
    plan = plan_reversal(
        merge_report(read, report(dispute_amount=999, dispute_status=DisputeStatus.WON)),
        read,
        groups={"G": group(balance=0)},
        open_lots=[lot(revoked=70)],  # 30 had been spent: only 70 were taken, so 70 come back
        policies={},
        now=NOW,
    )
    [movement] = plan.movements["G"]
    assert (movement.kind, movement.tokens) == (LedgerKind.ADJUST, 70)
    assert [change.revoked for change in plan.lot_changes] == [0]
    assert [event.kind for event in plan.events] == ["CreditsGranted"]
    assert plan.order.status is OrderStatus.PAID and plan.order.revoked_for_amount == 0


def test_money_back_on_an_order_not_paid_yet_is_only_recorded() -> None:
    read = order(status=OrderStatus.PENDING)
    plan = plan_reversal(
        merge_report(read, report(refunded_amount=999)), read, groups={}, open_lots=[], policies={}, now=NOW
    )
    assert plan.movements == {} and plan.order.refunded_amount == 999 and plan.order.revoked_for_amount == 0
    assert plan.order.status is OrderStatus.PENDING and "no credits were granted yet" in plan.order.history[-1].message
