"""An in-memory order repository with the conditional semantics of the DynamoDB one (orders, paid windows, the
per-user limit's slots, idempotency records and the outbox its transactions write)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.credits import InMemoryCreditsRepository
from usercredits.domain.models import GroupState, HistoryEntry, Order, OrderStatus
from usercredits.domain.ports import PurchaseLimitError, RefundPorts, StaleWindowError
from usercredits.domain.reversal import Reversal
from usercredits.domain.settlement import Settlement
from usercredits.errors import ConflictError
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import DomainEvent, Page
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError


class InMemoryOrderRepository:
    """Orders by (user, order id) and the windows, slots, intents, idempotency keys and outbox their writes move;
    lots and credit balances are not modelled (``InMemoryCreditsRepository`` holds those)."""

    def __init__(self) -> None:
        self.orders: dict[tuple[str, str], Order] = {}
        self.windows: dict[tuple[str, str], GroupState] = {}
        self.keys: dict[tuple[str, str, str], IdempotencyRecord] = {}
        self.outbox: list[DomainEvent] = []  # events written with their facts, in commit order
        self.intents: dict[tuple[str, str], list[str]] = {}  # every intent each order ever had (the link items)
        # The per-user limit counters (``LIMIT#<offerId>`` items): slots held by (user, offer), moved with the orders.
        self.slots: dict[tuple[str, str], int] = {}
        # Every read of a slot counter (``limit_slots``), in order: each is a request the real adapter makes.
        self.slot_reads: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.orders)

    def __contains__(self, order_id: object) -> bool:
        return any(key[1] == order_id for key in self.orders)

    def get_order(self, user_id: str, order_id: str) -> Order | None:
        return self.orders.get((user_id, order_id))

    def list_orders(self, user_id: str, *, status: OrderStatus | None, limit: int, cursor: str | None) -> Page[Order]:
        mine = sorted(
            (o for (uid, _), o in self.orders.items() if uid == user_id and (status is None or o.status is status)),
            key=lambda o: o.order_id,
            reverse=True,
        )
        start = int(cursor) if cursor else 0
        page = mine[start : start + limit]
        more = start + limit < len(mine)
        return Page[Order](items=page, next_cursor=str(start + limit) if more else None)

    def find_orders(self, user_id: str, *, offer_id: str, status: OrderStatus) -> list[Order]:
        return [
            o for (uid, _), o in self.orders.items() if uid == user_id and o.offer_id == offer_id and o.status is status
        ]

    def group_states(self, user_id: str) -> Mapping[str, GroupState]:
        return {group: window for (uid, group), window in self.windows.items() if uid == user_id}

    def _check(self, user_id: str, idempotency: IdempotencyRecord | None, settlement: Settlement | None) -> None:
        if idempotency is not None:
            existing = self.keys.get((user_id, idempotency.scope, idempotency.key))
            if existing is not None:
                raise IdempotentReplayError(existing.result_id, existing.fingerprint)
        if settlement is not None:
            for group, before in settlement.windows_before.items():
                current = self.windows.get((user_id, group))
                if (before is None) != (current is None) or (before and current and before.version != current.version):
                    raise StaleWindowError()

    def _apply(self, user_id: str, idempotency: IdempotencyRecord | None, settlement: Settlement | None) -> None:
        if idempotency is not None:
            self.keys[(user_id, idempotency.scope, idempotency.key)] = idempotency
        if settlement is not None:
            for child in settlement.child_orders:
                self.orders[(user_id, child.order_id)] = child
            for group, after in settlement.windows_after.items():
                before = settlement.windows_before.get(group)
                version = before.version + 1 if before else 1
                self.windows[(user_id, group)] = after.model_copy(update={"version": version})
            self.outbox.extend(settlement.events)

    def limit_slots(self, user_id: str, offer_id: str) -> int:
        self.slot_reads.append((user_id, offer_id))
        return self.slots.get((user_id, offer_id), 0)

    def _move_slot(self, order: Order, change: int) -> None:
        if change:
            key = (order.user_id, order.offer_id)
            self.slots[key] = self.slots.get(key, 0) + change

    def create_order(
        self,
        order: Order,
        *,
        settlement: Settlement | None,
        idempotency: IdempotencyRecord | None,
        per_user_limit: int | None = None,
    ) -> None:
        # The DynamoDB transaction's order: the idempotency record, the order, its slot, then the windows.
        self._check(order.user_id, idempotency, None)
        limit = per_user_limit if order.limit_slot else None
        if limit is not None and self.slots.get((order.user_id, order.offer_id), 0) >= limit:
            raise PurchaseLimitError()
        self._check(order.user_id, None, settlement)
        self.orders[(order.user_id, order.order_id)] = order
        self._move_slot(order, int(order.limit_slot))
        if order.payment_intent_id:
            self.intents.setdefault((order.user_id, order.order_id), []).append(order.payment_intent_id)
        self._apply(order.user_id, idempotency, settlement)

    def settle_order(
        self, settlement: Settlement, *, read: Order | None = None, idempotency: IdempotencyRecord | None = None
    ) -> bool:
        order = settlement.order
        stored = self.orders.get((order.user_id, order.order_id))
        expected = read.status if read else OrderStatus.PENDING
        if stored is None or stored.status is not expected or (read and stored.updated_at != read.updated_at):
            return False
        try:
            self._check(order.user_id, idempotency, settlement)
        except IdempotentReplayError:
            return False
        self.orders[(order.user_id, order.order_id)] = order
        self._move_slot(order, stored.slot_change(order))  # paid after a refusal: taken whatever the limit
        self._apply(order.user_id, idempotency, settlement)
        return True

    def change_status(
        self,
        read: Order,
        status: OrderStatus,
        message: str,
        now: datetime,
        idempotency: IdempotencyRecord | None,
        events: Sequence[DomainEvent] = (),
    ) -> bool:
        stored = self._as_read(read, idempotency)
        if stored is None:
            return False
        entry = HistoryEntry(date=now, status=status, message=message)
        changed = stored.model_copy(
            update={"status": status, "history": [*stored.history, entry], "updated_at": now}
        ).with_slot()
        self.orders[(read.user_id, read.order_id)] = changed
        self._move_slot(changed, stored.slot_change(changed))  # it stops counting: its slot goes back
        self._apply(read.user_id, idempotency, None)
        self.outbox.extend(events)
        return True

    def recorded(self, user_id: str, idempotency: IdempotencyRecord) -> IdempotentReplayError | None:
        existing = self.keys.get((user_id, idempotency.scope, idempotency.key))
        return IdempotentReplayError(existing.result_id, existing.fingerprint) if existing else None

    def record_payment(
        self, order: Order, *, read: Order, idempotency: IdempotencyRecord | None, events: Sequence[DomainEvent]
    ) -> bool:
        if self._as_read(read, idempotency) is None:
            return False
        self.orders[(order.user_id, order.order_id)] = order
        self._apply(order.user_id, idempotency, None)
        self.outbox.extend(events)
        return True

    def _as_read(self, read: Order, idempotency: IdempotencyRecord | None) -> Order | None:
        """The stored order if it is still as ``read`` and ``idempotency`` was not recorded (the write's condition)."""
        stored = self.orders.get((read.user_id, read.order_id))
        if stored is None or stored.status is not read.status or stored.updated_at != read.updated_at:
            return None
        try:
            self._check(read.user_id, idempotency, None)
        except IdempotentReplayError:
            return None
        return stored

    def apply_reversal(self, reversal: Reversal, idempotency: IdempotencyRecord | None) -> bool:
        """The orders' part of ``ReversalRepository.apply_reversal``: the order (if still as read), its children's
        status and withdrawn flag, its slot, the outbox. Lots and groups are not modelled here (the DynamoDB tests
        cover them)."""
        order, read = reversal.order, reversal.read
        stored = self.orders.get((read.user_id, read.order_id))
        if stored is None or stored.status is not read.status or stored.updated_at != read.updated_at:
            return False
        self._check(read.user_id, idempotency, None)  # IdempotentReplayError, as the port says
        self.orders[(order.user_id, order.order_id)] = order
        for child_id, status in reversal.children_status.items():
            child = self.orders[(order.user_id, child_id)]
            self.orders[(order.user_id, child_id)] = child.model_copy(update={"status": status})
        for child_id, withdrawn in reversal.children_withdrawn.items():
            child = self.orders[(order.user_id, child_id)]
            self.orders[(order.user_id, child_id)] = child.model_copy(update={"withdrawn": withdrawn})
        self._move_slot(order, stored.slot_change(order))  # a full refund: its slot goes back
        self._apply(order.user_id, idempotency, None)
        self.outbox.extend(reversal.events)
        return True

    def find_by_payment_intent(self, payment_intent_id: str) -> tuple[str, str] | None:
        return next(
            (
                (uid, oid)
                for (uid, oid), o in self.orders.items()
                if o.payment_intent_id == payment_intent_id
                or payment_intent_id in o.other_intents
                or payment_intent_id in self.intents.get((uid, oid), ())
            ),
            None,
        )

    def set_payment_intent(
        self, order: Order, *, intent_id: str, attempt: int, now: datetime, idempotency: IdempotencyRecord | None
    ) -> Order:
        self._check(order.user_id, idempotency, None)
        stored = self.orders[(order.user_id, order.order_id)]
        if stored.status is not OrderStatus.PENDING or stored.payment_attempt != order.payment_attempt:
            raise ConflictError("order changed meanwhile")
        updated = stored.model_copy(update={"payment_intent_id": intent_id, "payment_attempt": attempt})
        self.orders[(order.user_id, order.order_id)] = updated
        self.intents.setdefault((order.user_id, order.order_id), []).append(intent_id)
        self._apply(order.user_id, idempotency, None)
        return updated


def refund_ports_of(orders: InMemoryOrderRepository, clock: Clock) -> RefundPorts:
    """What settling returned money uses, in memory: ``orders`` (which also writes reversals), credits of its own and
    an empty catalog (every group with the default policy)."""
    return RefundPorts(
        orders=orders,
        credits=InMemoryCreditsRepository(),
        catalog=InMemoryCatalogRepository(),
        reversals=orders,
        clock=clock,
    )
