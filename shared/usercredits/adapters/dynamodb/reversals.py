"""DynamoDB writes of refunds and disputes: one transaction per report (see ``usercredits.domain.reversal``)."""

from __future__ import annotations

from typing import Any

from usercredits.adapters.dynamodb.credit_writes import add_hold_cuts, move_closed_lot
from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, LotItem, OrderItem
from usercredits.adapters.dynamodb.errors import translate_errors
from usercredits.adapters.dynamodb.keys import group_sk, lot_sk, order_sk, user_pk
from usercredits.adapters.dynamodb.mappers import history_to_attribute, movement_to_attribute, purchases_to_attribute
from usercredits.adapters.dynamodb.orders import (
    add_slot_change,
    order_as_read,
    payment_actions,
    slot_flag_actions,
    with_slot_condition,
)
from usercredits.adapters.dynamodb.transactions import (
    ConditionFailedError,
    IdempotentTransaction,
    TransactionTooLargeError,
    add_outbox,
    equals_stored,
    set_or_remove,
)
from usercredits.domain.models import GroupState
from usercredits.domain.reversal import GroupChange, Reversal
from usercredits.errors import UnavailableError
from usercredits.kernel.writes import IdempotencyRecord


class DynamoReversalRepository:
    """Implements ``ReversalRepository``."""

    @translate_errors
    def apply_reversal(self, reversal: Reversal, idempotency: IdempotencyRecord | None) -> bool:
        """One transaction: [the Stripe event id], the order (conditional on its last update as read), its bundle
        children (status, withdrawn), each changed lot (conditional on its revoked, debt and closed as read), each
        reduced hold (conditional on its count as read), each group (conditional on its version, and on what the
        plan relied on: the available balance above the floor, or the balance, held and drawn as read), the
        outbox, and the user's counter of the offer's per-user limit when the order gives its slot back (a full
        refund: ``Order.slot_change``).

        At most ``MAX_TRANSACTION_ACTIONS`` (100): a bundle has at most ``MAX_BUNDLE_ITEMS`` items, and holds to cut
        beyond what fits are left to the group's next step (``reversal._fitted``). A plan past it anyway is not sent
        (nothing is written): ``UnavailableError``, and the report is retried."""
        order, read = reversal.order, reversal.read
        user = order.user_id
        now = order.updated_at
        slot = read.slot_change(order)
        try:
            with IdempotentTransaction(user, idempotency) as transaction:
                transaction.update(
                    OrderItem(pk=user_pk(user), sk=order_sk(order.order_id)),
                    actions=[
                        OrderItem.status.set(order.status.value),
                        OrderItem.revoked_for_amount.set(order.revoked_for_amount),
                        OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
                        OrderItem.updated_at.set(now),
                        *payment_actions(order),
                        *slot_flag_actions(slot),
                    ],
                    condition=with_slot_condition(order_as_read(read), read, slot),
                )
                for child_id in sorted(set(reversal.children_status) | set(reversal.children_withdrawn)):
                    actions: list[Any] = [OrderItem.updated_at.set(now)]
                    if child_id in reversal.children_status:
                        actions.append(OrderItem.status.set(reversal.children_status[child_id].value))
                    if child_id in reversal.children_withdrawn:
                        actions.append(OrderItem.withdrawn.set(reversal.children_withdrawn[child_id]))
                    transaction.update(
                        OrderItem(pk=user_pk(user), sk=order_sk(child_id)),
                        actions=actions,
                        condition=OrderItem.pk.exists(),
                    )
                for change in reversal.lot_changes:
                    as_read = (
                        equals_stored(LotItem.revoked, change.lot.revoked)
                        & equals_stored(LotItem.debt, change.lot.debt)
                        & (LotItem.closed == change.lot.closed)
                    )
                    if change.closed and not change.lot.closed:  # a full refund: nothing left, out of every range
                        closed = change.lot.model_copy(
                            update={"closed": True, "revoked": change.revoked, "debt": change.debt}
                        )
                        move_closed_lot(transaction, user, change.lot, closed, condition=as_read)
                        continue
                    transaction.update(
                        LotItem(pk=user_pk(user), sk=lot_sk(change.lot)),
                        actions=[LotItem.revoked.set(change.revoked), LotItem.debt.set(change.debt)],
                        condition=as_read,
                    )
                for group, moved in reversal.groups.items():
                    add_hold_cuts(transaction, user, moved.cuts, now)
                    transaction.update(
                        CreditGroupItem(pk=user_pk(user), sk=group_sk(group)),
                        actions=_group_actions(moved, now),
                        condition=_group_condition(moved),
                    )
                add_outbox(transaction, user, reversal.events, now)
                add_slot_change(transaction, order, slot, now)
        except ConditionFailedError:
            return False
        except TransactionTooLargeError as exc:
            cuts = sum(len(moved.cuts) for moved in reversal.groups.values())
            raise UnavailableError(
                f"the credits of order {order.order_id!r} cannot be taken back in one transaction ({exc.actions} "
                f"actions, {cuts} holds to cut): retry",
                retry_after=60,
            ) from exc
        return True


def _group_actions(change: GroupChange, now: Any) -> list[Any]:
    held = change.held
    actions: list[Any] = [
        CreditGroupItem.version.set(change.before.version + 1),
        CreditGroupItem.updated_at.set(now),
    ]
    if change.balance or held:
        actions += [
            CreditGroupItem.balance.add(change.balance),
            CreditGroupItem.available.add(change.balance - held),
        ]
    if held:
        actions.append(CreditGroupItem.held.add(held))
    if change.drawn:
        actions.append(CreditGroupItem.drawn.add(change.drawn))
    if change.movements:
        actions.append(
            CreditGroupItem.journal.set(
                (CreditGroupItem.journal | []).append([movement_to_attribute(m) for m in change.movements])
            )
        )
    if change.window is not None:
        actions += _window_actions(change.window)
    if change.closes_lots:
        actions.append(set_or_remove(CreditGroupItem.next_expiry, change.next_expiry))
    return actions


def _window_actions(window: GroupState) -> list[Any]:
    return [
        set_or_remove(CreditGroupItem.starts, window.starts),
        set_or_remove(CreditGroupItem.expires, window.expires),
        CreditGroupItem.perpetual.set(window.perpetual),
        CreditGroupItem.purchases.set(purchases_to_attribute(window)),
        CreditGroupItem.perpetual_purchases.set(window.perpetual_purchases),
    ]


def _group_condition(change: GroupChange) -> Any:
    before = change.before
    condition = equals_stored(CreditGroupItem.version, before.version)
    if change.fits_floor is not None:  # a spend racing us must not push the group past its floor
        condition &= CreditGroupItem.available >= change.fits_floor
    if change.pinned:  # holds were cut, a debt arose or an expired lot gave back, from what was read
        condition &= (
            equals_stored(CreditGroupItem.balance, before.balance)
            & equals_stored(CreditGroupItem.held, before.held)
            & equals_stored(CreditGroupItem.drawn, before.drawn)
        )
    return condition


__all__ = ["DynamoReversalRepository"]
