"""The writes a credit movement is made of: the group update of a movement, the condition of a spend, closing a
lot and cutting holds (shared by spends, expiries and reversals)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.keys import (
    hold_sk,
    lot_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import (
    lot_to_item,
    movement_to_attribute,
    settled_hold_item,
)
from usercredits.adapters.dynamodb.tables import (
    CreditGroupItem,
    HoldItem,
    LotItem,
)
from usercredits.domain.credits import HoldCut
from usercredits.domain.models import (
    Lot,
    Movement,
    ReservationStatus,
)


def spend_condition(count: int, floor: int | None, now: datetime) -> Condition:
    # DynamoDB conditions cannot do arithmetic, hence the stored `available` (balance - held).
    not_due: Condition = CreditGroupItem.next_expiry.does_not_exist() | (CreditGroupItem.next_expiry > now)
    if floor is None:
        return not_due
    covered: Condition = CreditGroupItem.available >= floor + count
    if floor + count <= 0:  # a group never bought may still be spent from, down to its overdraft limit
        covered = covered | CreditGroupItem.available.does_not_exist()
    combined: Condition = covered & not_due
    return combined


def movement_actions(user_id: str, offer_group: str, movement: Movement, now: datetime) -> list[Any]:
    """Append ``movement`` to the group's journal and apply it to balance and held (creating the group if needed)."""
    return [
        CreditGroupItem.item_type.set(CreditGroupItem),
        CreditGroupItem.user_id.set(user_id),
        CreditGroupItem.offer_group.set(offer_group),
        CreditGroupItem.balance.add(movement.tokens),
        CreditGroupItem.held.add(movement.held),
        CreditGroupItem.available.add(movement.tokens - movement.held),
        CreditGroupItem.journal.set((CreditGroupItem.journal | []).append([movement_to_attribute(movement)])),
        CreditGroupItem.journal_first_seq.set(CreditGroupItem.journal_first_seq | 1),
        CreditGroupItem.updated_at.set(now),
    ]


def add_hold_cuts(transaction: TransactWrite, user_id: str, cuts: Sequence[HoldCut], now: datetime) -> None:
    """Reduce holds in ``transaction`` (the group's ``held`` is the caller's), each conditional on still being held
    with the count read: a hold cut to 0 is released (settled, out of the credits range), the others keep less."""
    for cut in cuts:
        key = HoldItem(pk=user_pk(user_id), sk=hold_sk(cut.hold.reservation_id))
        condition = (HoldItem.status == ReservationStatus.HELD.value) & (HoldItem.held_count == cut.hold.count)
        reduced = cut.hold.reduced + cut.cut
        if cut.count == 0:
            released = cut.hold.model_copy(
                update={"status": ReservationStatus.RELEASED, "count": 0, "reduced": reduced, "updated_at": now}
            )
            transaction.delete(key, condition=condition)
            transaction.save(settled_hold_item(user_id, released))
        else:
            transaction.update(
                key,
                actions=[
                    HoldItem.held_count.set(cut.count),
                    HoldItem.reduced.set(reduced),
                    HoldItem.updated_at.set(now),
                ],
                condition=condition,
            )


def move_closed_lot(transaction: TransactWrite, user_id: str, lot: Lot, closed: Lot, *, condition: Condition) -> None:
    """Close ``lot`` as ``closed``: its open item is deleted (``condition`` on it) and its closed copy put outside the
    credits ranges (two actions), so no read of the balances ever meets a closed lot again."""
    transaction.delete(LotItem(pk=user_pk(user_id), sk=lot_sk(lot)), condition=condition)
    transaction.save(lot_to_item(user_id, closed), condition=LotItem.pk.does_not_exist())
