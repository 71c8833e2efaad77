"""Reading a caller's orders: one order (another user's id is 404), a page of them, and whether a paid order of an
offer is in force. Kept apart from placing orders so the functions that only read or pay an order (the webhook) do not
load the offer rules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from usercredits.domain.models import Order, OrderStatus
from usercredits.domain.ports import OrderRepository
from usercredits.errors import NotFoundError
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Caller, Page


@dataclass(frozen=True)
class Subscription:
    """Whether the caller holds a paid order of an offer in force, and which."""

    subscribed: bool
    order_id: str | None
    expires: datetime | None


def get_order(order_id: str, caller: Caller, *, orders: OrderRepository) -> Order:
    """One of the caller's orders; another user's order id is 404."""
    order = orders.get_order(caller.user_id, order_id)
    if order is None:
        raise NotFoundError(f"order {order_id!r} not found")
    return order


def list_orders(
    caller: Caller, *, status: OrderStatus | None, limit: int, cursor: str | None, orders: OrderRepository
) -> Page[Order]:
    """The caller's orders, newest first."""
    return orders.list_orders(caller.user_id, status=status, limit=limit, cursor=cursor)


def get_subscription(offer_id: str, caller: Caller, *, orders: OrderRepository, clock: Clock) -> Subscription:
    """Whether the caller holds a paid, unexpired order of ``offer_id`` whose money did not go back in full (the
    longest-lasting one is reported)."""
    now = clock.now()
    active = [
        order
        for order in orders.find_orders(caller.user_id, offer_id=offer_id, status=OrderStatus.PAID)
        if (order.expires is None or order.expires > now) and not order.withdrawn
    ]
    if not active:
        return Subscription(subscribed=False, order_id=None, expires=None)
    best = max(active, key=lambda order: (order.expires is None, order.expires or now))
    return Subscription(subscribed=True, order_id=best.order_id, expires=best.expires)
