"""The local provider's subscription processor: the customers and webhook functions (real ``lambda_handler``s on
moto) with ``PAYMENT_PROVIDER=local`` and ``LOCAL_STRIPE_API_BASE`` pointing at the Stripe simulation
(devtools/stripe_sim/simulator.py), and what the simulation does on its own (renewals, a declined invoice, a refund,
a dispute) reaching the webhook as Stripe events, accepted and applied."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest
from devtools.devserver.local_stripe import plan_price
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.simulator import StripeSimulator

from tests.conftest import http_event
from usercredits.settings import get_customers_settings, get_stripe_webhook_settings

Call = Callable[..., tuple[int, Any]]
Deliver = Callable[..., tuple[int, Any]]
S = HTTPStatus
DAY = 86400
PRO = {
    "name": "Pro",
    "price": {"amount": 1490, "currency": "usd"},
    "billingFrequencyMonths": 1,
    "level": 2,
    "processorPlanId": "price_pro",
}


class MovableClock:
    """The simulation's clock: the real time plus what the test moved it by."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock()


@pytest.fixture
def simulator(clock: MovableClock) -> Iterator[StripeSimulator]:
    """The simulation as the dev server runs it: prices found from the plans' ``processorPlanId``."""
    with StripeSimulator(clock, price_source=plan_price) as running:
        yield running


def _clear_caches() -> None:
    from customers import handler as customers
    from stripe_webhook import handler as stripe_webhook

    for cached in (
        get_customers_settings,
        get_stripe_webhook_settings,
        customers.dependencies,
        customers.processor,
        stripe_webhook.dependencies,
        stripe_webhook.billing_ports,
    ):
        cached.cache_clear()


@pytest.fixture
def local(
    moto_tables: None, lambda_context: LambdaContext, simulator: StripeSimulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Call]:
    """The customers function with the local provider, its processor the simulation (as ``make run`` sets it)."""
    from customers import handler

    monkeypatch.setenv("PAYMENT_PROVIDER", "local")
    monkeypatch.setenv("LOCAL_STRIPE_API_BASE", simulator.url)
    _clear_caches()

    def call(base: str, **overrides: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(http_event(f"customers/{base}.json", **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None

    yield call
    _clear_caches()


def deliver_all(simulator: StripeSimulator, webhook: Deliver) -> list[tuple[str, int, Any]]:
    """Deliver the simulation's queued events to the webhook function, as the dev server does after a request."""
    delivered = []
    while events := simulator.take_events():
        for event in events:
            status, body = webhook(event)
            delivered.append((event["type"], status, body))
    return delivered


def synced_pro(local: Call, simulator: StripeSimulator, webhook: Deliver) -> dict[str, Any]:
    """Alice with a test card and a Pro subscription, synced; the events of the sync delivered."""
    assert local("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)[0] == S.OK
    status, method = local("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED, method
    status, created = local("subscribe", body={"planId": "pro", "paymentMethodId": method["paymentMethodId"]})
    assert status == S.CREATED, created
    status, customer = local("sync")
    assert status == S.OK, customer
    delivered = deliver_all(simulator, webhook)
    assert [(kind, status) for kind, status, _ in delivered] == [
        ("customer.subscription.created", S.OK),
        ("invoice.paid", S.OK),
    ]
    return dict(customer)


def test_without_the_simulation_the_local_provider_still_answers_409(
    local: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the local provider with no simulation named (make invoke, the in-process tests)
    monkeypatch.delenv("LOCAL_STRIPE_API_BASE")
    _clear_caches()
    # When a processor route is called, then it is the conflict it always was
    status, body = local("sync")
    assert status == S.CONFLICT, body
    assert "local payment provider" in body["message"]


def test_sync_reaches_the_simulation_through_the_stripe_adapter(
    local: Call, simulator: StripeSimulator, webhook: Deliver
) -> None:
    # Given a subscription synced with the local provider
    customer = synced_pro(local, simulator, webhook)
    # Then the simulation holds the customer and its paid subscription, and the local copy carries their ids
    [subscription] = customer["subscriptions"]
    stripe_sub = simulator.subscriptions[subscription["processor"]["id"]]
    assert stripe_sub["status"] == "active"
    assert stripe_sub["metadata"]["subscriptionId"] == subscription["subscriptionId"]
    assert customer["processor"]["id"] in simulator.customers
    [sale] = customer["transactions"]
    assert (sale["amount"], sale["status"]) == ({"amount": 1490, "currency": "usd"}, "settled")
    # And the test card was attached as a copy of its own (Stripe's test tokens make a new payment method each time)
    [method] = customer["paymentMethods"]
    assert method["processor"]["id"] != "pm_card_visa"
    assert simulator.payment_methods[method["processor"]["id"]]["customer"] == customer["processor"]["id"]


def test_a_renewal_is_an_invoice_the_webhook_mirrors(local: Call, simulator: StripeSimulator, webhook: Deliver) -> None:
    customer = synced_pro(local, simulator, webhook)
    stripe_id = customer["subscriptions"][0]["processor"]["id"]
    paid_through = customer["subscriptions"][0]["paidThroughDate"]
    # When Stripe renews the subscription
    simulator.renew(stripe_id)
    delivered = deliver_all(simulator, webhook)
    # Then the webhook accepted the update and the paid invoice
    assert [(kind, status) for kind, status, _ in delivered] == [
        ("customer.subscription.updated", S.OK),
        ("invoice.paid", S.OK),
    ]
    # And the customer has the second sale, and is paid through one more period
    status, after = local("get_customer")
    assert status == S.OK
    assert [t["amount"]["amount"] for t in after["transactions"]] == [1490, 1490]
    assert after["subscriptions"][0]["paidThroughDate"] > paid_through


def test_a_declined_renewal_makes_the_subscription_past_due(
    local: Call, simulator: StripeSimulator, webhook: Deliver
) -> None:
    customer = synced_pro(local, simulator, webhook)
    stripe_id = customer["subscriptions"][0]["processor"]["id"]
    # When its next invoice is declined
    simulator.fail_next_invoice(stripe_id)
    simulator.renew(stripe_id)
    delivered = deliver_all(simulator, webhook)
    # Then Stripe sent the past-due update and the failed invoice, both accepted
    assert [(kind, status) for kind, status, _ in delivered] == [
        ("customer.subscription.updated", S.OK),
        ("invoice.payment_failed", S.OK),
    ]
    assert simulator.subscriptions[stripe_id]["status"] == "past_due"
    # And the customer's subscription is past due with one failure
    [subscription] = local("get_customer")[1]["subscriptions"]
    assert (subscription["status"], subscription["failureCount"]) == ("past_due", 1)


def test_moving_the_clock_renews_every_period_that_ended(
    local: Call, simulator: StripeSimulator, webhook: Deliver, clock: MovableClock
) -> None:
    customer = synced_pro(local, simulator, webhook)
    stripe_id = customer["subscriptions"][0]["processor"]["id"]
    # When the clock moves 65 days on (two 30-day periods end)
    clock.offset += 65 * DAY
    renewed = simulator.renew_due()
    # Then the subscription renewed twice, each with its paid invoice, and nothing else is due
    assert renewed == [stripe_id, stripe_id]
    assert simulator.renew_due() == []
    kinds = [kind for kind, status, _ in deliver_all(simulator, webhook) if status == S.OK]
    assert kinds.count("invoice.paid") == 2


def test_a_cancel_at_period_end_ends_the_subscription_at_its_renewal(
    local: Call, simulator: StripeSimulator, webhook: Deliver
) -> None:
    customer = synced_pro(local, simulator, webhook)
    [subscription] = customer["subscriptions"]
    # Given it is canceled at period end (synced to the simulation)
    path = f"/customer/subscriptions/{subscription['subscriptionId']}/cancel"
    status, body = local("cancel_subscription", path=path, body={"atPeriodEnd": True})
    assert status == S.OK, body
    assert local("sync")[0] == S.OK
    deliver_all(simulator, webhook)
    # When its period ends
    simulator.renew(subscription["processor"]["id"])
    delivered = deliver_all(simulator, webhook)
    # Then Stripe deleted it instead of billing again, and the customer's subscription is canceled
    assert [(kind, status) for kind, status, _ in delivered] == [("customer.subscription.deleted", S.OK)]
    assert local("get_customer")[1]["subscriptions"][0]["status"] == "canceled"


def test_dashboard_refunds_and_disputes_reach_the_webhook(
    local: Call, simulator: StripeSimulator, webhook: Deliver, clock: MovableClock
) -> None:
    customer = synced_pro(local, simulator, webhook)
    charge_id = customer["transactions"][0]["transactionId"]
    # When, a minute later, part of the charge is refunded from the dashboard, then the rest disputed and lost
    clock.offset += 60
    simulator.refund_charge(charge_id, 490)
    dispute = simulator.open_dispute(charge_id)
    simulator.close_dispute(dispute["id"], won=False)
    delivered = deliver_all(simulator, webhook)
    # Then each event was Stripe's, carrying what changed, and the webhook accepted each
    assert [(kind, status) for kind, status, _ in delivered] == [
        ("charge.refunded", S.OK),
        ("charge.dispute.created", S.OK),
        ("charge.dispute.closed", S.OK),
    ]
    assert dispute["amount"] == 1000
    assert simulator.charges[charge_id]["amount_refunded"] == 490
    # And the refund is on the customer's transactions once reloaded from the processor
    status, reloaded = local("reload")
    assert status == S.OK, reloaded
    transactions = [(t["kind"], t["amount"]["amount"]) for t in reloaded["transactions"]]
    assert transactions == [("refund", 490), ("sale", 1490)]


def test_a_plan_put_by_an_admin_is_billed_at_its_price(
    local: Call, simulator: StripeSimulator, webhook: Deliver
) -> None:
    # Given no price given to the simulation
    assert simulator.prices == {}
    # When a plan naming price_pro is put and subscribed to
    customer = synced_pro(local, simulator, webhook)
    # Then the simulation made the price from the plan, and billed it
    assert (simulator.prices["price_pro"]["unit_amount"], simulator.prices["price_pro"]["currency"]) == (1490, "usd")
    assert customer["transactions"][0]["amount"]["amount"] == 1490
