"""Orders paid through Stripe: the real SDK against the fake Stripe server, the real repositories on moto."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devtools.catalog import load_catalog
from devtools.stripe_sim.payment_intents import FakeStripe

from tests.conftest import DEMO_CATALOG
from tests.helpers.present import present
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain import ordering, payments
from usercredits.domain.models import OrderStatus
from usercredits.domain.ports import RefundPorts
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Caller

ALICE = Caller(user_id="alice")


@pytest.fixture
def stripe_env(moto_tables: None) -> Iterator[tuple[FakeStripe, StripeGateway, DynamoOrderRepository]]:
    load_catalog(DEMO_CATALOG)
    with FakeStripe(api_key="sk_test_flow") as fake:
        yield fake, StripeGateway("sk_test_flow", api_base=fake.url, max_network_retries=0), DynamoOrderRepository()


def place(gateway: StripeGateway, orders: DynamoOrderRepository, offer_id: str = "EnterpriseM", **kw):
    return ordering.place_order(
        ordering.PlaceOrder(offer_id, **kw),
        ALICE,
        default_currency="usd",
        catalog=DynamoCatalogRepository(cache_seconds=0),
        orders=orders,
        payments=gateway,
        clock=SystemClock(),
    )


def confirm(order_id: str, gateway: StripeGateway, orders: DynamoOrderRepository):
    ports = RefundPorts(
        orders=orders,
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(cache_seconds=0),
        reversals=DynamoReversalRepository(),
        clock=SystemClock(),
    )
    return payments.confirm_order(order_id, ALICE, orders=orders, payments=gateway, clock=SystemClock(), refunds=ports)


def test_priced_order_creates_the_intent_stripe_expects(stripe_env) -> None:
    # Seed T12: EnterpriseM -> amount 9900 (integer minor units; the seed sent total x 100 unrounded)
    fake, gateway, orders = stripe_env
    placed = place(gateway, orders)
    form = fake.posts()[-1].form
    assert (form["amount"], form["currency"]) == ("9900", "usd")
    assert form["metadata"] == {"orderId": placed.order.order_id, "userId": "alice"}
    assert fake.posts()[-1].idempotency_key == f"order-{placed.order.order_id}-attempt-1"
    assert placed.payment.provider == "stripe" and placed.payment.client_secret


def test_confirm_maps_each_intent_status(stripe_env) -> None:
    # Seed T26: succeeded -> paid; requires_payment_method -> refused; requires_action -> error
    fake, gateway, orders = stripe_env
    refused = place(gateway, orders).order
    fake.set_intent(
        refused.payment_intent_id,
        status="requires_payment_method",
        last_payment_error={"message": "Declined", "type": "card_error", "code": "card_declined"},
    )
    assert confirm(refused.order_id, gateway, orders).status is OrderStatus.REFUSED
    action = place(gateway, orders).order
    fake.set_intent(action.payment_intent_id, status="requires_action", next_action={"type": "redirect_to_url"})
    assert confirm(action.order_id, gateway, orders).status is OrderStatus.ERROR
    paid = place(gateway, orders).order
    fake.set_intent(paid.payment_intent_id, status="succeeded", amount_received=9900)
    assert confirm(paid.order_id, gateway, orders).status is OrderStatus.PAID
    assert confirm(paid.order_id, gateway, orders).status is OrderStatus.PAID  # a second confirm grants nothing more
    assert orders.group_states("alice")["Enterprise"].paid_orders == 1


def test_confirm_with_a_mismatching_amount_is_inconsistent(stripe_env) -> None:
    # Seed T18, corrected (docs/rules.md#payment-outcomes): the order becomes inconsistent and nothing is granted
    fake, gateway, orders = stripe_env
    order = place(gateway, orders).order
    fake.set_intent(order.payment_intent_id, status="succeeded", amount_received=9901)
    assert confirm(order.order_id, gateway, orders).status is OrderStatus.INCONSISTENT
    assert "Enterprise" not in orders.group_states("alice")


def test_zero_decimal_currency_is_sent_as_is(stripe_env) -> None:
    fake, gateway, orders = stripe_env
    catalog = DynamoCatalogRepository(cache_seconds=0)
    offer = catalog.get_offer("_20tokens")
    assert offer is not None
    catalog.put_offer(
        offer.model_copy(
            update={
                "prices": [
                    *offer.prices,
                    offer.prices[0].model_copy(update={"amount": 750, "currency": "jpy"}),
                ]
            }
        ),
        SystemClock().now(),
    )
    place(gateway, orders, "_20tokens", quantity=2, currency="jpy")
    assert (fake.posts()[-1].form["amount"], fake.posts()[-1].form["currency"]) == ("1500", "jpy")


def test_a_fresh_intent_cancels_the_abandoned_one(stripe_env) -> None:
    fake, gateway, orders = stripe_env
    order = place(gateway, orders).order
    again = ordering.request_payment(
        order.order_id, ALICE, idempotency_key=None, orders=orders, payments=gateway, clock=SystemClock()
    )
    assert present(again.payment).payment_intent_id != order.payment_intent_id
    assert fake.intents[order.payment_intent_id]["status"] == "canceled"
