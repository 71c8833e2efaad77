"""Refunds and disputes of subscription payments, trials and the default payment method's reuse rules, through the
real handlers (issue 15 items 4 and 5):
the customers function in Stripe mode and the webhook function with real HMAC signatures, both against the fake
Billing API (devtools/stripe_sim) and PynamoDB on moto.

A fully refunded or lost-disputed billing period is not an entitlement; a partial refund, an open or a won dispute
keep it (docs/rules.md#subscription-refunds-and-disputes). Sequences: a refund webhook before any sync mirrored the
sale, redelivered and out-of-order events, a refund then a renewal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers import stripe_customers
from tests.helpers.customers_api import Call
from tests.helpers.stripe_customers import PRO
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.kernel.clock import SystemClock
from usercredits.settings import get_stripe_webhook_settings
from usercredits.subscriptions.ports import SyncPorts

Deliver = Callable[..., tuple[int, Any]]
S = HTTPStatus
fake = stripe_customers.fake  # the fake Billing API with the Pro price
stripe = stripe_customers.stripe  # the Stripe processor pointed at the fake
api = stripe_customers.api  # the customers function in Stripe mode, with that processor
RECEIVED = (200, {"received": True})


@pytest.fixture
def billing_webhook(
    webhook: Deliver, stripe: StripeSubscriptionProcessor, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Deliver]:
    """The webhook function (signatures checked with the local secret) whose billing ports are the fake Stripe's."""
    from stripe_webhook import handler as webhook_handler

    ports = SyncPorts(DynamoCustomerRepository(), DynamoCouponRepository(), stripe, SystemClock())
    monkeypatch.setattr(webhook_handler, "billing_ports", lambda: ports)
    monkeypatch.setenv("PAYMENT_PROVIDER", "local")
    get_stripe_webhook_settings.cache_clear()
    webhook_handler.dependencies.cache_clear()
    yield webhook
    get_stripe_webhook_settings.cache_clear()


def synced(api: Call, **plan: Any) -> dict[str, Any]:
    """Alice with a card and a Pro subscription synced to Stripe (which charged its first invoice)."""
    assert api("put_plan_admin", path="/admin/plans/pro", body={**PRO, **plan}, admin=True)[0] == S.OK
    status, method = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED, method
    status, sub = api("subscribe", body={"planId": "pro", "paymentMethodId": method["paymentMethodId"]})
    assert status == S.CREATED, sub
    status, customer = api("sync")
    assert status == S.OK, customer
    return dict(customer["subscriptions"][0])


def entitled(api: Call, at: datetime | None = None) -> bool:
    query = {"at": at.isoformat()} if at else None
    status, body = api("current_subscription", query=query)
    assert status == S.OK, body
    return body["subscription"] is not None


def sales(api: Call) -> list[dict[str, Any]]:
    return [txn for txn in api("get_customer")[1]["transactions"] if txn["kind"] == "sale"]


def event(event_id: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "created": int(datetime.now(UTC).timestamp()), "data": {"object": body}}


# --- the sale knows its period -------------------------------------------------------------------------------------


def test_a_subscription_sale_carries_the_period_it_paid(api: Call, fake: FakeStripeBilling) -> None:
    sub = synced(api)
    assert api("reload")[0] == S.OK
    [sale] = sales(api)
    assert sale["subscriptionId"] == sub["subscriptionId"] and sale["dispute"] is None
    assert sale["periodStart"] is not None and sale["periodEnd"] is not None
    assert datetime.fromisoformat(sale["periodEnd"]) - datetime.fromisoformat(sale["periodStart"]) == timedelta(days=30)


# --- admin refunds -------------------------------------------------------------------------------------------------


def test_a_full_admin_refund_takes_the_period_back_and_a_partial_one_keeps_it(api: Call) -> None:
    synced(api)
    api("reload")
    [sale] = sales(api)
    assert entitled(api)
    refund = f"/admin/customers/alice/transactions/{sale['transactionId']}/refund"
    # A partial refund keeps the period
    status, body = api("refund_admin", path=refund, body={"amount": {"amount": 490, "currency": "usd"}}, admin=True)
    assert status == S.OK, body
    assert entitled(api)
    # The rest given back: the period (and its grace) no longer entitles
    assert api("refund_admin", path=refund, body={}, admin=True)[0] == S.OK
    assert not entitled(api)
    assert not entitled(api, datetime.fromisoformat(sale["periodEnd"]) + timedelta(hours=12))
    status, valid = api("list_subscriptions", query={"valid": "true"})
    assert status == S.OK and valid["subscriptions"] == []


# --- refund webhooks -----------------------------------------------------------------------------------------------


def test_a_refund_webhook_before_any_reload_mirrors_the_sale_and_the_refund_once(
    api: Call, fake: FakeStripeBilling, stripe: StripeSubscriptionProcessor, billing_webhook: Deliver
) -> None:
    # Given a synced subscription renewed at Stripe, whose renewal no event or reload has mirrored yet
    sub = synced(api)
    fake.renew(sub["processor"]["id"])
    charge_id = fake.invoice_charge(sub["processor"]["id"])
    assert charge_id not in [txn["processor"]["id"] for txn in sales(api)]
    # When it is refunded in full at Stripe (the Dashboard) and the event arrives, twice
    stripe.refund(charge_id, None, idempotency_key="dashboard-refund")
    refunded = event("evt_refund", "charge.refunded", fake.render_charge(charge_id))
    assert billing_webhook(refunded) == RECEIVED
    first = api("get_customer")[1]["transactions"]
    assert billing_webhook(refunded) == RECEIVED
    # Then the renewal's sale and its refund are mirrored once (the refund first), and that period does not entitle
    transactions = api("get_customer")[1]["transactions"]
    assert transactions == first
    assert [txn["kind"] for txn in transactions] == ["refund", "sale", "sale"]
    renewal = next(txn for txn in transactions if txn["processor"]["id"] == charge_id)
    assert transactions[0]["refundedTransactionId"] == renewal["transactionId"]
    # and once the subscription itself is reloaded (paid through the renewal), the first period still entitles and
    # the refunded renewal does not
    assert api("reload")[0] == S.OK
    assert entitled(api)
    assert not entitled(api, datetime.fromisoformat(renewal["periodStart"]) + timedelta(days=3))


def test_a_partial_refund_webhook_keeps_the_period(
    api: Call, fake: FakeStripeBilling, stripe: StripeSubscriptionProcessor, billing_webhook: Deliver
) -> None:
    sub = synced(api)
    charge_id = fake.invoice_charge(sub["processor"]["id"])
    stripe.refund(charge_id, _usd(500), idempotency_key="partial")
    assert billing_webhook(event("evt_partial", "charge.refunded", fake.render_charge(charge_id))) == RECEIVED
    assert [txn["kind"] for txn in api("get_customer")[1]["transactions"]] == ["refund", "sale"]
    assert entitled(api)


def test_a_charge_of_a_customer_we_do_not_know_changes_nothing(
    api: Call, fake: FakeStripeBilling, billing_webhook: Deliver
) -> None:
    stranger = fake.add_charge("cus_stranger", 700)
    before = DynamoCustomerRepository().load("alice")
    assert billing_webhook(event("evt_other", "charge.refunded", fake.render_charge(stranger))) == RECEIVED
    assert billing_webhook(event("evt_dp", "charge.dispute.created", fake.dispute(stranger))) == RECEIVED
    assert DynamoCustomerRepository().load("alice") == before


# --- disputes ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("closed", "still_entitled"), [("lost", False), ("won", True), ("warning_closed", True)])
def test_a_dispute_is_mirrored_and_only_a_lost_one_takes_the_period_back(
    api: Call, fake: FakeStripeBilling, billing_webhook: Deliver, closed: str, still_entitled: bool
) -> None:
    sub = synced(api)
    charge_id = fake.invoice_charge(sub["processor"]["id"])
    # When the cardholder disputes: the sale shows an open dispute, the period still entitles
    assert billing_webhook(event("evt_dp1", "charge.dispute.created", fake.dispute(charge_id))) == RECEIVED
    [sale] = sales(api)
    assert sale["dispute"] == "open" and entitled(api)
    # Then it is closed
    assert billing_webhook(event("evt_dp2", "charge.dispute.closed", fake.dispute(charge_id, closed))) == RECEIVED
    [sale] = sales(api)
    assert sale["dispute"] == ("lost" if closed == "lost" else "won")
    assert entitled(api) is still_entitled


def test_a_dispute_decided_before_its_created_event_stays_decided(
    api: Call, fake: FakeStripeBilling, billing_webhook: Deliver
) -> None:
    sub = synced(api)
    charge_id = fake.invoice_charge(sub["processor"]["id"])
    assert billing_webhook(event("evt_closed", "charge.dispute.closed", fake.dispute(charge_id, "lost"))) == RECEIVED
    assert billing_webhook(event("evt_created", "charge.dispute.created", fake.dispute(charge_id))) == RECEIVED
    [sale] = sales(api)
    assert sale["dispute"] == "lost" and not entitled(api)
    # And a reload (Stripe's listing knows nothing of disputes) keeps it
    assert api("reload")[0] == S.OK
    assert sales(api)[0]["dispute"] == "lost"


# --- sequences -----------------------------------------------------------------------------------------------------


def test_a_refund_then_a_renewal_entitles_the_renewed_period(
    api: Call, fake: FakeStripeBilling, stripe: StripeSubscriptionProcessor, billing_webhook: Deliver
) -> None:
    # Given the first period refunded in full
    sub = synced(api)
    first_charge = fake.invoice_charge(sub["processor"]["id"])
    stripe.refund(first_charge, None, idempotency_key="first")
    assert billing_webhook(event("evt_r1", "charge.refunded", fake.render_charge(first_charge))) == RECEIVED
    assert not entitled(api)
    # When Stripe renews it and the customer reloads
    fake.renew(sub["processor"]["id"])
    assert api("reload")[0] == S.OK
    # Then the second period entitles from its start, and the first still does not
    periods = sorted((txn["periodStart"], txn["periodEnd"]) for txn in sales(api))
    second_start = datetime.fromisoformat(periods[1][0])
    assert entitled(api, second_start + timedelta(hours=1))
    assert not entitled(api, second_start - timedelta(days=2))


def test_a_trial_is_sent_as_a_trial_and_shown_trialing(api: Call, fake: FakeStripeBilling) -> None:
    # Given a plan with a 7-day trial and a descriptor on the subscription
    assert (
        api(
            "put_plan_admin",
            path="/admin/plans/pro",
            body={**PRO, "trialDuration": 7, "trialDurationUnit": "day"},
            admin=True,
        )[0]
        == S.OK
    )
    api("add_payment_method", body={"token": "pm_card_visa"})
    descriptor = {"name": "IBM*Pro Plan", "phone": "0888123456", "url": "example.com"}
    status, sub = api("subscribe", body={"planId": "pro", "descriptor": descriptor})
    assert status == S.CREATED and sub["isTrial"] is True
    # When it is synced
    status, customer = api("sync")
    assert status == S.OK, customer
    # Then Stripe has a trialing subscription ending at the first billing date, not a queued start, nothing charged
    [created] = fake.subscriptions.values()
    assert created["status"] == "trialing" and "queued" not in created["metadata"]
    assert created["trial_end"] == int(datetime.fromisoformat(sub["firstBillingDate"]).timestamp())
    assert created["metadata"]["descriptor"] == "IBM*Pro Plan" and created["metadata"]["descriptorUrl"] == "example.com"
    assert fake.invoices == {}
    # And the API shows it trialing, entitled until its first billing date
    [shown] = customer["subscriptions"]
    assert shown["status"] == "trialing" and shown["isTrial"] is True
    assert entitled(api) and entitled(api, datetime.fromisoformat(sub["firstBillingDate"]) - timedelta(hours=1))
    # And a trial canceled before it converts ends at Stripe's answer, with nothing to refund
    cancel = f"/customer/subscriptions/{shown['subscriptionId']}/cancel"
    status, canceled = api("cancel_subscription", path=cancel, body={})
    assert status == S.OK and canceled["status"] == "canceled"


def _usd(amount: int) -> Any:
    from usercredits.kernel.models import Money

    return Money(amount=amount, currency="usd")


def test_a_default_updated_in_place_is_re_attached_at_stripe_with_its_address(
    api: Call, fake: FakeStripeBilling
) -> None:
    """M04 at the processor: the same local card, a new token; the sync attaches it as the default, billing details
    from the address given."""
    _, first = api("add_payment_method", body={"token": "pm_card_visa"})
    status, customer = api("sync")
    assert status == S.OK, customer
    address = {"name": "Pesho", "country": "BG", "postalCode": "1000", "locality": "Sofia"}
    status, customer = api("set_default_payment_method", body={"token": "pm_card_mastercard", "address": address})
    assert status == S.OK, customer
    [method] = customer["paymentMethods"]
    assert method["paymentMethodId"] == first["paymentMethodId"] and method["processor"]["state"] == "changed"
    status, customer = api("sync")
    assert status == S.OK, customer
    [method] = customer["paymentMethods"]
    assert method["processor"] == {"id": "pm_card_mastercard", "state": "saved"}
    stripe_customer = fake.customers[customer["processor"]["id"]]
    assert stripe_customer["invoice_settings"]["default_payment_method"] == "pm_card_mastercard"
    billing = fake.payment_methods["pm_card_mastercard"]["billing_details"]
    assert billing["name"] == "Pesho" and billing["address"]["city"] == "Sofia"
