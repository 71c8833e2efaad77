"""What a sync sends and how results are recorded: M40-M42, the domain half of M43-M44, and the storage diff.

The processor calls themselves (Stripe through its SDK, errors, events) belong to the adapter layer's tests.
"""

from __future__ import annotations

import pytest

from tests.helpers.subscription_builders import (
    NOW,
    address,
    at,
    base_customer,
    card,
    discount,
    paypal,
    subscription,
    usd,
)
from usercredits.errors import ConflictError, InvalidRequestError, NotFoundError
from usercredits.kernel.models import Money
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.customers import NewPaymentMethod, add_address, new_customer, set_default_payment_method
from usercredits.subscriptions.instruments import CardDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    PaymentMethod,
    ProcessorItem,
    ProcessorState,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.ports import ChildKind, ProcessorPaymentMethod, ProcessorSubscription
from usercredits.subscriptions.results import record_payment_method_result, record_subscription_result
from usercredits.subscriptions.subscribing import cancel_subscription, set_subscription_payment_method
from usercredits.subscriptions.sync_rules import (
    SyncAction,
    idempotency_key,
    payment_method_needs_update,
    reset_processor,
    subscription_sync_action,
    subscription_terms,
)
from usercredits.subscriptions.tracking import track
from usercredits.subscriptions.transactions import (
    ensure_voidable,
    merge_transactions,
    record_refund,
    record_void,
    refund_amount,
)

SAVED, CHANGED, INITIAL, LOCAL = (
    ProcessorState.SAVED,
    ProcessorState.CHANGED,
    ProcessorState.INITIAL,
    ProcessorState.LOCAL,
)


def test_m41_initial_is_created_and_the_result_saves_it() -> None:
    customer = base_customer(subscriptions=[subscription("new", state=INITIAL)])
    assert subscription_sync_action(customer.subscriptions[0]) is SyncAction.CREATE

    result = ProcessorSubscription(
        id="sub_new",
        status=SubscriptionStatus.ACTIVE,
        price=usd(1000),
        price_id="price_l2",
        payment_method_id="id-pm-three",
        paid_through_date=at("2017-08-16"),
        next_billing_date=at("2017-08-16"),
    )
    recorded = record_subscription_result(customer, "new", result, NOW).subscriptions[0]

    assert (recorded.processor.id, recorded.processor.state) == ("sub_new", SAVED)
    assert (recorded.payment_method_id, recorded.paid_through_date) == ("three", at("2017-08-16"))
    # falsy values are written back (docs/rules.md#processor-sync)
    assert (recorded.is_trial, recorded.failure_count) == (False, 0)
    assert subscription_sync_action(recorded) is SyncAction.NONE


@pytest.mark.parametrize(
    ("state", "action"), [(SAVED, SyncAction.NONE), (LOCAL, SyncAction.NONE)], ids=["no-change", "local"]
)
def test_m41_unchanged_and_local_subscriptions_need_no_call(state: ProcessorState, action: SyncAction) -> None:
    assert subscription_sync_action(subscription("s", state=state)) is action


def test_m41_newly_canceled_is_a_cancel_other_changes_an_update() -> None:
    customer = base_customer(payment_methods=[paypal("three", "one"), paypal("other")])
    _, canceled = cancel_subscription(customer, "four", NOW)
    _, moved = set_subscription_payment_method(customer, "four", "other", NOW)
    _, at_end = cancel_subscription(customer, "four", NOW, at_period_end=True)

    assert subscription_sync_action(canceled) is SyncAction.CANCEL
    assert subscription_sync_action(moved) is SyncAction.UPDATE
    assert subscription_sync_action(at_end) is SyncAction.UPDATE
    withdrawn = subscription("w", state=INITIAL).model_copy(update={"deleted": True})
    assert subscription_sync_action(withdrawn) is SyncAction.NONE


def test_m41_update_takes_the_paid_through_date_from_the_result() -> None:
    customer, moved = set_subscription_payment_method(
        base_customer(payment_methods=[paypal("three", "one"), paypal("other")]), "four", "other", NOW
    )
    result = ProcessorSubscription(
        id="id-subscription",
        status=SubscriptionStatus.ACTIVE,
        price=usd(1320),
        price_id="price",
        payment_method_id="id-pm-other",
        paid_through_date=at("2017-08-03"),
    )
    recorded = record_subscription_result(customer, "four", result, NOW).subscriptions[0]
    assert (recorded.paid_through_date, recorded.payment_method_id, recorded.processor.state) == (
        at("2017-08-03"),
        "other",
        SAVED,
    )


def method(customer: Customer, payment_method_id: str = "three") -> PaymentMethod:
    return next(m for m in customer.payment_methods if m.payment_method_id == payment_method_id)


def test_m42_payment_method_update_rule() -> None:
    customer = base_customer(payment_methods=[paypal("three", "one"), paypal("five", "one")])
    three = method(customer)
    assert not payment_method_needs_update(customer, three)  # no change
    assert not payment_method_needs_update(customer, three.model_copy(update={"billing_address_id": "one"}))
    assert not payment_method_needs_update(customer, three.model_copy(update={"token": None}))  # same null
    assert payment_method_needs_update(customer, three.model_copy(update={"token": "pm_new"}))
    assert payment_method_needs_update(customer, three.model_copy(update={"billing_address_id": "two"}))
    became_default = track(customer.model_copy(update={"default_payment_method_id": "five"}))
    assert payment_method_needs_update(became_default, method(became_default, "five"))
    assert not payment_method_needs_update(customer, paypal("new", state=INITIAL))  # created, not updated


def test_payment_method_result_consumes_the_token_and_saves_it() -> None:
    customer, created = set_default_payment_method(
        base_customer(), NewPaymentMethod(token="pm_1", kind=PaymentMethodKind.CARD), NOW
    )
    details = CardDetails(brand="visa", last4="4242", masked_number="424242******4242")
    result = ProcessorPaymentMethod(id="pm_1", kind=PaymentMethodKind.CARD, details=details, customer_id="cus_1")

    saved = method(
        record_payment_method_result(customer, created.payment_method_id, result, NOW), created.payment_method_id
    )

    assert (saved.token, saved.details, saved.processor.id, saved.processor.state) == (None, details, "pm_1", SAVED)


def sale(
    processor_id: str, created: str, status: TransactionStatus = TransactionStatus.SETTLED, **fields: object
) -> Transaction:
    values: dict[str, object] = {
        "transaction_id": f"t-{processor_id}",
        "processor": ProcessorItem(id=processor_id, state=SAVED),
        "amount": usd(1341),
        "status": status,
        "created_at": at(created),
    }
    return Transaction.model_validate(values | fields)


def test_m43_loading_transactions_twice_is_idempotent_and_newest_first() -> None:
    stored = sale("ch_1", "2017-07-01", transaction_id="local-1")
    customer = base_customer(transactions=[stored])
    loaded = [
        sale("ch_1", "2017-07-01", transaction_id="from-processor", instrument=PayPalDetails(payer_id="PAYER")),
        sale("ch_2", "2017-08-01", instrument=CardDetails(masked_number="411111******1111")),
        sale("re_1", "2017-07-05", kind=TransactionKind.REFUND, amount=usd(500), refunded_transaction_id="ch_1"),
    ]

    once = merge_transactions(customer, loaded, NOW)
    twice = merge_transactions(once, loaded, NOW)

    assert once == twice
    assert [txn.processor.id for txn in once.transactions] == ["ch_2", "re_1", "ch_1"]
    assert once.transactions[2].transaction_id == "local-1"  # matched by processor id, local id kept
    assert once.transactions[1].refunded_transaction_id == "local-1"  # processor id turned into the local id
    assert once.transactions[2].instrument == PayPalDetails(payer_id="PAYER")


def test_m44_refund_goes_first_and_void_replaces_in_place() -> None:
    customer = base_customer(transactions=[sale("ch_2", "2017-08-01"), sale("ch_1", "2017-07-01")])
    refund = sale("re_1", "2017-08-02", kind=TransactionKind.REFUND, amount=usd(1000), refunded_transaction_id="t-ch_1")

    refunded = record_refund(customer, refund, NOW)
    assert [txn.processor.id for txn in refunded.transactions] == ["re_1", "ch_2", "ch_1"]
    assert record_refund(refunded, refund, NOW).transactions == refunded.transactions  # a retry adds nothing

    voided = record_void(
        refunded, refunded.transactions[1].model_copy(update={"status": TransactionStatus.VOIDED}), NOW
    )
    assert [(txn.processor.id, txn.status) for txn in voided.transactions] == [
        ("re_1", TransactionStatus.SETTLED),
        ("ch_2", TransactionStatus.VOIDED),
        ("ch_1", TransactionStatus.SETTLED),
    ]


def test_m44_refund_amounts_are_checked_before_calling_the_processor() -> None:
    customer = base_customer(transactions=[sale("ch_1", "2017-07-01")])
    assert refund_amount(customer, "t-ch_1") == usd(1341)  # full
    assert refund_amount(customer, "t-ch_1", usd(1000)) == usd(1000)  # partial
    with pytest.raises(InvalidRequestError):
        refund_amount(customer, "t-ch_1", usd(0))
    with pytest.raises(InvalidRequestError):
        refund_amount(customer, "t-ch_1", usd(1342))  # above the charge
    with pytest.raises(InvalidRequestError):
        refund_amount(customer, "t-ch_1", Money(amount=100, currency="eur"))
    with pytest.raises(NotFoundError):
        refund_amount(customer, "someone-elses")

    partly = record_refund(
        customer,
        sale("re_1", "2017-07-02", kind=TransactionKind.REFUND, amount=usd(1000), refunded_transaction_id="t-ch_1"),
        NOW,
    )
    assert refund_amount(partly, "t-ch_1") == usd(341)
    fully = record_refund(
        partly,
        sale("re_2", "2017-07-03", kind=TransactionKind.REFUND, amount=usd(341), refunded_transaction_id="t-ch_1"),
        NOW,
    )
    with pytest.raises(ConflictError):
        refund_amount(fully, "t-ch_1")


def test_m44_only_unsettled_sales_can_be_voided() -> None:
    customer = base_customer(
        transactions=[
            sale("ch_1", "2017-07-01"),
            sale("ch_2", "2017-07-02", TransactionStatus.SUBMITTED_FOR_SETTLEMENT),
        ]
    )
    assert ensure_voidable(customer, "t-ch_2").processor.id == "ch_2"
    with pytest.raises(ConflictError):
        ensure_voidable(customer, "t-ch_1")
    with pytest.raises(ConflictError):
        refund_amount(customer, "t-ch_2")  # not captured yet: void it instead


def test_subscription_terms_need_the_customer_plan_price_and_payment_method_at_the_processor() -> None:
    customer = base_customer(
        subscriptions=[
            subscription("s", state=INITIAL, discounts=[discount(300), discount(200, current=1, discount_id="spent")])
        ]
    )
    terms = subscription_terms(customer, customer.subscriptions[0])
    assert (terms.customer_processor_id, terms.price_id, terms.payment_method_processor_id) == (
        "id-customer",
        "price_l2",
        "id-pm-three",
    )
    assert [d.amount.amount for d in terms.discounts] == [300]  # a spent discount is not sent

    with pytest.raises(ConflictError, match="Customer not saved"):
        subscription_terms(customer.model_copy(update={"processor": ProcessorItem()}), customer.subscriptions[0])
    unpriced = customer.subscriptions[0].model_copy(
        update={"plan": customer.subscriptions[0].plan.model_copy(update={"processor_plan_id": None})}
    )
    with pytest.raises(ConflictError, match="no processor price"):
        subscription_terms(customer, unpriced)
    unsynced_method = base_customer(payment_methods=[card("three", state=INITIAL)])
    with pytest.raises(ConflictError, match="Payment method not saved"):
        subscription_terms(unsynced_method, customer.subscriptions[0])


def test_idempotency_keys_are_stable_for_creates_and_follow_the_content_of_updates() -> None:
    assert idempotency_key("create-subscription", "01ABC") == "create-subscription:01ABC"
    first = idempotency_key("update-subscription", "01ABC", {"status": "canceled"})
    assert first == idempotency_key("update-subscription", "01ABC", {"status": "canceled"})
    assert first != idempotency_key("update-subscription", "01ABC", {"status": "active"})
    assert len(first) <= 255


def test_customer_changes_write_only_what_moved() -> None:
    fresh = new_customer("alice", NOW, email="alice@example.com")
    created = customer_changes(None, fresh)
    assert (created.expected_version, created.profile_changed, created.upserts) == (None, True, ())

    loaded = base_customer(version=3)
    assert customer_changes(loaded, loaded).is_empty

    with_address, added = add_address(loaded, AddressFields(name="New"), NOW)
    changes = customer_changes(loaded, with_address)
    assert (changes.expected_version, changes.upserts, changes.deletions) == (3, (added,), ())

    dropped = customer_changes(with_address, reset_processor(with_address))
    assert dropped.deletions == ((ChildKind.ADDRESS, added.address_id),)


def test_reset_processor_keeps_transactions_and_addresses_in_step() -> None:
    customer = base_customer(
        addresses=[address("one"), address("draft", state=INITIAL)], transactions=[sale("ch_1", "2017-07-01")]
    )
    reset = reset_processor(customer)
    assert [a.address_id for a in reset.addresses] == ["one"]
    assert reset.transactions == customer.transactions
