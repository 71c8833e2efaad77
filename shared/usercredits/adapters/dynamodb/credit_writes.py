"""Writes that closing lots and cutting holds are made of, shared by the expiry (``credits.close_lots``) and the
reversal of a refund or dispute (``reversals``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pynamodb.expressions.condition import Condition
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.credits_table import HoldItem, LotItem
from usercredits.adapters.dynamodb.keys import (
    hold_sk,
    lot_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import (
    lot_to_item,
    settled_hold_item,
)
from usercredits.domain.credits import HoldCut
from usercredits.domain.models import (
    Lot,
    ReservationStatus,
)


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
