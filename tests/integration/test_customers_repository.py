"""The customers table adapters on moto: a customer's round trip, versioned saves, child deletions, the payment lock,
plans and coupons (the races themselves run on DynamoDB Local: tests/dynamodb_local/test_coupon_races.py)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest

from tests.helpers.present import present
from tests.helpers.subscription_builders import NOW, at, plan, usd, with_state
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.dynamodb.plans import DynamoPlanRepository, DynamoSubscriptionTermsReader
from usercredits.errors import ConflictError, NotFoundError
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError
from usercredits.subscriptions import customers as customer_rules
from usercredits.subscriptions import subscribing
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.customers import NewPaymentMethod
from usercredits.subscriptions.instruments import CardDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.models import (
    AddressFields,
    Coupon,
    CouponKind,
    Customer,
    Descriptor,
    ProcessorState,
    Transaction,
    TransactionStatus,
    TransactionStatusEvent,
)
from usercredits.subscriptions.ports import (
    ChildKind,
    CustomerChanges,
    RedemptionOutcome,
    StaleCustomerError,
    SubscribeTerms,
)

USER = "auth0|alice"  # a JWT sub with a character ids may not have


@pytest.fixture
def customers(moto_tables: None) -> DynamoCustomerRepository:
    return DynamoCustomerRepository()


@pytest.fixture
def table_items(moto_tables: None) -> Callable[[], list[dict[str, Any]]]:
    def scan() -> list[dict[str, Any]]:
        return boto3.client("dynamodb").scan(TableName=os.environ["CUSTOMERS_TABLE_NAME"])["Items"]

    return scan


@pytest.fixture
def requests() -> Iterator[list[str]]:
    """The DynamoDB operations sent while the test runs (a botocore event hook on PynamoDB's client)."""
    from usercredits.adapters.dynamodb.customers_table import CustomersItem

    seen: list[str] = []
    client = CustomersItem._get_connection().connection.client

    def record(model: Any, params: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    yield seen
    client.meta.events.unregister("before-call.dynamodb", record)


def full_customer() -> Customer:
    """A customer with every kind of child, synced and not, discounts, a descriptor and transactions."""
    customer = customer_rules.new_customer(USER, NOW, email="Seer@Example.com", name="  Pesho Peshev ")
    customer = customer.model_copy(update={"metadata": {"plan": "gold"}, "ip_address": "10.0.0.2"})
    customer, one = customer_rules.add_address(
        customer, AddressFields(name="One", country="bg", postal_code="1000"), NOW
    )
    customer, _ = customer_rules.add_address(customer, AddressFields(name="Two", country="BG", locality="Sofia"), NOW)
    card = NewPaymentMethod(token="pm_card_visa", kind=PaymentMethodKind.CARD, details=CardDetails(brand="visa"))
    customer, method = customer_rules.add_payment_method(customer, card, NOW, billing_address_id=one.address_id)
    paypal = NewPaymentMethod(token="pm_paypal_x", kind=PaymentMethodKind.PAYPAL, details=PayPalDetails(email="a@b.co"))
    customer, _ = customer_rules.add_payment_method(customer, paypal, NOW, make_default=False)
    customer, first = subscribing.add_subscription(customer, plan(level=2, price=1990), NOW)
    paid = {
        "descriptor": Descriptor(name="IBM*Pro Plan"),
        "created_at": NOW - timedelta(days=10),
        "billing_period_start_date": NOW - timedelta(days=10),
        "billing_period_end_date": NOW + timedelta(days=20),
        "paid_through_date": NOW + timedelta(days=20),
    }
    synced = with_state(first.model_copy(update=paid), ProcessorState.SAVED)
    customer = customer.model_copy(update={"subscriptions": [synced]})
    customer, _ = subscribing.add_subscription(
        customer, plan(level=3, price=2990), NOW, payment_method_id=method.local_id
    )
    older = Transaction(
        transaction_id="txn-1",
        amount=usd(1990),
        status=TransactionStatus.SETTLED,
        status_history=[TransactionStatusEvent(status=TransactionStatus.SETTLED, timestamp=NOW)],
        subscription_id=synced.subscription_id,
        created_at=NOW - timedelta(days=30),
    )
    newer = older.model_copy(update={"transaction_id": "txn-2", "created_at": NOW})
    return with_state(customer, ProcessorState.SAVED, "cus_123").model_copy(update={"transactions": [newer, older]})


def test_customer_round_trip_keeps_every_field(customers: DynamoCustomerRepository) -> None:
    # Given a customer with addresses, payment methods, subscriptions (a discount) and transactions
    customer = full_customer()
    # When it is saved as new and loaded back
    saved = customers.save(customer_changes(None, customer))
    loaded = customers.load(USER)
    # Then it is the same customer, at version 1
    assert saved.version == 1
    assert loaded == customer.model_copy(update={"version": 1})
    assert loaded.subscriptions[1].discounts[0].kind == "previous_subscription"


def test_customer_is_one_item_per_child_under_one_partition(
    customers: DynamoCustomerRepository, table_items: Callable[[], list[dict[str, Any]]]
) -> None:
    # When the full customer is saved
    customers.save(customer_changes(None, full_customer()))
    # Then the partition holds a profile and one item per child, with processor ids for the ByProcessorId index
    # (the events of the save are in the customer's outbox partition, apart: test_customer_events.py)
    everything = table_items()
    items = [item for item in everything if item["pk"]["S"] != f"CUSTOMER-OUTBOX#{USER}"]
    assert {item["pk"]["S"] for item in items} == {f"CUSTOMER#{USER}"}
    assert all(item["sk"]["S"].startswith("OUTBOX#") for item in everything if item not in items)
    prefixes = sorted(item["sk"]["S"].split("#")[0] for item in items)
    assert prefixes == ["ADDRESS", "ADDRESS", "PM", "PM", "PROFILE", "SUB", "SUB", "TXN", "TXN"]
    profile = next(item for item in items if item["sk"]["S"] == "PROFILE")
    assert profile["processorId"] == {"S": "cus_123"} and profile["version"] == {"N": "1"}
    sub = next(item for item in items if item["sk"]["S"].startswith("SUB#") and "processorId" in item)
    assert sub["data"]["M"]["price"]["M"] == {"amount": {"N": "1990"}, "currency": {"S": "usd"}}


def test_load_is_one_query(customers: DynamoCustomerRepository, requests: list[str]) -> None:
    customers.save(customer_changes(None, full_customer()))
    requests.clear()
    assert customers.load(USER) is not None
    assert requests == ["Query"]


def test_unknown_customer_loads_as_none(customers: DynamoCustomerRepository) -> None:
    assert customers.load("nobody") is None


def test_save_with_a_stale_version_is_refused_and_writes_nothing(customers: DynamoCustomerRepository) -> None:
    # Given a stored customer, loaded twice
    customers.save(customer_changes(None, full_customer()))
    first, second = customers.load(USER), customers.load(USER)
    assert first is not None and second is not None
    # When both change it and the first saves
    customers.save(customer_changes(first, first.model_copy(update={"name": "First"})))
    # Then the second save is stale, and the first one's change stands
    with pytest.raises(StaleCustomerError):
        customers.save(customer_changes(second, second.model_copy(update={"phone": "+359"})))
    reloaded = customers.load(USER)
    assert reloaded is not None
    assert (reloaded.name, reloaded.phone, reloaded.version) == ("First", None, 2)


def test_creating_an_existing_customer_is_stale(customers: DynamoCustomerRepository) -> None:
    customers.save(customer_changes(None, full_customer()))
    with pytest.raises(StaleCustomerError):
        customers.save(customer_changes(None, customer_rules.new_customer(USER, NOW)))


def test_removed_children_are_deleted_and_changed_ones_rewritten(
    customers: DynamoCustomerRepository, table_items: Callable[[], list[dict[str, Any]]]
) -> None:
    # Given a stored customer
    customers.save(customer_changes(None, full_customer()))
    before = customers.load(USER)
    assert before is not None
    # When an address and the unsynced subscription are dropped and a payment method becomes the default
    kept = before.model_copy(
        update={
            "addresses": before.addresses[:1],
            "subscriptions": before.subscriptions[:1],
            "default_payment_method_id": before.payment_methods[1].payment_method_id,
        }
    )
    changes = customer_changes(before, kept)
    saved = customers.save(changes)
    # Then their items are gone, the rest is as saved, and the version moved once
    assert sorted(kind for kind, _ in changes.deletions) == [ChildKind.ADDRESS, ChildKind.SUBSCRIPTION]
    assert customers.load(USER) == saved
    assert saved.version == 2
    assert sum(item["sk"]["S"].startswith(("ADDRESS#", "SUB#")) for item in table_items()) == 2


def test_save_without_changes_writes_nothing(customers: DynamoCustomerRepository, requests: list[str]) -> None:
    customers.save(customer_changes(None, full_customer()))
    loaded = customers.load(USER)
    assert loaded is not None
    requests.clear()
    assert customers.save(customer_changes(loaded, loaded)) == loaded
    assert requests == []


def test_a_keyed_save_records_its_key_in_the_same_transaction_once(
    customers: DynamoCustomerRepository, requests: list[str]
) -> None:
    # Given a stored customer, and a change saved with a request's key
    customers.save(customer_changes(None, full_customer()))
    loaded = customers.load(USER)
    assert loaded is not None
    record = IdempotencyRecord.of("address", "k-1", {"name": "One"}, "addr-1")
    changed = loaded.model_copy(update={"name": "Keyed"})
    requests.clear()
    saved = customers.save(dataclasses.replace(customer_changes(loaded, changed), idempotency=record))
    # Then the change and the key went in one transaction, and the key reads back
    assert requests == ["TransactWriteItems"]
    replay = customers.recorded(USER, "address", "k-1")
    assert replay is not None and (replay.result_id, replay.fingerprint) == ("addr-1", record.fingerprint)
    assert customers.recorded(USER, "address", "k-2") is None
    assert customers.recorded(USER, "payment-method", "k-1") is None
    # And saving again with that key (a twin request) is a replay that writes nothing
    with pytest.raises(IdempotentReplayError) as raised:
        again = saved.model_copy(update={"name": "Twin"})
        customers.save(dataclasses.replace(customer_changes(saved, again), idempotency=record))
    assert raised.value.result_id == "addr-1"
    assert customers.load(USER) == saved
    # even when the twin also lost to another save (its version is stale): the key is what it learns
    with pytest.raises(IdempotentReplayError):
        customers.save(dataclasses.replace(customer_changes(loaded, changed), idempotency=record))


def test_a_keyed_request_that_changes_nothing_records_its_key_alone(
    customers: DynamoCustomerRepository, requests: list[str]
) -> None:
    customers.save(customer_changes(None, full_customer()))
    loaded = customers.load(USER)
    assert loaded is not None
    record = IdempotencyRecord.of("reload", "k-1", {}, loaded.customer_id)
    requests.clear()
    assert customers.save(dataclasses.replace(customer_changes(loaded, loaded), idempotency=record)) == loaded
    assert requests == ["PutItem"]
    assert customers.load(USER) == loaded
    with pytest.raises(IdempotentReplayError):
        customers.save(dataclasses.replace(customer_changes(loaded, loaded), idempotency=record))


def test_a_save_never_undoes_the_payment_lock(customers: DynamoCustomerRepository) -> None:
    # Given a customer loaded before another operation took the payment lock
    customers.save(customer_changes(None, full_customer()))
    loaded = customers.load(USER)
    assert loaded is not None
    assert customers.acquire_payment_lock(USER, now=NOW, until=NOW + timedelta(seconds=30))
    # When the stale-lock copy saves a profile change
    customers.save(customer_changes(loaded, loaded.model_copy(update={"name": "Renamed"})))
    # Then the lock is still held
    reloaded = customers.load(USER)
    assert reloaded is not None and reloaded.payment_lock_until == NOW + timedelta(seconds=30)


def test_payment_lock_has_one_holder_until_it_expires_or_is_released(customers: DynamoCustomerRepository) -> None:
    customers.save(customer_changes(None, full_customer()))
    until = NOW + timedelta(seconds=30)
    # Given a lock taken at NOW for 30 seconds
    assert customers.acquire_payment_lock(USER, now=NOW, until=until) is True
    # Then another operation 5 seconds later cannot take it (M10; docs/rules.md#payment-lock)
    assert customers.acquire_payment_lock(USER, now=NOW + timedelta(seconds=5), until=until) is False
    # and releasing someone else's lock (another `until`) does nothing
    customers.release_payment_lock(USER, until=NOW)
    assert customers.acquire_payment_lock(USER, now=NOW + timedelta(seconds=5), until=until) is False
    # but after its own release it can be taken again
    customers.release_payment_lock(USER, until=until)
    assert customers.acquire_payment_lock(USER, now=NOW + timedelta(seconds=5), until=until) is True
    # and a lock past its time can be taken over
    later = until + timedelta(seconds=1)
    assert customers.acquire_payment_lock(USER, now=later, until=later + timedelta(seconds=30)) is True


def test_payment_lock_of_a_customer_never_saved_is_not_found(customers: DynamoCustomerRepository) -> None:
    with pytest.raises(NotFoundError):
        customers.acquire_payment_lock("nobody", now=NOW, until=NOW + timedelta(seconds=30))


def test_save_of_more_than_100_transactions_splits_them_ahead(customers: DynamoCustomerRepository) -> None:
    # Given a stored customer that learns 250 transactions at once (a first load of a long history)
    customers.save(customer_changes(None, full_customer()))
    before = customers.load(USER)
    assert before is not None
    template = before.transactions[0]
    history = [
        template.model_copy(
            update={"transaction_id": f"txn-many-{i:03}", "created_at": at("2016-01-01") + timedelta(i)}
        )
        for i in range(250)
    ]
    after = before.model_copy(update={"name": "Long history", "transactions": [*before.transactions, *history]})
    # When it is saved
    saved = customers.save(customer_changes(before, after))
    # Then everything is stored, with one version step
    loaded = customers.load(USER)
    assert loaded is not None and len(loaded.transactions) == 252 and loaded.name == "Long history"
    assert saved.version == loaded.version == 2


def test_save_of_more_than_100_other_children_is_refused_without_writing(customers: DynamoCustomerRepository) -> None:
    before = customers.save(customer_changes(None, customer_rules.new_customer(USER, NOW)))
    after = before
    for index in range(100):
        after, _ = customer_rules.add_address(after, AddressFields(name=f"A{index}"), NOW)
    with pytest.raises(ConflictError, match="too many changes"):
        customers.save(customer_changes(before, after))
    assert customers.load(USER) == before


def test_stale_check_covers_the_writes_sent_ahead(customers: DynamoCustomerRepository) -> None:
    # Given a stale copy of a stored customer
    customers.save(customer_changes(None, full_customer()))
    stale = customers.load(USER)
    assert stale is not None
    current = customers.load(USER)
    assert current is not None
    customers.save(customer_changes(current, current.model_copy(update={"name": "Moved on"})))
    # When the stale copy tries to save 150 transactions
    template = stale.transactions[0]
    history = [template.model_copy(update={"transaction_id": f"txn-x-{i:03}"}) for i in range(150)]
    with pytest.raises(StaleCustomerError):
        customers.save(customer_changes(stale, stale.model_copy(update={"transactions": history})))
    # Then none of them was written
    loaded = customers.load(USER)
    assert loaded is not None and len(loaded.transactions) == 2


def test_empty_changes_object_is_accepted(customers: DynamoCustomerRepository) -> None:
    customer = customer_rules.new_customer(USER, NOW)
    assert customers.save(CustomerChanges(customer=customer, expected_version=3, profile_changed=False)) == customer


# --- plans ---------------------------------------------------------------------------------------------------------


def test_plans_round_trip_and_list_with_one_query(moto_tables: None, requests: list[str]) -> None:
    plans = DynamoPlanRepository()
    basic, pro = plan(level=1, price=999), plan(level=2, price=1999, months=6)
    plans.put(basic, NOW)
    plans.put(pro, NOW)
    plans.put(pro.model_copy(update={"name": "Pro 2"}), NOW)
    requests.clear()
    listed = plans.list_plans()
    assert requests == ["Query"]
    assert listed == [basic, pro.model_copy(update={"name": "Pro 2"})]
    assert plans.get("plan-l2") == listed[1]
    assert plans.get("nope") is None


# --- coupons -------------------------------------------------------------------------------------------------------


def percent_coupon(**changes: Any) -> Coupon:
    terms: dict[str, Any] = {
        "code": "TEN",
        "name": "Ten off",
        "kind": CouponKind.PERCENT,
        "percent": Decimal("10.5"),
        "number_of_billing_cycles": 2,
        "start_at": at("2017-01-01"),
        "expire_at": at("2018-01-01"),
        "max_uses": 2,
    }
    return Coupon(**{**terms, **changes})


def test_coupon_put_keeps_the_use_count_and_creation_date(moto_tables: None) -> None:
    coupons = DynamoCouponRepository()
    # Given a coupon used once
    created = coupons.put(percent_coupon(), NOW)
    assert coupons.redeem("TEN", "cust-1", "sub-1", 2) is RedemptionOutcome.REDEEMED
    # When an admin redefines it (as an amount coupon, a used count in the body is ignored)
    later = NOW + timedelta(days=1)
    redefined = coupons.put(
        percent_coupon(kind=CouponKind.AMOUNT, percent=None, amount=usd(500), used_count=7, max_uses=None), later
    )
    # Then the terms are replaced, the count and creation date kept
    assert created.used_count == 0 and created.created_at == NOW and created.percent == Decimal("10.5")
    assert redefined.used_count == 1 and redefined.created_at == NOW and redefined.updated_at == later
    assert redefined.amount == usd(500) and redefined.percent is None and redefined.max_uses is None
    assert coupons.get("TEN") == redefined
    assert coupons.get("NOPE") is None


def test_redeem_counts_once_per_customer_and_subscription(moto_tables: None) -> None:
    coupons = DynamoCouponRepository()
    coupons.put(percent_coupon(max_uses=None), NOW)
    assert coupons.redeem("TEN", "cust-1", "sub-1", None) is RedemptionOutcome.REDEEMED
    assert coupons.redeem("TEN", "cust-1", "sub-1", None) is RedemptionOutcome.ALREADY_REDEEMED
    assert coupons.redeem("TEN", "cust-1", "sub-2", None) is RedemptionOutcome.REDEEMED
    coupon = coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 2


def test_redeem_stops_at_max_uses(moto_tables: None) -> None:
    coupons = DynamoCouponRepository()
    coupons.put(percent_coupon(max_uses=2), NOW)
    outcomes = [coupons.redeem("TEN", f"cust-{i}", "sub", 2) for i in range(3)]
    assert outcomes == [RedemptionOutcome.REDEEMED, RedemptionOutcome.REDEEMED, RedemptionOutcome.LIMIT_REACHED]
    coupon = coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 2
    assert coupons.used_by_customer("TEN", "cust-1") and not coupons.used_by_customer("TEN", "cust-2")


def test_redeem_of_an_unknown_coupon_writes_nothing(
    moto_tables: None, table_items: Callable[[], list[dict[str, Any]]]
) -> None:
    assert DynamoCouponRepository().redeem("NOPE", "cust-1", "sub-1", 3) is RedemptionOutcome.UNKNOWN_COUPON
    assert table_items() == []


def test_used_by_customer_does_not_match_a_customer_id_prefix(moto_tables: None) -> None:
    coupons = DynamoCouponRepository()
    coupons.put(percent_coupon(max_uses=None), NOW)
    coupons.redeem("TEN", "cust-10", "sub-1", None)
    assert not coupons.used_by_customer("TEN", "cust-1")
    assert coupons.used_by_customer("TEN", "cust-10")


def test_a_restricted_coupon_is_redeemed_once_per_customer_whichever_subscription(moto_tables: None) -> None:
    # Given a restricted coupon, and another one that is not
    coupons = DynamoCouponRepository()
    coupons.put(percent_coupon(max_uses=None), NOW)
    coupons.put(percent_coupon(max_uses=None).model_copy(update={"code": "ONCE", "restricted": True}), NOW)
    # When one customer redeems each for two subscriptions (the second subscribed before the first was synced)
    once = [coupons.redeem("ONCE", "cust-1", sub, None, restricted=True) for sub in ("sub-1", "sub-2", "sub-1")]
    ten = [coupons.redeem("TEN", "cust-1", sub, None) for sub in ("sub-1", "sub-2")]
    # Then the restricted one counted once and refused the other subscription; a retry of the first is no recount
    assert once == [
        RedemptionOutcome.REDEEMED,
        RedemptionOutcome.USED_BY_CUSTOMER,
        RedemptionOutcome.ALREADY_REDEEMED,
    ]
    assert ten == [RedemptionOutcome.REDEEMED, RedemptionOutcome.REDEEMED]
    assert [present(coupons.get(code)).used_count for code in ("ONCE", "TEN")] == [1, 2]
    # and another customer may still use it
    assert coupons.redeem("ONCE", "cust-2", "sub-9", None, restricted=True) is RedemptionOutcome.REDEEMED


def test_plan_coupon_and_the_customers_use_are_read_in_one_request(moto_tables: None, requests: list[str]) -> None:
    DynamoPlanRepository().put(plan(level=2), NOW)
    coupons = DynamoCouponRepository()
    coupons.put(percent_coupon(), NOW)
    coupons.redeem("TEN", "cust-1", "sub-1", None)
    reader = DynamoSubscriptionTermsReader()
    requests.clear()
    terms = reader.read_terms("plan-l2", "TEN", customer_id="cust-1")
    assert requests == ["BatchGetItem"]
    assert terms.plan == plan(level=2) and terms.coupon is not None and terms.coupon.code == "TEN"
    assert terms.used_by_customer
    assert not reader.read_terms("plan-l2", "TEN", customer_id="cust-2").used_by_customer
    assert not reader.read_terms("plan-l2", "TEN", customer_id=None).used_by_customer
    requests.clear()
    assert reader.read_terms("plan-l2", None, customer_id="cust-1") == SubscribeTerms(plan(level=2))
    assert requests == ["GetItem"]
    assert reader.read_terms("nope", "NOPE", customer_id="cust-1") == SubscribeTerms(None)
