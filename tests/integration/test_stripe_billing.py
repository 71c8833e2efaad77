"""The Stripe billing adapter through the real ``stripe`` SDK against the fake Billing API (devtools/stripe_sim)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import stripe
from devtools.stripe_sim.billing import FakeStripeBilling

from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.adapters.stripe.subscription_mapping import processor_subscription
from usercredits.errors import ConflictError, InvalidRequestError, PaymentGatewayError, UnavailableError
from usercredits.kernel.models import Money
from usercredits.subscriptions.customers import new_customer
from usercredits.subscriptions.instruments import ApplePayDetails, CardDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.models import AddressFields, Customer, SubscriptionStatus, TransactionKind
from usercredits.subscriptions.models import TransactionStatus as TS
from usercredits.subscriptions.ports import DiscountTerms, SubscriptionTerms

SECRET_KEY = "sk_test_51FakeBillingKey0123456789"


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="usd")


@pytest.fixture
def fake() -> Iterator[FakeStripeBilling]:
    with FakeStripeBilling(api_key=SECRET_KEY) as server:
        server.add_price("price_pro", 1490, months=1)
        server.add_price("price_basic", 990, months=3)
        yield server


@pytest.fixture
def processor(fake: FakeStripeBilling) -> StripeSubscriptionProcessor:
    return StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0)


def a_customer() -> Customer:
    customer = new_customer("alice", datetime.now(UTC), email="alice@example.com", name="Alice Smith")
    return customer.model_copy(update={"phone": "+359888", "ip_address": "10.0.0.2", "metadata": {"plan": "gold"}})


def terms(customer_id: str, **overrides: object) -> SubscriptionTerms:
    values: dict[str, object] = {
        "subscription_id": "sub-local-1",
        "customer_processor_id": customer_id,
        "price_id": "price_pro",
        "payment_method_processor_id": "pm_card_visa",
        "first_billing_date": None,
        "discounts": (),
        "descriptor": None,
        "cancel_at_period_end": False,
        "user_id": "alice",
    }
    values |= overrides
    return SubscriptionTerms(**values)  # type: ignore[arg-type]


def with_card(fake: FakeStripeBilling, processor: StripeSubscriptionProcessor) -> str:
    customer = processor.create_customer(a_customer(), idempotency_key="create-customer:c1")
    processor.attach_payment_method(
        customer.id, "pm_card_visa", billing=None, make_default=True, idempotency_key="attach:pm1"
    )
    return customer.id


# ---- customers -------------------------------------------------------------------------------------------------------


def test_create_customer_sends_profile_metadata_and_idempotency_key(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer = a_customer()

    created = processor.create_customer(customer, idempotency_key="create-customer:c1")

    [request] = fake.posts("/v1/customers")
    assert request.idempotency_key == "create-customer:c1"
    assert request.form == {
        "name": "Alice Smith",
        "email": "alice@example.com",
        "phone": "+359888",
        "metadata": {"plan": "gold", "userId": "alice", "customerId": customer.customer_id, "ipAddress": "10.0.0.2"},
    }
    assert created.id.startswith("cus_")
    assert created.metadata["userId"] == "alice"


def test_create_customer_twice_with_one_key_makes_one_customer(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer = a_customer()
    first = processor.create_customer(customer, idempotency_key="create-customer:c1")
    again = processor.create_customer(customer, idempotency_key="create-customer:c1")

    assert again.id == first.id
    assert len(fake.customers) == 1


def test_update_customer_unsets_removed_metadata_and_sets_default(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    from usercredits.subscriptions.tracking import mark_saved

    customer = a_customer()
    created = processor.create_customer(customer, idempotency_key="k")
    synced = mark_saved(customer, created.id).model_copy(update={"metadata": {}, "name": "Alice Jones"})

    updated = processor.update_customer(created.id, synced, idempotency_key="update-customer:c1:abc")

    request = fake.posts(f"/v1/customers/{created.id}")[-1]
    assert request.idempotency_key == "update-customer:c1:abc"
    assert request.form["metadata"]["plan"] == ""
    assert updated.name == "Alice Jones"
    assert "plan" not in updated.metadata


def test_retrieve_customer_unknown_or_deleted_is_none(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    created = processor.create_customer(a_customer(), idempotency_key="k")
    assert processor.retrieve_customer(created.id) is not None

    fake.delete_customer(created.id)

    assert processor.retrieve_customer(created.id) is None
    assert processor.retrieve_customer("cus_unknown") is None


# ---- payment methods -------------------------------------------------------------------------------------------------


def test_retrieve_payment_method_maps_kinds_and_owner(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    fake.add_payment_method("pm_foreign", customer="cus_someone_else")
    fake.add_payment_method("pm_apple", wallet="apple_pay", last4="1111")
    fake.add_payment_method("pm_paypal", kind="paypal", email="payer@example.com")

    foreign = processor.retrieve_payment_method("pm_foreign")
    apple = processor.retrieve_payment_method("pm_apple")
    paypal = processor.retrieve_payment_method("pm_paypal")

    assert foreign is not None and foreign.customer_id == "cus_someone_else"
    assert isinstance(foreign.details, CardDetails) and foreign.details.last4 == "4242"
    assert apple is not None and apple.kind is PaymentMethodKind.APPLE_PAY
    assert isinstance(apple.details, ApplePayDetails) and apple.details.last4 == "1111"
    assert paypal is not None and isinstance(paypal.details, PayPalDetails)
    assert paypal.details.email == "payer@example.com"
    assert processor.retrieve_payment_method("pm_unknown") is None


def test_attach_sets_billing_details_and_default(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer = processor.create_customer(a_customer(), idempotency_key="k")
    billing = AddressFields(name="Alice Smith", country="BG", postal_code="1000", street_address="1 Vitosha")

    method = processor.attach_payment_method(
        customer.id, "pm_card_visa", billing=billing, make_default=True, idempotency_key="attach:pm1"
    )

    assert method.customer_id == customer.id
    assert method.billing == billing
    assert fake.customers[customer.id]["invoice_settings"]["default_payment_method"] == "pm_card_visa"
    keys = [r.idempotency_key or "" for r in fake.requests if r.method == "POST"]
    assert keys[1] == "attach:pm1:attach"
    assert keys[2].startswith("attach:pm1:billing:")
    assert keys[3].startswith("attach:pm1:default:")


def test_attach_a_payment_method_of_another_customer_is_refused(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer = processor.create_customer(a_customer(), idempotency_key="k")
    fake.add_payment_method("pm_foreign", customer="cus_someone_else")

    with pytest.raises(PaymentGatewayError) as caught:
        processor.attach_payment_method(
            customer.id, "pm_foreign", billing=None, make_default=False, idempotency_key="a"
        )

    assert isinstance(caught.value.__cause__, stripe.InvalidRequestError)


def test_update_detach_and_list_payment_methods(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    processor.attach_payment_method(
        customer_id, "pm_card_amex", billing=None, make_default=False, idempotency_key="attach:pm2"
    )

    updated = processor.update_payment_method(
        "pm_card_amex", billing=AddressFields(name="A S", country="FR"), make_default=True, idempotency_key="u1"
    )
    processor.detach_payment_method("pm_card_visa", idempotency_key="detach:pm1")

    assert updated.billing == AddressFields(name="A S", country="FR")
    assert fake.customers[customer_id]["invoice_settings"]["default_payment_method"] == "pm_card_amex"
    assert [m.id for m in processor.list_payment_methods(customer_id)] == ["pm_card_amex"]
    assert fake.posts("/v1/payment_methods/pm_card_visa/detach")[0].idempotency_key == "detach:pm1"


# ---- subscriptions ---------------------------------------------------------------------------------------------------


def test_create_subscription_with_a_discount_makes_a_coupon_and_bills(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    discount = DiscountTerms("d1", usd(149), number_of_billing_cycles=2, never_expires=False, name="Ten percent")

    result = processor.create_subscription(
        terms(customer_id, discounts=(discount,), billing_frequency_months=1), idempotency_key="create-subscription:s1"
    )

    [coupon] = fake.coupons.values()
    assert (coupon["amount_off"], coupon["currency"], coupon["duration"], coupon["duration_in_months"]) == (
        149,
        "usd",
        "repeating",
        2,
    )
    assert coupon["metadata"]["discountId"] == "d1"
    [request] = fake.posts("/v1/subscriptions")
    assert request.idempotency_key == "create-subscription:s1"
    assert request.form["items"] == [{"price": "price_pro"}]
    assert request.form["discounts"] == [{"coupon": coupon["id"]}]
    assert request.form["metadata"] == {"subscriptionId": "sub-local-1", "userId": "alice"}
    assert result.status is SubscriptionStatus.ACTIVE
    assert result.subscription_id == "sub-local-1"
    assert result.price == usd(1490)
    assert result.paid_through_date is not None
    [remote_discount] = result.discounts
    assert (remote_discount.discount_id, remote_discount.amount, remote_discount.current_billing_cycle) == (
        "d1",
        usd(149),
        1,
    )
    [charge] = fake.charges.values()
    assert charge["amount"] == 1341


def test_never_expiring_discount_is_a_forever_coupon_over_the_plan_months(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    forever = DiscountTerms("d1", usd(100), 1, never_expires=True, name="Forever")
    cycles = DiscountTerms("d2", usd(200), 2, never_expires=False, name="Two cycles")

    processor.create_subscription(
        terms(customer_id, price_id="price_basic", discounts=(forever, cycles), billing_frequency_months=3),
        idempotency_key="k",
    )

    by_discount = {c["metadata"]["discountId"]: c for c in fake.coupons.values()}
    assert by_discount["d1"]["duration"] == "forever"
    assert by_discount["d2"]["duration_in_months"] == 6


def test_queued_start_is_a_trial_end_and_maps_to_pending(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=20)

    result = processor.create_subscription(terms(customer_id, first_billing_date=start), idempotency_key="k")

    [request] = fake.posts("/v1/subscriptions")
    assert request.form["trial_end"] == str(int(start.timestamp()))
    assert (result.status, result.is_trial, result.paid_through_date) == (SubscriptionStatus.PENDING, False, None)
    assert result.first_billing_date == start
    assert fake.charges == {}


def test_trialing_from_stripe_is_active_with_is_trial() -> None:
    payload = {
        "id": "sub_1",
        "status": "trialing",
        "metadata": {},
        "trial_end": 1_900_000_000,
        "start_date": 1_800_000_000,
        "items": {"data": [{"price": {"id": "price_pro", "unit_amount": 1490, "currency": "usd"}}]},
    }

    mapped = processor_subscription(payload)

    assert (mapped.status, mapped.is_trial) == (SubscriptionStatus.ACTIVE, True)


@pytest.mark.parametrize(
    ("stripe_status", "local"),
    [
        ("active", SubscriptionStatus.ACTIVE),
        ("past_due", SubscriptionStatus.PAST_DUE),
        ("unpaid", SubscriptionStatus.PAST_DUE),
        ("paused", SubscriptionStatus.PAST_DUE),
        ("canceled", SubscriptionStatus.CANCELED),
        ("incomplete", SubscriptionStatus.PENDING),
        ("incomplete_expired", SubscriptionStatus.EXPIRED),
    ],
)
def test_subscription_statuses_map_as_seeds_spec_5_13(stripe_status: str, local: SubscriptionStatus) -> None:
    payload = {"id": "sub_1", "status": stripe_status, "items": {"data": [{"price": {"id": "p", "unit_amount": 1}}]}}
    assert processor_subscription(payload).status is local


def test_update_keeps_matching_discounts_and_replaces_changed_ones(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    kept = DiscountTerms("d1", usd(100), 3, False, "Kept")
    dropped = DiscountTerms("d2", usd(50), 1, False, "Dropped")
    created = processor.create_subscription(terms(customer_id, discounts=(kept, dropped)), idempotency_key="k")
    kept_id = next(d.processor_id for d in created.discounts if d.discount_id == "d1")
    added = DiscountTerms("d3", usd(200), 1, False, "Added")

    updated = processor.update_subscription(
        created.id, terms(customer_id, discounts=(kept, added), cancel_at_period_end=True), idempotency_key="upd:1"
    )

    request = fake.posts(f"/v1/subscriptions/{created.id}")[-1]
    assert request.idempotency_key == "upd:1"
    assert request.form["discounts"][0] == {"discount": kept_id}
    assert "coupon" in request.form["discounts"][1]
    assert {d.discount_id for d in updated.discounts} == {"d1", "d3"}
    assert updated.cancel_at_period_end is True


def test_update_to_another_price_changes_the_item(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    created = processor.create_subscription(terms(customer_id), idempotency_key="k")

    updated = processor.update_subscription(created.id, terms(customer_id, price_id="price_basic"), idempotency_key="u")

    assert (updated.price_id, updated.price) == ("price_basic", usd(990))


def test_cancel_now_is_a_delete_and_a_second_one_reads_it_back(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    created = processor.create_subscription(terms(customer_id), idempotency_key="k")

    canceled = processor.cancel_subscription(created.id, at_period_end=False, idempotency_key="cancel:s1")
    # Stripe does not replay a DELETE by its key: the second one is refused (404) and the adapter reads it back
    again = processor.cancel_subscription(created.id, at_period_end=False, idempotency_key="cancel:s1")

    [request, retry] = fake.calls("DELETE", f"/v1/subscriptions/{created.id}")
    assert request.idempotency_key == retry.idempotency_key == "cancel:s1"
    assert canceled.status is again.status is SubscriptionStatus.CANCELED
    assert canceled.status_history[0].status is SubscriptionStatus.CANCELED


def test_cancel_at_period_end_keeps_it_active(fake: FakeStripeBilling, processor: StripeSubscriptionProcessor) -> None:
    customer_id = with_card(fake, processor)
    created = processor.create_subscription(terms(customer_id), idempotency_key="k")

    result = processor.cancel_subscription(created.id, at_period_end=True, idempotency_key="cancel:s1:end")

    assert (result.status, result.cancel_at_period_end) == (SubscriptionStatus.ACTIVE, True)
    assert fake.calls("DELETE", "/v1/subscriptions/.*") == []


def test_list_subscriptions_includes_canceled_ones(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    first = processor.create_subscription(terms(customer_id), idempotency_key="k1")
    processor.create_subscription(terms(customer_id, subscription_id="sub-local-2"), idempotency_key="k2")
    processor.cancel_subscription(first.id, at_period_end=False, idempotency_key="c1")

    listed = processor.list_subscriptions(customer_id)

    assert sorted(s.subscription_id or "" for s in listed) == ["sub-local-1", "sub-local-2"]
    assert {s.status for s in listed} == {SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED}


# ---- transactions ----------------------------------------------------------------------------------------------------


def test_list_transactions_maps_invoice_charges_one_off_charges_and_refunds(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    processor.create_subscription(
        terms(customer_id, discounts=(DiscountTerms("d1", usd(149), 2, False, "Coupon"),)), idempotency_key="k"
    )
    one_off = fake.add_charge(customer_id, 500, created=1)
    processor.refund(one_off, usd(200), idempotency_key="refund:1")

    listed = processor.list_transactions(customer_id)

    sale = next(t for t in listed if t.subscription_id == "sub-local-1")
    assert (sale.amount, sale.status, sale.plan_processor_id) == (usd(1341), TS.SETTLED, "price_pro")
    assert [(d.amount, d.name) for d in sale.discounts] == [(usd(149), "Coupon")]
    assert sale.customer is not None and sale.customer.email == "alice@example.com"
    refund = next(t for t in listed if t.kind is TransactionKind.REFUND)
    assert (refund.amount, refund.refunded_transaction_id) == (usd(200), one_off)
    assert {t.processor.id for t in listed} >= {one_off, sale.processor.id}


def test_refund_full_and_partial(fake: FakeStripeBilling, processor: StripeSubscriptionProcessor) -> None:
    customer_id = with_card(fake, processor)
    charge = fake.add_charge(customer_id, 1000)

    partial = processor.refund(charge, usd(300), idempotency_key="refund:a")
    rest = processor.refund(charge, None, idempotency_key="refund:b")

    assert (partial.kind, partial.amount, partial.refunded_transaction_id) == (TransactionKind.REFUND, usd(300), charge)
    assert rest.amount == usd(700)
    assert [r.form for r in fake.posts("/v1/refunds")] == [
        {"charge": charge, "amount": "300", "metadata": {"refundKey": "refund:a"}},
        {"charge": charge, "metadata": {"refundKey": "refund:b"}},
    ]
    assert [r.idempotency_key for r in fake.posts("/v1/refunds")] == ["refund:a", "refund:b"]


def test_refund_above_what_is_left_is_an_invalid_request(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    # The caller asked too much (a 4xx), not a gateway failure (502): refunds may be made at Stripe meanwhile.
    charge = fake.add_charge(with_card(fake, processor), 1000)

    with pytest.raises(InvalidRequestError, match="amount_too_large"):
        processor.refund(charge, usd(1001), idempotency_key="r")


def test_refund_of_a_fully_refunded_charge_is_a_conflict(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    charge = fake.add_charge(with_card(fake, processor), 1000)
    processor.refund(charge, None, idempotency_key="r1")

    with pytest.raises(ConflictError, match="charge_already_refunded"):
        processor.refund(charge, usd(1), idempotency_key="r2")


def test_cancel_of_a_subscription_that_is_not_canceled_keeps_the_gateway_error(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    with pytest.raises(PaymentGatewayError, match="resource_missing"):
        processor.cancel_subscription("sub_nope", at_period_end=False, idempotency_key="c")


# ---- idempotency keys reused with other parameters (a retry after a lost answer and a local edit) -------------------


def lost_create(fake: FakeStripeBilling, processor: StripeSubscriptionProcessor, customer: Customer) -> None:
    """Stripe makes the customer but the answer is lost (the key is now taken with these parameters)."""
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0, timeout_seconds=0.3)
    fake.fail_next(method="POST", path="^/v1/customers$", hang=0.8)
    with pytest.raises(UnavailableError):
        slow.create_customer(customer, idempotency_key="create-customer:c1")


@pytest.mark.parametrize("search_lag", [0.0, 120.0])
def test_create_customer_retry_with_another_email_adopts_the_first_customer(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor, search_lag: float
) -> None:
    # Found by search, or (search not caught up yet) among the customers made in the last hour
    fake.search_lag = search_lag
    customer = a_customer()
    lost_create(fake, processor, customer)
    edited = customer.model_copy(update={"email": "alice@new.example.com", "name": "Alice Renamed"})

    retried = processor.create_customer(edited, idempotency_key="create-customer:c1")

    [(stripe_id, stripe_customer)] = fake.customers.items()
    assert retried.id == stripe_id
    assert (stripe_customer["email"], stripe_customer["name"]) == ("alice@new.example.com", "Alice Renamed")


def test_create_customer_retry_when_the_first_call_made_nothing_creates_one(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer = a_customer()
    fake.fail_next(400, method="POST", path="^/v1/customers$", code="email_invalid")
    with pytest.raises(PaymentGatewayError):
        processor.create_customer(customer, idempotency_key="create-customer:c1")
    fake.remember_answer("create-customer:c1", "/v1/customers", {"email": "bad"}, 400, {"error": {}})  # as Stripe keeps

    created = processor.create_customer(customer, idempotency_key="create-customer:c1")

    assert list(fake.customers) == [created.id]
    assert fake.posts("/v1/customers")[-1].idempotency_key != "create-customer:c1"


def test_create_subscription_retry_with_other_terms_adopts_and_updates_the_first_one(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0, timeout_seconds=0.3)
    fake.fail_next(method="POST", path="^/v1/subscriptions$", hang=0.8)
    with pytest.raises(UnavailableError):
        slow.create_subscription(terms(customer_id), idempotency_key="create-subscription:s1")
    discount = DiscountTerms("d1", usd(149), 2, False, "Coupon")

    result = processor.create_subscription(
        terms(customer_id, discounts=(discount,)), idempotency_key="create-subscription:s1"
    )

    [(stripe_id, stripe_sub)] = fake.subscriptions.items()
    assert result.id == stripe_id
    assert [d.discount_id for d in result.discounts] == ["d1"]
    assert len(stripe_sub["discounts"]) == 1
    assert len(fake.charges) == 1


def test_create_subscription_retry_when_the_first_call_made_nothing_creates_one(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    with pytest.raises(PaymentGatewayError):
        processor.create_subscription(
            terms(customer_id, price_id="price_nope"), idempotency_key="create-subscription:s1"
        )

    result = processor.create_subscription(terms(customer_id), idempotency_key="create-subscription:s1")

    assert list(fake.subscriptions) == [result.id]


# ---- discounts: cycles ---------------------------------------------------------------------------------------------


def test_update_keeps_the_stripe_discount_while_its_cycles_run(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    first = DiscountTerms("d1", usd(149), 2, False, "Coupon", total_billing_cycles=2)
    created = processor.create_subscription(terms(customer_id, discounts=(first,)), idempotency_key="k")
    one_left = DiscountTerms("d1", usd(149), 1, False, "Coupon", total_billing_cycles=2)

    updated = processor.update_subscription(
        created.id, terms(customer_id, discounts=(one_left,), cancel_at_period_end=True), idempotency_key="u"
    )

    assert [d.processor_id for d in updated.discounts] == [d.processor_id for d in created.discounts]
    assert [(d.number_of_billing_cycles, d.current_billing_cycle) for d in updated.discounts] == [(2, 1)]
    assert len(fake.coupons) == 1


def test_without_the_total_a_coupon_made_for_the_discount_is_kept(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    created = processor.create_subscription(
        terms(customer_id, discounts=(DiscountTerms("d1", usd(149), 2, False, "Coupon"),)), idempotency_key="k"
    )

    updated = processor.update_subscription(
        created.id,
        terms(customer_id, discounts=(DiscountTerms("d1", usd(149), 1, False, "Coupon"),)),
        idempotency_key="u",
    )

    assert [d.processor_id for d in updated.discounts] == [d.processor_id for d in created.discounts]


def test_a_discount_applied_anew_gets_a_coupon_for_the_cycles_left(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    created = processor.create_subscription(terms(customer_id), idempotency_key="k")
    for item in fake.subscriptions[created.id]["items"]["data"]:  # billed five days ago
        item["current_period_start"] -= 5 * 86400
    two_of_three_left = DiscountTerms("d1", usd(100), 2, False, "Loyalty", total_billing_cycles=3)

    updated = processor.update_subscription(
        created.id, terms(customer_id, discounts=(two_of_three_left,)), idempotency_key="u"
    )

    [coupon] = fake.coupons.values()
    assert (coupon["duration_in_months"], coupon["metadata"]["cycles"], coupon["metadata"]["cyclesUsed"]) == (
        2,
        "3",
        "1",
    )
    # Added after this period's invoice: not billed yet, so two of its three cycles are still to come
    assert [(d.number_of_billing_cycles, d.current_billing_cycle) for d in updated.discounts] == [(3, 1)]


def test_void_an_uncaptured_charge_cancels_its_intent(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    charge = fake.add_charge(customer_id, 1000, captured=False)
    assert processor.list_transactions(customer_id)[0].status is TS.AUTHORIZED

    voided = processor.void(charge, idempotency_key="void:t1")

    intent = fake.charges[charge]["payment_intent"]
    assert fake.intents[intent]["status"] == "canceled"
    assert fake.posts(f"/v1/payment_intents/{intent}/cancel")[0].idempotency_key == "void:t1:cancel"
    assert voided.status is TS.VOIDED
    assert processor.list_transactions(customer_id)[0].status is TS.VOIDED


def test_void_a_captured_charge_refunds_it_in_full_and_lists_it_voided(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor
) -> None:
    customer_id = with_card(fake, processor)
    charge = fake.add_charge(customer_id, 1000)

    voided = processor.void(charge, idempotency_key="void:t1")

    assert voided.status is TS.VOIDED
    [refund] = fake.charge_refunds.values()
    assert (refund["amount"], refund["metadata"]) == (1000, {"void": "true"})
    assert [(t.processor.id, t.status) for t in processor.list_transactions(customer_id)] == [(charge, TS.VOIDED)]


# ---- errors ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429, 409])
def test_server_errors_become_unavailable(
    fake: FakeStripeBilling, processor: StripeSubscriptionProcessor, status: int
) -> None:
    fake.fail_next(status)

    with pytest.raises(UnavailableError):
        processor.create_customer(a_customer(), idempotency_key="k")


def test_a_timeout_is_unavailable_and_the_retry_gets_the_same_object(fake: FakeStripeBilling) -> None:
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0, timeout_seconds=0.3)
    fake.fail_next(method="POST", path="^/v1/customers$", hang=0.8)

    customer = a_customer()
    with pytest.raises(UnavailableError):
        slow.create_customer(customer, idempotency_key="create-customer:c1")
    retried = slow.create_customer(customer, idempotency_key="create-customer:c1")

    assert list(fake.customers) == [retried.id]


def test_wrong_key_and_bad_requests_are_gateway_errors(fake: FakeStripeBilling) -> None:
    wrong = StripeSubscriptionProcessor("sk_test_wrong", api_base=fake.url, max_network_retries=0)

    with pytest.raises(PaymentGatewayError) as caught:
        wrong.create_customer(a_customer(), idempotency_key="k")

    assert "sk_test_wrong" not in caught.value.message


def test_unknown_price_is_a_gateway_error(fake: FakeStripeBilling, processor: StripeSubscriptionProcessor) -> None:
    customer_id = with_card(fake, processor)

    with pytest.raises(PaymentGatewayError, match="resource_missing"):
        processor.create_subscription(terms(customer_id, price_id="price_nope"), idempotency_key="k")


def test_empty_key_is_refused() -> None:
    with pytest.raises(PaymentGatewayError):
        StripeSubscriptionProcessor("")
