"""Entitlement beyond the seed (M14-M21 style): the grace period as a setting or per plan, and billing periods whose
payment was given back (a full refund, a void, a lost dispute) are not an entitlement
(docs/rules.md#subscription-refunds-and-disputes).

One subscription ``one``: monthly, paid through 2017-02-01, its sale ``ch_jan`` paid 2017-01-01 to 2017-02-01.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.subscription_builders import at, base_customer, subscription, usd
from usercredits.subscriptions.entitlement import current_subscription, grace_of, valid_subscriptions
from usercredits.subscriptions.models import (
    Customer,
    DisputeState,
    ProcessorItem,
    ProcessorState,
    Subscription,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.transactions import paid_periods, record_dispute, record_refund


def sale(
    charge_id: str = "ch_jan",
    *,
    start: str = "2017-01-01",
    end: str = "2017-02-01",
    amount: int = 1000,
    status: TransactionStatus = TransactionStatus.SETTLED,
    subscription_id: str = "one",
) -> Transaction:
    return Transaction(
        transaction_id=f"t-{charge_id}",
        processor=ProcessorItem(id=charge_id, state=ProcessorState.SAVED),
        amount=usd(amount),
        status=status,
        subscription_id=subscription_id,
        period_start=at(start),
        period_end=at(end),
        created_at=at(start),
    )


def refund(amount: int, of: str = "ch_jan", status: TransactionStatus = TransactionStatus.SETTLED) -> Transaction:
    return Transaction(
        transaction_id=f"re-{of}-{amount}",
        processor=ProcessorItem(id=f"re_{of}_{amount}", state=ProcessorState.SAVED),
        kind=TransactionKind.REFUND,
        amount=usd(amount),
        status=status,
        refunded_transaction_id=f"t-{of}",
        created_at=at("2017-01-15"),
    )


def monthly(paid_through: str = "2017-02-01", **plan: object) -> Subscription:
    sub = subscription("one", first_billing="2017-01-01", paid_through=paid_through)
    return sub.model_copy(update={"plan": sub.plan.model_copy(update=plan)}) if plan else sub


def customer(*transactions: Transaction, sub: Subscription | None = None) -> Customer:
    return base_customer(subscriptions=[sub or monthly()], transactions=list(transactions))


def entitled(who: Customer, when: str, grace: timedelta = timedelta(days=1)) -> bool:
    return current_subscription(who, at(when), grace) is not None


# --- grace ----------------------------------------------------------------------------------------------------------


def test_the_default_grace_is_a_parameter() -> None:
    # Given the one-day default, the day after paid-through entitles and the next does not
    assert entitled(customer(), "2017-02-02T10:00:00Z") and not entitled(customer(), "2017-02-03T10:00:00Z")
    # When the setting gives 3 days, the third day still entitles and the fourth does not
    assert entitled(customer(), "2017-02-04T10:00:00Z", timedelta(days=3))
    assert not entitled(customer(), "2017-02-05T10:00:00Z", timedelta(days=3))


@pytest.mark.parametrize(("days", "last_day"), [(0, "2017-02-01"), (5, "2017-02-06")])
def test_a_plans_grace_beats_the_default(days: int, last_day: str) -> None:
    who = customer(sub=monthly(grace_period_days=days))
    assert grace_of(who.subscriptions[0], timedelta(days=3)) == timedelta(days=days)
    assert entitled(who, f"{last_day}T23:00:00Z", timedelta(days=3))
    assert not entitled(who, (at(last_day) + timedelta(days=1)).isoformat(), timedelta(days=3))


# --- periods given back -------------------------------------------------------------------------------------------


def test_a_fully_refunded_period_is_not_an_entitlement() -> None:
    who = customer(refund(1000), sale())
    assert paid_periods(who, "one").revoked == ((at("2017-01-01"), at("2017-02-01")),)
    assert not entitled(who, "2017-01-20") and not entitled(who, "2017-02-02")  # nor its grace


def test_refunds_adding_up_to_the_sale_revoke_it_and_a_failed_one_does_not_count() -> None:
    assert entitled(customer(refund(400), sale()), "2017-01-20")  # partial: the period is kept
    assert not entitled(customer(refund(600), refund(400), sale()), "2017-01-20")
    assert entitled(customer(refund(600, status=TransactionStatus.FAILED), refund(400), sale()), "2017-01-20")


def test_a_voided_sale_is_not_an_entitlement() -> None:
    assert not entitled(customer(sale(status=TransactionStatus.VOIDED)), "2017-01-20")


@pytest.mark.parametrize(
    ("state", "valid"), [(DisputeState.OPEN, True), (DisputeState.WON, True), (DisputeState.LOST, False)]
)
def test_only_a_lost_dispute_revokes_the_period(state: DisputeState, valid: bool) -> None:
    who = record_dispute(customer(sale()), "ch_jan", state, at("2017-01-20"))
    assert entitled(who, "2017-01-21") is valid


def test_a_renewal_after_a_refund_entitles_its_own_period() -> None:
    # Given January refunded in full, and February paid (the subscription now paid through March)
    feb = sale("ch_feb", start="2017-02-01", end="2017-03-01")
    who = customer(refund(1000), feb, sale(), sub=monthly(paid_through="2017-03-01"))
    # Then January is not an entitlement, February is from its first day (the refunded grace does not cover it)
    assert not entitled(who, "2017-01-20")
    assert entitled(who, "2017-02-01T08:00:00Z") and entitled(who, "2017-03-02")


def test_sales_of_other_subscriptions_and_without_a_period_change_nothing() -> None:
    other = sale("ch_other", subscription_id="two")
    no_period = sale("ch_old").model_copy(update={"period_start": None, "period_end": None})
    who = customer(refund(1000, of="ch_other"), refund(1000, of="ch_old"), other, no_period)
    assert paid_periods(who, "one").revoked == ()
    assert entitled(who, "2017-01-20")


def test_a_revoked_subscription_leaves_the_next_one_in_precedence() -> None:
    lower = subscription("low", level=1, first_billing="2017-01-01")
    who = base_customer(subscriptions=[monthly(), lower], transactions=[refund(1000), sale()])
    assert [sub.subscription_id for sub in valid_subscriptions(who, at("2017-01-20"))] == ["low"]


def test_a_dispute_decided_stays_decided() -> None:
    """Out of order: closed (lost) then a late created (open) changes nothing; a redelivery is the same object."""
    now = at("2017-01-20")
    lost = record_dispute(customer(sale()), "ch_jan", DisputeState.LOST, now)
    assert record_dispute(lost, "ch_jan", DisputeState.OPEN, now) is lost
    assert record_dispute(lost, "ch_jan", DisputeState.LOST, now) is lost
    unknown = customer(sale())
    assert record_dispute(unknown, "ch_nope", DisputeState.LOST, now) is unknown


def test_recording_the_same_refund_twice_counts_it_once() -> None:
    once = record_refund(customer(sale()), refund(600), at("2017-01-20"))
    twice = record_refund(once, refund(600), at("2017-01-21"))
    assert entitled(twice, "2017-01-22")  # 600 of 1000 given back, not 1200


# --- sequences with an upgrade credit ------------------------------------------------------------------------------


def upgraded(*transactions: Transaction) -> tuple[Customer, Subscription]:
    """``one`` (level 2) with its January sale, then an upgrade to level 3 on 01-16 (a credit for ``one``'s unused
    half; the upgrade is not synced yet, so only ``one`` can entitle)."""
    from tests.helpers.subscription_builders import plan
    from usercredits.subscriptions.subscribing import add_subscription

    return add_subscription(customer(*transactions, sale()), plan(level=3, price=2000), at("2017-01-16"))


def test_a_refunded_lower_period_gives_no_upgrade_credit() -> None:
    _, upgrade = upgraded(refund(1000))
    assert upgrade.discounts == []


def test_a_dispute_won_after_an_upgrade_credit_changes_nothing() -> None:
    # Given an upgrade that took a credit for the lower subscription's unused part
    after, upgrade = upgraded()
    [credit] = upgrade.discounts
    assert credit.subscription_id == "one" and credit.amount.amount > 0
    # When the lower subscription's sale is disputed, then the dispute is won
    opened = record_dispute(after, "ch_jan", DisputeState.OPEN, at("2017-01-20"))
    won = record_dispute(opened, "ch_jan", DisputeState.WON, at("2017-02-20"))
    # Then the lower period entitles as before and the credit is untouched
    assert [sub.subscription_id for sub in valid_subscriptions(won, at("2017-01-25"))] == ["one"]
    assert won.subscriptions[-1].discounts == [credit]


def test_a_dispute_lost_after_an_upgrade_credit_revokes_the_lower_period_only() -> None:
    """The credit already given stays (docs/rules.md#subscription-refunds-and-disputes: not taken back)."""
    after, upgrade = upgraded()
    lost = record_dispute(after, "ch_jan", DisputeState.LOST, at("2017-01-20"))
    assert valid_subscriptions(lost, at("2017-01-25")) == []
    assert lost.subscriptions[-1].discounts == upgrade.discounts
