"""Domain models <-> PynamoDB items of the credits table, field by field (renaming a domain field never changes what
is stored silently).

Longer than ~400 lines as one concept: one mapping function each way per item type of the credits table.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from usercredits.adapters.dynamodb.credits_table import (
    CombinedOfferAttribute,
    CreditGroupItem,
    CreditsItem,
    GroupPolicyItem,
    HistoryEntryAttribute,
    HoldItem,
    LedgerItem,
    LotItem,
    MovementAttribute,
    OfferItem,
    OrderItem,
    OrderLineAttribute,
    PurchaseWindowAttribute,
    ReservationItem,
    SettledHoldItem,
)
from usercredits.adapters.dynamodb.keys import (
    CATALOG_PK,
    expiry_bucket,
    hold_sk,
    ledger_sk,
    lot_sk,
    offer_sk,
    order_sk,
    policy_sk,
    settled_hold_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.model_base import MoneyAttribute
from usercredits.adapters.dynamodb.transactions import (
    IDEMPOTENCY_TTL,
)
from usercredits.domain.models import (
    CombinedOffer,
    DisputeStatus,
    GroupPolicy,
    GroupState,
    HistoryEntry,
    IntentFigures,
    LedgerEntry,
    LedgerKind,
    Lot,
    Movement,
    Offer,
    Order,
    OrderLine,
    OrderStatus,
    Purchase,
    PurchaseWindow,
    Reservation,
    ReservationStatus,
)
from usercredits.kernel.models import Cycle, Money

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
        combined_items=[line_to_attribute(line) for line in order.combined_items] or None,
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


def line_to_attribute(line: OrderLine) -> OrderLineAttribute:
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


def reservation_to_item(user_id: str, reservation: Reservation) -> HoldItem:
    """The open hold's item, in the ``ByExpiry`` index (deleting it when it settles takes it out)."""
    item = HoldItem(pk=user_pk(user_id), sk=hold_sk(reservation.reservation_id), **_hold_fields(user_id, reservation))
    index_by_expiry(item, reservation.expires_at, f"{user_id}#HOLD#{reservation.reservation_id}")
    return item


def settled_hold_item(user_id: str, reservation: Reservation) -> SettledHoldItem:
    """A captured or released hold's item, kept as long as an idempotency record (repeats answer until then)."""
    return SettledHoldItem(
        pk=user_pk(user_id),
        sk=settled_hold_sk(reservation.reservation_id),
        ttl=reservation.updated_at + IDEMPOTENCY_TTL,
        **_hold_fields(user_id, reservation),
    )


def _hold_fields(user_id: str, reservation: Reservation) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "user_id": user_id,
        "offer_group": reservation.offer_group,
        "held_count": reservation.count,
        "status": reservation.status.value,
        "captured": reservation.captured,
        "reduced": reservation.reduced,
        "hold_expires_at": reservation.expires_at,
        "created_at": reservation.created_at,
        "updated_at": reservation.updated_at,
    }


def item_to_reservation(item: ReservationItem) -> Reservation:
    return Reservation.model_construct(
        reservation_id=item.reservation_id,
        offer_group=item.offer_group,
        count=int(item.held_count),
        status=ReservationStatus(item.status),
        captured=int(item.captured or 0),
        reduced=int(item.reduced or 0),
        expires_at=item.hold_expires_at,
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


def ledger_item(user_id: str, entry: LedgerEntry) -> LedgerItem:
    return LedgerItem(
        pk=user_pk(user_id),
        sk=ledger_sk(entry.entry_id),
        group_entry=f"{entry.offer_group}#{entry.entry_id}",
        user_id=user_id,
        offer_group=entry.offer_group,
        seq=entry.seq,
        balance_after=entry.balance_after,
        movement=movement_to_attribute(Movement(**entry.model_dump(include=set(Movement.model_fields)))),
    )
