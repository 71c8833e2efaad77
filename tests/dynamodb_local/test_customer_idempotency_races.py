"""Racing copies of one keyed customers request on the real engine: the key recorded in the save's transaction makes
one result, which every copy that does not lose to the payment lock answers (one refund at Stripe, one address)."""

from __future__ import annotations

import uuid

import pytest

from tests.helpers.races import race
from tests.helpers.subscription_sync import a_customer, open_sync_world, usd
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.dynamodb.plans import DynamoPlanRepository, DynamoSubscriptionTermsReader
from usercredits.adapters.local_payment_methods import LocalPaymentMethodLookup
from usercredits.kernel.clock import SystemClock
from usercredits.subscriptions import service
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.errors import PaymentInProgressError
from usercredits.subscriptions.models import AddressFields, Customer, Transaction, TransactionKind
from usercredits.subscriptions.money_back import refund_transaction
from usercredits.subscriptions.ports import CustomerPorts, SyncPorts
from usercredits.subscriptions.saving import save_processor

pytestmark = pytest.mark.dynamodb_local
COPIES = 8


def stored(user_id: str) -> Customer:
    customer = DynamoCustomerRepository().load(user_id)
    assert customer is not None
    return customer


def test_racing_copies_of_a_keyed_refund_refund_once(dynamodb_local: str) -> None:
    with open_sync_world() as world:
        # Given a synced customer (stored in DynamoDB) whose first invoice Stripe charged
        user_id = f"refund-race-{uuid.uuid4().hex[:8]}"
        customer = a_customer(world).model_copy(update={"user_id": user_id})
        customers = DynamoCustomerRepository()
        customers.save(customer_changes(None, customer))
        ports = SyncPorts(customers, world.coupons, world.ports.processor, SystemClock())
        sale_id = save_processor(user_id, ports).transactions[0].transaction_id

        # When copies of one keyed partial refund race (a client retrying while its first attempt still runs)
        outcomes = race(COPIES, lambda _: refund_transaction(user_id, sale_id, usd(500), ports, "refund-1"))

        # Then each copy answers the one refund or is told another payment operation is in progress (409)
        answers = [outcome for outcome in outcomes if isinstance(outcome, Transaction)]
        assert answers, outcomes
        assert all(isinstance(o, Transaction | PaymentInProgressError) for o in outcomes), outcomes
        assert {answer.transaction_id for answer in answers} == {answers[0].transaction_id}
        # and Stripe refunded once, recorded once
        assert len(world.fake.charge_refunds) == 1
        refunds = [t for t in stored(user_id).transactions if t.kind is TransactionKind.REFUND]
        assert [t.transaction_id for t in refunds] == [answers[0].transaction_id]
        # And a retry after the race answers that refund too
        assert refund_transaction(user_id, sale_id, usd(500), ports, "refund-1") == answers[0]
        assert len(world.fake.charge_refunds) == 1


def test_racing_copies_of_a_keyed_address_add_it_once(dynamodb_local: str) -> None:
    # Given a customer, and copies of one keyed "add an address" racing (no lock: the record's condition decides)
    user_id = f"address-race-{uuid.uuid4().hex[:8]}"
    ports = CustomerPorts(
        customers=DynamoCustomerRepository(),
        plans=DynamoPlanRepository(),
        coupons=DynamoCouponRepository(),
        terms=DynamoSubscriptionTermsReader(),
        payment_methods=LocalPaymentMethodLookup(),
        clock=SystemClock(),
    )
    service.get_customer(user_id, ports=ports)
    fields = AddressFields(name="Pesho Peshev", country="BG", postal_code="1000")
    outcomes = race(COPIES, lambda _: service.add_address(user_id, fields, ports=ports, request_key="address-1"))
    # Then all of them answer the same address, and the customer has one (or a copy gave up after its save attempts,
    # writing nothing)
    addresses = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert addresses and {a.address_id for a in addresses} == {addresses[0].address_id}, outcomes
    assert [a.address_id for a in stored(user_id).addresses] == [addresses[0].address_id]
