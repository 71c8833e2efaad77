"""Which coupon uses a change counts or gives back (docs/rules.md#coupon-redemption): pure rules of
``changes.coupon_uses``, on the seed's customer at 2017-01-10."""

from __future__ import annotations

from tests.helpers.subscription_builders import at, base_customer, plan, subscription
from usercredits.kernel.models import Money
from usercredits.subscriptions.changes import coupon_uses
from usercredits.subscriptions.models import (
    Coupon,
    CouponKind,
    Customer,
    ProcessorState,
    SubscriptionStatus,
    Transaction,
    TransactionStatus,
)
from usercredits.subscriptions.ports import CouponUse
from usercredits.subscriptions.subscribing import add_subscription, apply_coupon, cancel_subscription
from usercredits.subscriptions.sync_rules import reset_processor
from usercredits.subscriptions.tracking import mark_saved

NOW = at("2017-01-10")
TEN = Coupon(code="TEN", kind=CouponKind.AMOUNT, amount=Money(amount=100, currency="usd"), max_uses=5)


def subscribed(customer: Customer, level: int = 1) -> tuple[Customer, str]:
    customer, created = add_subscription(customer, plan(level=level, price=500), NOW)
    customer, _ = apply_coupon(customer, created.subscription_id, TEN, NOW)
    return customer, created.subscription_id


def test_a_subscribe_counts_its_coupon_and_a_withdraw_gives_it_back_once() -> None:
    before = base_customer(subscriptions=[])
    after, sub_id = subscribed(before)
    use = CouponUse("TEN", before.customer_id, sub_id, restricted=False)
    assert coupon_uses(before, after) == (use,)
    withdrawn, _ = cancel_subscription(after, sub_id, NOW)
    assert coupon_uses(after, withdrawn) == (CouponUse("TEN", before.customer_id, sub_id, False, release=True),)
    again, _ = cancel_subscription(withdrawn, sub_id, NOW)
    assert coupon_uses(withdrawn, again) == ()  # withdrawn already: nothing more


def test_the_reset_gives_back_what_it_drops() -> None:
    after, sub_id = subscribed(base_customer(subscriptions=[]))
    [use] = coupon_uses(after, reset_processor(after))
    assert (use.subscription_id, use.release) == (sub_id, True)


def test_a_queued_subscription_canceled_before_it_starts_gives_back_a_billed_one_does_not() -> None:
    current = subscription("one", level=2, created="2017-01-02")
    customer, sub_id = subscribed(base_customer(subscriptions=[current]), level=1)  # queued to 2017-02-02
    synced = customer.model_copy(update={"subscriptions": [mark_saved(s, "sub_x") for s in customer.subscriptions]})
    canceled, sub = cancel_subscription(synced, sub_id, NOW)
    assert sub.status is SubscriptionStatus.CANCELED and sub.processor.state is ProcessorState.CHANGED
    assert [u.release for u in coupon_uses(synced, canceled)] == [True]
    charge = Transaction(
        transaction_id="t1",
        amount=Money(amount=400, currency="usd"),
        status=TransactionStatus.SETTLED,
        subscription_id=sub_id,
        created_at=NOW,
    )
    billed = synced.model_copy(update={"transactions": [charge]})
    canceled, _ = cancel_subscription(billed, sub_id, NOW)
    assert coupon_uses(billed, canceled) == ()
