"""The catalog in DynamoDB: offers and group policies under ``CATALOG``, cached per Lambda instance."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import UpdateError

from usercredits.adapters.dynamodb.credits_table import CreditsItem, GroupPolicyItem, OfferItem
from usercredits.adapters.dynamodb.errors import (
    condition_failed,
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import (
    CATALOG_PK,
    offer_sk,
)
from usercredits.adapters.dynamodb.mappers import item_to_offer, item_to_policy, offer_to_item, policy_to_item
from usercredits.domain.models import (
    GroupPolicy,
    Offer,
)


@dataclass(frozen=True)
class _Catalog:
    offers: dict[str, Offer]
    policies: dict[str, GroupPolicy]


class DynamoCatalogRepository:
    """The catalog (offers and group policies): one partition, read with one Query and cached in the warm container
    for ``cache_seconds``."""

    def __init__(self, cache_seconds: int = 60) -> None:
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, _Catalog] | None = None

    @translate_errors
    def list_offers(self) -> list[Offer]:
        return list(self._catalog().offers.values())

    @translate_errors
    def get_offer(self, offer_id: str) -> Offer | None:
        return self._catalog().offers.get(offer_id)

    @translate_errors
    def group_policy(self, offer_group: str) -> GroupPolicy:
        """The group's policy; a group without one refuses overdrafts and has no low threshold."""
        return self._catalog().policies.get(offer_group) or GroupPolicy(offer_group=offer_group)

    def _catalog(self) -> _Catalog:
        if self._cached is not None and time.monotonic() < self._cached[0]:
            return self._cached[1]
        offers: dict[str, Offer] = {}
        policies: dict[str, GroupPolicy] = {}
        for item in CreditsItem.query(CATALOG_PK):
            if isinstance(item, OfferItem):
                offers[item.offer_id] = item_to_offer(item)
            elif isinstance(item, GroupPolicyItem):
                policies[item.offer_group] = item_to_policy(item)
        catalog = _Catalog(offers, policies)
        if self._cache_seconds > 0:
            self._cached = (time.monotonic() + self._cache_seconds, catalog)
        return catalog

    @translate_errors
    def put_offer(self, offer: Offer, now: datetime) -> None:
        offer_to_item(offer, now).save()
        self._cached = None

    @translate_errors
    def put_group_policy(self, policy: GroupPolicy) -> None:
        policy_to_item(policy).save()
        self._cached = None

    @translate_errors
    def retire_offer(self, offer_id: str, now: datetime) -> bool:
        item = OfferItem(pk=CATALOG_PK, sk=offer_sk(offer_id))
        try:
            item.update(
                actions=[OfferItem.retired.set(True), OfferItem.updated_at.set(now)],
                condition=OfferItem.pk.exists(),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        self._cached = None
        return True
