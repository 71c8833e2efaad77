"""The stored format of a customer is pinned: items written before the explicit stored form existed load unchanged,
and saving the same customer writes them again byte for byte.

``stored_customer_v1.json`` holds the raw DynamoDB items (profile and every kind of child, every optional part and
every piece of sync bookkeeping set) that the adapter wrote when the stored JSON was still the domain models' own
dump. A domain field renamed, added or retyped without a mapping, or a stored key changed, fails here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3

from tests.helpers.subscription_builders import plan, usd, with_state
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.instruments import CardDetails, OtherDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Customer,
    Descriptor,
    Discount,
    DiscountKind,
    PaymentMethod,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
    SubscriptionStatusEvent,
    Transaction,
    TransactionCustomer,
    TransactionDiscount,
    TransactionKind,
    TransactionStatus,
    TransactionStatusEvent,
    TrialUnit,
)

USER = "auth0|stored"
FIXTURE = Path(__file__).with_name("stored_customer_v1.json")
T0 = datetime(2024, 3, 1, 8, 30, tzinfo=UTC)
LOCK_UNTIL = datetime(2024, 3, 1, 9, 0, 0, 250000, tzinfo=UTC)


def stored_format_customer() -> Customer:
    """A customer with every kind of stored child and every optional field set (deterministic: fixed ids and times)."""
    home = with_state(
        Address(
            address_id="addr-home",
            name="Home",
            country="BG",
            postal_code="1000",
            street_address="1 Vitosha",
            created_at=T0,
            updated_at=T0 + timedelta(days=1),
        ),
        ProcessorState.SAVED,
        "addr_proc_1",
    )
    office = Address(
        address_id="addr-office",
        name="Office",
        company="Enhancv",
        phone="+359888",
        country="BG",
        locality="Sofia",
        extended_address="floor 3",
        postal_code="1700",
        created_at=T0,
    )
    card = with_state(
        PaymentMethod(
            payment_method_id="pm-card",
            kind=PaymentMethodKind.CARD,
            billing_address_id="addr-home",
            details=CardDetails(
                brand="visa",
                last4="4242",
                masked_number="424242******4242",
                cardholder_name="Pesho",
                expiration_month=12,
                expiration_year=2030,
                country_of_issuance="BG",
                issuing_bank="UBB",
            ),
            created_at=T0,
        ),
        ProcessorState.SAVED,
        "pm_card_1",
    )
    paypal = PaymentMethod(
        payment_method_id="pm-paypal",
        kind=PaymentMethodKind.PAYPAL,
        token="pm_paypal_1",
        details=PayPalDetails(email="a@b.co", payer_id="P1"),
        created_at=T0 + timedelta(seconds=1),
    )
    gone = PaymentMethod(
        payment_method_id="pm-sepa",
        kind=PaymentMethodKind.OTHER,
        deleted=True,
        details=OtherDetails(processor_type="sepa_debit", label="SEPA ****3000"),
        created_at=T0 + timedelta(seconds=2),
        updated_at=T0 + timedelta(days=3),
    )
    coupon = Discount(
        discount_id="disc-coupon",
        kind=DiscountKind.COUPON,
        amount=usd(199),
        name="TEN",
        number_of_billing_cycles=3,
        current_billing_cycle=1,
        percent=None,
        coupon_code="TEN",
        created_at=T0,
    )
    percent = Discount(
        discount_id="disc-percent",
        kind=DiscountKind.PERCENT,
        amount=usd(250),
        percent=Decimal("12.5"),
        never_expires=True,
        created_at=T0,
    )
    synced = with_state(
        Subscription(
            subscription_id="sub-pro",
            plan=plan(level=2, price=1990),
            price=usd(1990),
            discounts=[coupon, percent],
            payment_method_id="pm-card",
            status=SubscriptionStatus.ACTIVE,
            status_history=[SubscriptionStatusEvent(status=SubscriptionStatus.ACTIVE, timestamp=T0)],
            first_billing_date=T0,
            next_billing_date=T0 + timedelta(days=31),
            paid_through_date=T0 + timedelta(days=30),
            billing_period_start_date=T0,
            billing_period_end_date=T0 + timedelta(days=30),
            billing_day_of_month=1,
            current_billing_cycle=2,
            failure_count=1,
            days_past_due=3,
            is_trial=True,
            trial_duration=14,
            trial_duration_unit=TrialUnit.DAY,
            descriptor=Descriptor(name="IBM*Pro Plan", phone="0888123456", url="example.com"),
            cancel_at_period_end=True,
            last_event_created=1_709_280_000,
            last_invoice_event_created=1_709_280_001,
            transactions_pending=True,
            created_at=T0,
            updated_at=T0 + timedelta(microseconds=123456),
        ),
        ProcessorState.CHANGED,
        "sub_1",
    )
    synced = synced.model_copy(update={"processor": synced.processor.model_copy(update={"previous_id": "sub_0"})})
    queued = Subscription(
        subscription_id="sub-max",
        plan=plan(level=3, price=2990),
        price=usd(2990),
        discounts=[
            Discount(
                discount_id="disc-credit",
                kind=DiscountKind.PREVIOUS_SUBSCRIPTION,
                amount=usd(500),
                preserve=True,
                subscription_id="sub-pro",
                created_at=T0,
            )
        ],
        deleted=True,
        created_at=T0 + timedelta(seconds=5),
    )
    sale = Transaction(
        transaction_id="txn-sale",
        processor=with_state(card, ProcessorState.SAVED, "ch_1").processor,
        amount=usd(1990),
        status=TransactionStatus.SETTLED,
        status_history=[
            TransactionStatusEvent(status=TransactionStatus.SUBMITTED_FOR_SETTLEMENT, timestamp=T0),
            TransactionStatusEvent(status=TransactionStatus.SETTLED, timestamp=T0 + timedelta(hours=1)),
        ],
        subscription_id="sub-pro",
        plan_processor_id="price_l2",
        billing=AddressFields(name="Home", country="BG", postal_code="1000"),
        customer=TransactionCustomer(name="Pesho", email="seer@example.com", phone="+359888", company="Enhancv"),
        discounts=[TransactionDiscount(amount=usd(199), name="TEN")],
        descriptor=Descriptor(name="IBM*Pro Plan"),
        instrument=CardDetails(brand="visa", last4="4242"),
        created_at=T0,
    )
    refund = Transaction(
        transaction_id="txn-refund",
        kind=TransactionKind.REFUND,
        amount=usd(490),
        status=TransactionStatus.SETTLING,
        refunded_transaction_id="txn-sale",
        created_at=T0 + timedelta(days=2),
        updated_at=T0 + timedelta(days=2),
    )
    customer = Customer(
        customer_id="cust-1",
        user_id=USER,
        name="Pesho Peshev",
        email="seer@example.com",
        phone="+359888",
        ip_address="10.0.0.2",
        metadata={"plan": "gold"},
        addresses=[home, office],
        payment_methods=[card, paypal, gone],
        default_payment_method_id="pm-card",
        subscriptions=[synced, queued],
        transactions=[refund, sale],
        last_processor_save=T0 + timedelta(hours=2),
        created_at=T0,
        updated_at=T0 + timedelta(days=1),
    )
    return with_state(customer, ProcessorState.SAVED, "cus_1")


def scan() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").scan(TableName=os.environ["CUSTOMERS_TABLE_NAME"])["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], item["sk"]["S"]))


def test_items_written_before_load_as_the_same_customer(moto_tables: None) -> None:
    # Given the items the adapter wrote before the stored form was explicit
    client = boto3.client("dynamodb")
    for item in json.loads(FIXTURE.read_text()):
        client.put_item(TableName=os.environ["CUSTOMERS_TABLE_NAME"], Item=item)
    # When the customer is loaded
    loaded = DynamoCustomerRepository().load(USER)
    # Then it is the customer they were written from, every field and every piece of bookkeeping included
    assert loaded == stored_format_customer().model_copy(update={"version": 1, "payment_lock_until": LOCK_UNTIL})


def test_saving_the_customer_writes_the_pinned_items(moto_tables: None) -> None:
    # When the same customer is saved (and its payment lock taken) through the adapter of today
    repository = DynamoCustomerRepository()
    repository.save(customer_changes(None, stored_format_customer()))
    assert repository.acquire_payment_lock(USER, now=T0, until=LOCK_UNTIL)
    # Then the items are exactly those written before: same keys, same values, same types (and, apart, the outbox
    # items of the facts the save recorded: tests/integration/test_customer_events.py)
    items = scan()
    outbox = [item for item in items if item["pk"]["S"].startswith("CUSTOMER-OUTBOX#")]
    assert [item for item in items if item not in outbox] == json.loads(FIXTURE.read_text())
    assert all(item["sk"]["S"].startswith("OUTBOX#") and item["itemType"] == {"S": "outbox"} for item in outbox)


def test_items_without_the_keys_added_later_load_with_their_defaults(moto_tables: None) -> None:
    # Given the pinned items, with the keys a subscription and its processor side gained over time taken out
    later = {"lastEventCreated", "lastInvoiceEventCreated", "transactionsPending", "deleted"}
    client = boto3.client("dynamodb")
    for item in json.loads(FIXTURE.read_text()):
        if item["sk"]["S"] == "SUB#sub-pro":
            data = item["data"]["M"]
            for key in later:
                del data[key]
            del data["processor"]["M"]["previousId"]
        client.put_item(TableName=os.environ["CUSTOMERS_TABLE_NAME"], Item=item)
    # When the customer is loaded
    loaded = DynamoCustomerRepository().load(USER)
    # Then that subscription has the defaults, and the rest is as stored
    assert loaded is not None
    subscription = next(s for s in loaded.subscriptions if s.subscription_id == "sub-pro")
    assert (subscription.last_event_created, subscription.last_invoice_event_created) == (None, None)
    assert (subscription.transactions_pending, subscription.deleted, subscription.processor.previous_id) == (
        False,
        False,
        None,
    )
    assert subscription.processor.id == "sub_1" and subscription.discounts[1].percent == Decimal("12.5")
