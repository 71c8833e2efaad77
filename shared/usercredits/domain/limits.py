"""Per-user purchase limits (``OfferTerms.per_user_limit``): how many orders of an offer one user may hold.

An order of an offer that had a limit when it was placed is ``limited``. It holds one of its user's **slots** of that
offer while it counts: while ``pending``, ``paid`` or ``expired``. One that is ``refused``, ``error``, ``canceled``,
``inconsistent`` or ``refunded`` does not count, and gives its slot back in the very write that moves it there; a
success after a refusal takes a slot again, even beyond the limit (the money was collected: it must be granted).

The user's slots are one counter per (user, offer), written only inside the transaction of the order change that
takes or gives a slot: taking one for a new order is conditional on the counter being below the limit, so racing
orders can never pass it. Whether an order holds a slot, and how a change of it moves the counter, are the order's
own (``Order.holds_slot``, ``Order.with_slot``, ``Order.slot_change``): the repositories write what they say. This
module is what ordering checks.
"""

from __future__ import annotations

from usercredits.domain.models import Offer


def limit_reached_message(offer_id: str, per_user_limit: int) -> str:
    return f"purchase limit reached: at most {per_user_limit} orders of offer {offer_id!r} per user"


def at_limit(offer: Offer, held: int) -> bool:
    """Whether a user holding ``held`` slots of ``offer`` may not order it again."""
    return offer.per_user_limit is not None and held >= offer.per_user_limit
