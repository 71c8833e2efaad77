"""Coupon redemption counted once per (coupon, customer, subscription): M36 and the domain half of M46.

The seed counted a redemption twice (M46 expects usedCount 2 after one use) and allowed maxUses + 1 uses
(docs/rules.md#coupon-redemption); the corrected expectations are asserted. Races between concurrent redemptions are
left for the DynamoDB Local tests of the repository (the fake below is atomic by construction, so racing it proves
nothing).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.fakes.subscriptions import InMemoryCouponRepository
from tests.helpers.subscription_builders import NOW, amount_discount, at, base_customer, plan, usd
from usercredits.subscriptions.coupons import LIMIT_REACHED
from usercredits.subscriptions.discounts import add_discounts
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import (
    Coupon,
    CouponKind,
    Customer,
    DiscountKind,
    ProcessorState,
    SubscriptionStatus,
    SubscriptionStatusEvent,
)
from usercredits.subscriptions.ports import ProcessorDiscount, ProcessorSubscription, RedemptionOutcome
from usercredits.subscriptions.results import record_subscription_result
from usercredits.subscriptions.subscribing import add_subscription, apply_coupon, cancel_subscription
from usercredits.subscriptions.sync_rules import (
    SyncAction,
    coupon_redemptions_due,
    subscription_sync_action,
)


def redeem_due(customer: Customer, coupons: InMemoryCouponRepository) -> list[RedemptionOutcome]:
    """What the sync does before sending discounts: count each coupon use (the adapter's loop, in miniature)."""
    outcomes = []
    for due in coupon_redemptions_due(customer):
        coupon = coupons.get(due.coupon_code)
        assert coupon is not None
        outcomes.append(coupons.redeem(due.coupon_code, due.customer_id, due.subscription_id, coupon.max_uses))
    return outcomes


def synced(
    customer: Customer,
    subscription_id: str,
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    cycle: int = 0,
    history: tuple[SubscriptionStatusEvent, ...] = (),
) -> Customer:
    """The processor accepted the subscription and applied its discounts (ids di_<n>)."""
    sub = next(s for s in customer.subscriptions if s.subscription_id == subscription_id)
    discounts = tuple(
        ProcessorDiscount(
            processor_id=d.processor.id or f"di_{d.discount_id}",
            amount=d.amount,
            number_of_billing_cycles=d.number_of_billing_cycles,
            current_billing_cycle=cycle,
            discount_id=d.discount_id,
        )
        for d in sub.discounts
    )
    result = ProcessorSubscription(
        id=sub.processor.id or f"sub_{subscription_id}",
        status=status,
        price=sub.price,
        price_id="price_pro",
        discounts=discounts,
        status_history=history,
    )
    return record_subscription_result(customer, subscription_id, result, NOW)


@pytest.mark.parametrize("restricted", [False, True], ids=["coupon", "restricted"])
def test_m36_a_redemption_is_counted_once_even_when_the_sync_is_retried(restricted: bool) -> None:
    coupon = Coupon(
        code="SAVE5", kind=CouponKind.AMOUNT, amount=usd(500), used_count=1, max_uses=4, restricted=restricted
    )
    coupons = InMemoryCouponRepository([coupon])
    customer, _ = apply_coupon(base_customer(), "four", coupon, NOW)

    assert redeem_due(customer, coupons) == [RedemptionOutcome.REDEEMED]
    assert redeem_due(customer, coupons) == [RedemptionOutcome.ALREADY_REDEEMED]  # a retried sync
    customer = synced(customer, "four")
    assert coupon_redemptions_due(customer) == []  # sent: nothing left to count

    stored = coupons.get("SAVE5")
    assert stored is not None and stored.used_count == 2
    assert coupons.used_by_customer("SAVE5", "customer-1")
    if restricted:
        with pytest.raises(CouponError, match=f"^{LIMIT_REACHED}$"):
            apply_coupon(customer, "four", stored, NOW, used_by_customer=True)


def test_m36_redemptions_never_pass_max_uses() -> None:
    coupon = Coupon(code="LAST", kind=CouponKind.AMOUNT, amount=usd(100), used_count=3, max_uses=4)
    coupons = InMemoryCouponRepository([coupon])
    # Two customers each subscribe with the coupon (one customer's second subscribe would withdraw its first)
    pesho, first = add_subscription(base_customer(), plan(level=3), NOW)
    pesho, _ = apply_coupon(pesho, first.subscription_id, coupon, NOW)
    gosho, second = add_subscription(base_customer(customer_id="gosho", user_id="gosho"), plan(level=3), NOW)
    gosho, _ = apply_coupon(gosho, second.subscription_id, coupon, NOW)

    assert redeem_due(pesho, coupons) + redeem_due(gosho, coupons) == [
        RedemptionOutcome.REDEEMED,
        RedemptionOutcome.LIMIT_REACHED,
    ]
    stored = coupons.get("LAST")
    assert stored is not None and stored.used_count == 4


def test_m46_coupon_discount_end_to_end_in_the_domain() -> None:
    coupon = Coupon(code="TENPCT", kind=CouponKind.PERCENT, percent=Decimal(10), number_of_billing_cycles=2, max_uses=2)
    coupons = InMemoryCouponRepository([coupon])
    customer = base_customer(subscriptions=[])
    customer, sub = add_subscription(customer, plan(level=2, price=1490, plan_id="pro"), NOW, payment_method_id="three")
    customer, sub = apply_coupon(customer, sub.subscription_id, coupon, NOW)

    (discount,) = sub.discounts
    assert (discount.kind, discount.amount.amount, discount.number_of_billing_cycles) == (DiscountKind.COUPON, 149, 2)
    assert subscription_sync_action(sub) is SyncAction.CREATE

    assert redeem_due(customer, coupons) == [RedemptionOutcome.REDEEMED]
    customer = synced(customer, sub.subscription_id, cycle=1)
    stored = coupons.get("TENPCT")
    # docs/rules.md#coupon-redemption: the seed counted 2 after a single redemption
    assert stored is not None and stored.used_count == 1
    sub = customer.subscriptions[-1]
    assert sub.processor.state is ProcessorState.SAVED
    assert [(d.processor.id, d.processor.state, d.current_billing_cycle) for d in sub.discounts] == [
        (f"di_{discount.discount_id}", ProcessorState.SAVED, 1)
    ]

    # Adding a 2.00 amount discount replaces the 1.49 coupon discount (the largest wins).
    bigger = amount_discount(sub, "Amount", usd(200), NOW)
    assert bigger is not None
    sub = add_discounts(sub, [bigger])
    assert sub.processor.state is ProcessorState.CHANGED
    customer = customer.model_copy(update={"subscriptions": [*customer.subscriptions[:-1], sub]})
    customer = synced(customer, sub.subscription_id)
    sub = customer.subscriptions[-1]
    assert [(d.kind, d.amount.amount, d.processor.id, d.current_billing_cycle) for d in sub.discounts] == [
        (DiscountKind.AMOUNT, 200, f"di_{bigger.discount_id}", 0)
    ]
    assert redeem_due(customer, coupons) == []

    # Cancelling: a cancel at the processor, whose history comes back newest first.
    customer, sub = cancel_subscription(customer, sub.subscription_id, NOW)
    assert subscription_sync_action(sub) is SyncAction.CANCEL
    history = (
        SubscriptionStatusEvent(status=SubscriptionStatus.ACTIVE, timestamp=at("2017-07-16")),
        SubscriptionStatusEvent(status=SubscriptionStatus.CANCELED, timestamp=at("2017-07-17")),
        SubscriptionStatusEvent(status=SubscriptionStatus.ACTIVE, timestamp=at("2017-07-16T10:00:00Z")),
        SubscriptionStatusEvent(status=SubscriptionStatus.ACTIVE, timestamp=at("2017-07-16")),  # a duplicate
    )
    customer = synced(customer, sub.subscription_id, history=history, status=SubscriptionStatus.CANCELED)
    canceled = customer.subscriptions[-1]
    assert (canceled.status, canceled.processor.state) == (SubscriptionStatus.CANCELED, ProcessorState.SAVED)
    statuses = [event.status for event in canceled.status_history]
    assert statuses == [SubscriptionStatus.CANCELED, SubscriptionStatus.ACTIVE, SubscriptionStatus.ACTIVE]
