"""The credits half's domain events, built in one place: each function returns one event with its whole ``detail``.

Use cases decide when an event is owed; these functions only say what it carries. The outbox (written in the same
transaction as the change it reports) and the event bus publish them as built here; docs/api.md#events-published
lists them for consumers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from usercredits.domain.models import IntentState, Lot, Movement, Order, OrderStatus
from usercredits.kernel.models import DomainEvent


def order_paid(order: Order) -> DomainEvent:
    """``OrderPaid``: the order, what it cost and which group it credits."""
    detail: dict[str, object] = {
        "userId": order.user_id,
        "orderId": order.order_id,
        "offerId": order.offer_id,
        "offerGroup": order.offer_group,
        "amount": order.total.amount,
        "currency": order.total.currency,
        "tokens": order.total_tokens,
    }
    return DomainEvent("OrderPaid", detail)


def credits_granted(user_id: str, lot: Lot, reason: str | None = None) -> DomainEvent:
    """``CreditsGranted``: one lot's tokens added to its group (``reason`` says why when it is not a purchase)."""
    detail: dict[str, object] = {
        "userId": user_id,
        "offerGroup": lot.offer_group,
        "orderId": lot.order_id,
        "lotId": lot.lot_id,
        "tokens": lot.effective_tokens,
        "expires": lot.expires.isoformat() if lot.expires else None,
    }
    if reason:
        detail["reason"] = reason
    return DomainEvent("CreditsGranted", detail)


def credits_restored(user_id: str, lot: Lot, tokens: int, reason: str | None) -> DomainEvent:
    """``CreditsGranted`` with ``restored``: ``tokens`` a revocation took from ``lot`` given back (a won dispute)."""
    granted = credits_granted(user_id, lot, reason=reason)
    return DomainEvent(granted.kind, {**granted.detail, "tokens": tokens, "restored": True})


def credits_revoked(order: Order, offer_group: str, lot_id: str, tokens: int, reason: str | None) -> DomainEvent:
    """``CreditsRevoked``: ``tokens`` of a lot taken back because its order's money went back (refund, dispute);
    ``with_debt`` adds what the group owes once the revocation is done."""
    detail: dict[str, object] = {
        "userId": order.user_id,
        "offerGroup": offer_group,
        "orderId": order.order_id,
        "lotId": lot_id,
        "tokens": tokens,
        "refundedAmount": order.refunded_amount,
        "disputedAmount": order.disputed_amount,
        "currency": order.total.currency,
        "reason": reason,
    }
    return DomainEvent("CreditsRevoked", detail)


def credits_expired(
    user_id: str, offer_group: str, movement: Movement, expires: datetime | None, balance: int
) -> DomainEvent:
    """``CreditsExpired``: the tokens an ``expire`` movement took out of its lot, with the group's balance after it."""
    detail: dict[str, object] = {
        "userId": user_id,
        "offerGroup": offer_group,
        "lotId": movement.lot_id,
        "orderId": movement.order_id,
        "tokens": -movement.tokens,
        "expires": expires.isoformat() if expires else None,
        "balance": balance,
        "entryId": movement.entry_id,
    }
    return DomainEvent("CreditsExpired", detail)


def credits_expiring_soon(user_id: str, lot: Lot, remaining: int, window: int) -> DomainEvent:
    """``CreditsExpiringSoon``: ``remaining`` tokens of the lot expire within ``window`` seconds (sent once per lot
    and window: the event id says which)."""
    detail: dict[str, object] = {
        "userId": user_id,
        "offerGroup": lot.offer_group,
        "lotId": lot.lot_id,
        "orderId": lot.order_id,
        "tokens": remaining,
        "expires": lot.expires.isoformat() if lot.expires else None,
        "windowSeconds": window,
        "eventId": f"CreditsExpiringSoon#{lot.lot_id}#{window}",
    }
    return DomainEvent("CreditsExpiringSoon", detail)


def credits_low(
    user_id: str, offer_group: str, balance: int, threshold: int, event_id: str | None = None
) -> DomainEvent:
    """``CreditsLow``: the group's balance went from above its threshold to or below it (``event_id``: the id a
    consumer deduplicates a resend by, when the sender has one)."""
    detail: dict[str, object] = {
        "userId": user_id,
        "offerGroup": offer_group,
        "balance": balance,
        "threshold": threshold,
    }
    if event_id is not None:
        detail["eventId"] = event_id
    return DomainEvent("CreditsLow", detail)


def crossed_low(user_id: str, offer_group: str, threshold: int | None, before: int, after: int) -> list[DomainEvent]:
    """``CreditsLow`` when a change takes the balance from ``before`` (above ``threshold``) to ``after`` (at or
    below it): once per crossing, not on every later spend (the balance before was already at or below it then)."""
    if threshold is None or not before > threshold >= after:
        return []
    return [credits_low(user_id, offer_group, after, threshold)]


def payment_failed(order: Order, status: OrderStatus, reason: str) -> DomainEvent:
    """``PaymentFailed``: the order's payment was refused or errored, or the order became ``inconsistent`` (paid
    but impossible to grant: its money goes back)."""
    detail: dict[str, object] = {
        "userId": order.user_id,
        "orderId": order.order_id,
        "offerGroup": order.offer_group,
        "status": status.value,
        "reason": reason,
        "amount": order.total.amount,
        "currency": order.total.currency,
    }
    return DomainEvent("PaymentFailed", detail)


def payment_refunded(order: Order, intent: IntentState, refund_id: str) -> DomainEvent:
    """``PaymentRefunded``: a payment that paid nothing went back to the buyer in full."""
    detail: dict[str, object] = {
        "userId": order.user_id,
        "orderId": order.order_id,
        "offerGroup": order.offer_group,
        "paymentIntentId": intent.payment_intent_id,
        "refundId": refund_id,
        "amount": intent.amount_received,
        "currency": intent.currency.lower(),
        "reason": f"the order is {order.status.value}",
    }
    return DomainEvent("PaymentRefunded", detail)


def with_detail(event: DomainEvent, extra: Mapping[str, object]) -> DomainEvent:
    """The same event with ``extra`` fields added to its detail (an id or a figure known only later)."""
    return DomainEvent(event.kind, {**event.detail, **extra})
