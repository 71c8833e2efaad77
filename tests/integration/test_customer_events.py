"""The subscriptions half's events through the handlers (customers function, Stripe webhook function) on moto, with
the real ``stripe`` SDK against the fake Billing API: each fact is written to the customers table's outbox once,
whatever path saves it and however often (a repeated sync or reload, a redelivered or stale webhook); and a save's
writes and events never pass DynamoDB's 100 actions a transaction."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest
from boto3.dynamodb.types import TypeDeserializer
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers import stripe_customers
from tests.helpers.customers_api import Call
from tests.helpers.stripe_customers import PRO
from tests.helpers.subscription_builders import at, base_customer, usd
from usercredits.adapters.dynamodb.keys import customer_outbox_pk
from usercredits.adapters.dynamodb.outbox import is_outbox_item, outbox_events
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.kernel.models import DomainEvent
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS, IdempotencyRecord
from usercredits.settings import get_stripe_webhook_settings
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.models import Transaction, TransactionStatus, TransactionStatusEvent

S = HTTPStatus
fake = stripe_customers.fake  # the fake Billing API with the Pro price
stripe = stripe_customers.stripe  # the Stripe processor pointed at the fake
api = stripe_customers.api  # the customers function in Stripe mode, with that processor


def published(user_id: str = "alice") -> list[DomainEvent]:
    """What the event publisher would put on the bus for the user: the events of the outbox items, oldest first."""
    items = boto3.client("dynamodb").query(
        TableName=os.environ["CUSTOMERS_TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": customer_outbox_pk(user_id)}},
    )["Items"]
    deserializer = TypeDeserializer()
    images = [{name: deserializer.deserialize(value) for name, value in item.items()} for item in items]
    images.sort(key=lambda image: str(image["createdAt"]))
    return [event for image in images if is_outbox_item(image) for event in outbox_events(image)]


def kinds(events: list[DomainEvent]) -> list[str]:
    return [event.kind for event in events]


def subscribed_and_synced(api: Call) -> dict[str, Any]:
    assert api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)[0] == S.OK
    status, method = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED, method
    status, subscription = api("subscribe", body={"planId": "pro", "paymentMethodId": method["paymentMethodId"]})
    assert status == S.CREATED, subscription
    status, customer = api("sync")
    assert status == S.OK, customer
    return dict(customer)


def test_subscribe_sync_reload_and_refund_publish_each_fact_once(api: Call) -> None:
    # Given a subscription made locally, synced (Stripe activates it and charges its first invoice), and reloaded
    customer = subscribed_and_synced(api)
    # When sync and reload are repeated (nothing changed at Stripe)
    assert api("sync")[0] == S.OK
    status, customer = api("reload")
    assert status == S.OK, customer
    assert api("reload")[0] == S.OK and api("sync")[0] == S.OK
    # Then each fact was published once: the subscription created and activated, its first charge succeeded
    events = published()
    assert sorted(kinds(events)) == ["SubscriptionActivated", "SubscriptionCreated", "TransactionSucceeded"]
    [subscription] = customer["subscriptions"]
    [charge] = [t for t in customer["transactions"] if t["kind"] == "sale"]
    by_kind = {event.kind: event.detail for event in events}
    assert by_kind["SubscriptionActivated"]["subscriptionId"] == subscription["subscriptionId"]
    assert by_kind["SubscriptionActivated"]["plan"] == "pro" and by_kind["SubscriptionActivated"]["status"] == "active"
    succeeded = by_kind["TransactionSucceeded"]
    assert (succeeded["transactionId"], succeeded["amount"], succeeded["currency"]) == (
        charge["transactionId"],
        1490,
        "usd",
    )
    assert all(event.detail["userId"] == "alice" and event.detail["eventId"] for event in events)
    # And a refund (its mirror) is published once as TransactionRefunded
    path = f"/admin/customers/alice/transactions/{charge['transactionId']}/refund"
    body = {"amount": {"amount": 490, "currency": "usd"}}
    status, refund = api("refund_admin", path=path, body=body, admin=True)
    assert status == S.OK, refund
    assert api("reload")[0] == S.OK
    refunded = [event.detail for event in published() if event.kind == "TransactionRefunded"]
    assert [(d["transactionId"], d["amount"], d["refundedTransactionId"]) for d in refunded] == [
        (refund["transactionId"], 490, charge["transactionId"])
    ]


def test_a_void_is_published_once(api: Call, fake: FakeStripeBilling) -> None:
    customer = subscribed_and_synced(api)
    fake.add_charge(customer["processor"]["id"], 700, captured=False, created=1)
    _, customer = api("reload")
    [authorized] = [t for t in customer["transactions"] if t["status"] == "authorized"]
    path = f"/admin/customers/alice/transactions/{authorized['transactionId']}/void"
    assert api("void_admin", path=path, admin=True)[0] == S.OK
    assert api("reload")[0] == S.OK
    voided = [event.detail for event in published() if event.kind == "TransactionVoided"]
    assert [d["transactionId"] for d in voided] == [authorized["transactionId"]]


def test_a_webhook_redelivered_publishes_its_fact_once_and_a_stale_one_nothing(
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
    customer = subscribed_and_synced(api)
    subscription_id = customer["subscriptions"][0]["processor"]["id"]
    ports = SyncPorts(DynamoCustomerRepository(), DynamoCouponRepository(), stripe, SystemClock())
    monkeypatch.setattr(webhook_handler, "billing_ports", lambda: ports)
    monkeypatch.setenv("PAYMENT_PROVIDER", "local")  # the local webhook secret signs; billing ports are Stripe's
    get_stripe_webhook_settings.cache_clear()
    webhook_handler.dependencies.cache_clear()
    before = published()

    def event(event_id: str, kind: str, created: int, **fields: Any) -> dict[str, Any]:
        body = fake.set_subscription(subscription_id, **fields)
        return {"id": event_id, "type": kind, "created": created, "data": {"object": body}}

    # When Stripe says the subscription is past due, delivered twice
    past_due = event("evt_2", "customer.subscription.updated", 2_000_000_000, status="past_due")
    assert webhook(past_due)[0] == 200 and webhook(past_due)[0] == 200
    # and an older event arrives late, then the deletion
    older = event("evt_1", "customer.subscription.updated", 1_900_000_000, status="active")
    assert webhook(older)[0] == 200
    deleted = event("evt_3", "customer.subscription.deleted", 2_000_000_100, status="canceled")
    assert webhook(deleted)[0] == 200 and webhook(deleted)[0] == 200
    # Then past due and canceled were each published once, and the stale event published nothing
    assert kinds(published()[len(before) :]) == ["SubscriptionPastDue", "SubscriptionCanceled"]


def _sales(count: int) -> list[Transaction]:
    return [
        Transaction(
            transaction_id=f"t{n:03}",
            amount=usd(100),
            status=TransactionStatus.SETTLED,
            status_history=[TransactionStatusEvent(status=TransactionStatus.SETTLED, timestamp=at("2017-02-03"))],
            created_at=at("2017-02-03") + timedelta(minutes=n),
        )
        for n in range(count)
    ]


@pytest.fixture
def transaction_sizes(moto_tables: None) -> Iterator[list[int]]:
    """The number of actions of every TransactWriteItems the customers repository sends."""
    from usercredits.adapters.dynamodb.customers import customers_connection

    sizes: list[int] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        sizes.append(len(params["TransactItems"]))

    events = customers_connection().client.meta.events
    events.register("provide-client-params.dynamodb.TransactWriteItems", count)
    yield sizes
    events.unregister("provide-client-params.dynamodb.TransactWriteItems", count)


@pytest.mark.parametrize("beyond", [-1, 0, 1, 80])
def test_a_save_with_its_events_stays_within_100_actions_and_records_every_fact_with_its_mirror(
    beyond: int, transaction_sizes: list[int]
) -> None:
    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository

    # Given a customer's first save: its profile, its other children and a request key (``fixed`` actions), and
    # settled charges, each a mirror and its event; ``beyond`` charges more than exactly 100 actions hold
    others = base_customer(user_id="alice", subscriptions=[])
    fixed = 1 + len(customer_changes(None, others).upserts) + 1
    sales = (MAX_TRANSACTION_ACTIONS - fixed) // 2 + beyond
    customer = others.model_copy(update={"transactions": list(reversed(_sales(sales)))})
    record = IdempotencyRecord.of("sync", "key-1", {}, "result")
    changes = dataclasses.replace(customer_changes(None, customer), idempotency=record)
    # When it is saved
    DynamoCustomerRepository().save(changes)
    # Then no transaction passed 100 actions; while they fit, it was one transaction
    assert all(size <= MAX_TRANSACTION_ACTIONS for size in transaction_sizes)
    if fixed + 2 * sales <= MAX_TRANSACTION_ACTIONS:
        assert transaction_sizes == [fixed + 2 * sales]
    else:  # the oldest mirrors went ahead, each with its event, plus a check of the profile's version per chunk
        assert len(transaction_sizes) > 1
        assert sum(transaction_sizes) == fixed + 2 * sales + len(transaction_sizes) - 1
    # And every charge's fact is in the outbox once
    events = published()
    assert sorted(str(event.detail["transactionId"]) for event in events) == [f"t{n:03}" for n in range(sales)]
    assert set(kinds(events)) == {"TransactionSucceeded"}
