"""Which offers a caller sees: the rules of docs/rules.md#offer-visibility."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from usercredits.domain.models import Offer, OfferView


def matches_tags(offer: Offer, tags: Sequence[str], all_tags: bool) -> bool:
    """An empty tag list filters nothing; otherwise the offer needs all (``all_tags``) or any of ``tags``."""
    if not tags:
        return True
    offered = set(offer.tags)
    return offered.issuperset(tags) if all_tags else not offered.isdisjoint(tags)


def is_unlocked(offer: Offer, paid_groups: Iterable[str]) -> bool:
    """A public offer is always unlocked; a locked one needs a paid, unexpired purchase in one of its groups."""
    return not offer.is_locked or not set(offer.unlocked_by).isdisjoint(paid_groups)


def visible_offers(
    offers: Iterable[Offer],
    *,
    paid_groups: Iterable[str],
    currency: str,
    tags: Sequence[str] = (),
    all_tags: bool = False,
) -> list[OfferView]:
    """The offers a caller sees, priced in ``currency``.

    Public offers plus those unlocked by the caller's ``paid_groups``. An unlocked offer with an ``overridingKey``
    replaces the public offers with the same key; among unlocked offers sharing a key the strictly heavier ``weight``
    wins and ties go to the smallest ``offerId`` (deterministic, unlike the seed's load order). Offers without a key
    never collide. Retired offers and offers with no price in ``currency`` are left out. Tag filters apply to both
    public and unlocked offers. Order: public offers, then unlocked ones, each by ``offerId``.
    """
    paid = set(paid_groups)
    candidates = sorted(
        (
            offer
            for offer in offers
            if not offer.retired and offer.price_in(currency) is not None and matches_tags(offer, tags, all_tags)
        ),
        key=lambda offer: offer.offer_id,
    )
    public = [offer for offer in candidates if not offer.is_locked]
    unlocked = [offer for offer in candidates if offer.is_locked and is_unlocked(offer, paid)]

    winners: dict[str, Offer] = {}
    keyless: list[Offer] = []
    for offer in unlocked:
        if offer.overriding_key is None:
            keyless.append(offer)
            continue
        current = winners.get(offer.overriding_key)
        if current is None or offer.weight > current.weight:
            winners[offer.overriding_key] = offer

    kept_public = [offer for offer in public if offer.overriding_key not in winners]
    chosen = kept_public + sorted([*winners.values(), *keyless], key=lambda offer: offer.offer_id)
    return [to_view(offer, currency) for offer in chosen]


def to_view(offer: Offer, currency: str) -> OfferView:
    """The offer with its price in ``currency`` (the caller checked that it has one).

    Built from the offer as stored, not validated again: the offer was validated when it was written, and an offer
    written under older rules (e.g. one bundling more items than ``MAX_BUNDLE_ITEMS`` allows now) must still list:
    only ordering it is refused."""
    price = offer.price_in(currency)
    if price is None:  # pragma: no cover - guarded by callers
        raise ValueError(f"offer {offer.offer_id} has no price in {currency}")
    return OfferView.model_construct(**dict(offer), price=price)
