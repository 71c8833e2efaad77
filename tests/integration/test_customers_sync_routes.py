"""The processor routes of the customers function end to end: lambda_handler -> the processor use cases -> PynamoDB on
moto and the real ``stripe`` SDK against the fake Billing API (``POST /customer/sync``, ``/customer/reload``, the admin
refund and void), and what the local provider answers for them."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers import customer_shapes as shapes
from tests.helpers import stripe_customers
from tests.helpers.customers_api import Call, customers_caller
from tests.helpers.request_paths import RequestPath
from tests.helpers.stripe_customers import subscribed
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.settings import get_customers_settings, get_stripe_webhook_settings

S = HTTPStatus
fake = stripe_customers.fake  # the fake Billing API with the Pro price
stripe = stripe_customers.stripe  # the Stripe processor pointed at the fake
api = stripe_customers.api  # the customers function in Stripe mode, with that processor


def test_sync_creates_the_customer_and_subscription_at_stripe_once(api: Call, fake: FakeStripeBilling) -> None:
    # Given a customer with a card and a subscription, only local so far
    subscribed(api)
    # When it is synced twice
    status, customer = api("sync")
    assert status == S.OK, customer
    again_status, again = api("sync")
    # Then Stripe has one customer and one subscription, and the local items carry their Stripe ids
    assert again_status == S.OK
    assert len(fake.calls("POST", r"/v1/customers")) == 1
    assert len(fake.calls("POST", r"/v1/subscriptions")) == 1
    assert customer["processor"]["id"].startswith("cus_")
    [subscription] = again["subscriptions"]
    assert subscription["processor"]["state"] == "saved"
    assert subscription["processor"]["id"].startswith("sub_")
    assert again["paymentMethods"][0]["processor"]["id"] == "pm_card_visa"
    # and both answers have the customer's keys, without the bookkeeping the sync stored
    shapes.assert_customer(customer)
    shapes.assert_customer(again)


def test_a_payment_method_of_another_stripe_customer_is_refused(api: Call, fake: FakeStripeBilling) -> None:
    foreign = fake.add_payment_method(customer="cus_someone_else")
    status, body = api("add_payment_method", body={"token": foreign})
    assert status == S.UNPROCESSABLE_ENTITY, body
    status, body = api("add_payment_method", body={"token": "pm_does_not_exist"})
    assert status == S.UNPROCESSABLE_ENTITY, body


def test_reload_brings_the_charges_as_transactions_and_admins_refund_them(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced subscription whose first invoice Stripe charged
    subscribed(api)
    assert api("sync")[0] == S.OK
    # When the customer reloads
    status, customer = api("reload")
    assert status == S.OK, customer
    shapes.assert_customer(customer)
    [charge] = [t for t in customer["transactions"] if t["kind"] == "sale"]
    assert charge["amount"] == {"amount": 1490, "currency": "usd"}
    path = f"/admin/customers/alice/transactions/{charge['transactionId']}"
    # Then a refund above the charge, or of nothing, is refused before Stripe is asked
    for amount in (1491, 0):
        status, body = api(
            "refund_admin",
            path=f"{path}/refund",
            body={"amount": {"amount": amount, "currency": "usd"}},
            admin=True,
        )
        assert status == S.UNPROCESSABLE_ENTITY, body
    status, body = api(
        "refund_admin",
        path=f"{path}/refund",
        body={"amount": {"amount": -5, "currency": "usd"}},
        admin=True,
    )
    assert status == S.UNPROCESSABLE_ENTITY, body
    assert fake.calls("POST", r"/v1/refunds") == []
    # And a partial refund goes through, listed first
    status, refund = api(
        "refund_admin",
        path=f"{path}/refund",
        body={"amount": {"amount": 490, "currency": "usd"}},
        admin=True,
    )
    assert status == S.OK, refund
    shapes.assert_transaction(refund)
    assert refund["amount"] == {"amount": 490, "currency": "usd"}
    status, customer = api("get_customer")
    assert customer["transactions"][0]["transactionId"] == refund["transactionId"]
    assert len(fake.calls("POST", r"/v1/refunds")) == 1


def test_void_answers_the_voided_transaction(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced customer with an authorized (uncaptured) charge, reloaded
    subscribed(api)
    _, customer = api("sync")
    fake.add_charge(customer["processor"]["id"], 700, captured=False, created=1)
    _, customer = api("reload")
    [authorized] = [t for t in customer["transactions"] if t["status"] == "authorized"]
    # When an admin voids it
    path = f"/admin/customers/alice/transactions/{authorized['transactionId']}/void"
    status, voided = api("void_admin", path=path, admin=True)
    # Then the answer is the voided transaction, with the transaction's keys
    assert status == S.OK, voided
    assert (voided["transactionId"], voided["status"]) == (authorized["transactionId"], "voided")
    shapes.assert_transaction(voided)


def test_refund_and_void_are_for_admins_only(api: Call) -> None:
    for name in ("refund_admin", "void_admin"):
        status, body = api(name, admin=False)
        assert status == S.FORBIDDEN, body


def test_the_local_provider_has_no_subscription_processor(
    moto_tables: None, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customers import handler

    monkeypatch.setenv("PAYMENT_PROVIDER", "local")
    get_customers_settings.cache_clear()
    handler.dependencies.cache_clear()
    handler.processor.cache_clear()
    api = customers_caller(lambda_context)
    assert api("get_customer")[0] == S.OK
    for name in ("sync", "reload"):
        status, body = api(name)
        assert status == S.CONFLICT
        assert "local payment provider" in body["message"]
    handler.dependencies.cache_clear()
    get_customers_settings.cache_clear()


def test_billing_webhooks_update_the_local_subscription_once_and_in_order(
    api: Call,
    fake: FakeStripeBilling,
    stripe: StripeSubscriptionProcessor,
    webhook: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stripe_webhook import handler as webhook_handler
    from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
    from usercredits.kernel.clock import SystemClock
    from usercredits.subscriptions.ports import SyncPorts

    # Given a synced subscription, and the webhook function reading the same tables and the fake Stripe
    subscribed(api)
    _, customer = api("sync")
    subscription_id = customer["subscriptions"][0]["processor"]["id"]
    ports = SyncPorts(DynamoCustomerRepository(), DynamoCouponRepository(), stripe, SystemClock())
    monkeypatch.setattr(webhook_handler, "billing_ports", lambda: ports)
    # (the webhook checks signatures with the local secret; its billing ports are the Stripe ones above)
    monkeypatch.setenv("PAYMENT_PROVIDER", "local")
    get_stripe_webhook_settings.cache_clear()
    webhook_handler.dependencies.cache_clear()

    def event(event_id: str, kind: str, created: int, **fields: Any) -> dict[str, Any]:
        body = fake.set_subscription(subscription_id, **fields) if fields else fake.render_subscription(subscription_id)
        return {"id": event_id, "type": kind, "created": created, "data": {"object": body}}

    def local_status() -> str:
        return str(api("get_customer")[1]["subscriptions"][0]["status"])

    # When Stripe says the subscription is past due (delivered twice)
    past_due = event("evt_2", "customer.subscription.updated", 2_000_000_000, status="past_due")
    assert webhook(past_due) == (200, {"received": True})
    assert webhook(past_due) == (200, {"received": True})
    # Then the local subscription is past due
    assert local_status() == "past_due"
    # And an older event arriving late changes nothing
    older = event("evt_1", "customer.subscription.updated", 1_900_000_000, status="active")
    assert webhook(older) == (200, {"received": True})
    assert local_status() == "past_due"
    # And a newer deletion cancels it
    deleted = event("evt_3", "customer.subscription.deleted", 2_000_000_100, status="canceled")
    assert webhook(deleted) == (200, {"received": True})
    assert local_status() == "canceled"


def test_request_path_of_a_sync(api: Call) -> None:
    """The README's measure: ``POST /customer/sync`` is followed through at most 5 project files, one direction: the
    chain from the handler to the last file it reaches."""
    subscribed(api)
    with RequestPath() as path:
        status, _ = api("sync")
    assert status == S.OK
    print(path.report("POST /customer/sync"))
    assert len(path.chain) <= 5, path.chain
    # It touches 11 files in all: a sync saves a customer, its cards, subscriptions and charges, each with its rules
    # and its Stripe resource module beside that chain; README "Architecture" says which and why.
    assert len(path.followed) <= 11, path.followed
    assert path.back_and_forth == []
