"""Which subscriptions a new one replaces, the upgrade credits for them, and how the sync ends them
(docs/rules.md#replaced-subscriptions): pure rules, on the seed's 10.00-a-month subscriptions checked at 2017-01-10."""

from __future__ import annotations

from tests.helpers.subscription_builders import at, base_customer, plan, subscription
from usercredits.subscriptions.models import Customer, DiscountKind, ProcessorState, Subscription, SubscriptionStatus
from usercredits.subscriptions.subscribing import add_subscription
from usercredits.subscriptions.sync_rules import SyncAction, end_replaced, replaced_to_end, subscription_sync_action

NOW = at("2017-01-10")


def subscribe(subs: list[Subscription], level: int, price: int = 500) -> tuple[Customer, Subscription]:
    return add_subscription(base_customer(subscriptions=subs), plan(level=level, price=price), NOW)


def sent(customer: Customer, subscription_id: str) -> Customer:
    """The customer once ``subscription_id`` is at the processor."""
    subs = [
        sub.model_copy(update={"processor": sub.processor.model_copy(update={"id": "sub_new", "state": "saved"})})
        if sub.subscription_id == subscription_id
        else sub
        for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subs})


def test_an_upgrade_replaces_every_lower_subscription_that_still_bills() -> None:
    running = subscription("one", level=1, created="2017-01-02")
    other = subscription("two", level=2, created="2017-01-03")
    ending = subscription("three", level=1, created="2017-01-02").model_copy(update={"cancel_at_period_end": True})
    local = subscription("four", level=1, created="2017-01-02", state=ProcessorState.LOCAL)
    _, created = subscribe([running, other, ending, local], level=3, price=5000)
    assert created.first_billing_date is None
    assert sorted(created.replaces) == ["one", "two"]


def test_an_upgrade_credits_each_lower_one_with_the_total_capped_at_the_new_price() -> None:
    one = subscription("one", level=1, created="2017-01-02")  # 23 of 31 days unused: 7.42
    two = subscription("two", level=2, created="2017-01-02")
    _, created = subscribe([one, two], level=3, price=1000)
    credits = [d for d in created.discounts if d.kind is DiscountKind.PREVIOUS_SUBSCRIPTION]
    assert sorted(d.amount.amount for d in credits) == [258, 742]  # 7.42 + the 2.58 left of 10.00
    assert sum(d.amount.amount for d in credits) == created.price.amount
    _, roomy = subscribe([one, two], level=3, price=5000)
    assert sorted(d.amount.amount for d in roomy.discounts) == [742, 742]


def test_a_queued_switch_replaces_the_ones_it_waits_for() -> None:
    current = subscription("one", level=2, created="2017-01-02")
    canceled = subscription("two", level=2, status=SubscriptionStatus.CANCELED, created="2017-01-02")
    _, created = subscribe([current, canceled], level=1)
    assert created.first_billing_date == at("2017-02-02")
    assert created.replaces == ["one"]  # the canceled one bills no more


def test_nothing_is_ended_before_the_new_one_is_at_the_processor() -> None:
    customer, created = subscribe([subscription("one", level=1, created="2017-01-02")], level=2)
    assert replaced_to_end(customer, created.subscription_id) == []
    withdrawn = sent(customer, created.subscription_id)
    withdrawn = withdrawn.model_copy(
        update={
            "subscriptions": [
                s.model_copy(update={"deleted": s.subscription_id != "one"}) for s in withdrawn.subscriptions
            ]
        }
    )
    assert replaced_to_end(withdrawn, created.subscription_id) == []


def test_an_upgrade_ends_the_lower_one_now_and_a_switch_at_its_period_end() -> None:
    customer, upgrade = subscribe([subscription("one", level=1, created="2017-01-02")], level=2)
    ended = end_replaced(sent(customer, upgrade.subscription_id), upgrade.subscription_id, NOW)
    old = ended.subscriptions[0]
    assert (old.status, old.processor.state) == (SubscriptionStatus.CANCELED, ProcessorState.CHANGED)
    assert subscription_sync_action(old) is SyncAction.CANCEL
    assert replaced_to_end(ended, upgrade.subscription_id) == []  # ended once: a second sync sends nothing more

    customer, switch = subscribe([subscription("one", level=2, created="2017-01-02")], level=1)
    ended = end_replaced(sent(customer, switch.subscription_id), switch.subscription_id, NOW)
    old = ended.subscriptions[0]
    assert (old.status, old.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
    assert subscription_sync_action(old) is SyncAction.UPDATE
    assert replaced_to_end(ended, switch.subscription_id) == []


def test_a_subscription_that_bills_without_entitling_is_replaced_too() -> None:
    """One whose paid period is over (or was given back) still renews at the processor: a new one ends it too."""
    lapsed = subscription("old", level=2, created="2016-10-02")  # active at the processor, paid through long ago
    _, created = subscribe([lapsed], level=1)
    assert created.first_billing_date is None  # nothing entitled to wait for
    assert created.replaces == ["old"]


def test_a_subscribe_withdraws_the_customers_unsent_subscriptions() -> None:
    """The newest choice wins: a subscription never sent is withdrawn (its coupon use is given back by the save)."""
    draft = subscription("draft", level=1, state=ProcessorState.INITIAL, created="2017-01-09")
    customer, created = subscribe([draft], level=2)
    withdrawn = next(sub for sub in customer.subscriptions if sub.subscription_id == "draft")
    assert (withdrawn.deleted, withdrawn.status) == (True, SubscriptionStatus.CANCELED)
    assert created.replaces == []
