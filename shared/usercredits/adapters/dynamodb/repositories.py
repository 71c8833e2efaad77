"""DynamoDB repositories: map domain models to PynamoDB items and back, and turn failures into domain errors.

Every write that moves state is one conditional request (a conditional put/update or one TransactWriteItems), so a
retry or a concurrent request can never apply it twice.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.connection.base import Connection
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import CancellationReason, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    cancellation_codes,
    condition_failed,
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import (
    CATALOG_PK,
    CREDITS_FIRST,
    GROUPS_END,
    INTENT_PREFIX,
    LIMIT_PREFIX,
    expiry_bucket,
    group_range_end,
    group_sk,
    idempotency_sk,
    intent_sk,
    limit_sk,
    lot_sk,
    offer_sk,
    order_sk,
    outbox_sk,
    policy_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.tables import (
    CombinedOfferAttribute,
    CreditGroupItem,
    CreditsItem,
    GroupPolicyItem,
    HistoryEntryAttribute,
    IdempotencyItem,
    LotItem,
    MoneyAttribute,
    MovementAttribute,
    OfferItem,
    OrderItem,
    OrderLineAttribute,
    OutboxEventAttribute,
    OutboxItem,
    PaymentIntentLinkItem,
    PurchaseLimitItem,
    PurchaseWindowAttribute,
)
from usercredits.domain import limits
from usercredits.domain.ids import new_ulid
from usercredits.domain.models import (
    MAX_TRANSACTION_ACTIONS,
    CombinedOffer,
    Cycle,
    DisputeStatus,
    DomainEvent,
    GroupPolicy,
    GroupState,
    HistoryEntry,
    IntentFigures,
    LedgerKind,
    Lot,
    Money,
    Movement,
    Offer,
    Order,
    OrderLine,
    OrderStatus,
    Page,
    Purchase,
    PurchaseWindow,
)
from usercredits.domain.ports import IdempotencyRecord, IdempotentReplayError, PurchaseLimitError, StaleWindowError
from usercredits.domain.settlement import Settlement
from usercredits.errors import ConflictError, InvalidRequestError, PersistenceError

logger = logging.getLogger(__name__)

#: How long an Idempotency-Key is remembered (api-contract: at least 30 days for money movements).
IDEMPOTENCY_TTL = timedelta(days=30)
#: Outbox items outlive the stream's 24 h retention, then DynamoDB's TTL deletes them (deletes are not published).
OUTBOX_TTL = timedelta(days=2)


def _connection() -> Connection:
    return CreditsItem._get_connection().connection  # the table's one botocore client (see share_connections)


# --- offers --------------------------------------------------------------------------------------------------------


def offer_to_item(offer: Offer, now: datetime) -> OfferItem:
    return OfferItem(
        pk=CATALOG_PK,
        sk=offer_sk(offer.offer_id),
        offer_id=offer.offer_id,
        name=offer.name,
        kind=offer.kind,
        offer_group=offer.offer_group,
        prices=[MoneyAttribute(amount=p.amount, currency=p.currency) for p in offer.prices],
        tokens=offer.tokens,
        cycle=offer.cycle.value,
        custom_cycle_seconds=offer.custom_cycle_seconds,
        append_date=offer.append_date,
        quantity_limit=offer.quantity_limit,
        per_user_limit=offer.per_user_limit,
        overriding_key=offer.overriding_key,
        weight=offer.weight,
        unlocked_by=set(offer.unlocked_by) or None,
        tags=set(offer.tags) or None,
        popular=offer.popular,
        combined_items=[
            CombinedOfferAttribute(offer_id=c.offer_id, offer_group=c.offer_group, quantity=c.quantity)
            for c in offer.combined_items
        ]
        or None,
        retired=offer.retired,
        updated_at=now,
    )


def item_to_offer(item: OfferItem) -> Offer:
    return Offer.model_construct(
        offer_id=item.offer_id,
        name=item.name,
        kind=item.kind,  # type: ignore[arg-type]  # validated when written
        offer_group=item.offer_group,
        prices=[Money.model_construct(amount=int(p.amount), currency=p.currency) for p in item.prices],
        tokens=int(item.tokens),
        cycle=Cycle(item.cycle),
        custom_cycle_seconds=_int_or_none(item.custom_cycle_seconds),
        append_date=bool(item.append_date),
        quantity_limit=_int_or_none(item.quantity_limit),
        per_user_limit=_int_or_none(item.per_user_limit),
        overriding_key=item.overriding_key,
        weight=int(item.weight),
        unlocked_by=sorted(item.unlocked_by or ()),
        tags=sorted(item.tags or ()),
        popular=_int_or_none(item.popular),
        combined_items=[
            CombinedOffer.model_construct(offer_id=c.offer_id, offer_group=c.offer_group, quantity=int(c.quantity))
            for c in item.combined_items or ()
        ],
        retired=bool(item.retired),
    )


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def policy_to_item(policy: GroupPolicy) -> GroupPolicyItem:
    return GroupPolicyItem(
        pk=CATALOG_PK,
        sk=policy_sk(policy.offer_group),
        offer_group=policy.offer_group,
        overdraft=policy.overdraft,
        overdraft_limit=policy.overdraft_limit,
        low_threshold=policy.low_threshold,
    )


def item_to_policy(item: GroupPolicyItem) -> GroupPolicy:
    return GroupPolicy.model_construct(
        offer_group=item.offer_group,
        overdraft=item.overdraft,  # type: ignore[arg-type]  # validated when written
        overdraft_limit=int(item.overdraft_limit or 0),
        low_threshold=_int_or_none(item.low_threshold),
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


# --- orders --------------------------------------------------------------------------------------------------------


def _purchase_to_attributes(purchase: Purchase) -> dict[str, Any]:
    """The fields an order and a bundle line share, as PynamoDB attribute values."""
    return {
        "offer_id": purchase.offer_id,
        "offer_group": purchase.offer_group,
        "quantity": purchase.quantity,
        "unit_tokens": purchase.unit_tokens,
        "total_tokens": purchase.total_tokens,
        "cycle": purchase.cycle.value,
        "custom_cycle_seconds": purchase.custom_cycle_seconds,
        "append_date": purchase.append_date,
        "starts": purchase.starts,
        "expires": purchase.expires,
    }


def _purchase_from_item(item: OrderItem | OrderLineAttribute) -> dict[str, Any]:
    """The shared fields read back from an order item or a bundle line attribute."""
    return {
        "offer_id": item.offer_id,
        "offer_group": item.offer_group,
        "quantity": int(item.quantity),
        "unit_tokens": int(item.unit_tokens),
        "total_tokens": int(item.total_tokens),
        "cycle": Cycle(item.cycle),
        "custom_cycle_seconds": _int_or_none(item.custom_cycle_seconds),
        "append_date": bool(item.append_date),
        "starts": item.starts,
        "expires": item.expires,
    }


def order_to_item(order: Order) -> OrderItem:
    return OrderItem(
        pk=user_pk(order.user_id),
        sk=order_sk(order.order_id),
        **_purchase_to_attributes(order),
        order_id=order.order_id,
        user_id=order.user_id,
        offer_name=order.offer_name,
        status=order.status.value,
        total=MoneyAttribute(amount=order.total.amount, currency=order.total.currency),
        payment_intent_id=order.payment_intent_id,
        parent_order_id=order.parent_order_id,
        payment_attempt=order.payment_attempt,
        combined_items=[_line_to_attribute(line) for line in order.combined_items] or None,
        history=[history_to_attribute(entry) for entry in order.history],
        created_at=order.created_at,
        updated_at=order.updated_at,
        refunded_amount=order.refunded_amount,
        disputed_amount=order.disputed_amount,
        dispute_status=order.dispute_status.value if order.dispute_status else None,
        revoked_for_amount=order.revoked_for_amount,
        withdrawn=order.withdrawn,
        other_intents=other_intents_json(order),
        limited=order.limited,
        limit_slot=order.limit_slot,
    )


def other_intents_json(order: Order) -> str | None:
    """The order's other intents as stored (JSON text; None when there are none)."""
    if not order.other_intents:
        return None
    return json.dumps(
        {intent: figures.model_dump(mode="json", by_alias=True) for intent, figures in order.other_intents.items()},
        sort_keys=True,
    )


def _other_intents(text: str | None) -> dict[str, IntentFigures]:
    if not text:
        return {}
    return {intent: IntentFigures.model_validate(figures) for intent, figures in json.loads(text).items()}


def _line_to_attribute(line: OrderLine) -> OrderLineAttribute:
    return OrderLineAttribute(**_purchase_to_attributes(line), child_order_id=line.child_order_id)


def history_to_attribute(entry: HistoryEntry) -> HistoryEntryAttribute:
    return HistoryEntryAttribute(date=entry.date, status=entry.status.value, message=entry.message)


def item_to_order(item: OrderItem) -> Order:
    return Order.model_construct(
        **_purchase_from_item(item),
        order_id=item.order_id,
        user_id=item.user_id,
        offer_name=item.offer_name,
        status=OrderStatus(item.status),
        total=Money.model_construct(amount=int(item.total.amount), currency=item.total.currency),
        payment_intent_id=item.payment_intent_id,
        parent_order_id=item.parent_order_id,
        payment_attempt=int(item.payment_attempt or 0),
        combined_items=[
            OrderLine.model_construct(**_purchase_from_item(line), child_order_id=line.child_order_id)
            for line in item.combined_items or ()
        ],
        history=[
            HistoryEntry.model_construct(date=entry.date, status=OrderStatus(entry.status), message=entry.message)
            for entry in item.history
        ],
        created_at=item.created_at,
        updated_at=item.updated_at,
        refunded_amount=int(item.refunded_amount or 0),
        disputed_amount=int(item.disputed_amount or 0),
        dispute_status=DisputeStatus(item.dispute_status) if item.dispute_status else None,
        revoked_for_amount=int(item.revoked_for_amount or 0),
        withdrawn=bool(item.withdrawn),
        other_intents=_other_intents(item.other_intents),
        limited=bool(item.limited),
        limit_slot=bool(item.limit_slot),
    )


def movement_to_attribute(movement: Movement) -> MovementAttribute:
    return MovementAttribute(
        entry_id=movement.entry_id,
        kind=movement.kind.value,
        tokens=movement.tokens,
        held=movement.held,
        order_id=movement.order_id,
        lot_id=movement.lot_id,
        reservation_id=movement.reservation_id,
        idempotency_key=movement.idempotency_key,
        reason=movement.reason,
        shortfall=movement.shortfall,
        created_at=movement.created_at,
    )


def attribute_to_movement(attribute: MovementAttribute) -> Movement:
    return Movement.model_construct(
        entry_id=attribute.entry_id,
        kind=LedgerKind(attribute.kind),
        tokens=int(attribute.tokens),
        held=int(attribute.held or 0),
        order_id=attribute.order_id,
        lot_id=attribute.lot_id,
        reservation_id=attribute.reservation_id,
        idempotency_key=attribute.idempotency_key,
        reason=attribute.reason,
        shortfall=None if attribute.shortfall is None else int(attribute.shortfall),
        created_at=attribute.created_at,
    )


def item_to_group_state(item: CreditGroupItem) -> GroupState:
    return GroupState.model_construct(
        offer_group=item.offer_group,
        starts=item.starts,
        expires=item.expires,
        perpetual=bool(item.perpetual),
        paid_orders=int(item.paid_orders or 0),
        version=int(item.version or 0),
        balance=int(item.balance or 0),
        held=int(item.held or 0),
        drawn=int(item.drawn or 0),
        next_expiry=item.next_expiry,
        journal=[attribute_to_movement(entry) for entry in item.journal or ()],
        journal_first_seq=int(item.journal_first_seq or 1),
        purchases=[
            PurchaseWindow.model_construct(purchase_id=entry.purchase_id, starts=entry.starts, expires=entry.expires)
            for entry in item.purchases or ()
        ],
        perpetual_purchases=int(item.perpetual_purchases or 0),
        expired_lots=int(item.expired_lots or 0),
    )


def purchases_to_attribute(state: GroupState) -> list[PurchaseWindowAttribute]:
    return [
        PurchaseWindowAttribute(purchase_id=window.purchase_id, starts=window.starts, expires=window.expires)
        for window in state.purchases
    ]


def lot_to_item(user_id: str, lot: Lot) -> LotItem:
    item = LotItem(
        pk=user_pk(user_id),
        sk=lot_sk(lot),
        lot_id=lot.lot_id,
        user_id=user_id,
        offer_group=lot.offer_group,
        tokens=lot.tokens,
        starts=lot.starts,
        expires=lot.expires,
        order_id=lot.order_id,
        granted_at=lot.granted_at,
        closed=lot.closed,
        revoked=lot.revoked,
        expired=lot.expired,
        debt=lot.debt,
    )
    if lot.expires is not None and not lot.closed:  # open lots with an expiry are in the sparse ByExpiry index
        index_by_expiry(item, lot.expires, f"{user_id}#{lot.offer_group}#{lot.lot_id}")
    return item


def index_by_expiry(item: CreditsItem, expires: datetime, key: str) -> None:
    """Put an item in the sparse ``ByExpiry`` index: hour bucket + expiry time, ``key`` telling items apart."""
    item.expiry_bucket = expiry_bucket(expires)
    item.expires_at = f"{expires.isoformat()}#{key}"


def item_to_lot(item: LotItem) -> Lot:
    return Lot.model_construct(
        lot_id=item.lot_id,
        offer_group=item.offer_group,
        tokens=int(item.tokens),
        starts=item.starts,
        expires=item.expires,
        order_id=item.order_id,
        granted_at=item.granted_at,
        closed=bool(item.closed),
        revoked=int(item.revoked or 0),
        expired=int(item.expired or 0),
        debt=int(item.debt or 0),
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


def encode_cursor(sort_key: str, **fields: int) -> str:
    """An opaque cursor to the item at ``sort_key`` (``fields``: what else the list needs to go on from there)."""
    return base64.urlsafe_b64encode(json.dumps({"sk": sort_key, **fields}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    """The sort key a cursor points at; a cursor that was not made by us for this list is a 422."""
    return decode_cursor_fields(cursor, prefix)[0]


def decode_cursor_fields(cursor: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """The sort key a cursor points at and the fields it carries; a cursor not made by us for this list is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
        sort_key = fields.pop("sk")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequestError("cursor is not valid") from exc
    # A sort key is at most 1,024 bytes: a longer one could only be forged, and DynamoDB would refuse it as a key.
    if not isinstance(sort_key, str) or not sort_key.startswith(prefix) or len(sort_key.encode()) > 1024:
        raise InvalidRequestError("cursor is not valid")
    return sort_key, fields


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
        item = OrderItem(pk=user_pk(order.user_id), sk=order_sk(order.order_id))
        # The order as read decides (status and last update): anything that changed it meanwhile makes this a no-op.
        condition = OrderItem.status == OrderStatus.PENDING.value
        if read is not None:
            condition = (OrderItem.status == read.status.value) & (OrderItem.updated_at == read.updated_at)
        # Paid after a refusal gave its slot back: it takes one again, whatever the limit (the money was collected).
        slot = limits.slot_change(read, order) if read is not None else 0  # pending -> paid: it holds one already
        try:
            with self._transaction(order.user_id, idempotency, order.order_id) as transaction:
                transaction.update(
                    item,
                    actions=[
                        OrderItem.status.set(order.status.value),
                        OrderItem.starts.set(order.starts) if order.starts else OrderItem.starts.remove(),
                        OrderItem.expires.set(order.expires) if order.expires else OrderItem.expires.remove(),
                        OrderItem.combined_items.set([_line_to_attribute(line) for line in order.combined_items])
                        if order.combined_items
                        else OrderItem.combined_items.remove(),
                        OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
                        OrderItem.updated_at.set(order.updated_at),
                        *payment_actions(order),
                        *slot_flag_actions(slot),
                    ],
                    condition=with_slot_condition(condition, read, slot),
                )
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
        item = OrderItem(pk=user_pk(read.user_id), sk=order_sk(read.order_id))
        slot = limits.slot_change(read, read.model_copy(update={"status": status}))  # -1: it stops counting
        try:
            with self._transaction(read.user_id, idempotency, read.order_id) as transaction:
                transaction.update(
                    item,
                    actions=[
                        OrderItem.status.set(status.value),
                        OrderItem.history.set(OrderItem.history.append([history_to_attribute(entry)])),
                        OrderItem.updated_at.set(now),
                        *slot_flag_actions(slot),
                    ],
                    condition=with_slot_condition(
                        (OrderItem.status == read.status.value) & (OrderItem.updated_at == read.updated_at), read, slot
                    ),
                )
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
        item = OrderItem(pk=user_pk(order.user_id), sk=order_sk(order.order_id))
        try:
            with self._transaction(order.user_id, idempotency, order.order_id) as transaction:
                transaction.update(
                    item,
                    actions=[
                        OrderItem.history.set([history_to_attribute(entry) for entry in order.history]),
                        OrderItem.updated_at.set(order.updated_at),
                        *payment_actions(order),
                    ],
                    condition=(OrderItem.status == read.status.value) & (OrderItem.updated_at == read.updated_at),
                )
                add_outbox(transaction, order.user_id, events, order.updated_at)
        except (_OrderNotPendingError, IdempotentReplayError):
            return False
        return True

    @translate_errors
    def find_by_payment_intent(self, payment_intent_id: str) -> tuple[str, str] | None:
        """(userId, orderId) of the order this payment intent was made for (the ByPaymentIntent index holds the
        order's intent on the order item, and every intent it ever had on its ``INTENT#`` link items)."""
        # A low-level Query: the index is KEYS_ONLY, and a model query cannot build items without their itemType.
        answer = _connection().query(
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
        item = OrderItem(pk=user_pk(order.user_id), sk=order_sk(order.order_id))
        try:
            with self._transaction(order.user_id, idempotency, order.order_id) as transaction:
                transaction.update(
                    item,
                    actions=[
                        OrderItem.payment_intent_id.set(intent_id),
                        OrderItem.payment_attempt.set(attempt),
                        OrderItem.history.set(OrderItem.history.append([history_to_attribute(entry)])),
                        OrderItem.updated_at.set(now),
                    ],
                    condition=(OrderItem.status == OrderStatus.PENDING.value)
                    & (OrderItem.payment_attempt == order.payment_attempt),
                )
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
    """Move the user's counter of ``order``'s offer by ``change`` (``limits.slot_change``: +1 takes a slot, -1 gives
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


def add_outbox(transaction: TransactWrite, user_id: str, events: Sequence[DomainEvent], now: datetime) -> None:
    """Write ``events`` to the outbox in ``transaction``: they exist exactly when the fact they tell commits, and the
    table's stream hands them to the event publisher function (see ``OutboxItem``)."""
    if not events:
        return
    item = OutboxItem(
        pk=user_pk(user_id),
        sk=outbox_sk(new_ulid(now)),
        events=[
            OutboxEventAttribute(kind=event.kind, detail=json.dumps(event.detail, sort_keys=True, default=str))
            for event in events
        ],
        created_at=now,
        ttl=now + OUTBOX_TTL,
    )
    transaction.save(item, condition=OutboxItem.pk.does_not_exist())


def equals_stored(attribute: Any, value: int) -> Any:
    """Condition: the numeric attribute still holds ``value`` (a missing attribute reads as 0, as the mappers do)."""
    condition = attribute == value
    return condition | attribute.does_not_exist() if value == 0 else condition


def set_or_remove(attribute: Any, value: Any) -> Any:
    return attribute.set(value) if value is not None else attribute.remove()


class _OrderNotPendingError(Exception):
    """The order's own condition (status and last update as read) failed."""


class ConditionFailedError(Exception):
    """Actions of an idempotent transaction (other than the idempotency record) failed their condition:
    ``sort_keys`` are theirs (a failed action is known by its key: PynamoDB does not send actions in the order they
    were added, see ``IdempotentTransaction``)."""

    def __init__(self, sort_keys: tuple[str, ...]) -> None:
        super().__init__(", ".join(sort_keys))
        self.sort_keys = sort_keys


class TransactionTooLargeError(PersistenceError):
    """A transaction with more actions than DynamoDB takes (``MAX_TRANSACTION_ACTIONS``); it was not sent."""

    def __init__(self, actions: int) -> None:
        super().__init__(f"a transaction of {actions} actions passes DynamoDB's limit of {MAX_TRANSACTION_ACTIONS}")
        self.actions = actions


class IdempotentTransaction:
    """A TransactWrite that records the idempotency key with the result and explains why DynamoDB cancelled it.

    A failed idempotency condition becomes ``IdempotentReplayError`` (with what the first request recorded); failed
    conditions of other actions ``ConditionFailedError`` with their sort keys. Failures are matched to actions by key:
    PynamoDB sends condition checks, then deletes, then puts, then updates, whatever order they were added in, and
    DynamoDB's cancellation reasons follow the order sent.
    """

    def __init__(self, user_id: str, idempotency: IdempotencyRecord | None) -> None:
        self._user_id = user_id
        self._idempotency = idempotency
        self._transaction = TransactWrite(connection=_connection())

    def __enter__(self) -> TransactWrite:
        transaction = self._transaction.__enter__()
        if self._idempotency is not None:
            record = self._idempotency
            now = datetime.now(UTC)
            transaction.save(
                IdempotencyItem(
                    pk=user_pk(self._user_id),
                    sk=idempotency_sk(record.scope, record.key),
                    fingerprint=record.fingerprint,
                    result_id=record.result_id,
                    created_at=now,
                    ttl=IDEMPOTENCY_TTL,
                ),
                condition=IdempotencyItem.pk.does_not_exist(),
                return_values=ALL_OLD,  # a replay learns what the first request recorded without another read
            )
        return transaction

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None and (actions := len(self._sort_keys_as_sent())) > MAX_TRANSACTION_ACTIONS:
            # Never sent: DynamoDB would refuse it whole (ValidationException). The limits on bundles and open holds
            # (``domain.models.MAX_BUNDLE_ITEMS``) keep every transaction below it; this says which one did not.
            logger.error("transaction of %d actions not sent (limit %d)", actions, MAX_TRANSACTION_ACTIONS)
            raise TransactionTooLargeError(actions)
        try:
            self._transaction.__exit__(exc_type, exc, traceback)
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            sent = self._sort_keys_as_sent()
            failed = [i for i, code in enumerate(codes) if code == CONDITION_FAILED and i < len(sent)]
            if not failed:
                raise
            if self._idempotency is not None:
                record = idempotency_sk(self._idempotency.scope, self._idempotency.key)
                replayed = [i for i in failed if sent[i] == record]
                if replayed:
                    raise self._replay(error.cancellation_reasons[replayed[0]]) from error
            raise ConditionFailedError(tuple(sent[i] for i in failed)) from error

    def _sort_keys_as_sent(self) -> list[str]:
        """The sort key of each action in the order PynamoDB sends them, which is not the order they were added in:
        condition checks, then deletes, then puts, then updates (``Connection.transact_write_items``), so a failed
        action is best known by its key."""
        transaction = self._transaction
        sent = [
            *transaction._condition_check_items,
            *transaction._delete_items,
            *transaction._put_items,
            *transaction._update_items,
        ]
        return [str((action.get("Key") or action.get("Item") or {}).get("sk", {}).get("S", "")) for action in sent]

    def _replay(self, reason: CancellationReason | None) -> IdempotentReplayError:
        assert self._idempotency is not None
        if reason is not None and reason.raw_item:
            item = IdempotencyItem.from_raw_data(reason.raw_item)
            return IdempotentReplayError(item.result_id, item.fingerprint)
        try:  # an engine that does not return the item: read it
            item = IdempotencyItem.get(
                user_pk(self._user_id),
                idempotency_sk(self._idempotency.scope, self._idempotency.key),
                consistent_read=True,
            )
        except DoesNotExist:  # pragma: no cover - expired between the write and this read
            return IdempotentReplayError("", "")
        return IdempotentReplayError(item.result_id, item.fingerprint)


__all__ = ["DynamoCatalogRepository", "DynamoOrderRepository", "PutError"]
