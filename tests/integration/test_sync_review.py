"""Review of the Stripe billing adapter and the processor use cases: each test pins down a defect the review found
(fixed since) unless its name starts with ``test_ok_`` (a behaviour checked and found correct).

Uses the sync world of tests/helpers/subscription_sync.py; the fake is only patched per instance here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers.subscription_builders import amount_discount
from tests.helpers.subscription_sync import SECRET_KEY, USER, a_customer, apply_billing_event, open_sync_world, usd
from tests.helpers.subscription_sync import SyncWorld as World
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.adapters.stripe.subscription_mapping import processor_subscription
from usercredits.errors import InvalidRequestError, UnavailableError
from usercredits.subscriptions.customers import (
    NewPaymentMethod,
    add_payment_method,
    set_default_payment_method,
    set_default_payment_method_address,
    update_profile,
)
from usercredits.subscriptions.discounts import add_discounts
from usercredits.subscriptions.instruments import PaymentMethodKind
from usercredits.subscriptions.loading import load_processor
from usercredits.subscriptions.models import AddressFields, ProfileFields, SubscriptionStatus, TransactionKind
from usercredits.subscriptions.money_back import refund_transaction
from usercredits.subscriptions.ports import SyncPorts
from usercredits.subscriptions.saving import save_processor
from usercredits.subscriptions.subscribing import apply_coupon, cancel_subscription


@pytest.fixture
def world() -> Iterator[World]:
    """The fake Billing API and in-memory repositories (``tests/helpers/subscription_sync.py``)."""
    with open_sync_world() as opened:
        yield opened


def slow_ports(world: World) -> SyncPorts:
    """Ports whose Stripe client gives up after 0.5 s (with ``fail_next(hang=1.0)``: Stripe acted, answer lost)."""
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=world.fake.url, max_network_retries=0, timeout_seconds=0.5)
    return SyncPorts(world.customers, world.coupons, slow, world.clock)


def store(world: World, customer: Any) -> None:
    world.customers.customers[USER] = customer


# ---- idempotency keys that stay the same while the parameters change


def test_create_customer_retry_after_a_profile_edit_is_not_stuck(world: World) -> None:
    """create-customer:<id> is reused with other parameters -> Stripe 400 idempotency_error on every retry (24 h)."""
    a_customer(world)
    ports = slow_ports(world)
    world.fake.fail_next(method="POST", path="^/v1/customers$", hang=1.0)
    with pytest.raises(UnavailableError):
        save_processor(USER, ports)
    store(world, update_profile(world.customer(), ProfileFields(name="Pesho Renamed"), world.clock.now()))

    saved = save_processor(USER, ports)  # PaymentGatewayError (idempotency_error) today

    assert len(world.fake.customers) == 1
    assert world.fake.customers[saved.processor.id or ""]["name"] == "Pesho Renamed"


def test_create_subscription_retry_after_a_coupon_is_added_is_not_stuck(world: World) -> None:
    """create-subscription:<id> does not cover the parameters (discounts, payment method, trial_end...)."""
    a_customer(world)
    ports = slow_ports(world)
    world.fake.fail_next(method="POST", path="^/v1/subscriptions$", hang=1.0)
    with pytest.raises(UnavailableError):
        save_processor(USER, ports)
    halfway = world.customer()
    with_coupon, _ = apply_coupon(
        halfway, halfway.subscriptions[0].subscription_id, world.coupons.get("TEN"), world.clock.now()
    )
    store(world, with_coupon)

    save_processor(USER, ports)  # PaymentGatewayError (idempotency_error) today

    assert len(world.fake.subscriptions) == 1


def test_update_subscription_retry_after_a_lost_answer_is_not_stuck(world: World) -> None:
    """update_subscription builds ``discounts`` from what it reads first: after the first attempt reached Stripe,
    the retry sends ``discounts[0][discount]`` instead of ``[coupon]`` under the same key -> idempotency_error."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    discount = amount_discount(sub, "Loyalty", usd(300), world.clock.now())
    store(world, saved.model_copy(update={"subscriptions": [add_discounts(sub, [discount])]}))
    ports = slow_ports(world)
    world.fake.fail_next(method="POST", path=f"^/v1/subscriptions/{sub.processor.id}$", hang=1.0)
    with pytest.raises(UnavailableError):
        save_processor(USER, ports)

    again = save_processor(USER, ports)  # PaymentGatewayError (idempotency_error) today

    [local] = again.subscriptions[0].discounts
    assert local.amount == usd(300)


def test_update_customer_back_to_an_earlier_value_is_not_a_replay(world: World) -> None:
    """update keys hash the content only: X -> Y -> X -> Y reuses the key of the first Y; Stripe replays the old
    answer and does nothing, while the local customer is marked saved with Y."""
    a_customer(world)
    save_processor(USER, world.ports)
    for name in ["Name Y", "Name X", "Name Y"]:
        store(world, update_profile(world.customer(), ProfileFields(name=name), world.clock.now()))
        save_processor(USER, world.ports)

    [stripe_customer] = world.fake.customers.values()
    assert world.customer().name == "Name Y"
    assert stripe_customer["name"] == "Name Y"  # "Name X" today


def test_recreating_a_customer_deleted_at_stripe_gets_a_live_customer(world: World) -> None:
    """After load forgets a deleted Stripe customer, the next sync reuses create-customer:<customerId>: Stripe replays
    the first answer (within 24 h) and the local customer is linked to the deleted one again."""
    a_customer(world)
    first = save_processor(USER, world.ports)
    world.fake.delete_customer(first.processor.id or "")
    assert load_processor(USER, world.ports).processor.id is None

    again = save_processor(USER, world.ports)

    assert again.processor.id != first.processor.id
    assert not world.fake.customers[again.processor.id or ""].get("deleted")


# ---- discounts


def test_subscription_update_keeps_the_stripe_discount_and_its_cycles(world: World) -> None:
    """coupon_id_for hashes ``cycles_left``; after creation cycles_left is N-1, so any later update (here: cancel at
    period end) no longer recognises the coupon, replaces the Stripe discount and loses a cycle each time."""
    a_customer(world, coupon=True)  # TEN: 2 cycles
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    stripe_discount = world.fake.subscriptions[sub.processor.id or ""]["discounts"][0]["id"]
    later, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now(), at_period_end=True)
    store(world, later)

    after = save_processor(USER, world.ports)

    assert world.fake.subscriptions[sub.processor.id or ""]["discounts"][0]["id"] == stripe_discount
    [discount] = after.subscriptions[0].discounts
    assert (discount.number_of_billing_cycles, discount.cycles_left) == (2, 1)  # (1, 0) today


def test_percent_coupon_amount_is_exact_and_rounded_like_local_discounts() -> None:
    """_processor_discount computes a percent coupon with float and truncation (375 x 18.4% = 69 exactly -> 68;
    1490 x 15% = 223.5 -> 223, while discounts.percent_of rounds half up to 224)."""
    base: dict[str, Any] = {
        "id": "sub_x",
        "status": "active",
        "metadata": {},
        "start_date": 1_700_000_000,
        "created": 1_700_000_000,
    }

    def mapped(unit_amount: int, percent: float) -> int:
        price = {"id": "price_x", "unit_amount": unit_amount, "currency": "usd", "recurring": {"interval_count": 1}}
        item = {"price": price, "current_period_start": 1_700_000_000, "current_period_end": 1_702_592_000}
        coupon: dict[str, Any] = {
            "id": "c",
            "amount_off": None,
            "percent_off": percent,
            "duration": "forever",
            "metadata": {},
        }
        discount = {"id": "di_1", "start": 1_700_000_000, "source": {"coupon": coupon}}
        data = {**base, "items": {"data": [item]}, "discounts": [discount]}
        return processor_subscription(data).discounts[0].amount.amount

    assert mapped(375, 18.4) == 69
    assert mapped(1490, 15.0) == 224


# ---- webhooks and ordering


def test_stale_webhook_does_not_undo_a_newer_sync_result(world: World) -> None:
    """Only webhooks stamp ``last_event_created``: an event created before a sync's cancel, delivered after it, puts
    the subscription back to active (Stripe: canceled)."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    before_cancel = world.fake.render_subscription(sub.processor.id or "")  # active
    created = int(time.time()) - 5
    canceled, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now())
    store(world, canceled)
    save_processor(USER, world.ports)
    assert world.customer().subscriptions[0].status is SubscriptionStatus.CANCELED

    apply_billing_event("evt_old", "customer.subscription.updated", before_cancel, created, world.ports)

    assert world.fake.subscriptions[sub.processor.id or ""]["status"] == "canceled"
    assert world.customer().subscriptions[0].status is SubscriptionStatus.CANCELED  # ACTIVE today


def test_invoice_event_does_not_hide_an_older_subscription_status_change(world: World) -> None:
    """Invoice and subscription events share one ``last_event_created``: invoice.payment_failed (t=200) delivered
    before customer.subscription.updated -> past_due (t=199) makes the status change 'stale' and it is lost."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub_id = saved.subscriptions[0].processor.id or ""
    invoice = next(iter(world.fake.invoices.values()))
    past_due = world.fake.set_subscription(sub_id, status="past_due")
    # Fixed: created 200/199 (1970) are not times Stripe gives events about a subscription made now, and the sync's
    # result is now stamped with its time (so any event created before it is stale, test above).
    now = int(world.clock.now().timestamp())

    apply_billing_event("evt_2", "invoice.payment_failed", {**invoice, "attempt_count": 1}, now + 200, world.ports)
    outcome = apply_billing_event("evt_1", "customer.subscription.updated", past_due, now + 199, world.ports)

    assert outcome == "applied"  # "stale" today
    assert world.customer().subscriptions[0].status is SubscriptionStatus.PAST_DUE


def test_webhook_does_not_drop_an_unsynced_local_cancel(world: World) -> None:
    """A subscription event recorded over a ``changed`` subscription marks it saved with Stripe's values: the user's
    pending cancel-at-period-end is silently lost and the next sync sends nothing."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    later, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now(), at_period_end=True)
    store(world, later)
    payload = world.fake.render_subscription(sub.processor.id or "")  # e.g. a renewal's customer.subscription.updated

    apply_billing_event("evt_1", "customer.subscription.updated", payload, int(time.time()), world.ports)
    save_processor(USER, world.ports)

    assert world.fake.subscriptions[sub.processor.id or ""]["cancel_at_period_end"] is True  # False today


# ---- payment methods and defaults


def test_default_removed_at_stripe_does_not_block_profile_sync(world: World) -> None:
    """load keeps default_payment_method_id on a method it marked deleted; update_customer then sends it as
    invoice_settings.default_payment_method -> Stripe 400 on every sync (profile step, before anything else)."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    cus = saved.processor.id or ""
    world.fake.payment_methods["pm_card_visa"]["customer"] = None  # detached at Stripe (its default is cleared)
    world.fake.customers[cus]["invoice_settings"]["default_payment_method"] = None
    loaded = load_processor(USER, world.ports)
    assert loaded.payment_methods[0].deleted
    store(world, update_profile(world.customer(), ProfileFields(name="Pesho New"), world.clock.now()))

    save_processor(USER, world.ports)  # PaymentGatewayError (resource_missing) today

    assert world.fake.customers[cus]["name"] == "Pesho New"


def test_load_without_a_stripe_default_does_not_pick_an_unsent_method(world: World) -> None:
    """_merge_loaded matches ``m.processor.id == None`` when Stripe has no default: a never-sent method wins."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    world.fake.customers[saved.processor.id or ""]["invoice_settings"]["default_payment_method"] = None
    pending, new = add_payment_method(
        world.customer(),
        NewPaymentMethod(token="pm_card_amex", kind=PaymentMethodKind.CARD),
        world.clock.now(),
        make_default=False,
    )
    store(world, pending)

    loaded = load_processor(USER, world.ports)

    assert loaded.default_payment_method_id != new.payment_method_id


def test_shared_billing_address_change_reaches_every_method(world: World) -> None:
    """A new default of another kind inherits the billing address (shared); when that address changes, the first
    method's update marks it saved and the second (the default) is never updated at Stripe."""
    a_customer(world)
    save_processor(USER, world.ports)
    world.fake.add_payment_method("pm_paypal", kind="paypal")
    with_pp, paypal = set_default_payment_method(
        world.customer(), NewPaymentMethod(token="pm_paypal", kind=PaymentMethodKind.PAYPAL), world.clock.now()
    )
    store(world, with_pp)
    save_processor(USER, world.ports)
    moved, _ = set_default_payment_method_address(
        world.customer(), AddressFields(name="Pesho Peshev", country="DE", postal_code="10115"), world.clock.now()
    )
    store(world, moved)

    save_processor(USER, world.ports)

    assert world.fake.payment_methods["pm_card_visa"]["billing_details"]["address"]["country"] == "DE"
    assert world.fake.payment_methods["pm_paypal"]["billing_details"]["address"]["country"] == "DE"  # "BG" today


# ---- retries after failures


def test_cancel_retry_after_a_lost_answer_completes(world: World) -> None:
    """Stripe ignores Idempotency-Key on DELETE (so does the fake): a cancel whose answer was lost is refused on retry
    (already canceled) -> 502 on every sync until a webhook/reload."""
    fake = world.fake
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    canceled, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now())
    store(world, canceled)
    ports = slow_ports(world)
    fake.fail_next(method="DELETE", path="^/v1/subscriptions/", hang=1.0)
    with pytest.raises(UnavailableError):
        save_processor(USER, ports)

    again = save_processor(USER, ports)  # PaymentGatewayError today

    assert again.subscriptions[0].status is SubscriptionStatus.CANCELED


def test_transactions_are_mirrored_when_the_listing_failed_after_create(world: World) -> None:
    """The subscription result is saved before list_transactions; if that listing fails, the retry finds nothing to
    send and never lists the charge (only a later reload/invoice webhook would)."""
    a_customer(world)
    world.fake.fail_next(500, method="GET", path="^/v1/charges$")
    with pytest.raises(UnavailableError):
        save_processor(USER, world.ports)

    again = save_processor(USER, world.ports)

    assert len(again.transactions) == 1  # 0 today


def test_refund_above_what_stripe_has_left_is_a_4xx(world: World) -> None:
    """The amount check uses local data only; a refund made at Stripe meanwhile makes Stripe answer amount_too_large,
    which becomes PaymentGatewayError (502) instead of InvalidRequestError (4xx)."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sale = saved.transactions[0]
    world.ports.processor.refund(sale.processor.id or "", usd(1000), idempotency_key="dashboard-refund")

    with pytest.raises(InvalidRequestError):
        refund_transaction(USER, sale.transaction_id, usd(1000), world.ports)


# ---- pagination


def test_charge_with_more_than_ten_refunds_lists_them_all(world: World) -> None:
    """Expanded ``charge.refunds`` is a sub-list of at most 10 with has_more (the fake pages it as Stripe does);
    list_transactions reads only that page."""
    a_customer(world)
    saved = save_processor(USER, world.ports)
    charge = saved.transactions[0].processor.id or ""
    for n in range(11):
        world.ports.processor.refund(charge, usd(1), idempotency_key=f"r{n}")

    listed = world.ports.processor.list_transactions(saved.processor.id or "")

    assert len([t for t in listed if t.kind is TransactionKind.REFUND]) == 11  # 10 today


def test_ok_top_level_lists_follow_has_more(world: World) -> None:
    """Checked: _all() follows pagination for payment methods, subscriptions, invoices and charges."""
    fake = world.fake
    fake.list_page_size = 2
    a_customer(world)
    saved = save_processor(USER, world.ports)
    cus = saved.processor.id or ""
    for n in range(4):
        fake.add_charge(cus, 100 + n, created=10 + n)
        fake.add_payment_method(f"pm_extra{n}", customer=cus)

    processor = world.ports.processor
    assert len(processor.list_transactions(cus)) == 5
    assert len(processor.list_payment_methods(cus)) == 5
    assert len(processor.list_subscriptions(cus)) == 1
