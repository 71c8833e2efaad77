"""Payment outcomes: verified Stripe events (or their local simulation) moving orders along their state machine.

Orders only move forward: ``pending`` → ``paid`` | ``refused`` | ``error`` | ``canceled`` | ``inconsistent``, with a
success after a failure still paying (webhooks arrive in any order). Each change is one conditional write that also
records the Stripe event id, so a redelivered event changes nothing. Refunds and disputes come next (issue 4).
"""

from __future__ import annotations

from typing import Any

from usercredits.domain.models import Order, OrderStatus
from usercredits.domain.ordering import PAYABLE, apply_order_paid
from usercredits.domain.ports import Clock, IdempotencyRecord, OrderRepository
from usercredits.errors import ConflictError

#: Where a failure-like outcome may come from (a paid order is never refused afterwards, and so on).
_FROM = {
    OrderStatus.REFUSED: frozenset({OrderStatus.PENDING, OrderStatus.ERROR}),
    OrderStatus.ERROR: frozenset({OrderStatus.PENDING}),
    OrderStatus.CANCELED: PAYABLE,
    OrderStatus.INCONSISTENT: PAYABLE,
}
HANDLED = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    }
)


def apply_payment_event(event: dict[str, Any], *, orders: OrderRepository, clock: Clock) -> str:
    """Apply one verified payment event to its order; returns what happened (for logs and metrics).

    The order is found from the intent's ``metadata`` (``orderId``/``userId``, set when the intent was created) or,
    failing that, through the intent id. Unknown event types and intents of no order are acknowledged and ignored.
    """
    kind = str(event.get("type", ""))
    if kind not in HANDLED:
        return "ignored"
    intent: dict[str, Any] = (event.get("data") or {}).get("object") or {}
    found = _order_of(intent, orders)
    if found is None:
        return "unknown-order"
    order = orders.get_order(*found)
    if order is None:
        return "unknown-order"
    record = IdempotencyRecord.of("stripe-event", str(event.get("id")), {"type": kind}, order.order_id)
    if kind == "payment_intent.succeeded":
        return _succeeded(order, intent, record, orders=orders, clock=clock)
    status, message = _failure(kind, intent)
    return _move(order, status, message, record, orders=orders, clock=clock)


def _failure(kind: str, intent: dict[str, Any]) -> tuple[OrderStatus, str]:
    """The status and history message of a failure-like intent event."""
    if kind == "payment_intent.payment_failed":
        error = intent.get("last_payment_error") or {}
        message = f"{error.get('message', 'Payment failed')} - {error.get('type', '?')}: {error.get('code', '?')}"
        return OrderStatus.REFUSED, message
    if kind == "payment_intent.requires_action":
        action = (intent.get("next_action") or {}).get("type", "unknown")
        return OrderStatus.ERROR, f"Payment requires an action we don't handle: {action}"
    return OrderStatus.CANCELED, "Payment canceled"


def _order_of(intent: dict[str, Any], orders: OrderRepository) -> tuple[str, str] | None:
    metadata = intent.get("metadata") or {}
    if metadata.get("orderId") and metadata.get("userId"):
        return str(metadata["userId"]), str(metadata["orderId"])
    intent_id = intent.get("id")
    return orders.find_by_payment_intent(str(intent_id)) if intent_id else None


def _succeeded(
    order: Order, intent: dict[str, Any], record: IdempotencyRecord, *, orders: OrderRepository, clock: Clock
) -> str:
    if order.status is OrderStatus.PAID:
        return "unchanged"  # a redelivery, or the confirm route got there first
    received = int(intent.get("amount_received") or 0)
    currency = str(intent.get("currency", "")).lower()
    if received != order.total.amount or currency != order.total.currency:
        # Seed 2.11 / 7.1-5: never credit a payment that does not match; the order now says so.
        message = (
            f"Payment amount or currency not corresponding: received {received} {currency}, "
            f"expected {order.total.amount} {order.total.currency}"
        )
        return _move(order, OrderStatus.INCONSISTENT, message, record, orders=orders, clock=clock)
    try:
        paid = apply_order_paid(
            order.user_id,
            order.order_id,
            orders=orders,
            clock=clock,
            message=f"Payment succeeded ({intent.get('id')})",
            idempotency=record,
        )
    except ConflictError:
        return "not-payable"  # canceled, inconsistent...: acknowledged, nothing granted
    return "paid" if paid.status is OrderStatus.PAID else "unchanged"


def _move(
    order: Order,
    status: OrderStatus,
    message: str,
    record: IdempotencyRecord,
    *,
    orders: OrderRepository,
    clock: Clock,
) -> str:
    for _ in range(3):
        if order.status not in _FROM[status]:
            return "unchanged"  # already further along (or a redelivery): forward only
        if orders.change_status(order, status, message, clock.now(), record):
            return status.value
        latest = orders.get_order(order.user_id, order.order_id)
        if latest is None or latest.updated_at == order.updated_at:
            return "unchanged"  # the event was recorded already
        order = latest
    return "unchanged"
