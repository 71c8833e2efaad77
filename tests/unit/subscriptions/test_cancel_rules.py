"""Cancel-all and which cancels are pending at the processor (docs/rules.md#cancelling): pure rules."""

from __future__ import annotations

from tests.helpers.subscription_builders import at, base_customer, plan, subscription
from usercredits.subscriptions.models import ProcessorState, SubscriptionStatus
from usercredits.subscriptions.subscribing import add_subscription, cancel_all
from usercredits.subscriptions.sync_rules import cancel_pending

NOW = at("2017-01-10")


def test_cancel_all_cancels_the_synced_and_withdraws_the_never_synced() -> None:
    synced = subscription("one", level=2, created="2017-01-02")
    expired = subscription("two", level=1, status=SubscriptionStatus.EXPIRED, created="2016-01-02")
    customer, queued = add_subscription(base_customer(subscriptions=[synced, expired]), plan(level=1), NOW)
    after = {s.subscription_id: s for s in cancel_all(customer, NOW).subscriptions}
    assert after["one"].status is SubscriptionStatus.CANCELED and cancel_pending(after["one"])
    assert after["two"] == expired
    assert after[queued.subscription_id].deleted and not cancel_pending(after[queued.subscription_id])


def test_cancel_all_at_period_end_leaves_them_active_until_then() -> None:
    customer = base_customer(subscriptions=[subscription("one", level=2, created="2017-01-02")])
    [sub] = cancel_all(customer, NOW, at_period_end=True).subscriptions
    assert (sub.status, sub.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
    assert cancel_pending(sub)


def test_a_local_subscription_is_never_pending_at_the_processor() -> None:
    local = subscription("one", level=2, created="2017-01-02", state=ProcessorState.LOCAL)
    [sub] = cancel_all(base_customer(subscriptions=[local]), NOW).subscriptions
    assert sub.status is SubscriptionStatus.CANCELED and not cancel_pending(sub)
