"""Acceptance scenarios of the original library (Mxx labels; rules in docs/rules.md#subscriptions-half) that need the
processor path and were not pinned down elsewhere: M13 (what stands in for the seed's Null/AbstractProcessor), M41 (an
update's paid-through date), M43 (instrument fields of loaded transactions) and M46 (the end-to-end coupon scenario,
with the later discount that has not been billed yet).

Built like test_processor_sync.py: in-memory repositories, the real Stripe adapter against the fake Billing API
(devtools/stripe_sim, on a free local port) and again against the local provider's Stripe simulation (what `make run`
uses), and the customers function on moto for the route-level M13.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext

from tests.conftest import http_event
from tests.helpers.subscription_builders import amount_discount
from tests.helpers.subscription_sync import STRIPE_BACKENDS, USER, a_customer, open_sync_world, usd
from tests.helpers.subscription_sync import SyncWorld as World
from usercredits.settings import get_customers_settings
from usercredits.subscriptions.discounts import add_discounts
from usercredits.subscriptions.instruments import CardDetails, PayPalDetails
from usercredits.subscriptions.loading import load_processor
from usercredits.subscriptions.models import (
    Customer,
    DiscountKind,
    ProcessorState,
    SubscriptionStatus,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.saving import save_processor
from usercredits.subscriptions.subscribing import cancel_subscription
from usercredits.subscriptions.tracking import track

DAY = 86400


@pytest.fixture(params=STRIPE_BACKENDS)
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    """The fake Billing API, then the local provider's Stripe simulation, and in-memory repositories
    (``tests/helpers/subscription_sync.py``): each scenario runs against both."""
    with open_sync_world(request.param) as opened:
        yield opened


def store(world: World, customer: Customer) -> None:
    """Store a locally edited customer (as a use case would have saved it)."""
    world.customers.customers[USER] = customer


def move_stripe_subscription_back(world: World, subscription_id: str, seconds: int) -> None:
    """As if the Stripe subscription (and its discounts) had been created ``seconds`` earlier."""
    stripe_sub = world.fake.subscriptions[subscription_id]
    stripe_sub["created"] -= seconds
    stripe_sub["start_date"] -= seconds
    for item in stripe_sub["items"]["data"]:
        item["current_period_start"] -= seconds
        item["current_period_end"] -= seconds
    for discount in stripe_sub["discounts"]:
        discount["start"] -= seconds
        if discount.get("end"):
            discount["end"] -= seconds


# ---- M13: NullProcessor / AbstractProcessor --------------------------------------------------------------------------


def test_m13_the_local_provider_refuses_every_processor_operation(
    moto_tables: None, lambda_context: LambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (There is no NullProcessor or AbstractProcessor: the nearest thing is the local payment provider, which has no
    # subscription processor. Instead of the seed's silent no-op or "<Feature> is not implemented", every processor
    # operation is a 409 naming the local provider.)
    from customers import handler

    # Given the customers function with the local payment provider
    monkeypatch.setenv("PAYMENT_PROVIDER", "local")
    get_customers_settings.cache_clear()
    handler.dependencies.cache_clear()
    handler.processor.cache_clear()

    def call(base: str, **overrides: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(http_event(f"customers/{base}.json", **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None

    try:
        assert call("get_customer")[0] == HTTPStatus.OK
        # When each processor operation is asked for: save, load, refund and void (cancel goes through save)
        answers = {
            "sync": call("sync"),
            "reload": call("reload"),
            "refund_admin": call("refund_admin", admin=True),
            "void_admin": call("void_admin", admin=True),
        }
        # Then each is refused with a conflict naming the local provider
        for name, (status, body) in answers.items():
            assert status == HTTPStatus.CONFLICT, (name, body)
            assert "local payment provider" in body["message"], (name, body)
    finally:
        handler.dependencies.cache_clear()
        handler.processor.cache_clear()
        get_customers_settings.cache_clear()


# ---- M41: update ---------------------------------------------------------------------------------------------------


def test_m41_an_update_takes_the_paid_through_date_from_stripes_answer(world: World) -> None:
    # Given a synced subscription that Stripe has since renewed (its period moved on by 30 days)
    a_customer(world)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    stripe_item = world.fake.subscriptions[sub.processor.id or ""]["items"]["data"][0]
    stripe_item["current_period_start"] = stripe_item["current_period_end"]
    stripe_item["current_period_end"] += 30 * DAY
    renewed_end = datetime.fromtimestamp(stripe_item["current_period_end"], UTC)
    assert sub.paid_through_date != renewed_end
    # When a local change (cancel at period end) is synced as an update
    changed, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now(), at_period_end=True)
    store(world, changed)
    result = save_processor(USER, world.ports)
    # Then the update was one call, and the paid-through date is the one Stripe answered
    assert len(world.fake.calls("POST", f"/v1/subscriptions/{sub.processor.id}")) == 1
    updated = result.subscriptions[0]
    assert (updated.paid_through_date, updated.billing_period_end_date) == (renewed_end, renewed_end)
    assert updated.processor.state is ProcessorState.SAVED


# ---- M43: load -------------------------------------------------------------------------------------------------------


def test_m43_loaded_transactions_are_newest_first_with_their_instrument_fields(world: World) -> None:
    # Given a card whose bin Stripe reports, charged by the first invoice of a synced subscription
    world.fake.payment_methods["pm_card_visa"]["card"]["iin"] = "424242"
    a_customer(world)
    saved = save_processor(USER, world.ports)
    customer_id = saved.processor.id or ""
    # And a later one-off charge on a PayPal account made the default at Stripe
    paypal = world.fake.add_payment_method("pm_paypal_1", kind="paypal", customer=customer_id)
    world.fake.customers[customer_id]["invoice_settings"]["default_payment_method"] = paypal
    world.fake.add_charge(customer_id, 500, created=int(time.time()) + 60)
    # When the customer is loaded (twice)
    loaded = load_processor(USER, world.ports)
    again = load_processor(USER, world.ports)
    # Then the transactions are newest first, with the PayPal payer id and the card's masked number
    assert [(t.kind, t.amount) for t in loaded.transactions] == [
        (TransactionKind.SALE, usd(500)),
        (TransactionKind.SALE, usd(1490)),
    ]
    paypal_sale, card_sale = loaded.transactions
    assert isinstance(paypal_sale.instrument, PayPalDetails) and paypal_sale.instrument.payer_id == "PAYER1"
    assert isinstance(card_sale.instrument, CardDetails)
    assert card_sale.instrument.masked_number == "424242******4242"
    assert card_sale.subscription_id == saved.subscriptions[0].subscription_id
    # And loading again changes nothing (idempotent)
    assert again.model_dump(exclude={"version", "updated_at"}) == loaded.model_dump(exclude={"version", "updated_at"})


# ---- M46: end to end ------------------------------------------------------------------------------------------------


def test_m46_coupon_subscription_end_to_end(world: World) -> None:
    # Given Pesho with a 10% coupon (2 cycles, at most 2 uses) on a 14.90 plan, nothing sent yet
    a_customer(world, coupon=True)
    # When the customer is synced
    saved = save_processor(USER, world.ports)
    # Then every item is saved, and the payment method's token (the seed's nonce) is consumed
    [address] = saved.addresses
    [method] = saved.payment_methods
    [sub] = saved.subscriptions
    assert [item.processor.state for item in (saved, address, method, sub)] == [ProcessorState.SAVED] * 4
    assert method.token is None
    # And the discount is 1.49, at the processor (a Stripe discount id instead of the seed's type name:
    # docs/rules.md#discounts), applied to the first cycle
    [discount] = sub.discounts
    assert (discount.kind, discount.amount, discount.number_of_billing_cycles) == (DiscountKind.COUPON, usd(149), 2)
    assert discount.processor.state is ProcessorState.SAVED
    assert (discount.processor.id or "").startswith("di_")
    assert discount.current_billing_cycle == 1
    # And the coupon's use is counted once (the seed counted 2 after a single redemption:
    # docs/rules.md#coupon-redemption)
    coupon = world.coupons.get("TEN")
    assert coupon is not None and coupon.used_count == 1
    # And the first transaction is 13.41 (14.90 - 1.49) for this subscription, with the discount and the billing and
    # customer snapshots (Stripe's succeeded charge is "settled", 5.13, where Braintree said submitted_for_settlement)
    [sale] = saved.transactions
    assert (sale.amount, sale.status, sale.subscription_id) == (
        usd(1341),
        TransactionStatus.SETTLED,
        sub.subscription_id,
    )
    assert [(d.amount, d.name) for d in sale.discounts] == [(usd(149), "Ten percent")]
    assert sale.billing is not None
    assert (sale.billing.name, sale.billing.country, sale.billing.postal_code) == ("Pesho Peshev", "BG", "1000")
    assert sale.customer is not None
    assert (sale.customer.name, sale.customer.email) == ("Pesho Peshev", "seer@example.com")
    # When it is canceled and synced
    canceled, _ = cancel_subscription(saved, sub.subscription_id, world.clock.now())
    store(world, canceled)
    final = save_processor(USER, world.ports).subscriptions[0]
    # Then it is canceled at Stripe, with its status history newest first
    assert (final.status, final.processor.state) == (SubscriptionStatus.CANCELED, ProcessorState.SAVED)
    history = final.status_history
    assert [event.status for event in history] == [SubscriptionStatus.CANCELED, SubscriptionStatus.ACTIVE]
    assert [event.timestamp for event in history] == sorted((event.timestamp for event in history), reverse=True)


def synced_then_bigger_discount(world: World) -> tuple[Customer, str]:
    """M46's second step: the coupon subscription synced five days ago, then a 2.00 amount discount added and synced
    (it replaces the 1.49 coupon discount: the largest wins). Returns the customer and the Stripe subscription id."""
    a_customer(world, coupon=True)
    saved = save_processor(USER, world.ports)
    sub = saved.subscriptions[0]
    stripe_id = sub.processor.id or ""
    move_stripe_subscription_back(world, stripe_id, 5 * DAY)
    bigger = amount_discount(sub, "DiscountAmount", usd(200), world.clock.now())
    store(world, saved.model_copy(update={"subscriptions": [track(add_discounts(sub, [bigger]))]}))
    return save_processor(USER, world.ports), stripe_id


def test_m46_a_discount_added_after_the_first_charge_has_not_been_billed_yet(world: World) -> None:
    # Given the coupon subscription synced and charged five days ago
    # When a 2.00 amount discount is added and synced
    again, stripe_id = synced_then_bigger_discount(world)
    # Then it replaced the coupon discount, at Stripe too
    [only] = again.subscriptions[0].discounts
    assert (only.kind, only.amount, only.processor.state) == (DiscountKind.AMOUNT, usd(200), ProcessorState.SAVED)
    assert len(world.fake.subscriptions[stripe_id]["discounts"]) == 1
    # And no invoice has applied it yet: its current billing cycle is 0 (the seed: currentBillingCycle 0), so its one
    # cycle is still to come
    assert only.current_billing_cycle == 0
    assert only.cycles_left == 1


def test_m46_a_discount_added_later_is_still_applied_after_the_next_update(world: World) -> None:
    # Given the 2.00 amount discount added after the first charge and synced (not billed yet)
    again, stripe_id = synced_then_bigger_discount(world)
    # When another change of the subscription is synced (cancel at period end)
    sub = again.subscriptions[0]
    later, _ = cancel_subscription(again, sub.subscription_id, world.clock.now(), at_period_end=True)
    store(world, later)
    result = save_processor(USER, world.ports)
    # Then the discount is still on the subscription, locally and at Stripe: it has not been used yet
    assert [(d.kind, d.amount) for d in result.subscriptions[0].discounts] == [(DiscountKind.AMOUNT, usd(200))]
    assert len(world.fake.subscriptions[stripe_id]["discounts"]) == 1


def test_m46_the_date_helper_moves_the_stripe_subscription_back(world: World) -> None:
    # Given a synced subscription
    a_customer(world, coupon=True)
    saved = save_processor(USER, world.ports)
    stripe_id = saved.subscriptions[0].processor.id or ""
    before = dict(world.fake.subscriptions[stripe_id]["items"]["data"][0])
    # When the helper used by the M46 tests moves it five days back
    move_stripe_subscription_back(world, stripe_id, 5 * DAY)
    # Then its period and its discount start five days earlier, and a reload still maps the coupon to cycle 1
    after = world.fake.subscriptions[stripe_id]["items"]["data"][0]
    assert after["current_period_start"] == before["current_period_start"] - 5 * DAY
    reloaded = load_processor(USER, world.ports).subscriptions[0]
    assert reloaded.billing_period_start_date == datetime.fromtimestamp(after["current_period_start"], UTC)
    assert [d.current_billing_cycle for d in reloaded.discounts] == [1]
    assert reloaded.paid_through_date is not None
    assert reloaded.paid_through_date - reloaded.billing_period_start_date == timedelta(days=30)
