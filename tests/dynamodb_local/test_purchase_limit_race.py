"""Racing orders of an offer with a per-user limit on the real engine: the counter's condition, in each order's own
transaction, lets exactly ``perUserLimit`` of them through, whatever the pre-check read."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.fakes.payments import RecordingPaymentGateway
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.domain import ordering
from usercredits.domain.models import Offer, OrderStatus
from usercredits.errors import ConflictError
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Caller, Cycle, Money

pytestmark = pytest.mark.dynamodb_local
THREADS = 20
LIMIT = 2


def limited_offer(offer_id: str, amount: int) -> Offer:
    return Offer(
        offer_id=offer_id,
        name=offer_id,
        offer_group=offer_id,
        prices=[Money(amount=amount, currency="usd")],
        tokens=5,
        cycle=Cycle.MONTHLY,
        per_user_limit=LIMIT,
    )


@pytest.fixture
def catalog(dynamodb_local: str) -> DynamoCatalogRepository:
    repository = DynamoCatalogRepository(cache_seconds=0)
    for offer in (limited_offer("GiftTwice", 0), limited_offer("ProTwice", 700)):
        repository.put_offer(offer, SystemClock().now())
    return repository


def race(count: int, work: Callable[[int], ordering.PlacedOrder]) -> list[ordering.PlacedOrder | Exception]:
    def guarded(index: int) -> ordering.PlacedOrder | Exception:
        try:
            return work(index)
        except Exception as exc:  # noqa: BLE001 - the test counts outcomes
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(guarded, range(count)))


def place(catalog: DynamoCatalogRepository, user_id: str, offer_id: str, key: str) -> ordering.PlacedOrder:
    return ordering.place_order(
        ordering.PlaceOrder(offer_id, 1, idempotency_key=key),
        Caller(user_id=user_id),
        default_currency="usd",
        catalog=catalog,
        orders=DynamoOrderRepository(),
        payments=RecordingPaymentGateway(),
        clock=SystemClock(),
    )


@pytest.mark.parametrize(("offer_id", "status"), [("GiftTwice", OrderStatus.PAID), ("ProTwice", OrderStatus.PENDING)])
def test_racing_orders_of_a_limited_offer_let_exactly_the_limit_through(catalog, user_id, offer_id, status) -> None:
    # When 20 requests (each its own Idempotency-Key) order an offer with perUserLimit 2 for one user at once
    outcomes = race(THREADS, lambda index: place(catalog, user_id, offer_id, key=f"click-{index}"))
    # Then exactly 2 are placed and the 18 others are the limit's 409
    placed = [outcome for outcome in outcomes if isinstance(outcome, ordering.PlacedOrder)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, ConflictError)]
    assert len(placed) == LIMIT, outcomes
    assert len(refused) == THREADS - LIMIT, outcomes
    assert {str(error) for error in refused} == {
        f"purchase limit reached: at most {LIMIT} orders of offer {offer_id!r} per user"
    }
    assert {outcome.order.status for outcome in placed} == {status}
    # And the table holds exactly those orders, each with its slot, and the counter says 2
    repository = DynamoOrderRepository()
    stored = repository.list_orders(user_id, status=None, limit=50, cursor=None).items
    assert sorted(order.order_id for order in stored) == sorted(outcome.order.order_id for outcome in placed)
    assert all(order.limited and order.limit_slot for order in stored)
    assert repository.limit_slots(user_id, offer_id) == LIMIT
    if status is OrderStatus.PAID:  # granted twice, not more
        assert repository.group_states(user_id)[offer_id].paid_orders == LIMIT
