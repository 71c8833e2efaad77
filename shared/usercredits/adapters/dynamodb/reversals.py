"""DynamoDB writes of refunds and disputes: one transaction per report (see ``usercredits.domain.reversal``)."""

from __future__ import annotations

from usercredits.adapters.dynamodb.errors import translate_errors
from usercredits.adapters.dynamodb.repositories import (
    ConditionFailedError,
    IdempotentTransaction,
    add_outbox,
    equals_stored,
    group_sk,
    history_to_attribute,
    lot_sk,
    movement_to_attribute,
    order_sk,
    set_or_remove,
    user_pk,
)
from usercredits.adapters.dynamodb.tables import CreditGroupItem, LotItem, OrderItem
from usercredits.domain.ports import IdempotencyRecord
from usercredits.domain.reversal import Reversal


class DynamoReversalRepository:
    """Implements ``ReversalRepository``."""

    @translate_errors
    def apply_reversal(self, reversal: Reversal, idempotency: IdempotencyRecord | None) -> bool:
        """One transaction: [the Stripe event id], the order (conditional on its last update as read), its bundle
        children's status, each changed lot (conditional on its revoked tokens as read and being open), each group
        (conditional on its version, and on the available balance keeping its floor), the outbox."""
        order, read = reversal.order, reversal.read
        user = order.user_id
        now = order.updated_at
        try:
            with IdempotentTransaction(user, idempotency) as transaction:
                transaction.update(
                    OrderItem(pk=user_pk(user), sk=order_sk(order.order_id)),
                    actions=[
                        OrderItem.status.set(order.status.value),
                        OrderItem.refunded_amount.set(order.refunded_amount),
                        OrderItem.disputed_amount.set(order.disputed_amount),
                        set_or_remove(
                            OrderItem.dispute_status, order.dispute_status.value if order.dispute_status else None
                        ),
                        OrderItem.revoked_for_amount.set(order.revoked_for_amount),
                        OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
                        OrderItem.updated_at.set(now),
                    ],
                    condition=(OrderItem.status == read.status.value) & (OrderItem.updated_at == read.updated_at),
                )
                for child_id, status in reversal.children_status.items():
                    transaction.update(
                        OrderItem(pk=user_pk(user), sk=order_sk(child_id)),
                        actions=[OrderItem.status.set(status.value), OrderItem.updated_at.set(now)],
                        condition=OrderItem.pk.exists(),
                    )
                for change in reversal.lot_changes:
                    transaction.update(
                        LotItem(pk=user_pk(user), sk=lot_sk(change.lot)),
                        actions=[LotItem.revoked.set(change.revoked)],
                        condition=equals_stored(LotItem.revoked, change.lot.revoked) & (LotItem.closed == False),  # noqa: E712
                    )
                for group, movements in reversal.movements.items():
                    before = reversal.groups_before[group]
                    net = reversal.net.get(group, 0)
                    condition = equals_stored(CreditGroupItem.version, before.version)
                    floor = reversal.floors.get(group)
                    if net < 0 and floor is not None:  # a spend racing us must not push the group past its floor
                        condition &= CreditGroupItem.available >= floor - net
                    transaction.update(
                        CreditGroupItem(pk=user_pk(user), sk=group_sk(group)),
                        actions=[
                            CreditGroupItem.balance.add(net),
                            CreditGroupItem.available.add(net),
                            CreditGroupItem.version.set(before.version + 1),
                            CreditGroupItem.updated_at.set(now),
                            CreditGroupItem.journal.set(
                                (CreditGroupItem.journal | []).append([movement_to_attribute(m) for m in movements])
                            ),
                        ],
                        condition=condition,
                    )
                add_outbox(transaction, user, reversal.events, now)
        except ConditionFailedError:
            return False
        return True


__all__ = ["DynamoReversalRepository"]
