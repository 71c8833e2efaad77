"""Reading a user's credits range: the groups, open lots and open holds in key order, jumping past the lots of a
group beyond those a read shows, so a read costs what it shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from usercredits.adapters.dynamodb.keys import (
    CREDITS_FIRST,
    GROUPS_END,
    group_range_end,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import item_to_group_state
from usercredits.adapters.dynamodb.tables import (
    CreditGroupItem,
    CreditsItem,
    LotItem,
)
from usercredits.domain.models import (
    GroupState,
)

#: Items one request of a read of credits ranges asks for when it shows only the first lots of each group.
VIEW_PAGE = 100


def read_credit_items(
    user_id: str,
    lower: str,
    upper: str,
    *,
    consistent: bool = True,
    lots_per_group: int | None = None,
    page_size: int = VIEW_PAGE,
) -> Iterator[CreditsItem]:
    """The user's credits items between ``lower`` and ``upper`` in key order: groups (each followed by its open lots
    in burn order) then open holds. ``lots_per_group`` None: every item (DynamoDB's own 1 MB pages). Otherwise
    requests of ``page_size`` items yielding at most ``lots_per_group`` + 1 lots of each group (the one more says
    there are more): when a page ends among lots of a group past that, the next request starts after the group's
    lots, so the cost is O(groups × page), whatever the number of lots."""
    if lots_per_group is None:
        yield from CreditsItem.query(user_pk(user_id), CreditsItem.sk.between(lower, upper), consistent_read=consistent)
        return
    counts: dict[str, int] = {}
    start_key: dict[str, Any] | None = None
    while lower < upper:
        result = CreditsItem.query(
            user_pk(user_id),
            CreditsItem.sk.between(lower, upper),
            consistent_read=consistent,
            limit=page_size,
            page_size=page_size,
            last_evaluated_key=start_key,
        )
        last: CreditsItem | None = None
        for item in result:
            last = item
            if isinstance(item, LotItem):
                counts[item.offer_group] = counts.get(item.offer_group, 0) + 1
                if counts[item.offer_group] > lots_per_group + 1:
                    continue
            yield item
        start_key = result.last_evaluated_key
        if not start_key:
            return
        if isinstance(last, LotItem) and counts[last.offer_group] > lots_per_group:
            lower, start_key = group_range_end(last.offer_group), None  # the rest of its lots are not wanted


def group_states(user_id: str) -> dict[str, GroupState]:
    """Every credit group of the user, without lots or holds: one Query unless a group has more than ``VIEW_PAGE``
    open lots (then one more per such group, which the read jumps past)."""
    return {
        item.offer_group: item_to_group_state(item)
        for item in read_credit_items(user_id, CREDITS_FIRST, GROUPS_END, lots_per_group=0)
        if isinstance(item, CreditGroupItem)
    }
