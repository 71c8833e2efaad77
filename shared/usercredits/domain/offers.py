"""Offer use cases: the catalog as a caller sees it (``catalog.py`` holds the visibility rules) and as an admin edits
it. Rules: docs/rules.md#offer-visibility."""

from __future__ import annotations

from collections.abc import Sequence

from usercredits.domain import catalog as catalog_rules
from usercredits.domain.models import Offer, OfferView
from usercredits.domain.ports import (
    CatalogRepository,
    OrderRepository,
)
from usercredits.errors import (
    NotFoundError,
)
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Caller


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
