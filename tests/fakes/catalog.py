"""An in-memory catalog: offers and group policies."""

from __future__ import annotations

from datetime import datetime

from usercredits.domain.models import GroupPolicy, Offer


class InMemoryCatalogRepository:
    """Offers by id and group policies by group (the defaults for a group without one, as the catalog gives)."""

    def __init__(self, offers: list[Offer] | None = None, policies: list[GroupPolicy] | None = None) -> None:
        self.offers: dict[str, Offer] = {offer.offer_id: offer for offer in offers or []}
        self.policies: dict[str, GroupPolicy] = {policy.offer_group: policy for policy in policies or []}

    def __len__(self) -> int:
        return len(self.offers)

    def __contains__(self, offer_id: object) -> bool:
        return offer_id in self.offers

    def list_offers(self) -> list[Offer]:
        return list(self.offers.values())

    def get_offer(self, offer_id: str) -> Offer | None:
        return self.offers.get(offer_id)

    def put_offer(self, offer: Offer, now: datetime) -> None:
        self.offers[offer.offer_id] = offer

    def retire_offer(self, offer_id: str, now: datetime) -> bool:
        if offer_id not in self.offers:
            return False
        self.offers[offer_id] = self.offers[offer_id].model_copy(update={"retired": True})
        return True

    def group_policy(self, offer_group: str) -> GroupPolicy:
        return self.policies.get(offer_group) or GroupPolicy(offer_group=offer_group)

    def put_group_policy(self, policy: GroupPolicy) -> None:
        self.policies[policy.offer_group] = policy
