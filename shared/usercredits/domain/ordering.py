"""Ordering use cases: placing orders and asking for their payment (``request_payment``: a fresh payment intent for
a pending order). The offers are ``offers.py``; what a payment reports, and paying the order, ``payments.py``.

Rules: docs/rules.md#placing-an-order, #payment-intents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from usercredits.domain import catalog as catalog_rules
from usercredits.domain import limits
from usercredits.domain.models import (
    MAX_BUNDLE_ITEMS,
    MAX_ORDER_QUANTITY,
    GroupState,
    HistoryEntry,
    Offer,
    Order,
    OrderLine,
    OrderStatus,
    PlacedOrder,
)
from usercredits.domain.offers import get_offer
from usercredits.domain.order_reads import get_order
from usercredits.domain.ports import (
    CatalogRepository,
    OrderRepository,
    PaymentGateway,
    PurchaseLimitError,
    StaleWindowError,
)
from usercredits.domain.settlement import grantable, settle_order, too_many_items
from usercredits.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    PaymentGatewayError,
    UnavailableError,
)
from usercredits.kernel.clock import Clock
from usercredits.kernel.cycles import MAX_START_AHEAD, MAX_TIME, MAX_WINDOW
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import Caller, Money
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

logger = logging.getLogger(__name__)

#: Largest order total accepted, in minor units (far above any card network's limit; guards integer sanity).
MAX_ORDER_TOTAL = 10**12


@dataclass(frozen=True)
class PlaceOrder:
    """``POST /orders``: what the caller asks for (``currency`` None means the deployment's default)."""

    offer_id: str
    quantity: int = 1
    currency: str | None = None
    starts: datetime | None = None
    idempotency_key: str | None = None


# --- orders --------------------------------------------------------------------------------------------------------


def place_order(
    command: PlaceOrder,
    caller: Caller,
    *,
    default_currency: str,
    catalog: CatalogRepository,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
) -> PlacedOrder:
    """Create an order; a free one is paid at once, a priced one gets a payment intent.

    Refuses unknown or retired offers (404), offers locked for the caller (403), quantities above the offer's
    ``quantityLimit`` (409), orders beyond the offer's ``perUserLimit`` (409, see ``domain.limits``), offers that
    bundle more than ``MAX_BUNDLE_ITEMS`` items (409: stored before the limit; no transaction could grant them) and
    currencies the offer is not sold in (422). With an ``idempotency_key`` a retry returns the first order; the key
    with a different request is a 409.
    """
    now = clock.now()
    currency = command.currency or default_currency
    offer = get_offer(command.offer_id, catalog=catalog)
    if len(offer.combined_items) > MAX_BUNDLE_ITEMS:
        raise ConflictError(
            too_many_items(
                f"offer {offer.offer_id!r}", len(offer.combined_items), "it cannot be ordered until an admin splits it"
            )
        )
    price = offer.price_in(currency)
    if price is None:
        raise InvalidRequestError(f"offer {offer.offer_id!r} is not sold in {currency!r}")
    if offer.quantity_limit is not None and command.quantity > offer.quantity_limit:
        raise ConflictError(
            f"Requested quantity exceeds the limit ({offer.quantity_limit}) of offer {offer.offer_id!r}"
        )
    total = price.amount * command.quantity
    if total > MAX_ORDER_TOTAL:
        raise InvalidRequestError("order total too large")
    if command.starts is not None and command.starts <= now:
        raise InvalidRequestError(f"Explicit start date has passed: {command.starts.isoformat()}")
    if command.starts is not None and command.starts - now > MAX_START_AHEAD:
        message = (
            f"starts {command.starts.isoformat()} is too far ahead: an order may start at most "
            f"{MAX_START_AHEAD.days} days ({MAX_START_AHEAD.days // 366} years) from now"
        )
        raise InvalidRequestError(message, details=[_field_detail("starts", message)])

    order = _new_order(command, caller, offer, Money(amount=total, currency=currency), catalog, now)
    idempotency = None
    if command.idempotency_key is not None:
        request = {
            "offerId": offer.offer_id,
            "quantity": command.quantity,
            "currency": currency,
            "starts": command.starts,
        }
        idempotency = IdempotencyRecord.of("orders", command.idempotency_key, request, order.order_id)
    try:
        return _write_new_order(order, offer, idempotency, orders=orders, payments=payments, clock=clock)
    except IdempotentReplayError as replay:
        return _replay(replay, idempotency, caller, orders=orders, payments=payments)


def _new_order(
    command: PlaceOrder, caller: Caller, offer: Offer, total: Money, catalog: CatalogRepository, now: datetime
) -> Order:
    lines = []
    for item in offer.combined_items:
        bundled = catalog.get_offer(item.offer_id)
        if bundled is None:
            raise ConflictError(f"offer {offer.offer_id!r} bundles {item.offer_id!r}, which does not exist")
        quantity = item.quantity * command.quantity
        lines.append(
            OrderLine(
                offer_id=bundled.offer_id,
                offer_group=item.offer_group,
                quantity=quantity,
                unit_tokens=bundled.tokens,
                total_tokens=bundled.tokens * quantity,
                cycle=bundled.cycle,
                custom_cycle_seconds=bundled.custom_cycle_seconds,
                append_date=bundled.append_date,
            )
        )
    order = Order(
        order_id=new_ulid(now),
        user_id=caller.user_id,
        offer_id=offer.offer_id,
        offer_group=offer.offer_group,
        offer_name=offer.name,
        status=OrderStatus.PENDING,
        quantity=command.quantity,
        total=total,
        unit_tokens=offer.tokens,
        total_tokens=offer.tokens * command.quantity,
        cycle=offer.cycle,
        custom_cycle_seconds=offer.custom_cycle_seconds,
        append_date=offer.append_date,
        starts=command.starts,
        combined_items=lines,
        history=[HistoryEntry(date=now, status=OrderStatus.PENDING, message="Order created")],
        created_at=now,
        updated_at=now,
        limited=offer.per_user_limit is not None,
    )
    return order.with_slot()


def _write_new_order(
    order: Order,
    offer: Offer,
    idempotency: IdempotencyRecord | None,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
) -> PlacedOrder:
    appends = order.append_date or any(line.append_date for line in order.combined_items)
    needs_windows = offer.is_locked or order.total.amount == 0 or appends
    windows = dict(orders.group_states(order.user_id)) if needs_windows else {}
    if offer.is_locked and not catalog_rules.is_unlocked(
        offer, [group for group, window in windows.items() if window.active_at(order.created_at)]
    ):
        raise ForbiddenError(f"offer {offer.offer_id!r} is locked: it needs a purchase in {sorted(offer.unlocked_by)}")
    _check_windows(order, windows, order.created_at)  # before any payment intent and any write
    if offer.per_user_limit is not None:
        _check_limit(order, offer, idempotency, orders=orders)
    limit = offer.per_user_limit

    try:
        if order.total.amount > 0:
            intent = payments.create_intent(order, attempt=1)
            priced = order.model_copy(update={"payment_intent_id": intent.payment_intent_id, "payment_attempt": 1})
            orders.create_order(priced, settlement=None, idempotency=idempotency, per_user_limit=limit)
            return PlacedOrder(order=priced, payment=intent)

        def attempt(current: dict[str, GroupState]) -> Order:
            settlement = settle_order(order, current, order.created_at, "Free order: paid at once")
            orders.create_order(settlement.order, settlement=settlement, idempotency=idempotency, per_user_limit=limit)
            return settlement.order

        paid = _with_window_retries(attempt, windows, lambda: dict(orders.group_states(order.user_id)))
    except PurchaseLimitError as exc:  # a racing order took the last slot since the check: the transaction refused
        raise ConflictError(limits.limit_reached_message(offer.offer_id, limit or 0)) from exc
    return PlacedOrder(order=paid, payment=None)


def _check_limit(order: Order, offer: Offer, idempotency: IdempotencyRecord | None, *, orders: OrderRepository) -> None:
    """Refuse (409) an order of a limited offer the user already holds ``perUserLimit`` counting orders of, before
    any payment intent is made (one consistent read; the order's transaction enforces the limit atomically anyway).
    A retry of a request that was accepted (its ``Idempotency-Key`` recorded) is answered as a replay instead."""
    if not limits.at_limit(offer, orders.limit_slots(order.user_id, offer.offer_id)):
        return
    recorded = orders.recorded(order.user_id, idempotency) if idempotency is not None else None
    if recorded is not None:
        raise recorded
    raise ConflictError(limits.limit_reached_message(offer.offer_id, offer.per_user_limit or 0))


def _check_windows(order: Order, windows: Mapping[str, GroupState], now: datetime) -> None:
    """Refuse (422, field ``quantity``) an order whose window, or a bundle item's, would end more than ``MAX_WINDOW``
    after ``now``: it could only be granted with an expiry saturated at ``MAX_TIME``, so no money is taken for it.

    The windows are those paying the order now would give (``settle_order`` itself, on the group windows read, which
    must include every group an ``appendDate`` purchase appends to): an ``appendDate`` purchase starts where its
    group's paid window ends, a bundle item without it shares the root's window. A ``once`` purchase never ends, but
    its start must be within the bound too.
    """
    limit = now + MAX_WINDOW if now < MAX_TIME - MAX_WINDOW else MAX_TIME
    paid = settle_order(order, dict(windows), now, "window check").order
    for purchase in (paid, *paid.combined_items):
        starts = purchase.starts or now
        if (purchase.expires or starts) <= limit:
            continue
        what = f"offer {order.offer_id!r}" if purchase is paid else f"{purchase.offer_id!r} in offer {order.offer_id!r}"
        message = (
            f"quantity {order.quantity} of {what} makes a window starting {starts:%Y-%m-%d} and ending after "
            f"{limit:%Y-%m-%d}: a purchase's window must end within {MAX_WINDOW.days // 366} years"
        )
        raise InvalidRequestError(message, details=[_field_detail("quantity", message)])


def _field_detail(field: str, message: str) -> dict[str, object]:
    """A ``details`` entry shaped like request validation's (``body.<field>``), for a 422 about one body field."""
    return {"field": f"body.{field}", "message": message, "type": "value_error"}


def _with_window_retries(
    attempt: Callable[[dict[str, GroupState]], Order],
    windows: dict[str, GroupState],
    reload: Callable[[], dict[str, GroupState]],
) -> Order:
    for _ in range(OPTIMISTIC_ATTEMPTS):
        try:
            return attempt(windows)
        except StaleWindowError:
            windows = reload()
    raise ConflictError("the offer group changed concurrently too often; retry")


def _replay(
    replay: IdempotentReplayError,
    idempotency: IdempotencyRecord | None,
    caller: Caller,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
) -> PlacedOrder:
    if idempotency is None or replay.fingerprint != idempotency.fingerprint:
        raise ConflictError("Idempotency-Key was already used with a different request")
    order = orders.get_order(caller.user_id, replay.result_id)
    if order is None:  # pragma: no cover - the key and the order are written in one transaction
        raise ConflictError("Idempotency-Key refers to a missing order")
    payment = None
    if order.status is OrderStatus.PENDING and order.payment_intent_id:
        payment = payments.create_intent(order, attempt=order.payment_attempt)
    return PlacedOrder(order=order, payment=payment)


__all__ = ["MAX_ORDER_QUANTITY", "PlaceOrder", "PlacedOrder"]


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
