"""Bundles no bigger than one DynamoDB transaction can pay, refund or dispute (issue 16, item 1): the arithmetic, the
offer schema, and the refusals at placement, at a fresh payment and at payment time for offers and orders made before
the limit (in-memory fakes; the real transactions are measured in tests/dynamodb_local/test_bundle_limits.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository, refund_ports_of
from tests.fakes.payments import RecordingPaymentGateway
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain import catalog as catalog_rules
from usercredits.domain import ordering, payments
from usercredits.domain.models import (
    ACTIONS_PER_ORDER,
    ACTIONS_PER_PURCHASE,
    HOLD_CUT_ACTIONS,
    HOLD_CUTS_IN_PLACE,
    MAX_BUNDLE_ITEMS,
    CombinedOffer,
    Offer,
    OrderStatus,
)
from usercredits.errors import ConflictError
from usercredits.kernel.models import Caller, Cycle, Money
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS


def largest_transaction(items: int) -> int:
    """A full refund of a bundle of ``items`` (each in a group of its own) that cuts ``HOLD_CUTS_IN_PLACE`` holds."""
    return (1 + items) * ACTIONS_PER_PURCHASE + ACTIONS_PER_ORDER + HOLD_CUT_ACTIONS


def test_the_maximum_is_the_largest_bundle_whose_largest_transaction_fits() -> None:
    assert (ACTIONS_PER_PURCHASE, ACTIONS_PER_ORDER, HOLD_CUTS_IN_PLACE, HOLD_CUT_ACTIONS) == (4, 3, 6, 12)
    assert MAX_BUNDLE_ITEMS == 20
    assert largest_transaction(MAX_BUNDLE_ITEMS) == 99 <= MAX_TRANSACTION_ACTIONS
    assert largest_transaction(MAX_BUNDLE_ITEMS + 1) > MAX_TRANSACTION_ACTIONS


def bundle(offer_id: str, items: int, *, price: int = 0, validate: bool = True) -> Offer:
    fields = {
        "offer_id": offer_id,
        "name": offer_id,
        "offer_group": f"{offer_id}-root",
        "prices": [Money(amount=price, currency="usd")],
        "tokens": 10,
        "cycle": Cycle.MONTHLY,
        "combined_items": [CombinedOffer(offer_id="Item", offer_group=f"{offer_id}-{i}") for i in range(items)],
    }
    return Offer(**fields) if validate else Offer.model_construct(**fields)  # type: ignore[arg-type]


ITEM = Offer(
    offer_id="Item", name="Item", offer_group="Item", prices=[Money(amount=0, currency="usd")], tokens=5, cycle="once"
)


def test_the_offer_schema_takes_the_maximum_and_refuses_one_more() -> None:
    assert len(bundle("Max", MAX_BUNDLE_ITEMS).combined_items) == MAX_BUNDLE_ITEMS
    with pytest.raises(ValidationError) as refused:
        bundle("TooBig", MAX_BUNDLE_ITEMS + 1)
    assert [error["loc"] for error in refused.value.errors()] == [("combined_items",)]
    schema = Offer.model_json_schema(by_alias=True)["properties"]["combinedItems"]
    assert schema["maxItems"] == MAX_BUNDLE_ITEMS
    assert f"At most {MAX_BUNDLE_ITEMS}" in schema["description"]


@pytest.fixture
def shop() -> tuple[InMemoryCatalogRepository, InMemoryOrderRepository, RecordingPaymentGateway, FixedClock]:
    # Offers stored before the limit are read back unvalidated (model_construct), as the DynamoDB repository does.
    offers = [ITEM, bundle("OldFree", 40, validate=False), bundle("OldPriced", 21, price=500, validate=False)]
    return InMemoryCatalogRepository(offers), InMemoryOrderRepository(), RecordingPaymentGateway(), FixedClock()


@pytest.mark.parametrize("offer_id", ["OldFree", "OldPriced"])
def test_an_order_of_a_stored_offer_past_the_maximum_is_refused_before_any_payment(shop, offer_id: str) -> None:
    catalog, orders, gateway, clock = shop
    with pytest.raises(ConflictError, match=f"bundles .* items, more than the {MAX_BUNDLE_ITEMS}"):
        ordering.place_order(
            ordering.PlaceOrder(offer_id, idempotency_key="k"),
            Caller(user_id="alice"),
            default_currency="usd",
            catalog=catalog,
            orders=orders,
            payments=gateway,
            clock=clock,
        )
    assert (gateway.requests, len(orders), orders.outbox) == ([], 0, [])


def test_a_stored_offer_past_the_maximum_still_lists(shop) -> None:
    catalog = shop[0]
    views = catalog_rules.visible_offers(catalog.list_offers(), paid_groups=[], currency="usd")
    assert {view.offer_id: len(view.combined_items) for view in views} == {"Item": 0, "OldFree": 40, "OldPriced": 21}


def legacy_pending_order(shop):
    """A priced order of a 21-item bundle placed before the limit (pending, with an intent)."""
    catalog, orders, gateway, clock = shop
    catalog.put_offer(bundle("OldPriced", MAX_BUNDLE_ITEMS, price=500), clock.now())  # as it was orderable then
    placed = ordering.place_order(
        ordering.PlaceOrder("OldPriced"),
        Caller(user_id="alice"),
        default_currency="usd",
        catalog=catalog,
        orders=orders,
        payments=gateway,
        clock=clock,
    ).order
    line = placed.combined_items[0].model_copy(update={"offer_group": "OldPriced-extra"})
    legacy = placed.model_copy(update={"combined_items": [*placed.combined_items, line]})
    orders.orders[("alice", placed.order_id)] = legacy
    return legacy


def test_no_fresh_payment_is_asked_for_an_order_past_the_maximum(shop) -> None:
    catalog, orders, gateway, clock = shop
    legacy = legacy_pending_order(shop)
    asked = len(gateway.requests)
    with pytest.raises(ConflictError, match="it cannot be paid"):
        ordering.request_payment(
            legacy.order_id, Caller(user_id="alice"), idempotency_key=None, orders=orders, payments=gateway, clock=clock
        )
    assert len(gateway.requests) == asked


def test_a_payment_of_an_order_past_the_maximum_is_refunded_not_granted(shop) -> None:
    catalog, orders, gateway, clock = shop
    legacy = legacy_pending_order(shop)
    intent = {
        "id": legacy.payment_intent_id,
        "status": "succeeded",
        "amount": 500,
        "amount_received": 500,
        "currency": "usd",
        "metadata": {"orderId": legacy.order_id, "userId": "alice"},
    }

    def deliver() -> str:
        return payments.apply_payment_event(
            "evt_paid",
            "payment_intent.succeeded",
            intent_state(intent),
            orders=orders,
            payments=gateway,
            clock=clock,
            refunds=refund_ports_of(orders, clock),
        )

    outcome = deliver()
    assert outcome == "refunded"
    stored = orders.get_order("alice", legacy.order_id)
    assert stored is not None and stored.status is OrderStatus.INCONSISTENT
    assert stored.other_intents[legacy.payment_intent_id or ""].duplicate_refund_id
    assert [event.kind for event in orders.outbox] == ["PaymentFailed", "PaymentRefunded"]
    assert "its payment goes back" in str(orders.outbox[0].detail["reason"])
    assert orders.windows == {}  # nothing granted
    # A redelivery changes nothing.
    again = deliver()
    assert again == "unchanged" and len(orders.outbox) == 2
