"""Per-user purchase limits (``OfferTerms.per_user_limit``): how many orders of an offer one user may hold.

An order of an offer that had a limit when it was placed is ``limited``. It holds one of its user's **slots** of that
offer while it counts: while ``pending``, ``paid`` or ``expired``. One that is ``refused``, ``error``, ``canceled``,
``inconsistent`` or ``refunded`` does not count, and gives its slot back in the very write that moves it there; a
success after a refusal takes a slot again, even beyond the limit (the money was collected: it must be granted).

The user's slots are one counter per (user, offer), written only inside the transaction of the order change that
takes or gives a slot: taking one for a new order is conditional on the counter being below the limit, so racing
orders can never pass it. These functions decide; the repositories only write what they say.
"""

from __future__ import annotations

from usercredits.domain.models import Offer, Order, OrderStatus

#: The statuses in which a limited order holds a slot.
COUNTING = frozenset({OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.EXPIRED})


def holds_slot(order: Order) -> bool:
    """Whether ``order``, as it is, holds a slot: it is limited and its status counts."""
    return order.limited and order.status in COUNTING


def with_slot(order: Order) -> Order:
    """``order`` with ``limit_slot`` saying whether it holds a slot as it is now."""
    holds = holds_slot(order)
    return order if order.limit_slot == holds else order.model_copy(update={"limit_slot": holds})


def slot_change(read: Order, after: Order) -> int:
    """How an order change moves its user's counter of the offer: +1 when the order comes to hold a slot (a success
    after a refusal: taken whatever the counter says), -1 when it gives its slot back, 0 otherwise. ``read`` is the
    order as stored (its ``limit_slot`` is what it holds), ``after`` what it becomes."""
    return int(holds_slot(after)) - int(read.limit_slot)


def limit_reached_message(offer_id: str, per_user_limit: int) -> str:
    return f"purchase limit reached: at most {per_user_limit} orders of offer {offer_id!r} per user"


def at_limit(offer: Offer, held: int) -> bool:
    """Whether a user holding ``held`` slots of ``offer`` may not order it again."""
    return offer.per_user_limit is not None and held >= offer.per_user_limit
