"""Payment outcomes: what the provider says about an intent (a verified webhook event, or a confirm that reads it
back) moving its order along the order state machine, and paying the order (``apply_order_paid``: the single paying
step every payment path ends in, settled by the plan of ``settlement.py``). Rules: docs/rules.md#payment-outcomes,
#paying-an-order.

Orders only move forward: ``pending`` → ``paid`` | ``refused`` | ``error`` | ``canceled`` | ``inconsistent``, and a
success after a failure still pays (webhooks arrive in any order). Each change is one conditional write that also
records what caused it (the Stripe event id), so a redelivered event changes nothing; a webhook racing the confirm
route grants once because both end in ``apply_order_paid``.

An order may have had several intents (``POST /orders/{id}/payment`` abandons the current one for a new one). Only
the order's current intent moves it: a failure, an action or a cancel reported for an abandoned intent changes
nothing. A **success** is money received, whichever intent it is: it pays the order if the order can still be paid
(and the intent that paid becomes the order's intent), and otherwise (another intent paid it first, or it was
canceled) the payment is refunded in full at once. Every succeeded payment ends as one grant or one refund.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from usercredits.domain.events import payment_failed, payment_refunded
from usercredits.domain.models import GRANTED, HistoryEntry, IntentFigures, IntentState, Order, OrderStatus
from usercredits.domain.order_reads import get_order
from usercredits.domain.ports import OrderRepository, PaymentGateway, RefundPorts, StaleWindowError, order_for_intent
from usercredits.domain.settlement import grantable, settle_order, too_many_items
from usercredits.errors import ConflictError, NotFoundError, PaymentGatewayError, UnavailableError
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Caller
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord

logger = logging.getLogger(__name__)

#: Statuses an order can still be paid from: a success reported after a failure still pays (webhooks arrive in any
#: order), but a canceled, inconsistent, refunded or expired order never becomes paid again.
PAYABLE = frozenset({OrderStatus.PENDING, OrderStatus.REFUSED, OrderStatus.ERROR})


#: Where a failure-like outcome may come from (a paid order is never refused afterwards, and so on).
_FROM = {
    OrderStatus.REFUSED: frozenset({OrderStatus.PENDING, OrderStatus.ERROR}),
    OrderStatus.ERROR: frozenset({OrderStatus.PENDING}),
    OrderStatus.CANCELED: PAYABLE,
    OrderStatus.INCONSISTENT: PAYABLE,
}
#: Outcomes published as ``PaymentFailed`` (a canceled intent is the buyer's or our choice, not a failure).
_FAILED = frozenset({OrderStatus.REFUSED, OrderStatus.ERROR, OrderStatus.INCONSISTENT})


@dataclass(frozen=True)
class _Ports:
    """What applying a payment outcome reads and writes (``refunds``: to settle money that went back before)."""

    orders: OrderRepository
    payments: PaymentGateway
    clock: Clock
    refunds: RefundPorts


def apply_payment_event(
    event_id: str,
    kind: str,
    intent: IntentState,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
    refunds: RefundPorts,
) -> str:
    """Apply one verified webhook event to its order; returns what happened (for logs and metrics).

    The order is found from the intent's ``metadata`` (``orderId``/``userId``, set when the intent was created) or,
    failing that, through the intent id. An intent of no order is acknowledged and ignored (which event types carry
    an intent outcome is the webhook's registry: ``adapters.stripe.webhooks.HANDLED_EVENTS``).
    """
    found = order_for_intent(intent.payment_intent_id, intent.metadata or {}, orders)
    order = orders.get_order(*found) if found else None
    if order is None:
        return "unknown-order"
    record = IdempotencyRecord.of("stripe-event", event_id, {"type": kind}, order.order_id)
    return _apply(order, intent, record, _Ports(orders, payments, clock, refunds))


def confirm_order(
    order_id: str,
    caller: Caller,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
    refunds: RefundPorts,
) -> Order:
    """Reconcile an order with its payment intent as the provider reports it now (the seed's afterPaymentExecuted)."""
    order = get_order(order_id, caller, orders=orders)
    if order.payment_intent_id is None:
        raise ConflictError(f"order {order_id!r} has no payment intent")
    intent = payments.retrieve_intent(order.payment_intent_id)
    record = IdempotencyRecord.of("confirm", f"{intent.payment_intent_id}:{intent.status}", {}, order.order_id)
    _apply(order, intent, record, _Ports(orders, payments, clock, refunds))
    return get_order(order_id, caller, orders=orders)


def _apply(order: Order, intent: IntentState, record: IdempotencyRecord, ports: _Ports) -> str:
    """Move ``order`` according to one of its intents: a success pays it (or is refunded, see the module); for the
    order's current intent, a card that needs another payment method refuses, an action we do not handle is an
    error, canceled cancels; anything else (processing, or an abandoned intent) leaves it as it is."""
    if intent.status == "succeeded":
        return _succeeded(order, intent, record, ports)
    if intent.payment_intent_id != order.payment_intent_id:
        return "stale-intent"  # an abandoned intent: what happens to it no longer concerns the order
    if intent.status == "requires_payment_method" and intent.last_error:
        return _move(order, OrderStatus.REFUSED, intent.last_error, record, ports)
    if intent.status == "requires_action":
        message = f"Payment requires an action we don't handle: {intent.next_action or 'unknown'}"
        return _move(order, OrderStatus.ERROR, message, record, ports)
    if intent.status == "canceled":
        return _move(order, OrderStatus.CANCELED, "Payment canceled", record, ports)
    return "unchanged"


def _succeeded(order: Order, intent: IntentState, record: IdempotencyRecord, ports: _Ports) -> str:
    for _ in range(OPTIMISTIC_ATTEMPTS):
        if order.status in GRANTED and order.payment_intent_id == intent.payment_intent_id:
            _settle_early_returns(order, ports.refunds)  # a redelivery, or the confirm route got there first
            return "unchanged"
        if not _matches(order, intent):
            if order.status in PAYABLE and intent.payment_intent_id == order.payment_intent_id:
                # The event is recorded with the refund below (a redelivery finds the order inconsistent anyway).
                _move(order, OrderStatus.INCONSISTENT, _mismatch(order, intent), None, ports)
                order = ports.orders.get_order(order.user_id, order.order_id) or order
            return _refund_payment(order, intent, record, ports)
        if order.status not in PAYABLE:
            # Another intent paid the order, or it can no longer be paid: this money goes back.
            return _refund_payment(order, intent, record, ports)
        outcome = _pay(order, intent, record, ports)
        if outcome is not None:
            return outcome
        latest = ports.orders.get_order(order.user_id, order.order_id)
        if latest is None:
            return "unknown-order"
        order = latest
    raise ConflictError("the order kept changing while a payment was applied; retry")


def _pay(order: Order, intent: IntentState, record: IdempotencyRecord, ports: _Ports) -> str | None:
    """Pay a payable order with ``intent``; None when the order changed meanwhile (read it again and decide)."""
    try:
        paid = apply_order_paid(
            order.user_id,
            order.order_id,
            orders=ports.orders,
            clock=ports.clock,
            message=f"Payment succeeded ({intent.payment_intent_id})",
            idempotency=record,
            read=order,
            intent_id=intent.payment_intent_id,
        )
    except ConflictError:
        return None
    if paid.status is not OrderStatus.PAID or paid.payment_intent_id != intent.payment_intent_id:
        return None
    superseded = order.payment_intent_id
    if superseded and superseded != intent.payment_intent_id:
        # An abandoned intent paid: the order's newer intent must not be paid too (if it is, it is refunded).
        try:
            ports.payments.cancel_intent(superseded)
        except (PaymentGatewayError, UnavailableError):
            logger.warning("could not cancel the superseded intent %s", superseded, exc_info=True)
    _settle_early_returns(paid, ports.refunds)
    return "paid"


def _settle_early_returns(order: Order, refunds: RefundPorts) -> None:
    """Money that went back before the success (a refund event that came first) is settled now; also after a crash
    between the grant and this step, as Stripe redelivers the success until we answer 200. ``order``: as just paid
    (or read): its figures are the ones the grant was conditional on, so no read is needed to decide."""
    if order.returned_amount != order.revoked_for_amount:
        # Imported here: the ordering function settles returns only on a rare confirm (its cold start skips the
        # refund rules); the webhook function has loaded them already.
        from usercredits.domain.refunds import settle_returned

        settle_returned(order.user_id, order.order_id, ports=refunds)


def _matches(order: Order, intent: IntentState) -> bool:
    return intent.amount_received == order.total.amount and intent.currency.lower() == order.total.currency


def _mismatch(order: Order, intent: IntentState) -> str:
    # docs/rules.md#payment-outcomes: never credit a payment that does not match; the order's status now says so.
    return (
        f"Payment amount or currency not corresponding: received {intent.amount_received} {intent.currency}, "
        f"expected {order.total.amount} {order.total.currency}"
    )


def _refund_payment(order: Order, intent: IntentState, record: IdempotencyRecord, ports: _Ports) -> str:
    """Give back a payment that pays nothing (a duplicate, a payment for an order that can no longer be paid, or one
    that does not match its order), once: the refund's idempotency key is the intent's, and the order records it.

    The refund is asked for first and recorded after: if recording fails, the event is delivered again and the same
    key returns the same refund. If asking fails, nothing is recorded and the webhook fails, so Stripe retries."""
    intent_id = intent.payment_intent_id
    for _ in range(OPTIMISTIC_ATTEMPTS):
        figures = order.other_intents.get(intent_id, IntentFigures())
        if figures.duplicate_refund_id is not None:
            return "unchanged"  # refunded already
        refund_id = ports.payments.refund_payment(
            intent_id,
            idempotency_key=f"refund-unpaid-{intent_id}",
            metadata={"orderId": order.order_id, "userId": order.user_id, "reason": "duplicate_payment"},
        )
        now = ports.clock.now()
        refunded = refund_id or "refunded-before"
        message = f"Payment {intent_id} refunded in full ({refunded}): the order is {order.status.value}"
        updated = order.model_copy(
            update={
                "other_intents": {
                    **order.other_intents,
                    intent_id: figures.model_copy(update={"duplicate_refund_id": refunded}),
                },
                "history": [*order.history, HistoryEntry(date=now, status=order.status, message=message)],
                "updated_at": now,
            }
        )
        event = payment_refunded(order, intent, refunded)
        if ports.orders.record_payment(updated, read=order, idempotency=record, events=[event]):
            return "refunded"
        latest = ports.orders.get_order(order.user_id, order.order_id)
        if latest is None or latest.updated_at == order.updated_at:
            return "unchanged"  # this very event was recorded already
        order = latest
    raise ConflictError("the order kept changing while a payment was refunded; retry")


def _move(order: Order, status: OrderStatus, message: str, record: IdempotencyRecord | None, ports: _Ports) -> str:
    for _ in range(OPTIMISTIC_ATTEMPTS):
        if order.status not in _FROM[status]:
            return "unchanged"  # already further along (or a redelivery): forward only
        events = [payment_failed(order, status, message)] if status in _FAILED else []
        if ports.orders.change_status(order, status, message, ports.clock.now(), record, events):
            return status.value
        latest = ports.orders.get_order(order.user_id, order.order_id)
        if latest is None or latest.updated_at == order.updated_at:
            return "unchanged"  # what caused it was recorded already
        order = latest
    return "unchanged"


def apply_order_paid(
    user_id: str,
    order_id: str,
    *,
    orders: OrderRepository,
    clock: Clock,
    message: str,
    idempotency: IdempotencyRecord | None = None,
    read: Order | None = None,
    intent_id: str | None = None,
) -> Order:
    """Settle an order as paid, exactly once: the single entry point payment code calls.

    One transaction moves the order to ``paid`` (conditional on it being as read), writes its lots and child orders
    and updates the groups. A second call, or one racing the first, finds it paid and writes nothing. ``idempotency``
    (e.g. the Stripe event id) is recorded in the same transaction. ``read``: the order as the caller just read it
    (saves a read; a stale copy only costs a retry). ``intent_id``: the intent that paid (when it is not the order's
    current one, it becomes so, and the current one's figures are kept apart: ``paying_with``).

    An order bundling more than ``MAX_BUNDLE_ITEMS`` items (placed before that limit) cannot be granted in one
    transaction: it becomes ``inconsistent`` instead (with ``PaymentFailed``), and is returned as such, so the payment
    code refunds the money like any payment of an order that can no longer be paid.
    """
    for _ in range(OPTIMISTIC_ATTEMPTS):
        order, read = read or orders.get_order(user_id, order_id), None
        if order is None:
            raise NotFoundError(f"order {order_id!r} not found")
        if order.status is OrderStatus.PAID:
            return order
        if order.status not in PAYABLE:
            raise ConflictError(f"order {order_id!r} is {order.status.value}: it cannot be paid")
        try:
            paid = _pay_once(order, intent_id, orders=orders, clock=clock, message=message, idempotency=idempotency)
        except StaleWindowError:
            continue
        if paid is not None:
            return paid
        if idempotency is not None:  # recorded already (a redelivery) or the order moved: read it and decide again
            latest = orders.get_order(user_id, order_id)
            if latest is not None and (latest.status is OrderStatus.PAID or latest.updated_at == order.updated_at):
                return latest
    raise ConflictError("the order kept changing; retry")


def _pay_once(
    order: Order,
    intent_id: str | None,
    *,
    orders: OrderRepository,
    clock: Clock,
    message: str,
    idempotency: IdempotencyRecord | None,
) -> Order | None:
    """One attempt of ``apply_order_paid`` on ``order`` as read: the order as paid (or, for an order that cannot be
    granted, as refused); None when nothing was written (it changed meanwhile, or ``idempotency`` was recorded)."""
    if not grantable(order):
        return _refuse_ungrantable(order, orders=orders, clock=clock)
    paying = paying_with(order, intent_id)
    settlement = settle_order(paying, dict(orders.group_states(order.user_id)), clock.now(), message)
    return settlement.order if orders.settle_order(settlement, read=order, idempotency=idempotency) else None


def _refuse_ungrantable(order: Order, *, orders: OrderRepository, clock: Clock) -> Order | None:
    """Move an order that cannot be granted to ``inconsistent`` with ``PaymentFailed`` (as the payment code does for
    an amount that does not match); the order as it is then, or None when it changed meanwhile (read it again)."""
    message = too_many_items(f"order {order.order_id!r}", len(order.combined_items), "its payment goes back")
    event = payment_failed(order, OrderStatus.INCONSISTENT, message)
    if not orders.change_status(order, OrderStatus.INCONSISTENT, message, clock.now(), None, [event]):
        return None
    return orders.get_order(order.user_id, order.order_id) or order


def paying_with(order: Order, intent_id: str | None) -> Order:
    """The order with ``intent_id`` as the intent that pays it: what was reported about that intent becomes the
    order's money figures, and the figures of the intent it replaces are kept apart (``Order.other_intents``)."""
    if intent_id is None or intent_id == order.payment_intent_id:
        return order
    others = dict(order.other_intents)
    if order.payment_intent_id:
        others[order.payment_intent_id] = IntentFigures(
            refunded_amount=order.refunded_amount,
            disputed_amount=order.disputed_amount,
            dispute_status=order.dispute_status,
        )
    mine = others.pop(intent_id, IntentFigures())
    return order.model_copy(
        update={
            "payment_intent_id": intent_id,
            "refunded_amount": mine.refunded_amount,
            "disputed_amount": mine.disputed_amount,
            "dispute_status": mine.dispute_status,
            "other_intents": others,
        }
    )
