"""Racing writers on the real engine: a paid order settles once, an Idempotency-Key creates one order."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from tests.fakes.payments import RecordingPaymentGateway
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.domain import ordering, payments
from usercredits.domain.models import Offer, OrderStatus
from usercredits.errors import ConflictError
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.cycles import add_months
from usercredits.kernel.models import Caller

pytestmark = pytest.mark.dynamodb_local
THREADS = 16


@pytest.fixture
def catalog(dynamodb_local: str, wonderai_offers: list[Offer]) -> DynamoCatalogRepository:
    repository = DynamoCatalogRepository(cache_seconds=0)
    now = SystemClock().now()
    for offer in wonderai_offers:
        repository.put_offer(offer, now)
    return repository


def place(
    catalog: DynamoCatalogRepository, user_id: str, offer_id: str, key: str | None = None
) -> ordering.PlacedOrder:
    return ordering.place_order(
        ordering.PlaceOrder(offer_id, 1, idempotency_key=key),
        Caller(user_id=user_id),
        default_currency="usd",
        catalog=catalog,
        orders=DynamoOrderRepository(),
        payments=RecordingPaymentGateway(),
        clock=SystemClock(),
    )


def race[T](count: int, work: Callable[[int], T]) -> list[T | Exception]:
    def guarded(index: int) -> T | Exception:
        try:
            return work(index)
        except Exception as exc:  # noqa: BLE001 - the test counts outcomes
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(guarded, range(count)))


def test_racing_apply_order_paid_settles_exactly_once(catalog, user_id) -> None:
    # Given a pending bundle order
    order = place(catalog, user_id, "EnterpriseM").order
    # When 16 callers (webhook retries, confirm) report it paid at the same time
    outcomes = race(
        THREADS,
        lambda _: payments.apply_order_paid(
            user_id, order.order_id, orders=DynamoOrderRepository(), clock=SystemClock(), message="paid"
        ),
    )
    # Then all see the same paid order, and the windows and children were written once
    paid = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert len(paid) == len(outcomes), outcomes
    assert {order.status for order in paid} == {OrderStatus.PAID}
    assert len({order.expires for order in paid}) == 1
    windows = DynamoOrderRepository().group_states(user_id)
    assert {group: window.paid_orders for group, window in windows.items()} == {
        "Enterprise": 1,
        "AiTokens": 1,
        "VIP_BACK_LINK": 1,
    }
    assert {group: window.version for group, window in windows.items()} == {
        "Enterprise": 1,
        "AiTokens": 1,
        "VIP_BACK_LINK": 1,
    }
    page = DynamoOrderRepository().list_orders(user_id, status=None, limit=50, cursor=None)
    assert sorted(o.order_id for o in page.items) == sorted(
        [order.order_id, f"{order.order_id}-01", f"{order.order_id}-02"]
    )


def test_racing_requests_with_one_idempotency_key_create_one_order(catalog, user_id) -> None:
    outcomes = race(THREADS, lambda _: place(catalog, user_id, "Free", key="double-click"))
    orders = {outcome.order.order_id for outcome in outcomes if not isinstance(outcome, Exception)}
    errors = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    assert len(orders) == 1 and not errors, errors
    page = DynamoOrderRepository().list_orders(user_id, status=None, limit=50, cursor=None)
    roots = [o for o in page.items if o.parent_order_id is None]
    assert len(roots) == 1
    assert DynamoOrderRepository().group_states(user_id)["Free"].paid_orders == 1


def test_racing_appended_purchases_chain_windows_without_losing_one(catalog, user_id) -> None:
    # Given 4 pending monthly orders of an appendDate group, paid concurrently
    pending = [place(catalog, user_id, "StartupM").order for _ in range(4)]
    outcomes = race(
        len(pending),
        lambda i: payments.apply_order_paid(
            user_id, pending[i].order_id, orders=DynamoOrderRepository(), clock=SystemClock(), message="paid"
        ),
    )
    settled = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, ConflictError)]
    assert len(settled) + len(conflicts) == len(pending)
    # Then the paid windows follow each other with no overlap and no gap, and the group counts each once
    windows: list[tuple[datetime, datetime]] = []
    for order in settled:
        assert order.starts is not None and order.expires is not None  # a paid order has its window
        windows.append((order.starts, order.expires))
    windows.sort()
    for (_, previous_end), (next_start, _) in zip(windows, windows[1:], strict=False):
        assert next_start == previous_end
    for starts, expires in windows:
        assert expires == add_months(starts, 1)
    group = DynamoOrderRepository().group_states(user_id)["Startup"]
    assert group.paid_orders == len(settled)
    assert group.expires == windows[-1][1]
    assert group.starts is not None
    assert windows[0][0] - group.starts < timedelta(seconds=5)
