"""The shapes the customers routes answer with: exactly the keys of the response models, and none of the sync
bookkeeping the stored customer carries (``version``, the payment lock, synced fields, event marks...).

The processor routes (sync, reload, refund, void) are checked in ``test_customers_sync_routes`` (they need Stripe).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest

from tests.helpers import customer_shapes as shapes
from tests.helpers.subscription_builders import at, base_customer, discount, usd
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.instruments import CardDetails
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    Descriptor,
    ProcessorItem,
    ProcessorState,
    SubscriptionStatus,
    SubscriptionStatusEvent,
    Transaction,
    TransactionCustomer,
    TransactionDiscount,
    TransactionStatus,
    TransactionStatusEvent,
)

Call = Callable[..., tuple[int, Any]]
S = HTTPStatus
PRO = {"name": "Pro", "price": {"amount": 1490, "currency": "usd"}, "level": 3, "processorPlanId": "price_pro"}


def bookkept_customer() -> Customer:
    """The seed's base customer of alice as syncs and webhooks leave it: every piece of bookkeeping set, and a
    transaction with every optional part."""
    customer = base_customer(user_id="alice")
    [four] = customer.subscriptions
    four = four.model_copy(
        update={
            "discounts": [discount(100)],
            "status_history": [SubscriptionStatusEvent(status=SubscriptionStatus.ACTIVE, timestamp=at("2017-02-03"))],
            "last_event_created": 1_486_080_000,
            "last_invoice_event_created": 1_486_080_001,
            "transactions_pending": True,
            "processor": four.processor.model_copy(update={"previous_id": "sub_before"}),
        }
    )
    sale = Transaction(
        transaction_id="sale-1",
        processor=ProcessorItem(id="ch_1", state=ProcessorState.SAVED, synced_fields={}),
        amount=usd(1320),
        status=TransactionStatus.SETTLED,
        status_history=[TransactionStatusEvent(status=TransactionStatus.SETTLED, timestamp=at("2017-02-03"))],
        subscription_id="four",
        plan_processor_id="price_pro",
        billing=AddressFields(name="Pesho Peshev", country="BG", postal_code="1000"),
        customer=TransactionCustomer(name="Pesho Peshev", email="seer@example.com"),
        discounts=[TransactionDiscount(amount=usd(100), name="Launch")],
        descriptor=Descriptor(name="Enhancv*Pro Plan"),
        instrument=CardDetails(brand="visa", last4="4242"),
        created_at=at("2017-02-03"),
    )
    return customer.model_copy(
        update={"subscriptions": [four], "transactions": [sale], "last_processor_save": at("2017-02-03")}
    )


@pytest.fixture
def alice(moto_tables: None) -> Customer:
    """Alice's bookkept customer, stored, with her payment lock taken (as during a sync)."""
    repository = DynamoCustomerRepository()
    repository.save(customer_changes(None, bookkept_customer()))
    now = datetime.now(UTC)
    assert repository.acquire_payment_lock("alice", now=now, until=now + timedelta(minutes=5))
    stored = repository.load("alice")
    assert stored is not None
    # (the bookkeeping is really there to leak)
    assert stored.version == 1 and stored.payment_lock_until is not None and stored.last_processor_save is not None
    assert stored.processor.synced_fields is not None and stored.subscriptions[0].processor.previous_id
    assert stored.subscriptions[0].transactions_pending and stored.subscriptions[0].last_event_created
    return stored


def test_get_customer_answers_the_customer_keys_and_no_bookkeeping(customers_api: Call, alice: Customer) -> None:
    # When alice reads her customer
    status, body = customers_api("get_customer")
    # Then it has exactly the response keys, at every level, with every child shown
    assert status == S.OK
    shapes.assert_customer(body)
    assert [len(body[name]) for name in ("addresses", "paymentMethods", "subscriptions", "transactions")] == [1] * 4
    [sale] = body["transactions"]
    assert sale["billing"]["postalCode"] == "1000" and sale["customer"]["email"] == "seer@example.com"
    assert body["subscriptions"][0]["discounts"][0]["processor"] == {"id": None, "state": "initial"}


def test_admin_get_customer_answers_the_customer_keys(customers_api: Call, alice: Customer) -> None:
    status, body = customers_api("get_customer_admin", path="/admin/customers/alice", admin=True, user="ops")
    assert status == S.OK
    shapes.assert_customer(body)


def test_profile_and_default_payment_method_changes_answer_the_customer_keys(
    customers_api: Call, alice: Customer
) -> None:
    status, body = customers_api("update_customer", body={"name": "Pesho", "email": "pesho@example.com"})
    assert status == S.OK
    shapes.assert_customer(body)
    status, body = customers_api("set_default_payment_method", body={"paymentMethodId": "three"})
    assert status == S.OK
    shapes.assert_customer(body)


def test_new_address_and_payment_method_answer_their_keys(customers_api: Call, alice: Customer) -> None:
    status, address = customers_api("add_address", body={"name": "Office", "country": "BG", "postalCode": "1700"})
    assert status == S.CREATED
    shapes.assert_address(address)
    status, method = customers_api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED
    shapes.assert_payment_method(method)
    assert set(method["details"]) >= {"kind", "brand", "last4"}


def test_subscription_routes_answer_the_subscription_keys(customers_api: Call, alice: Customer) -> None:
    # Given a plan
    assert customers_api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)[0] == S.OK
    # When alice subscribes, lists, reads the current one and cancels
    status, created = customers_api("subscribe", body={"planId": "pro"})
    assert status == S.CREATED
    shapes.assert_subscription(created)
    status, listed = customers_api("list_subscriptions", query={"at": "2017-03-01T00:00:00Z", "valid": "true"})
    assert status == S.OK and set(listed) == {"subscriptions"} and listed["subscriptions"]
    for subscription in listed["subscriptions"]:
        shapes.assert_subscription(subscription)
    status, current = customers_api("current_subscription", query={"at": "2017-03-01T00:00:00Z"})
    assert status == S.OK and set(current) == {"subscription"}
    shapes.assert_subscription(current["subscription"])
    # (a synced subscription's cancel needs the processor, which the local provider lacks: the new one is withdrawn)
    path = f"/customer/subscriptions/{created['subscriptionId']}/cancel"
    status, canceled = customers_api("cancel_subscription", path=path, body={"atPeriodEnd": True})
    status_all, all_canceled = customers_api("cancel_all_subscriptions", path="/customer/subscriptions/cancel-all")
    # Then every one has exactly the subscription keys (the stored event marks stay stored)
    assert status == S.OK
    shapes.assert_subscription(canceled)
    assert status_all == S.CONFLICT  # ``four`` is synced: canceled locally, pending at the processor
    assert not shapes.keys_anywhere([created, listed, current, canceled, all_canceled]) & shapes.BOOKKEEPING


def test_plan_coupon_and_coupon_check_answer_their_keys(customers_api: Call, moto_tables: None) -> None:
    status, plan = customers_api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)
    assert status == S.OK
    shapes.assert_plan(plan)
    terms = {"kind": "amount", "amount": {"amount": 100, "currency": "usd"}, "maxUses": 3}
    status, coupon = customers_api("put_coupon_admin", path="/admin/coupons/TEN", body=terms, admin=True)
    assert status == S.OK
    shapes.assert_coupon(coupon)
    status, check = customers_api("check_coupon", path="/coupons/TEN", query={"planId": "pro"})
    assert status == S.OK and set(check) == shapes.COUPON_CHECK
