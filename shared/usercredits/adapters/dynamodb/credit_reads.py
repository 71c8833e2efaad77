"""Reading a user's credits range: the groups, open lots and open holds in key order, jumping past the lots of a
group beyond those a read shows, so a read costs what it shows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pynamodb.exceptions import DoesNotExist

from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, CreditsItem, HoldItem, LotItem
from usercredits.adapters.dynamodb.cursors import decode_lots_cursor, lots_cursor
from usercredits.adapters.dynamodb.keys import (
    CREDITS_FIRST,
    GROUPS_END,
    group_lots_prefix,
    group_range_end,
    group_sk,
    hold_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import (
    item_to_group_state,
    item_to_lot,
    item_to_reservation,
)
from usercredits.domain.models import (
    GroupState,
    ReservationStatus,
)
from usercredits.domain.ports import CreditSnapshot

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


def read_range(
    user_id: str,
    snapshot: CreditSnapshot,
    lower: str,
    upper: str,
    consistent: bool,
    shown: int | None = None,
    page_size: int = VIEW_PAGE,
) -> None:
    """Read the credits items between ``lower`` and ``upper`` into ``snapshot``: every open lot (``shown`` None),
    or the first ``shown`` of each group and a cursor to the others."""
    counts: dict[str, int] = {}
    last_shown: dict[str, str] = {}
    items = read_credit_items(user_id, lower, upper, consistent=consistent, lots_per_group=shown, page_size=page_size)
    for item in items:
        if isinstance(item, CreditGroupItem):
            snapshot.groups[item.offer_group] = item_to_group_state(item)
        elif isinstance(item, LotItem):
            group = item.offer_group
            counts[group] = counts.get(group, 0) + 1
            if shown is None or counts[group] <= shown:
                snapshot.lots.append(item_to_lot(item))
                last_shown[group] = item.sk
        # Only open holds live here; the status test skips holds settled before they moved out (issue 12).
        elif isinstance(item, HoldItem) and item.status == ReservationStatus.HELD.value:
            snapshot.holds.append(item_to_reservation(item))
    for group, count in counts.items():
        state = snapshot.groups.get(group)
        if shown and count > shown and state is not None:
            tokens = sum(lot.effective_tokens for lot in snapshot.lots if lot.offer_group == group)
            snapshot.more_lots[group] = lots_cursor(last_shown[group], tokens, state.version)


def read_lots_after(user_id: str, snapshot: CreditSnapshot, group: str, cursor: str, shown: int) -> None:
    """The page of ``group``'s lots after ``cursor``: the group by key, then one Query of ``shown`` + 1 lots. The
    tokens before the page come from the cursor, or (when the group's lots changed since: its version moved) from
    a Query of the lots before it, so what remains of each lot is exact either way."""
    after, before, version = decode_lots_cursor(cursor, group_lots_prefix(group))
    state = read_group(user_id, group)
    if state is None:
        return
    snapshot.groups[group] = state
    if version != state.version:
        before = 0
        for item in LotItem.query(
            user_pk(user_id), LotItem.sk.between(group_lots_prefix(group), after), consistent_read=True
        ):
            before += item_to_lot(item).effective_tokens
    snapshot.lots_before[group] = before
    result = LotItem.query(
        user_pk(user_id),
        LotItem.sk.between(group_lots_prefix(group), group_range_end(group)),
        consistent_read=True,
        limit=shown + 1,
        page_size=shown + 1,
        last_evaluated_key={"pk": {"S": user_pk(user_id)}, "sk": {"S": after}},
    )
    items = list(result)
    for item in items[:shown]:
        snapshot.lots.append(item_to_lot(item))
    if len(items) > shown:
        tokens = before + sum(lot.effective_tokens for lot in snapshot.lots)
        snapshot.more_lots[group] = lots_cursor(items[shown - 1].sk, tokens, state.version)


def add_group_holds(user_id: str, snapshot: CreditSnapshot, group: str, consistent: bool) -> None:
    """The group's open holds, read only when it holds something (a group holding nothing has none open)."""
    state = snapshot.groups.get(group)
    if state is None or state.held <= 0:
        return
    for item in HoldItem.query(
        user_pk(user_id),
        HoldItem.sk.startswith(hold_sk("")),
        filter_condition=HoldItem.offer_group == group,
        consistent_read=consistent,
    ):
        if item.status == ReservationStatus.HELD.value:
            snapshot.holds.append(item_to_reservation(item))


def read_group(user_id: str, offer_group: str) -> GroupState | None:
    try:
        item = CreditGroupItem.get(user_pk(user_id), group_sk(offer_group), consistent_read=True)
    except DoesNotExist:
        return None
    return item_to_group_state(item)
