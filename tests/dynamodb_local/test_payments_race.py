"""A webhook racing the confirm route (and its own redeliveries) on the real engine grants exactly once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from devtools.stripe_sim.payment_intents import FakeStripe

from tests.dynamodb_local.conftest import refund_ports
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain import balances, ordering, payments
from usercredits.domain.models import Offer, OrderStatus
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Caller

pytestmark = pytest.mark.dynamodb_local


def test_webhook_and_confirm_racing_grant_once(dynamodb_local: str, user_id: str, wonderai_offers: list[Offer]) -> None:
    catalog = DynamoCatalogRepository(cache_seconds=0)
    for offer in wonderai_offers:
        catalog.put_offer(offer, SystemClock().now())
    with FakeStripe() as fake:
        gateway = StripeGateway("sk_test_race", api_base=fake.url, max_network_retries=0)
        order = ordering.place_order(
            ordering.PlaceOrder("EnterpriseM"),
            Caller(user_id=user_id),
            default_currency="usd",
            catalog=catalog,
            orders=DynamoOrderRepository(),
            payments=gateway,
            clock=SystemClock(),
        ).order
        intent = fake.set_intent(order.payment_intent_id or "", status="succeeded", amount_received=9900)

        def webhook(index: int) -> str:
            return payments.apply_payment_event(
                f"evt_{index % 3}",
                "payment_intent.succeeded",
                intent_state(intent),
                orders=DynamoOrderRepository(),
                payments=gateway,
                clock=SystemClock(),
                refunds=refund_ports(),
            )

        def confirm(_: int) -> OrderStatus:
            return payments.confirm_order(
                order.order_id,
                Caller(user_id=user_id),
                orders=DynamoOrderRepository(),
                payments=gateway,
                clock=SystemClock(),
                refunds=refund_ports(),
            ).status

        with ThreadPoolExecutor(max_workers=16) as pool:
            hooks = [pool.submit(webhook, i) for i in range(12)]
            confirms = [pool.submit(confirm, i) for i in range(4)]
            outcomes = [f.result() for f in hooks]
            assert set(outcomes) <= {"paid", "unchanged"}
            statuses = [f.result() for f in confirms]

    assert set(statuses) == {OrderStatus.PAID}
    credits = {
        g.offer_group: g
        for g in balances.list_credits(user_id, credits=DynamoCreditsRepository(), clock=SystemClock(), catalog=catalog)
    }
    assert (credits["Enterprise"].balance, credits["AiTokens"].balance) == (150, 300)
    ledger = balances.list_ledger(
        user_id, offer_group="Enterprise", limit=50, cursor=None, credits=DynamoCreditsRepository()
    )
    assert [e.kind.value for e in ledger.items] == ["grant"]
