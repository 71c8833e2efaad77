"""saveProcessor, loadProcessor, refunds, voids and billing webhooks: the use cases with in-memory repositories and the
real Stripe adapter against the fake Billing API (the Stripe-facing acceptance scenarios of the original library, Mxx
labels; rules in docs/rules.md#subscriptions-half)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import timedelta

import pytest
from pydantic import ValidationError

from tests.helpers.present import present
from tests.helpers.subscription_builders import amount_discount
from tests.helpers.subscription_sync import (
    BASIC,
    PRO,
    SECRET_KEY,
    STRIPE_BACKENDS,
    USER,
    a_customer,
    apply_billing_event,
    open_sync_world,
    usd,
)
from tests.helpers.subscription_sync import SyncWorld as World
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.errors import ConflictError, InvalidRequestError, NotFoundError, UnavailableError
from usercredits.kernel.models import Money
from usercredits.subscriptions.discounts import add_discounts
from usercredits.subscriptions.errors import PaymentInProgressError
from usercredits.subscriptions.loading import load_processor
from usercredits.subscriptions.models import (
    Customer,
    DiscountKind,
    ProcessorState,
    SubscriptionStatus,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.money_back import refund_transaction, void_transaction
from usercredits.subscriptions.ports import ProcessorSubscription, SubscriptionTerms, SyncPorts
from usercredits.subscriptions.saving import save_processor
from usercredits.subscriptions.subscribing import (
    add_subscription,
    apply_coupon,
    cancel_subscription,
)


@pytest.fixture
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    """The fake Billing API; the seed's M44 scenarios also run against the local simulation (``indirect``)."""
    with open_sync_world(getattr(request, "param", "stripe_fake")) as opened:
        yield opened


#: The seed's processor scenarios (M44) run against the tests' fake and the local provider's Stripe simulation.
both_stripe_backends = pytest.mark.parametrize("world", STRIPE_BACKENDS, indirect=True)


# ---- saveProcessor ---------------------------------------------------------------------------------------------------


def test_m41_save_creates_customer_payment_method_and_subscription_in_order(world: World) -> None:
    a_customer(world)

    saved = save_processor(USER, world.ports)

    assert [(r.method, r.path.split("/")[2]) for r in world.fake.requests if r.method != "GET"] == [
        ("POST", "customers"),
        ("POST", "payment_methods"),
        ("POST", "payment_methods"),
        ("POST", "customers"),
        ("POST", "subscriptions"),
    ]
    assert saved.processor.state is ProcessorState.SAVED
    [method] = saved.payment_methods
    assert (method.processor.id, method.processor.state, method.token) == ("pm_card_visa", ProcessorState.SAVED, None)
    assert saved.addresses[0].processor.state is ProcessorState.SAVED
    [sub] = saved.subscriptions
    assert sub.processor.state is ProcessorState.SAVED
    assert sub.processor.id in world.fake.subscriptions
    assert sub.status is SubscriptionStatus.ACTIVE
    assert saved.last_processor_save == world.clock.now()
    assert saved.payment_lock_until is None
    [cus] = world.fake.customers.values()
    assert cus["metadata"]["userId"] == USER
    assert world.fake.payment_methods["pm_card_visa"]["billing_details"]["address"]["country"] == "BG"


def test_m41_nothing_changed_means_no_call(world: World) -> None:
    a_customer(world)
    save_processor(USER, world.ports)
    calls = len(world.fake.requests)

    save_processor(USER, world.ports)

    assert len(world.fake.requests) == calls


def test_m41_canceled_subscription_is_canceled_at_stripe(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    canceled, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now())
    world.customers.customers[USER] = canceled

    result = save_processor(USER, world.ports)

    [request] = world.fake.calls("DELETE", f"/v1/subscriptions/{sub.processor.id}")
    assert request.idempotency_key == f"cancel-subscription:{sub.subscription_id}"
    assert result.subscriptions[0].status is SubscriptionStatus.CANCELED
    assert result.subscriptions[0].processor.state is ProcessorState.SAVED


def test_m41_cancel_at_period_end_is_an_update(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    later, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now(), at_period_end=True)
    world.customers.customers[USER] = later

    result = save_processor(USER, world.ports)

    assert world.fake.subscriptions[sub.processor.id or ""]["cancel_at_period_end"] is True
    assert result.subscriptions[0].status is SubscriptionStatus.ACTIVE
    assert result.subscriptions[0].cancel_at_period_end is True


def test_m41_local_subscription_is_never_sent(world: World) -> None:
    customer = a_customer(world)
    sub = customer.subscriptions[0]
    from usercredits.subscriptions.models import ProcessorItem

    local = sub.model_copy(update={"processor": ProcessorItem(state=ProcessorState.LOCAL)})
    world.customers.customers[USER] = customer.model_copy(update={"subscriptions": [local]})

    save_processor(USER, world.ports)

    assert world.fake.subscriptions == {}


def test_m41_rejection_propagates_and_keeps_what_was_done(world: World) -> None:
    a_customer(world)
    world.fake.fail_next(402, method="POST", path="^/v1/subscriptions$", code="card_declined")

    from usercredits.errors import PaymentGatewayError

    with pytest.raises(PaymentGatewayError, match="card_declined"):
        save_processor(USER, world.ports)

    after = world.customer()
    assert after.processor.state is ProcessorState.SAVED
    assert after.payment_methods[0].processor.state is ProcessorState.SAVED
    assert after.subscriptions[0].processor.state is ProcessorState.INITIAL
    assert after.payment_lock_until is None


def test_m46_coupon_end_to_end_counts_one_redemption(world: World) -> None:
    a_customer(world, coupon=True)

    saved = save_processor(USER, world.ports)

    [sub] = saved.subscriptions
    [discount] = sub.discounts
    assert (discount.kind, discount.amount, discount.current_billing_cycle) == (DiscountKind.COUPON, usd(149), 1)
    assert discount.processor.state is ProcessorState.SAVED and discount.processor.id is not None
    coupon = world.coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 1  # the seed counted 2 (docs/rules.md#coupon-redemption)
    assert saved.payment_methods[0].token is None
    [sale] = saved.transactions
    assert (sale.amount, sale.status, sale.subscription_id) == (
        usd(1341),
        TransactionStatus.SETTLED,
        sub.subscription_id,
    )
    assert [(d.amount, d.name) for d in sale.discounts] == [(usd(149), "Ten percent")]
    assert sale.billing is not None and sale.billing.country == "BG"
    assert sale.customer is not None and sale.customer.email == "seer@example.com"

    # Given a larger amount discount, When saving again, Then it replaces the coupon (the largest wins)
    bigger = amount_discount(sub, "DiscountAmount", usd(200), world.clock.now())
    replaced = add_discounts(sub, [bigger])
    from usercredits.subscriptions.tracking import track

    world.customers.customers[USER] = saved.model_copy(update={"subscriptions": [track(replaced)]})
    again = save_processor(USER, world.ports)

    [only] = again.subscriptions[0].discounts
    assert (only.kind, only.amount, only.current_billing_cycle) == (DiscountKind.AMOUNT, usd(200), 1)
    stripe_sub = world.fake.subscriptions[sub.processor.id or ""]
    assert len(stripe_sub["discounts"]) == 1
    coupon = world.coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 1

    # When canceling, Then the history gains a canceled entry, newest first
    canceled, _ = cancel_subscription(again, sub.subscription_id, world.clock.now())
    world.customers.customers[USER] = canceled
    final = save_processor(USER, world.ports)
    history = final.subscriptions[0].status_history
    assert history[0].status is SubscriptionStatus.CANCELED
    assert [e.status for e in history][-1] is SubscriptionStatus.ACTIVE


def test_coupon_over_its_limit_is_not_sent_and_the_sync_says_so(world: World) -> None:
    """A subscription stored before uses were counted at subscribe, whose coupon is full by now: never dropped
    silently, the sync answers 409 naming the coupon, and the subscription stays unsent with its discount."""
    a_customer(world, coupon=True)
    world.coupons.coupons["TEN"] = world.coupons.coupons["TEN"].model_copy(update={"used_count": 2})

    with pytest.raises(ConflictError, match="coupon TEN .*Promocode limit reached"):
        save_processor(USER, world.ports)

    stored = world.customer()
    assert len(stored.subscriptions[0].discounts) == 1
    assert stored.subscriptions[0].processor.state is ProcessorState.INITIAL
    assert world.fake.coupons == {}
    assert present(world.coupons.get("TEN")).used_count == 2


def test_a_restricted_coupon_on_two_subscriptions_is_sent_with_one_only(world: World) -> None:
    """Subscriptions stored before uses were counted at subscribe (today the second subscribe is refused, 422)."""
    # Given a restricted coupon the customer put on two subscriptions before either was synced
    once = present(world.coupons.get("TEN")).model_copy(update={"code": "ONCE", "restricted": True})
    world.coupons.coupons["ONCE"] = once
    customer = a_customer(world)
    now = world.clock.now()
    stored_before = customer.subscriptions
    customer, second = add_subscription(
        customer, PRO, now, payment_method_id=customer.payment_methods[0].payment_method_id
    )
    # (as stored before: both unsent; a subscribe now withdraws the customer's unsent subscriptions)
    customer = customer.model_copy(update={"subscriptions": [*stored_before, second]})
    for subscription in customer.subscriptions:
        customer, _ = apply_coupon(customer, subscription.subscription_id, once, now)
    world.customers.customers[USER] = customer
    # When it is synced
    with pytest.raises(ConflictError, match=f"coupon ONCE of subscription {second.subscription_id}"):
        save_processor(USER, world.ports)
    # Then the coupon was counted once, for the first subscription, sent; the other is not sent, nor dropped silently
    saved = world.customer()
    assert [s.processor.state for s in saved.subscriptions] == [ProcessorState.SAVED, ProcessorState.INITIAL]
    assert [len(s.discounts) for s in saved.subscriptions] == [1, 1]
    assert present(world.coupons.get("ONCE")).used_count == 1
    assert len(world.fake.coupons) == 1


def test_sync_failing_halfway_is_completed_by_a_retry_without_duplicates(world: World) -> None:
    a_customer(world, coupon=True)
    # The subscription is made at Stripe but its answer is lost (a client timeout)
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=world.fake.url, max_network_retries=0, timeout_seconds=0.5)
    ports = SyncPorts(world.customers, world.coupons, slow, world.clock)
    world.fake.fail_next(method="POST", path="^/v1/subscriptions$", hang=1.0)

    with pytest.raises(UnavailableError):
        save_processor(USER, ports)

    halfway = world.customer()
    assert halfway.processor.state is ProcessorState.SAVED
    assert halfway.subscriptions[0].processor.state is ProcessorState.INITIAL
    assert len(world.fake.subscriptions) == 1

    saved = save_processor(USER, ports)

    assert len(world.fake.customers) == 1
    assert len(world.fake.subscriptions) == 1
    assert len(world.fake.coupons) == 1
    assert len(world.fake.charges) == 1
    assert saved.subscriptions[0].processor.id in world.fake.subscriptions
    coupon = world.coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 1
    keys = [r.idempotency_key for r in world.fake.posts("/v1/subscriptions")]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_sync_failing_at_the_customer_step_then_retried_makes_one_customer(world: World) -> None:
    a_customer(world)
    world.fake.fail_next(500, method="POST", path="^/v1/payment_methods/.*/attach$")

    with pytest.raises(UnavailableError):
        save_processor(USER, world.ports)
    save_processor(USER, world.ports)

    assert len(world.fake.customers) == 1
    assert len(world.fake.subscriptions) == 1


def test_save_retries_a_concurrent_write(world: World) -> None:
    a_customer(world)
    world.customers.fail_next_saves = 2

    saved = save_processor(USER, world.ports)

    assert saved.subscriptions[0].processor.state is ProcessorState.SAVED
    assert len(world.fake.customers) == 1


def test_save_while_another_payment_operation_runs_is_refused(world: World) -> None:
    a_customer(world)
    now = world.clock.now()
    assert world.customers.acquire_payment_lock(USER, now=now, until=now + timedelta(seconds=30))

    with pytest.raises(PaymentInProgressError):
        save_processor(USER, world.ports)

    assert world.fake.requests == []


def test_save_without_a_customer_is_not_found(world: World) -> None:
    with pytest.raises(NotFoundError):
        save_processor(USER, world.ports)


def test_queued_downgrade_is_pending_until_it_starts(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    queued, sub = add_subscription(
        saved, BASIC, world.clock.now(), payment_method_id=saved.payment_methods[0].payment_method_id
    )
    world.customers.customers[USER] = queued

    result = save_processor(USER, world.ports)

    local = result.subscription(sub.subscription_id)
    assert local.status is SubscriptionStatus.PENDING
    assert local.first_billing_date == saved.subscriptions[0].billing_period_end_date
    assert local.paid_through_date is None
    assert world.fake.subscriptions[local.processor.id or ""]["trial_end"] is not None


# ---- loadProcessor ---------------------------------------------------------------------------------------------------


def test_m09_load_of_a_customer_never_sent_calls_nothing(world: World) -> None:
    customer = a_customer(world)

    loaded = load_processor(USER, world.ports)

    assert loaded == customer
    assert world.fake.requests == []


def test_m43_load_is_idempotent_and_resolves_local_links(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    world.fake.add_charge(saved.processor.id or "", 500, created=1)

    first = load_processor(USER, world.ports)
    second = load_processor(USER, world.ports)

    assert second.model_dump(exclude={"version"}) == first.model_dump(exclude={"version"})
    method = first.payment_methods[0]
    assert method.billing_address_id == first.addresses[0].address_id
    assert first.subscriptions[0].payment_method_id == method.payment_method_id
    assert [t.created_at for t in first.transactions] == sorted(
        (t.created_at for t in first.transactions), reverse=True
    )
    assert len(first.transactions) == 2  # the subscription's charge and a one-off one (docs/rules.md#processor-reload)


def test_load_marks_items_deleted_at_stripe_and_adds_new_ones(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    customer_id = saved.processor.id or ""
    sub_id = saved.subscriptions[0].processor.id or ""
    # At Stripe: the card is detached, a new one attached, the subscription deleted for good
    world.fake.payment_methods["pm_card_visa"]["customer"] = None
    world.fake.add_payment_method("pm_new", customer=customer_id, last4="9999")
    del world.fake.subscriptions[sub_id]

    loaded = load_processor(USER, world.ports)

    old, new = loaded.payment_methods
    assert (old.processor.id, old.deleted) == ("pm_card_visa", True)
    assert (new.processor.id, new.deleted, new.processor.state) == ("pm_new", False, ProcessorState.SAVED)
    assert loaded.subscriptions[0].deleted is True
    assert loaded.transactions  # money history is never dropped


def test_load_takes_stripe_values_for_synced_items(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    world.fake.customers[saved.processor.id or ""]["name"] = "Pesho Changed"
    world.fake.set_subscription(saved.subscriptions[0].processor.id or "", status="past_due")

    loaded = load_processor(USER, world.ports)

    assert loaded.name == "Pesho Changed"
    assert loaded.subscriptions[0].status is SubscriptionStatus.PAST_DUE


def test_load_after_the_stripe_customer_was_deleted_forgets_it(world: World) -> None:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    world.fake.delete_customer(saved.processor.id or "")

    loaded = load_processor(USER, world.ports)

    assert loaded.processor.id is None
    assert all(m.deleted for m in loaded.payment_methods)
    assert all(s.deleted for s in loaded.subscriptions)


# ---- refunds and voids -----------------------------------------------------------------------------------------------


def synced_with_sale(world: World) -> tuple[Customer, str]:
    a_customer(world)
    saved = save_processor(USER, world.ports)
    return saved, saved.transactions[0].transaction_id


@both_stripe_backends
def test_m44_full_refund_goes_first(world: World) -> None:
    _, sale_id = synced_with_sale(world)

    refund = refund_transaction(USER, sale_id, None, world.ports)

    after = world.customer()
    assert after.transactions[0] == refund
    assert (refund.kind, refund.amount, refund.refunded_transaction_id) == (TransactionKind.REFUND, usd(1490), sale_id)
    form = world.fake.posts("/v1/refunds")[0].form
    assert (form["charge"], "amount" in form) == (after.transactions[1].processor.id, False)  # in full


@both_stripe_backends
def test_m44_partial_refunds_then_above_what_is_left_is_refused_before_any_call(world: World) -> None:
    _, sale_id = synced_with_sale(world)

    refund_transaction(USER, sale_id, usd(1000), world.ports)
    refund_transaction(USER, sale_id, usd(400), world.ports)
    calls = len(world.fake.requests)
    with pytest.raises(InvalidRequestError):
        refund_transaction(USER, sale_id, usd(91), world.ports)
    with pytest.raises(InvalidRequestError):
        refund_transaction(USER, sale_id, usd(0), world.ports)

    assert len(world.fake.requests) == calls
    assert [t.kind for t in world.customer().transactions] == [
        TransactionKind.REFUND,
        TransactionKind.REFUND,
        TransactionKind.SALE,
    ]
    assert len({r.idempotency_key for r in world.fake.posts("/v1/refunds")}) == 2


def test_negative_refund_amount_cannot_even_be_expressed() -> None:
    with pytest.raises(ValidationError):
        Money(amount=-1, currency="usd")


@both_stripe_backends
def test_m44_refund_failure_records_nothing(world: World) -> None:
    _, sale_id = synced_with_sale(world)
    world.fake.fail_next(400, method="POST", path="^/v1/refunds$", code="charge_disputed")

    from usercredits.errors import PaymentGatewayError

    with pytest.raises(PaymentGatewayError):
        refund_transaction(USER, sale_id, None, world.ports)

    assert [t.kind for t in world.customer().transactions] == [TransactionKind.SALE]


def test_refund_unknown_transaction_is_not_found(world: World) -> None:
    synced_with_sale(world)
    with pytest.raises(NotFoundError):
        refund_transaction(USER, "nope", None, world.ports)


@both_stripe_backends
def test_m44_void_replaces_the_transaction_in_place(world: World) -> None:
    saved, _ = synced_with_sale(world)
    world.fake.add_charge(saved.processor.id or "", 700, captured=False, created=1)
    loaded = load_processor(USER, world.ports)
    authorized = loaded.transactions[-1]
    assert authorized.status is TransactionStatus.AUTHORIZED

    voided = void_transaction(USER, authorized.transaction_id, world.ports)

    after = world.customer()
    assert after.transactions[-1] == voided
    assert (voided.transaction_id, voided.status) == (authorized.transaction_id, TransactionStatus.VOIDED)
    assert len(after.transactions) == 2
    again = load_processor(USER, world.ports)
    assert again.transactions[-1].status is TransactionStatus.VOIDED


def test_void_of_a_settled_sale_is_a_conflict(world: World) -> None:
    _, sale_id = synced_with_sale(world)
    with pytest.raises(ConflictError):
        void_transaction(USER, sale_id, world.ports)


# ---- billing webhooks ------------------------------------------------------------------------------------------------


def at(world: World, seconds: int) -> int:
    """An event's ``created``, ``seconds`` after the world's now: Stripe events come after the sync that made the
    subscription (whose result is stamped with the sync's time, so earlier events are stale)."""
    return int(world.clock.now().timestamp()) + seconds


def test_subscription_updated_event_updates_the_local_subscription(world: World) -> None:
    saved, _ = synced_with_sale(world)
    sub_id = saved.subscriptions[0].processor.id or ""
    payload = world.fake.set_subscription(sub_id, status="past_due")

    outcome = apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 100), world.ports)

    assert outcome == "applied"
    local = world.customer().subscriptions[0]
    assert (local.status, local.last_event_created) == (SubscriptionStatus.PAST_DUE, at(world, 100))


def test_redelivered_event_changes_nothing(world: World) -> None:
    saved, _ = synced_with_sale(world)
    payload = world.fake.set_subscription(saved.subscriptions[0].processor.id or "", status="past_due")
    apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 100), world.ports)
    saves = world.customers.saves

    outcome = apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 100), world.ports)

    assert outcome == "unchanged"
    assert world.customers.saves == saves


def test_older_event_arriving_late_is_ignored(world: World) -> None:
    saved, _ = synced_with_sale(world)
    sub_id = saved.subscriptions[0].processor.id or ""
    past_due = world.fake.set_subscription(sub_id, status="past_due")
    canceled = world.fake.set_subscription(sub_id, status="canceled", canceled_at=200)

    assert (
        apply_billing_event("evt_2", "customer.subscription.deleted", canceled, at(world, 200), world.ports)
        == "applied"
    )
    assert (
        apply_billing_event("evt_1", "customer.subscription.updated", past_due, at(world, 100), world.ports) == "stale"
    )

    assert world.customer().subscriptions[0].status is SubscriptionStatus.CANCELED


def test_event_found_through_the_stripe_customer_metadata(world: World) -> None:
    saved, _ = synced_with_sale(world)
    payload = world.fake.set_subscription(saved.subscriptions[0].processor.id or "", status="past_due")
    payload = {**payload, "metadata": {}}

    assert (
        apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 100), world.ports) == "applied"
    )


def test_subscription_created_at_stripe_directly_is_added(world: World) -> None:
    saved, _ = synced_with_sale(world)
    payload = {
        **world.fake.render_subscription(saved.subscriptions[0].processor.id or ""),
        "id": "sub_dashboard",
        "metadata": {"userId": USER},
    }

    assert (
        apply_billing_event("evt_1", "customer.subscription.created", payload, at(world, 100), world.ports) == "applied"
    )

    added = [s for s in world.customer().subscriptions if s.processor.id == "sub_dashboard"]
    assert len(added) == 1 and added[0].plan.plan_id == "pro"


def test_subscription_on_a_price_no_local_plan_uses_gets_a_level_0_plan(world: World) -> None:
    # Given a subscription made in Stripe's dashboard on a price none of the customer's subscriptions uses
    saved, _ = synced_with_sale(world)
    payload = world.fake.render_subscription(saved.subscriptions[0].processor.id or "")
    item = payload["items"]["data"][0]
    item["price"] = {**item["price"], "id": "price_dashboard"}
    payload = {**payload, "id": "sub_dashboard_other", "metadata": {"userId": USER}, "items": payload["items"]}
    # When its event arrives
    assert (
        apply_billing_event("evt_2", "customer.subscription.created", payload, at(world, 100), world.ports) == "applied"
    )
    # Then it is kept on a plan made from the price, at level 0: it never outranks a plan an admin defined
    [added] = [s for s in world.customer().subscriptions if s.processor.id == "sub_dashboard_other"]
    assert (added.plan.plan_id, added.plan.level, added.plan.processor_plan_id) == (
        "price_dashboard",
        0,
        "price_dashboard",
    )


def test_event_for_an_unknown_customer_is_ignored(world: World) -> None:
    saved, _ = synced_with_sale(world)
    payload = {**world.fake.render_subscription(saved.subscriptions[0].processor.id or ""), "customer": "cus_other"}
    payload["metadata"] = {"userId": "someone-else"}

    assert (
        apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 100), world.ports) == "ignored"
    )
    assert apply_billing_event("evt_2", "charge.succeeded", {}, at(world, 100), world.ports) == "ignored"


def test_invoice_events_mirror_transactions_and_failures(world: World) -> None:
    saved, _ = synced_with_sale(world)
    customer_id = saved.processor.id or ""
    invoice = next(iter(world.fake.invoices.values()))
    world.fake.add_charge(customer_id, 300, created=1)

    failed = {**invoice, "status": "open", "attempt_count": 2}
    assert apply_billing_event("evt_1", "invoice.payment_failed", failed, at(world, 100), world.ports) == "applied"
    local = world.customer()
    assert local.subscriptions[0].failure_count == 2
    assert len(local.transactions) == 2

    assert apply_billing_event("evt_2", "invoice.paid", invoice, at(world, 200), world.ports) == "applied"
    assert apply_billing_event("evt_1", "invoice.payment_failed", failed, at(world, 100), world.ports) == "unchanged"
    assert world.customer().subscriptions[0].failure_count == 0


# ---- review fixes: keys, stamps and pending edits --------------------------------------------------------------------


def test_refund_retried_after_a_lost_answer_reuses_its_key_even_after_another_save(world: World) -> None:
    # Given a refund that reached Stripe but whose answer was lost
    _, sale_id = synced_with_sale(world)
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=world.fake.url, max_network_retries=0, timeout_seconds=0.5)
    ports = SyncPorts(world.customers, world.coupons, slow, world.clock)
    world.fake.fail_next(method="POST", path="^/v1/refunds$", hang=1.0)
    with pytest.raises(UnavailableError):
        refund_transaction(USER, sale_id, usd(500), ports)
    # and a webhook saved the customer meanwhile (its version moved)
    payload = world.fake.set_subscription(world.customer().subscriptions[0].processor.id or "", status="past_due")
    assert (
        apply_billing_event("evt_1", "customer.subscription.updated", payload, at(world, 10), world.ports) == "applied"
    )

    # When the admin retries, Then the first refund is found (by the key in its metadata) instead of made again
    refund_transaction(USER, sale_id, usd(500), world.ports)

    assert len(world.fake.charge_refunds) == 1
    assert len(world.fake.posts("/v1/refunds")) == 1
    assert [t.kind for t in world.customer().transactions] == [TransactionKind.REFUND, TransactionKind.SALE]


def test_a_default_removed_at_stripe_is_not_sent_with_the_profile(world: World) -> None:
    # Given a default payment method known to be removed at Stripe, still named as the local default
    a_customer(world)
    saved = save_processor(USER, world.ports)
    gone = saved.payment_methods[0].model_copy(update={"deleted": True})
    renamed = saved.model_copy(update={"payment_methods": [gone], "name": "Pesho Renamed"})
    from usercredits.subscriptions.tracking import track

    world.customers.customers[USER] = track(renamed)

    save_processor(USER, world.ports)

    update = world.fake.posts(f"/v1/customers/{saved.processor.id}")[-1]
    assert update.form["name"] == "Pesho Renamed"
    assert "invoice_settings" not in update.form


def test_an_edit_made_while_a_subscription_is_sent_stays_pending(world: World) -> None:
    # Given a cancel-at-period-end being sent while the user cancels the subscription right away
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    later, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now(), at_period_end=True)
    world.customers.customers[USER] = later
    processor = world.ports.processor
    send = processor.update_subscription

    def edited_meanwhile(processor_id: str, terms: SubscriptionTerms, *, idempotency_key: str) -> ProcessorSubscription:
        result = send(processor_id, terms, idempotency_key=idempotency_key)
        stored = world.customer()
        now_canceled, _ = cancel_subscription(stored, sub.subscription_id, world.clock.now())
        world.customers.customers[USER] = now_canceled.model_copy(update={"version": stored.version + 1})
        return result

    processor.update_subscription = edited_meanwhile  # type: ignore[method-assign]  # a processor edited meanwhile

    # When the sync records the update's result, Then the cancel is kept and sent by the next sync
    result = save_processor(USER, world.ports)
    assert result.subscriptions[0].status is SubscriptionStatus.CANCELED
    assert result.subscriptions[0].processor.state is ProcessorState.CHANGED
    processor.update_subscription = send  # type: ignore[method-assign]
    save_processor(USER, world.ports)
    assert world.fake.subscriptions[sub.processor.id or ""]["status"] == "canceled"


def test_load_mirrors_what_a_failed_listing_left_pending(world: World) -> None:
    a_customer(world)
    world.fake.fail_next(500, method="GET", path="^/v1/charges$")
    with pytest.raises(UnavailableError):
        save_processor(USER, world.ports)
    assert world.customer().subscriptions[0].transactions_pending

    loaded = load_processor(USER, world.ports)

    assert len(loaded.transactions) == 1
    assert not loaded.subscriptions[0].transactions_pending


def test_events_of_the_same_second_never_undo_a_cancel_or_a_paid_period(world: World) -> None:
    """Stripe's ``created`` has a one-second grain: a hold and a cancel made in one sync, or several renewals at once,
    come with the same ``created`` and may arrive in any order."""
    saved, _ = synced_with_sale(world)
    sub_id = saved.subscriptions[0].processor.id or ""
    held = world.fake.set_subscription(sub_id, cancel_at_period_end=True)
    canceled = world.fake.set_subscription(sub_id, status="canceled", canceled_at=at(world, 100))
    # The cancel's event arrives first, the hold's (same second) after it: still canceled
    assert apply_billing_event("evt_2", "customer.subscription.deleted", canceled, at(world, 100), world.ports) == (
        "applied"
    )
    assert apply_billing_event("evt_1", "customer.subscription.updated", held, at(world, 100), world.ports) == "stale"
    assert world.customer().subscriptions[0].status is SubscriptionStatus.CANCELED
    # And a later event cannot bring a canceled Stripe subscription back either (Stripe never reactivates one)
    assert apply_billing_event("evt_3", "customer.subscription.updated", held, at(world, 200), world.ports) == "stale"


def test_renewals_of_the_same_second_never_move_the_paid_period_back(world: World) -> None:
    saved, _ = synced_with_sale(world)
    sub_id = saved.subscriptions[0].processor.id or ""
    item = world.fake.subscriptions[sub_id]["items"]["data"][0]
    start, length = int(item["current_period_end"]), int(item["current_period_end"]) - int(item["current_period_start"])
    item.update(current_period_start=start, current_period_end=start + length)
    first = copy.deepcopy(world.fake.render_subscription(sub_id))  # (the fake's render shares its items)
    item.update(current_period_start=start + length, current_period_end=start + 2 * length)
    second = world.fake.render_subscription(sub_id)
    assert apply_billing_event("evt_2", "customer.subscription.updated", second, at(world, 100), world.ports) == (
        "applied"
    )
    paid_through = world.customer().subscriptions[0].paid_through_date
    assert apply_billing_event("evt_1", "customer.subscription.updated", first, at(world, 100), world.ports) == "stale"
    assert world.customer().subscriptions[0].paid_through_date == paid_through
