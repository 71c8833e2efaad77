"""Payment outcomes: what the provider says about an intent (a verified webhook event, or a confirm that reads it
back) moving its order along the order state machine.

Orders only move forward: ``pending`` → ``paid`` | ``refused`` | ``error`` | ``canceled`` | ``inconsistent``, and a
success after a failure still pays (webhooks arrive in any order). Each change is one conditional write that also
records what caused it (the Stripe event id), so a redelivered event changes nothing; a webhook racing the confirm
route grants once because both end in ``apply_order_paid``.
"""

from __future__ import annotations

from usercredits.domain.models import Caller, DomainEvent, IntentState, Order, OrderStatus
from usercredits.domain.ordering import PAYABLE, apply_order_paid, get_order
from usercredits.domain.ports import Clock, IdempotencyRecord, OrderRepository, PaymentGateway
from usercredits.domain.refunds import RefundPorts, order_for_intent, settle_returned
from usercredits.errors import ConflictError

#: Where a failure-like outcome may come from (a paid order is never refused afterwards, and so on).
_FROM = {
    OrderStatus.REFUSED: frozenset({OrderStatus.PENDING, OrderStatus.ERROR}),
    OrderStatus.ERROR: frozenset({OrderStatus.PENDING}),
    OrderStatus.CANCELED: PAYABLE,
    OrderStatus.INCONSISTENT: PAYABLE,
}
#: Outcomes published as ``PaymentFailed`` (a canceled intent is the buyer's or our choice, not a failure).
_FAILED = frozenset({OrderStatus.REFUSED, OrderStatus.ERROR, OrderStatus.INCONSISTENT})
#: The webhook event types that carry a payment intent outcome; others are acknowledged and ignored.
HANDLED = frozenset(
    {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
    }
)


def apply_payment_event(
    event_id: str,
    kind: str,
    intent: IntentState,
    *,
    orders: OrderRepository,
    clock: Clock,
    refunds: RefundPorts | None = None,
) -> str:
    """Apply one verified webhook event to its order; returns what happened (for logs and metrics).

    The order is found from the intent's ``metadata`` (``orderId``/``userId``, set when the intent was created) or,
    failing that, through the intent id. Unknown types and intents of no order are acknowledged and ignored.
    """
    if kind not in HANDLED:
        return "ignored"
    found = _order_of(intent, orders)
    order = orders.get_order(*found) if found else None
    if order is None:
        return "unknown-order"
    record = IdempotencyRecord.of("stripe-event", event_id, {"type": kind}, order.order_id)
    return apply_intent(order, intent, record, orders=orders, clock=clock, refunds=refunds)


def confirm_order(
    order_id: str,
    caller: Caller,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
    refunds: RefundPorts | None = None,
) -> Order:
    """Reconcile an order with its payment intent as the provider reports it now (the seed's afterPaymentExecuted)."""
    order = get_order(order_id, caller, orders=orders)
    if order.payment_intent_id is None:
        raise ConflictError(f"order {order_id!r} has no payment intent")
    intent = payments.retrieve_intent(order.payment_intent_id)
    record = IdempotencyRecord.of("confirm", f"{intent.payment_intent_id}:{intent.status}", {}, order.order_id)
    apply_intent(order, intent, record, orders=orders, clock=clock, refunds=refunds)
    return get_order(order_id, caller, orders=orders)


def apply_intent(
    order: Order,
    intent: IntentState,
    record: IdempotencyRecord,
    *,
    orders: OrderRepository,
    clock: Clock,
    refunds: RefundPorts | None = None,
) -> str:
    """Move ``order`` according to its intent's status: succeeded pays (if amount and currency match), a card that
    needs another payment method refuses, an action we do not handle is an error, canceled cancels; anything else
    (processing...) leaves it as it is."""
    if intent.status == "succeeded":
        outcome = _succeeded(order, intent, record, orders=orders, clock=clock)
        if refunds is not None and outcome in ("paid", "unchanged"):
            # Money that went back before the success (a refund event that came first) is settled now; also after a
            # crash between the grant and this step, as Stripe redelivers the success until we answer 200.
            paid = orders.get_order(order.user_id, order.order_id) if outcome == "unchanged" else order
            if paid is not None and paid.returned_amount != paid.revoked_for_amount:
                settle_returned(order.user_id, order.order_id, ports=refunds)
        return outcome
    if intent.status == "requires_payment_method" and intent.last_error:
        return _move(order, OrderStatus.REFUSED, intent.last_error, record, orders=orders, clock=clock)
    if intent.status == "requires_action":
        message = f"Payment requires an action we don't handle: {intent.next_action or 'unknown'}"
        return _move(order, OrderStatus.ERROR, message, record, orders=orders, clock=clock)
    if intent.status == "canceled":
        return _move(order, OrderStatus.CANCELED, "Payment canceled", record, orders=orders, clock=clock)
    return "unchanged"


def _order_of(intent: IntentState, orders: OrderRepository) -> tuple[str, str] | None:
    return order_for_intent(intent.payment_intent_id, intent.metadata or {}, orders)


def _succeeded(
    order: Order, intent: IntentState, record: IdempotencyRecord, *, orders: OrderRepository, clock: Clock
) -> str:
    if order.status is OrderStatus.PAID:
        return "unchanged"  # a redelivery, or the confirm route got there first
    if intent.amount_received != order.total.amount or intent.currency.lower() != order.total.currency:
        # Seed 2.11 / 7.1-5: never credit a payment that does not match; the order's status now says so.
        message = (
            f"Payment amount or currency not corresponding: received {intent.amount_received} {intent.currency}, "
            f"expected {order.total.amount} {order.total.currency}"
        )
        return _move(order, OrderStatus.INCONSISTENT, message, record, orders=orders, clock=clock)
    try:
        paid = apply_order_paid(
            order.user_id,
            order.order_id,
            orders=orders,
            clock=clock,
            message=f"Payment succeeded ({intent.payment_intent_id})",
            idempotency=record,
            read=order,
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
        events = [_payment_failed_event(order, status, message)] if status in _FAILED else []
        if orders.change_status(order, status, message, clock.now(), record, events):
            return status.value
        latest = orders.get_order(order.user_id, order.order_id)
        if latest is None or latest.updated_at == order.updated_at:
            return "unchanged"  # what caused it was recorded already
        order = latest
    return "unchanged"


def _payment_failed_event(order: Order, status: OrderStatus, message: str) -> DomainEvent:
    detail: dict[str, object] = {
        "userId": order.user_id,
        "orderId": order.order_id,
        "offerGroup": order.offer_group,
        "status": status.value,
        "reason": message,
        "amount": order.total.amount,
        "currency": order.total.currency,
    }
    return DomainEvent("PaymentFailed", detail)
