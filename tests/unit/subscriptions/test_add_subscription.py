"""addSubscription, queue or upgrade: scenarios M22-M27.

As in the seed's tests the existing subscriptions cost 10.00 a month and the new plan 5.00, checked at 2017-01-10.
Where the seed credited the previous full price the corrected credit (docs/rules.md#upgrade-credit) is asserted: the
unused part of the previous period, pro rata, capped at the new price.
"""

from __future__ import annotations

import pytest

from tests.helpers.subscription_builders import at, base_customer, plan, subscription, with_state
from usercredits.errors import NotFoundError
from usercredits.subscriptions.discounts import PREVIOUS_SUBSCRIPTION_CREDIT_NAME
from usercredits.subscriptions.models import (
    DiscountKind,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
)
from usercredits.subscriptions.subscribing import add_subscription, cancel_all
from usercredits.subscriptions.sync_rules import reset_processor

CANCELED, PAST_DUE = SubscriptionStatus.CANCELED, SubscriptionStatus.PAST_DUE
WHEN = "2017-01-10"


def subscribe(subs: list[Subscription], level: int, when: str = WHEN, price: int = 500) -> Subscription:
    customer = base_customer(subscriptions=subs)
    updated, created = add_subscription(customer, plan(level=level, price=price), at(when))
    assert updated.subscriptions[-1] == created
    assert created.processor.state is ProcessorState.INITIAL
    assert created.price.amount == price
    assert created.created_at == at(when)
    return created


def credit_of(created: Subscription) -> int | None:
    credits = [d for d in created.discounts if d.kind is DiscountKind.PREVIOUS_SUBSCRIPTION]
    return credits[0].amount.amount if credits else None


def test_m22_no_subscriptions_starts_now_without_discount() -> None:
    created = subscribe([], level=1)
    assert created.first_billing_date is None
    assert created.discounts == []


@pytest.mark.parametrize("level", [2, 4], ids=["same-level", "higher-level"])
def test_m22_an_ended_trial_is_ignored(level: int) -> None:
    trial = subscription("one", level=level, is_trial=True, created="2017-01-02")
    created = subscribe([trial], level=2)
    assert created.first_billing_date is None
    assert created.discounts == []


@pytest.mark.parametrize("level", [2, 4], ids=["same-level", "higher-level"])
def test_m23_queued_behind_an_equal_or_better_active_subscription(level: int) -> None:
    created = subscribe([subscription("one", level=level, created="2017-01-02")], level=2)
    assert created.first_billing_date == at("2017-02-02")
    assert created.discounts == []


@pytest.mark.parametrize("status", [SubscriptionStatus.ACTIVE, CANCELED], ids=["active", "canceled-in-period"])
def test_m24_upgrade_credits_the_unused_part_capped_at_the_new_price(status: SubscriptionStatus) -> None:
    lower = subscription("one", level=1, status=status, created="2017-01-02")

    created = subscribe([lower], level=2)

    assert created.first_billing_date is None
    # Seed: 10.00 whatever was used. Fixed: 23 of 31 days unused = 7.42, capped at the new price 5.00.
    assert credit_of(created) == 500
    credit = created.discounts[0]
    assert (credit.preserve, credit.number_of_billing_cycles, credit.subscription_id) == (True, 1, "one")
    assert credit.name == PREVIOUS_SUBSCRIPTION_CREDIT_NAME


def test_m24_upgrade_credit_is_pro_rata_below_the_cap() -> None:
    created = subscribe([subscription("one", level=1, created="2017-01-02")], level=2, price=2000)
    assert credit_of(created) == 742  # 10.00 x 23/31 rounded half up


def test_m24_no_credit_for_a_local_subscription() -> None:
    local = subscription("one", level=1, status=CANCELED, created="2017-01-02", state=ProcessorState.LOCAL)
    created = subscribe([local], level=2)
    assert created.first_billing_date is None
    assert created.discounts == []


def test_m24_no_credit_for_an_unconverted_processor_trial_or_a_past_due_period() -> None:
    trial = subscription("one", level=1, is_trial=True, first_billing="2017-01-20", created="2017-01-05")
    # docs/rules.md#upgrade-credit: the seed credited a trial never charged
    assert credit_of(subscribe([trial], level=2)) is None
    past_due = subscription("one", level=1, status=PAST_DUE, created="2017-01-02")
    assert credit_of(subscribe([past_due], level=2)) is None


def test_m25_same_level_canceled_still_in_period_queues() -> None:
    created = subscribe([subscription("one", level=2, status=CANCELED, created="2017-01-02")], level=2)
    assert created.first_billing_date == at("2017-02-02")


def test_m25_queues_behind_the_latest_ending_subscription() -> None:
    subs = [
        subscription("one", level=2, status=CANCELED, created="2017-01-02"),
        subscription("two", level=3, created="2017-01-08"),
    ]
    assert subscribe(subs, level=2).first_billing_date == at("2017-02-08")


def test_m25_a_future_subscription_is_ignored() -> None:
    subs = [
        subscription("one", level=2, status=CANCELED, created="2017-01-02"),
        subscription("two", level=3, created="2017-02-10"),
    ]
    assert subscribe(subs, level=2).first_billing_date == at("2017-02-02")


def test_m26_queueing_beats_the_refund() -> None:
    subs = [
        subscription("one", level=1, status=CANCELED, created="2017-07-17T00:00:00Z"),
        subscription("two", level=3, created="2017-07-17T00:00:00Z"),
    ]
    created = subscribe(subs, level=2, when="2017-07-17T08:56:35Z")
    assert created.first_billing_date == at("2017-08-17")
    assert created.discounts == []


def test_m26_downgrade_starts_when_the_canceled_period_ends() -> None:
    canceled = subscription(
        "one",
        level=2,
        status=CANCELED,
        created="2017-08-29T00:00:00Z",
        paid_through="2017-09-28T00:00:00Z",
        period_end="2017-09-28T00:00:00Z",
    )
    assert subscribe([canceled], level=1, when="2017-09-04T21:56:53Z").first_billing_date == at("2017-09-28")


def test_m27_reset_cancel_and_resubscribe_queues_after_the_semiannual_period() -> None:
    basic = subscription("basic", level=1, price=499, status=CANCELED, created="2017-06-20")
    semiannual = subscription("pro-6", level=2, price=9999, months=6, created="2017-07-15")
    unsynced = subscription("stale", level=2, state=ProcessorState.INITIAL, created="2017-07-16")
    customer = base_customer(subscriptions=[basic, semiannual, unsynced])
    when = at("2017-07-16T09:34:37Z")

    customer = cancel_all(reset_processor(customer), when)
    customer, created = add_subscription(customer, plan(level=2, price=1999, plan_id="pro-monthly"), when)

    assert [sub.subscription_id for sub in customer.subscriptions[:2]] == ["basic", "pro-6"]
    pro = customer.subscriptions[1]
    assert (pro.status, pro.processor.state) == (CANCELED, ProcessorState.CHANGED)
    assert customer.subscriptions[0].processor.state is ProcessorState.SAVED  # already canceled: untouched
    assert created.processor.state is ProcessorState.INITIAL
    assert created.price.amount == 1999
    assert created.first_billing_date == at("2018-01-15")
    assert created.discounts == []


def test_add_subscription_links_only_the_customers_payment_methods() -> None:
    customer = base_customer()
    updated, created = add_subscription(customer, plan(level=3), at(WHEN), payment_method_id="three")
    assert created.payment_method_id == "three"
    with pytest.raises(NotFoundError):
        add_subscription(customer, plan(level=3), at(WHEN), payment_method_id="not-mine")


def test_add_subscription_never_credits_across_currencies() -> None:
    lower = with_state(
        subscription("one", level=1, created="2017-01-02", state=ProcessorState.INITIAL), ProcessorState.SAVED
    )
    euro_plan = plan(level=2).model_copy(update={"price": lower.price.model_copy(update={"currency": "eur"})})
    _, created = add_subscription(base_customer(subscriptions=[lower]), euro_plan, at(WHEN))
    assert created.discounts == []
