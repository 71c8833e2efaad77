"""DynamoDB order repository: orders, their payment intents and purchase-limit slots, settled with their lots and
windows in one conditional transaction each.

Longer than ~400 lines as one concept: the ``OrderRepository`` port's operations.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.credit_reads import group_states
from usercredits.adapters.dynamodb.credits_table import (
    CreditGroupItem,
    CreditsItem,
    IdempotencyItem,
    LotItem,
    OrderItem,
    PaymentIntentLinkItem,
    PurchaseLimitItem,
)
from usercredits.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from usercredits.adapters.dynamodb.errors import (
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import (
    INTENT_PREFIX,
    LIMIT_PREFIX,
    group_sk,
    idempotency_sk,
    intent_sk,
    limit_sk,
    order_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import (
    history_to_attribute,
    item_to_order,
    line_to_attribute,
    lot_to_item,
    movement_to_attribute,
    order_to_item,
    other_intents_json,
    purchases_to_attribute,
)
from usercredits.adapters.dynamodb.transactions import (
    ConditionFailedError,
    IdempotentTransaction,
    add_outbox,
    credits_connection,
    equals_stored,
    set_or_remove,
)
from usercredits.domain.models import GroupState, HistoryEntry, Order, OrderStatus
from usercredits.domain.ports import PurchaseLimitError, StaleWindowError
from usercredits.domain.settlement import Settlement
from usercredits.errors import ConflictError
from usercredits.kernel.models import DomainEvent, Page
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError


class DynamoOrderRepository:
    """Orders, paid windows and idempotency records of the users, in the credits table."""

    @translate_errors
    def get_order(self, user_id: str, order_id: str) -> Order | None:
        try:
            item = OrderItem.get(user_pk(user_id), order_sk(order_id), consistent_read=True)
        except DoesNotExist:
            return None
        return item_to_order(item) if isinstance(item, OrderItem) else None

    @translate_errors
    def list_orders(self, user_id: str, *, status: OrderStatus | None, limit: int, cursor: str | None) -> Page[Order]:
        start_key = None
        if cursor is not None:
            start_key = {"pk": {"S": user_pk(user_id)}, "sk": {"S": decode_cursor(cursor, "ORDER#")}}
        results = OrderItem.query(
            user_pk(user_id),
            OrderItem.sk.startswith("ORDER#"),
            filter_condition=(OrderItem.status == status.value) if status else None,
            scan_index_forward=False,
            limit=limit + 1,  # one more than asked tells whether a next page exists
            last_evaluated_key=start_key,
            page_size=limit + 1,
        )
        items = list(results)
        orders = [item_to_order(item) for item in items[:limit]]
        next_cursor = encode_cursor(items[limit - 1].sk) if len(items) > limit else None
        return Page[Order](items=orders, next_cursor=next_cursor)

    @translate_errors
    def find_orders(self, user_id: str, *, offer_id: str, status: OrderStatus) -> list[Order]:
        return [
            item_to_order(item)
            for item in OrderItem.query(
                user_pk(user_id),
                OrderItem.sk.startswith("ORDER#"),
                filter_condition=(OrderItem.offer_id == offer_id) & (OrderItem.status == status.value),
            )
        ]

    @translate_errors
    def group_states(self, user_id: str) -> Mapping[str, GroupState]:
        return group_states(user_id)

    @translate_errors
    def limit_slots(self, user_id: str, offer_id: str) -> int:
        try:
            item = PurchaseLimitItem.get(user_pk(user_id), limit_sk(offer_id), consistent_read=True)
        except DoesNotExist:
            return 0
        return int(item.slots or 0) if isinstance(item, PurchaseLimitItem) else 0

    @translate_errors
    def create_order(
        self,
        order: Order,
        *,
        settlement: Settlement | None,
        idempotency: IdempotencyRecord | None,
        per_user_limit: int | None = None,
    ) -> None:
        """One transaction: [idempotency record], the order, [its slot of the offer's per-user limit: its failed
        condition is ``PurchaseLimitError``], [the intent's link], [the settlement's writes]."""
        with self._transaction(order.user_id, idempotency, order.order_id) as transaction:
            transaction.save(order_to_item(order), condition=OrderItem.pk.does_not_exist())
            if order.limit_slot:
                add_slot_change(transaction, order, 1, order.created_at, at_most=per_user_limit)
            if order.payment_intent_id:
                _link_intent(transaction, order, order.payment_intent_id, order.created_at)
            if settlement is not None:
                self._add_settlement_writes(transaction, settlement)

    @translate_errors
    def settle_order(
        self, settlement: Settlement, *, read: Order | None = None, idempotency: IdempotencyRecord | None = None
    ) -> bool:
        order = settlement.order
        # The order as read decides (status and last update): anything that changed it meanwhile makes this a no-op.
        condition = OrderItem.status == OrderStatus.PENDING.value
        if read is not None:
            condition = order_as_read(read)
        # Paid after a refusal gave its slot back: it takes one again, whatever the limit (the money was collected).
        slot = read.slot_change(order) if read is not None else 0  # pending -> paid: it holds one already
        actions = [
            OrderItem.status.set(order.status.value),
            OrderItem.starts.set(order.starts) if order.starts else OrderItem.starts.remove(),
            OrderItem.expires.set(order.expires) if order.expires else OrderItem.expires.remove(),
            OrderItem.combined_items.set([line_to_attribute(line) for line in order.combined_items])
            if order.combined_items
            else OrderItem.combined_items.remove(),
            OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
            OrderItem.updated_at.set(order.updated_at),
            *payment_actions(order),
            *slot_flag_actions(slot),
        ]
        try:
            with self._order_update(
                order, idempotency, actions, with_slot_condition(condition, read, slot)
            ) as transaction:
                self._add_settlement_writes(transaction, settlement)
                add_slot_change(transaction, order, slot, order.updated_at)
        except (_OrderNotPendingError, IdempotentReplayError):
            return False
        return True

    @translate_errors
    def change_status(
        self,
        read: Order,
        status: OrderStatus,
        message: str,
        now: datetime,
        idempotency: IdempotencyRecord | None,
        events: Sequence[DomainEvent] = (),
    ) -> bool:
        """Move an order to ``status`` with a history entry, if it is still as ``read`` (status and last update).
        False when it changed meanwhile or ``idempotency`` was recorded already (nothing written)."""
        entry = HistoryEntry(date=now, status=status, message=message)
        slot = read.slot_change(read.model_copy(update={"status": status}))  # -1: it stops counting
        actions = [
            OrderItem.status.set(status.value),
            OrderItem.history.set(OrderItem.history.append([history_to_attribute(entry)])),
            OrderItem.updated_at.set(now),
            *slot_flag_actions(slot),
        ]
        condition = with_slot_condition(order_as_read(read), read, slot)
        try:
            with self._order_update(read, idempotency, actions, condition) as transaction:
                add_outbox(transaction, read.user_id, events, now)
                add_slot_change(transaction, read, slot, now)
        except (_OrderNotPendingError, IdempotentReplayError):
            return False
        return True

    @translate_errors
    def recorded(self, user_id: str, idempotency: IdempotencyRecord) -> IdempotentReplayError | None:
        """What the key recorded, read consistently (a request that can no longer be redone may be a retry)."""
        try:
            item = IdempotencyItem.get(
                user_pk(user_id), idempotency_sk(idempotency.scope, idempotency.key), consistent_read=True
            )
        except DoesNotExist:
            return None
        return IdempotentReplayError(item.result_id, item.fingerprint)

    @translate_errors
    def record_payment(
        self, order: Order, *, read: Order, idempotency: IdempotencyRecord | None, events: Sequence[DomainEvent]
    ) -> bool:
        """What the order records about its intents, its history and the outbox, conditional on the order being as
        read (status and last update) and on ``idempotency`` not being recorded; False otherwise."""
        actions = [
            OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
            OrderItem.updated_at.set(order.updated_at),
            *payment_actions(order),
        ]
        try:
            with self._order_update(order, idempotency, actions, order_as_read(read)) as transaction:
                add_outbox(transaction, order.user_id, events, order.updated_at)
        except (_OrderNotPendingError, IdempotentReplayError):
            return False
        return True

    @translate_errors
    def find_by_payment_intent(self, payment_intent_id: str) -> tuple[str, str] | None:
        """(userId, orderId) of the order this payment intent was made for (the ByPaymentIntent index holds the
        order's intent on the order item, and every intent it ever had on its ``INTENT#`` link items)."""
        # A low-level Query: the index is KEYS_ONLY, and a model query cannot build items without their itemType.
        answer = credits_connection().query(
            CreditsItem.Meta.table_name, payment_intent_id, index_name=CreditsItem.by_payment_intent.Meta.index_name
        )
        for key in answer.get("Items", []):
            pk, sk = key["pk"]["S"], key["sk"]["S"]
            if sk.startswith("ORDER#"):
                return pk.removeprefix("USER#"), sk.removeprefix("ORDER#")
            if sk.startswith(INTENT_PREFIX):
                return pk.removeprefix("USER#"), sk.removeprefix(INTENT_PREFIX).split("#", 1)[0]
        return None

    @translate_errors
    def set_payment_intent(
        self, order: Order, *, intent_id: str, attempt: int, now: datetime, idempotency: IdempotencyRecord | None
    ) -> Order:
        entry = HistoryEntry(date=now, status=OrderStatus.PENDING, message=f"Payment intent {intent_id} created")
        updated = order.model_copy(
            update={
                "payment_intent_id": intent_id,
                "payment_attempt": attempt,
                "history": [*order.history, entry],
                "updated_at": now,
            }
        )
        actions = [
            OrderItem.payment_intent_id.set(intent_id),
            OrderItem.payment_attempt.set(attempt),
            OrderItem.history.set(OrderItem.history.append([history_to_attribute(entry)])),
            OrderItem.updated_at.set(now),
        ]
        condition = (OrderItem.status == OrderStatus.PENDING.value) & (
            OrderItem.payment_attempt == order.payment_attempt
        )
        try:
            with self._order_update(order, idempotency, actions, condition) as transaction:
                _link_intent(transaction, order, intent_id, now)
        except _OrderNotPendingError as exc:
            raise ConflictError(f"order {order.order_id!r} changed meanwhile; read it again") from exc
        return updated

    # --- transaction plumbing ------------------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def _transaction(user_id: str, idempotency: IdempotencyRecord | None, order_id: str) -> Iterator[TransactWrite]:
        """An order's transaction; failures by the key of what failed: the per-user limit's counter (``LIMIT#``) is
        ``PurchaseLimitError`` (no retry can pass it), the order's own condition ``_OrderNotPendingError`` (it
        changed: read it again), anything else (a window, a lot) ``StaleWindowError``."""
        try:
            with IdempotentTransaction(user_id, idempotency) as transaction:
                yield transaction
        except ConditionFailedError as failed:
            if any(key.startswith(LIMIT_PREFIX) for key in failed.sort_keys):
                raise PurchaseLimitError() from failed
            if order_sk(order_id) in failed.sort_keys:
                raise _OrderNotPendingError() from failed
            raise StaleWindowError() from failed

    @classmethod
    @contextlib.contextmanager
    def _order_update(
        cls, order: Order, idempotency: IdempotencyRecord | None, actions: list[Any], condition: Any
    ) -> Iterator[TransactWrite]:
        """The order's transaction (``_transaction``) with the update of the order item itself in it, conditional on
        ``condition``; the caller adds what goes with it."""
        with cls._transaction(order.user_id, idempotency, order.order_id) as transaction:
            item = OrderItem(pk=user_pk(order.user_id), sk=order_sk(order.order_id))
            transaction.update(item, actions=actions, condition=condition)
            yield transaction

    @staticmethod
    def _add_settlement_writes(transaction: TransactWrite, settlement: Settlement) -> None:
        user_id, now = settlement.order.user_id, settlement.order.updated_at
        add_outbox(transaction, user_id, settlement.events, now)
        for child in settlement.child_orders:
            transaction.save(order_to_item(child), condition=OrderItem.pk.does_not_exist())
        for lot in settlement.lots:
            transaction.save(lot_to_item(user_id, lot), condition=LotItem.pk.does_not_exist())
        for group, after in settlement.windows_after.items():
            before = settlement.windows_before.get(group)
            grants = settlement.grants.get(group, [])
            granted = sum(movement.tokens for movement in grants)
            if before is None:
                transaction.save(
                    CreditGroupItem(
                        pk=user_pk(user_id),
                        sk=group_sk(group),
                        user_id=user_id,
                        offer_group=group,
                        starts=after.starts,
                        expires=after.expires,
                        perpetual=after.perpetual,
                        paid_orders=after.paid_orders,
                        version=1,
                        balance=granted,
                        available=granted,
                        held=0,
                        drawn=0,
                        next_expiry=after.next_expiry,
                        journal=[movement_to_attribute(movement) for movement in grants],
                        journal_first_seq=1,
                        updated_at=now,
                        purchases=purchases_to_attribute(after),
                        perpetual_purchases=after.perpetual_purchases,
                    ),
                    condition=CreditGroupItem.pk.does_not_exist(),
                )
                continue
            actions = [
                set_or_remove(CreditGroupItem.starts, after.starts),
                set_or_remove(CreditGroupItem.expires, after.expires),
                set_or_remove(CreditGroupItem.next_expiry, after.next_expiry),
                CreditGroupItem.perpetual.set(after.perpetual),
                CreditGroupItem.paid_orders.set(after.paid_orders),
                CreditGroupItem.version.set(before.version + 1),
                CreditGroupItem.updated_at.set(now),
                CreditGroupItem.purchases.set(purchases_to_attribute(after)),
                CreditGroupItem.perpetual_purchases.set(after.perpetual_purchases),
            ]
            if grants:
                actions += [
                    CreditGroupItem.balance.add(granted),
                    CreditGroupItem.available.add(granted),
                    CreditGroupItem.journal.set(
                        (CreditGroupItem.journal | []).append([movement_to_attribute(m) for m in grants])
                    ),
                ]
            transaction.update(
                CreditGroupItem(pk=user_pk(user_id), sk=group_sk(group)),
                actions=actions,
                condition=equals_stored(CreditGroupItem.version, before.version),
            )


def _link_intent(transaction: TransactWrite, order: Order, intent_id: str, now: datetime) -> None:
    """The order's link item for one of its intents (see ``PaymentIntentLinkItem``), in the intent's transaction."""
    link = PaymentIntentLinkItem(
        pk=user_pk(order.user_id),
        sk=intent_sk(order.order_id, intent_id),
        payment_intent_id=intent_id,
        order_id=order.order_id,
        created_at=now,
    )
    transaction.save(link, condition=PaymentIntentLinkItem.pk.does_not_exist())


def add_slot_change(
    transaction: TransactWrite, order: Order, change: int, now: datetime, *, at_most: int | None = None
) -> None:
    """Move the user's counter of ``order``'s offer by ``change`` (``Order.slot_change``: +1 takes a slot, -1 gives
    it back, 0 writes nothing) in ``transaction``. ``at_most``: taking is conditional on the counter being below it
    (a new order); without it, a slot is taken whatever the counter says (money collected after a refusal)."""
    if change == 0:
        return
    condition = None
    if at_most is not None and change > 0:
        condition = PurchaseLimitItem.slots.does_not_exist() | (PurchaseLimitItem.slots < at_most)
    transaction.update(
        PurchaseLimitItem(pk=user_pk(order.user_id), sk=limit_sk(order.offer_id)),
        actions=[
            PurchaseLimitItem.item_type.set(PurchaseLimitItem),
            PurchaseLimitItem.user_id.set(order.user_id),
            PurchaseLimitItem.offer_id.set(order.offer_id),
            PurchaseLimitItem.slots.add(change),
            PurchaseLimitItem.updated_at.set(now),
        ],
        condition=condition,
    )


def slot_flag_actions(change: int) -> list[Any]:
    """The order's ``limitSlot`` once its slot is taken (``change`` +1) or given back (-1); nothing for 0."""
    return [OrderItem.limit_slot.set(change > 0)] if change else []


def with_slot_condition(condition: Any, read: Order | None, change: int) -> Any:
    """``condition`` of an order update, and, when the update moves the order's slot, that the order holds one (or
    none) as read: the counter only ever moves with the order's flag."""
    if change == 0 or read is None:
        return condition
    if read.limit_slot:
        return condition & (OrderItem.limit_slot == True)  # noqa: E712 - a PynamoDB condition, not a comparison
    return condition & (OrderItem.limit_slot.does_not_exist() | (OrderItem.limit_slot == False))  # noqa: E712


def payment_actions(order: Order) -> list[Any]:
    """The order's intent and money figures (the paying intent's, and the other intents' apart)."""
    return [
        set_or_remove(OrderItem.payment_intent_id, order.payment_intent_id),
        OrderItem.refunded_amount.set(order.refunded_amount),
        OrderItem.disputed_amount.set(order.disputed_amount),
        set_or_remove(OrderItem.dispute_status, order.dispute_status.value if order.dispute_status else None),
        OrderItem.withdrawn.set(order.withdrawn),
        set_or_remove(OrderItem.other_intents, other_intents_json(order)),
    ]


class _OrderNotPendingError(Exception):
    """The order's own condition (status and last update as read) failed."""


def order_as_read(read: Order) -> Any:
    """The condition that the order item is still as ``read``: same status, same last update."""
    return (OrderItem.status == read.status.value) & (OrderItem.updated_at == read.updated_at)
