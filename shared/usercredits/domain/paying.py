"""Paying an order: asking the provider for a payment intent (``request_payment``) and settling the order once its
payment succeeded (``apply_order_paid``, the single entry point every payment path calls). Rules:
docs/rules.md#payment-intents, #paying-an-order."""

from __future__ import annotations

import logging

from usercredits.domain.events import payment_failed
from usercredits.domain.models import IntentFigures, Order, OrderStatus, PlacedOrder
from usercredits.domain.order_reads import get_order
from usercredits.domain.ports import OrderRepository, PaymentGateway, StaleWindowError
from usercredits.domain.settlement import grantable, settle_order, too_many_items
from usercredits.errors import (
    ConflictError,
    NotFoundError,
    PaymentGatewayError,
    UnavailableError,
)
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Caller
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

logger = logging.getLogger(__name__)

#: Payment intents one order may ask for (``POST /orders/{id}/payment``). Each attempt adds a history entry, an intent
#: link and what its events report to the order item, which DynamoDB caps at 400 KB: without a bound, a client
#: retrying forever would make the order unwritable, and a payment already made could never be applied.
MAX_PAYMENT_ATTEMPTS = 25


def request_payment(
    order_id: str,
    caller: Caller,
    *,
    idempotency_key: str | None,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
) -> PlacedOrder:
    """A fresh payment intent for a pending order (for a retry or an abandoned checkout); 409 otherwise."""
    order = get_order(order_id, caller, orders=orders)
    attempt = order.payment_attempt + 1
    idempotency = None
    if idempotency_key is not None:
        request: dict[str, object] = {"orderId": order_id, "action": "payment"}
        idempotency = IdempotencyRecord.of("payment", idempotency_key, request, f"{order_id}:{attempt}")
    if order.status is not OrderStatus.PENDING or attempt > MAX_PAYMENT_ATTEMPTS:
        recorded = orders.recorded(caller.user_id, idempotency) if idempotency is not None else None
        if recorded is None:
            if order.status is OrderStatus.PENDING:  # each attempt adds to the order item: it must stay bounded
                raise ConflictError(
                    f"order {order_id!r} had {MAX_PAYMENT_ATTEMPTS} payment attempts already: place a new order"
                )
            raise ConflictError(f"order {order_id!r} is {order.status.value}, not pending")
        return _payment_replay(recorded, idempotency, order_id, caller, orders=orders, payments=payments)
    if not grantable(order):  # placed before the limit: no money is asked for what cannot be granted
        raise ConflictError(too_many_items(f"order {order_id!r}", len(order.combined_items), "it cannot be paid"))
    intent = payments.create_intent(order, attempt=attempt)
    try:
        updated = orders.set_payment_intent(
            order, intent_id=intent.payment_intent_id, attempt=attempt, now=clock.now(), idempotency=idempotency
        )
    except IdempotentReplayError as replay:
        return _payment_replay(replay, idempotency, order_id, caller, orders=orders, payments=payments)
    if order.payment_intent_id and order.payment_intent_id != intent.payment_intent_id:
        # Only now that the order points at the new intent: the abandoned one is canceled so it cannot be paid too
        # (a no-op if it already ended; one that succeeded meanwhile still pays the order through its webhook).
        # Best effort: the new intent is recorded, so a failure here must not make the client retry the request.
        try:
            payments.cancel_intent(order.payment_intent_id)
        except (PaymentGatewayError, UnavailableError):
            logger.warning("could not cancel the abandoned intent %s", order.payment_intent_id, exc_info=True)
    return PlacedOrder(order=updated, payment=intent)


def _payment_replay(
    replay: IdempotentReplayError,
    idempotency: IdempotencyRecord | None,
    order_id: str,
    caller: Caller,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
) -> PlacedOrder:
    """A repeated ``POST /orders/{id}/payment``. The first answer's intent may have been abandoned (and canceled)
    by a later attempt since, so a retry gets the order's intent as it is now, or none once it is no longer pending:
    never an intent nobody can pay any more."""
    if idempotency is None or replay.fingerprint != idempotency.fingerprint:
        raise ConflictError("Idempotency-Key was already used with a different request") from replay
    current = get_order(order_id, caller, orders=orders)
    payment = None
    if current.status is OrderStatus.PENDING and current.payment_intent_id:
        payment = payments.create_intent(current, attempt=current.payment_attempt)
    return PlacedOrder(order=current, payment=payment)


#: Statuses an order can still be paid from: a success reported after a failure still pays (webhooks arrive in any
#: order), but a canceled, inconsistent, refunded or expired order never becomes paid again.
PAYABLE = frozenset({OrderStatus.PENDING, OrderStatus.REFUSED, OrderStatus.ERROR})


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
