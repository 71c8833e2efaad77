"""Ordering use cases: the catalog, orders, payment intents and subscriptions (seeds-spec 2.1-2.6, 2.10)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from usercredits.domain import catalog as catalog_rules
from usercredits.domain.ids import new_ulid
from usercredits.domain.models import (
    MAX_ORDER_QUANTITY,
    Caller,
    GroupState,
    HistoryEntry,
    Money,
    Offer,
    OfferView,
    Order,
    OrderLine,
    OrderStatus,
    Page,
    PaymentIntent,
)
from usercredits.domain.ports import (
    CatalogRepository,
    Clock,
    IdempotencyRecord,
    IdempotentReplayError,
    OrderRepository,
    PaymentGateway,
    StaleWindowError,
)
from usercredits.domain.settlement import settle_order
from usercredits.errors import (
    ConflictError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    PaymentGatewayError,
    UnavailableError,
)

logger = logging.getLogger(__name__)

#: Largest order total accepted, in minor units (far above any card network's limit; guards integer sanity).
MAX_ORDER_TOTAL = 10**12
#: Optimistic retries when a concurrent payment moved the same paid window.
_WINDOW_RETRIES = 5


@dataclass(frozen=True)
class PlaceOrder:
    """``POST /orders``: what the caller asks for (``currency`` None means the deployment's default)."""

    offer_id: str
    quantity: int = 1
    currency: str | None = None
    starts: datetime | None = None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    order: Order
    payment: PaymentIntent | None


@dataclass(frozen=True)
class Subscription:
    subscribed: bool
    order_id: str | None
    expires: datetime | None


# --- catalog -------------------------------------------------------------------------------------------------------


def list_offers(
    caller: Caller,
    *,
    currency: str,
    tags: Sequence[str],
    all_tags: bool,
    catalog: CatalogRepository,
    orders: OrderRepository,
    clock: Clock,
) -> list[OfferView]:
    """The offers ``caller`` may buy, in ``currency``: public ones plus those their paid groups unlock."""
    now = clock.now()
    paid_groups = [group for group, window in orders.group_states(caller.user_id).items() if window.active_at(now)]
    return catalog_rules.visible_offers(
        catalog.list_offers(), paid_groups=paid_groups, currency=currency, tags=tags, all_tags=all_tags
    )


def list_all_offers(*, catalog: CatalogRepository) -> list[Offer]:
    """Every offer of the catalog, locked and retired ones included, by ``offerId`` (admin)."""
    return sorted(catalog.list_offers(), key=lambda offer: offer.offer_id)


def get_offer(offer_id: str, *, catalog: CatalogRepository) -> Offer:
    """One offer that is on sale (retired offers are 404: existing orders keep their own copy)."""
    offer = catalog.get_offer(offer_id)
    if offer is None or offer.retired:
        raise NotFoundError(f"offer {offer_id!r} not found")
    return offer


def upsert_offer(offer: Offer, *, catalog: CatalogRepository, clock: Clock) -> Offer:
    """Create or replace an offer (admin). Orders already placed keep their copy of the old terms."""
    catalog.put_offer(offer, clock.now())
    return offer


def retire_offer(offer_id: str, *, catalog: CatalogRepository, clock: Clock) -> None:
    """Take an offer off sale (admin). Orders already placed keep their copy of its terms."""
    if not catalog.retire_offer(offer_id, clock.now()):
        raise NotFoundError(f"offer {offer_id!r} not found")


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
    ``quantityLimit`` (409) and currencies the offer is not sold in (422). With an ``idempotency_key`` a retry returns
    the first order; the key with a different request is a 409.
    """
    now = clock.now()
    currency = command.currency or default_currency
    offer = get_offer(command.offer_id, catalog=catalog)
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
    return Order(
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
    )


def _write_new_order(
    order: Order,
    offer: Offer,
    idempotency: IdempotencyRecord | None,
    *,
    orders: OrderRepository,
    payments: PaymentGateway,
    clock: Clock,
) -> PlacedOrder:
    needs_windows = offer.is_locked or order.total.amount == 0
    windows = dict(orders.group_states(order.user_id)) if needs_windows else {}
    if offer.is_locked and not catalog_rules.is_unlocked(
        offer, [group for group, window in windows.items() if window.active_at(order.created_at)]
    ):
        raise ForbiddenError(f"offer {offer.offer_id!r} is locked: it needs a purchase in {sorted(offer.unlocked_by)}")

    if order.total.amount > 0:
        intent = payments.create_intent(order, attempt=1)
        priced = order.model_copy(update={"payment_intent_id": intent.payment_intent_id, "payment_attempt": 1})
        orders.create_order(priced, settlement=None, idempotency=idempotency)
        return PlacedOrder(order=priced, payment=intent)

    def attempt(current: dict[str, GroupState]) -> Order:
        settlement = settle_order(order, current, order.created_at, "Free order: paid at once")
        orders.create_order(settlement.order, settlement=settlement, idempotency=idempotency)
        return settlement.order

    return PlacedOrder(
        order=_with_window_retries(attempt, windows, lambda: dict(orders.group_states(order.user_id))), payment=None
    )


def _with_window_retries(
    attempt: Callable[[dict[str, GroupState]], Order],
    windows: dict[str, GroupState],
    reload: Callable[[], dict[str, GroupState]],
) -> Order:
    for _ in range(_WINDOW_RETRIES):
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
    if order.status is not OrderStatus.PENDING:
        raise ConflictError(f"order {order_id!r} is {order.status.value}, not pending")
    attempt = order.payment_attempt + 1
    idempotency = None
    if idempotency_key is not None:
        request: dict[str, object] = {"orderId": order_id, "action": "payment"}
        idempotency = IdempotencyRecord.of("payment", idempotency_key, request, f"{order_id}:{attempt}")
    intent = payments.create_intent(order, attempt=attempt)
    try:
        updated = orders.set_payment_intent(
            order, intent_id=intent.payment_intent_id, attempt=attempt, now=clock.now(), idempotency=idempotency
        )
    except IdempotentReplayError as replay:
        if idempotency is None or replay.fingerprint != idempotency.fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request") from replay
        first_attempt = int(replay.result_id.rsplit(":", 1)[1])
        current = get_order(order_id, caller, orders=orders)
        return PlacedOrder(order=current, payment=payments.create_intent(current, attempt=first_attempt))
    if order.payment_intent_id and order.payment_intent_id != intent.payment_intent_id:
        # Only now that the order points at the new intent: the abandoned one is canceled so it cannot be paid too
        # (a no-op if it already ended; one that succeeded meanwhile still pays the order through its webhook).
        # Best effort: the new intent is recorded, so a failure here must not make the client retry the request.
        try:
            payments.cancel_intent(order.payment_intent_id)
        except (PaymentGatewayError, UnavailableError):
            logger.warning("could not cancel the abandoned intent %s", order.payment_intent_id, exc_info=True)
    return PlacedOrder(order=updated, payment=intent)


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
) -> Order:
    """Settle an order as paid, exactly once: the single entry point payment code calls.

    One transaction moves the order to ``paid`` (conditional on it being as read), writes its lots and child orders
    and updates the groups. A second call, or one racing the first, finds it paid and writes nothing. ``idempotency``
    (e.g. the Stripe event id) is recorded in the same transaction. ``read``: the order as the caller just read it
    (saves a read; a stale copy only costs a retry).
    """
    for _ in range(_WINDOW_RETRIES):
        order, read = read or orders.get_order(user_id, order_id), None
        if order is None:
            raise NotFoundError(f"order {order_id!r} not found")
        if order.status is OrderStatus.PAID:
            return order
        if order.status not in PAYABLE:
            raise ConflictError(f"order {order_id!r} is {order.status.value}: it cannot be paid")
        try:
            settlement = settle_order(order, dict(orders.group_states(user_id)), clock.now(), message)
            if orders.settle_order(settlement, read=order, idempotency=idempotency):
                return settlement.order
        except StaleWindowError:
            continue
        if idempotency is not None:  # recorded already (a redelivery) or the order moved: read it and decide again
            latest = orders.get_order(user_id, order_id)
            if latest is not None and (latest.status is OrderStatus.PAID or latest.updated_at == order.updated_at):
                return latest
    raise ConflictError("the order kept changing; retry")


def get_subscription(offer_id: str, caller: Caller, *, orders: OrderRepository, clock: Clock) -> Subscription:
    """Whether the caller holds a paid, unexpired order of ``offer_id`` (the longest-lasting one is reported)."""
    now = clock.now()
    active = [
        order
        for order in orders.find_orders(caller.user_id, offer_id=offer_id, status=OrderStatus.PAID)
        if order.expires is None or order.expires > now
    ]
    if not active:
        return Subscription(subscribed=False, order_id=None, expires=None)
    best = max(active, key=lambda order: (order.expires is None, order.expires or now))
    return Subscription(subscribed=True, order_id=best.order_id, expires=best.expires)


__all__ = ["MAX_ORDER_QUANTITY", "PlaceOrder", "PlacedOrder", "Subscription"]
