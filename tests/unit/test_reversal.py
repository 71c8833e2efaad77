"""The pure rules of money going back (``usercredits.domain.reversal``): shares, rounding, debts, holds, expired lots,
disputes, windows and the intents that did not pay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from usercredits.domain.models import (
    DisputeStatus,
    GroupPolicy,
    GroupState,
    IntentFigures,
    LedgerKind,
    Lot,
    Order,
    OrderStatus,
    PurchaseWindow,
    Reservation,
    ReservationStatus,
)
from usercredits.domain.reversal import ChargeReport, merge_report, owed_share, plan_reversal
from usercredits.kernel.models import Cycle, Money

NOW = datetime(2026, 11, 21, tzinfo=UTC)
YEAR_END = NOW + timedelta(days=365)


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
        starts=NOW,
        expires=YEAR_END,
        created_at=NOW,
        updated_at=NOW,
    )
    return base.model_copy(update=update)


def lot(revoked: int = 0, tokens: int = 100, **closed: object) -> Lot:
    base = Lot(lot_id="o1", offer_group="G", tokens=tokens, starts=NOW, order_id="o1", granted_at=NOW, revoked=revoked)
    return base.model_copy(update=closed)


def group(balance: int, held: int = 0, drawn: int = 0) -> GroupState:
    window = PurchaseWindow(purchase_id="o1", starts=NOW, expires=YEAR_END)
    return GroupState(
        offer_group="G",
        balance=balance,
        held=held,
        drawn=drawn,
        version=3,
        starts=NOW,
        expires=YEAR_END,
        purchases=[window],
        paid_orders=1,
    )


def hold(reservation_id: str, count: int) -> Reservation:
    return Reservation(
        reservation_id=reservation_id,
        offer_group="G",
        count=count,
        status=ReservationStatus.HELD,
        expires_at=NOW + timedelta(minutes=5),
        created_at=NOW,
        updated_at=NOW,
    )


def report(**fields: object) -> ChargeReport:
    return ChargeReport(payment_intent_id=str(fields.pop("intent", "pi_1")), currency="usd", **fields)  # type: ignore[arg-type]


def plan(read: Order, merged: Order, *, balance: int, lots: list[Lot], held: int = 0, drawn: int = 0, **kw: object):
    return plan_reversal(
        merged,
        read,
        groups={"G": group(balance, held, drawn)},
        lots=lots,
        holds=kw.pop("holds", []),  # type: ignore[arg-type]
        policies=kw.pop("policies", {"G": GroupPolicy(offer_group="G")}),  # type: ignore[arg-type]
        now=NOW,
    )


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


def test_a_report_about_another_intent_of_the_order_is_kept_apart() -> None:
    merged = merge_report(order(), report(intent="pi_old", refunded_amount=999))
    assert merged.refunded_amount == 0 and merged.other_intents == {"pi_old": IntentFigures(refunded_amount=999)}
    reversal = plan(order(), merged, balance=100, lots=[lot()])
    assert reversal.groups == {} and reversal.lot_changes == [] and reversal.order.status is OrderStatus.PAID
    assert "did not pay this order" in reversal.order.history[-1].message


def test_a_full_refund_takes_everything_cuts_the_holds_first_and_closes_the_lot() -> None:
    # Defect 5: hold everything, refund in full, release: the buyer had the money and every token back.
    read = order()
    reversal = plan(
        read,
        merge_report(read, report(refunded_amount=999)),
        balance=100,
        held=60,
        lots=[lot()],
        holds=[hold("01A", 20), hold("01B", 40)],
    )
    change = reversal.groups["G"]
    assert (change.balance, change.held) == (-100, -60)  # available 40 - 100 = -60 below the floor 0: 60 held cut
    assert [(cut.hold.reservation_id, cut.count) for cut in change.cuts] == [("01B", 0), ("01A", 0)]
    assert [(m.kind, m.tokens, m.held) for m in change.movements] == [
        (LedgerKind.REVOKE, -100, 0),
        (LedgerKind.RELEASE, 0, -40),
        (LedgerKind.RELEASE, 0, -20),
    ]
    assert change.pinned and change.fits_floor is None
    [lot_change] = reversal.lot_changes
    assert (lot_change.revoked, lot_change.closed) == (100, True)
    assert reversal.order.status is OrderStatus.REFUNDED and reversal.order.withdrawn


def test_holds_are_cut_newest_first_and_only_by_what_is_missing() -> None:
    read = order()
    reversal = plan(
        read,
        merge_report(read, report(refunded_amount=500)),
        balance=100,
        held=80,
        lots=[lot()],
        holds=[hold("01A", 40), hold("01B", 40)],
    )
    change = reversal.groups["G"]
    # 51 revoked: available 20 - 51 = -31, so the newest hold loses 31 and keeps 9
    assert change.balance == -51 and [(cut.hold.reservation_id, cut.count) for cut in change.cuts] == [("01B", 9)]


def test_what_the_balance_cannot_cover_is_a_debt() -> None:
    # Defect 5: a refund after the tokens were spent: revoked in full, the balance goes negative (a debt).
    read = order()
    reversal = plan(read, merge_report(read, report(refunded_amount=999)), balance=10, lots=[lot()], drawn=90)
    change = reversal.groups["G"]
    assert change.balance == -100 and change.cuts == [] and change.pinned
    assert [event.detail["tokens"] for event in reversal.events] == [100]


def test_a_revocation_that_fits_above_the_floor_needs_only_the_floor() -> None:
    read = order()
    reversal = plan(read, merge_report(read, report(refunded_amount=100)), balance=100, lots=[lot()])
    change = reversal.groups["G"]
    assert change.balance == -11 and change.fits_floor == 11 and not change.pinned


def test_unlimited_overdraft_cuts_no_hold() -> None:
    read = order()
    policies = {"G": GroupPolicy(offer_group="G", overdraft="unlimited")}
    reversal = plan(
        read,
        merge_report(read, report(refunded_amount=999)),
        balance=100,
        held=100,
        lots=[lot()],
        holds=[hold("01A", 100)],
        policies=policies,
    )
    change = reversal.groups["G"]
    assert change.balance == -100 and change.cuts == [] and not change.pinned and change.fits_floor is None


def test_an_expired_lot_owes_only_what_it_used_beyond_what_is_still_paid() -> None:
    # 100 tokens, 30 used, 70 expired: a full refund is a debt of 30; a refund of half owes nothing (30 <= 50)
    read = order(status=OrderStatus.EXPIRED)
    expired = lot(closed=True, expired=70)
    full = plan(read, merge_report(read, report(refunded_amount=999)), balance=0, lots=[expired])
    assert (full.groups["G"].balance, full.groups["G"].drawn) == (-30, 30)
    assert [(c.revoked, c.debt) for c in full.lot_changes] == [(0, 30)]
    half = plan(read, merge_report(read, report(refunded_amount=500)), balance=0, lots=[expired])
    assert half.groups == {} and half.lot_changes == [] and half.order.revoked_for_amount == 500


def test_a_dispute_won_gives_back_what_it_took_from_an_open_lot() -> None:
    # Defect 4: after a refund of half, a dispute of the rest, then won: exactly what the dispute took comes back.
    read = order(refunded_amount=500, revoked_for_amount=500)
    opened = merge_report(read, report(dispute_amount=499, dispute_status=DisputeStatus.OPEN))
    took = plan(read, opened, balance=49, lots=[lot(revoked=51)])
    taken = -took.groups["G"].balance
    assert taken == 49
    after_open = opened.model_copy(update={"revoked_for_amount": 999, "withdrawn": True})
    won = merge_report(after_open, report(dispute_amount=499, dispute_status=DisputeStatus.WON))
    back = plan(after_open, won, balance=0, lots=[lot(revoked=100)])
    [movement] = back.groups["G"].movements
    assert (movement.kind, movement.tokens) == (LedgerKind.ADJUST, taken)
    assert [event.detail.get("restored") for event in back.events] == [True]
    assert back.order.status is OrderStatus.PAID and not back.order.withdrawn


def test_a_dispute_won_after_the_lot_expired_gives_back_what_the_group_still_owes() -> None:
    # The dispute took 100 (70 left + 30 as a debt); the lot expired; won: the 30 of debt are cancelled, the 70 would
    # have expired with the lot.
    read = order(dispute_status=DisputeStatus.OPEN, disputed_amount=999, revoked_for_amount=999, withdrawn=True)
    expired = lot(revoked=100, closed=True, expired=0)
    back = plan(
        read,
        merge_report(read, report(dispute_amount=999, dispute_status=DisputeStatus.WON)),
        balance=-30,
        lots=[expired],
        drawn=30,
    )
    change = back.groups["G"]
    assert (change.balance, change.drawn, change.pinned) == (30, -30, True)


def test_withdrawing_a_purchase_takes_its_window_out_and_a_won_dispute_puts_it_back() -> None:
    # Defect 3: the refunded window no longer unlocks, and an appendDate purchase starts now, not after it.
    read = order()
    refunded = plan(read, merge_report(read, report(refunded_amount=999)), balance=100, lots=[lot()])
    window = refunded.groups["G"].window
    assert window is not None and window.purchases == [] and window.expires == NOW and not window.active_at(NOW)
    disputed = plan(
        read,
        merge_report(read, report(dispute_amount=999, dispute_status=DisputeStatus.LOST)),
        balance=100,
        lots=[lot()],
    )
    assert disputed.order.withdrawn and disputed.order.status is OrderStatus.PAID
    assert disputed.groups["G"].window is not None and not disputed.groups["G"].window.active_at(NOW)


def test_money_back_on_an_order_not_paid_yet_is_only_recorded() -> None:
    read = order(status=OrderStatus.PENDING)
    reversal = plan_reversal(
        merge_report(read, report(refunded_amount=999)), read, groups={}, lots=[], holds=[], policies={}, now=NOW
    )
    assert reversal.groups == {} and reversal.order.refunded_amount == 999 and reversal.order.revoked_for_amount == 0
    assert reversal.order.status is OrderStatus.PENDING
    assert "no credits were granted yet" in reversal.order.history[-1].message
