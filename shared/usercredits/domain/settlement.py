"""What paying an order changes: its validity window, the bundle's child orders and the user's paid windows.

Pure computation (docs/rules.md#paying-an-order, #validity-windows, #bundles): a new window never shortens an existing
one, the earliest start of a contiguous window is kept, ``once`` means no expiry, and bundle terms come from the copy
kept on the order (so a retired offer cannot break a payment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from usercredits.domain.events import credits_granted, order_paid
from usercredits.domain.models import (
    MAX_BUNDLE_ITEMS,
    GroupState,
    HistoryEntry,
    LedgerKind,
    Lot,
    Movement,
    Order,
    OrderLine,
    OrderStatus,
    PurchaseWindow,
)
from usercredits.kernel.cycles import cycle_end
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent, Money


@dataclass(frozen=True)
class Settlement:
    """The writes of one payment: the paid order, its children, the credit lots, and each touched group.

    ``windows_after`` holds each group's new window (and soonest lot expiry); ``grants`` the movements to append to
    its journal (their tokens are added to the balance atomically); ``windows_before`` what was read, for the
    optimistic condition; ``events`` the facts to publish (written to the outbox in the same transaction).

    Written in one transaction of at most ``(1 + items) × 3 + 3`` actions (per purchase: order or child, lot, group;
    per order: idempotency record, outbox, per-user limit counter), within DynamoDB's 100 for any bundle the offer
    schema accepts (``models.MAX_BUNDLE_ITEMS``).
    """

    order: Order
    child_orders: list[Order]
    windows_after: dict[str, GroupState]
    windows_before: dict[str, GroupState | None] = field(default_factory=dict)
    lots: list[Lot] = field(default_factory=list)
    grants: dict[str, list[Movement]] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list)


def start_for(append_date: bool, window: GroupState | None, now: datetime) -> datetime:
    """With ``appendDate`` a purchase starts where the group's paid window ends (if that is later than now)."""
    if append_date and window is not None and window.expires is not None and window.expires > now:
        return window.expires
    return now


def extend_window(window: GroupState | None, group: str, starts: datetime, expires: datetime | None) -> GroupState:
    """The group's window once a purchase over [starts, expires) is added; it never shrinks."""
    if window is None:
        return GroupState(offer_group=group, starts=starts, expires=expires, perpetual=expires is None, paid_orders=1)
    contiguous = window.perpetual or (window.expires is not None and window.expires >= starts)
    new_starts = min(window.starts, starts) if contiguous and window.starts is not None else starts
    if expires is None:
        new_expires = window.expires
    else:
        new_expires = expires if window.expires is None else max(window.expires, expires)
    return window.model_copy(
        update={
            "starts": new_starts,
            "expires": new_expires,
            "perpetual": window.perpetual or expires is None,
            "paid_orders": window.paid_orders + 1,
        }
    )


def add_purchase(
    window: GroupState | None, group: str, purchase_id: str, starts: datetime, expires: datetime | None, now: datetime
) -> GroupState:
    """The group once a purchase over [starts, expires) counts in it: its window extended (``extend_window``) and the
    purchase remembered (with an expiry: in ``purchases``, which keeps only those still running; without: counted in
    ``perpetual_purchases``), so a refund can withdraw it later."""
    state = extend_window(window, group, starts, expires)
    if expires is None:
        return state.model_copy(update={"perpetual_purchases": state.perpetual_purchases + 1})
    running = [kept for kept in state.purchases if kept.expires > now and kept.purchase_id != purchase_id]
    purchase = PurchaseWindow(purchase_id=purchase_id, starts=starts, expires=expires)
    return state.model_copy(update={"purchases": [*running, purchase]})


def withdraw_purchase(state: GroupState, purchase_id: str, expires: datetime | None, now: datetime) -> GroupState:
    """The group once a purchase no longer counts (its money went back in full): the window is made again from the
    purchases that still count. With none left running, the window ends now at the latest (its start is kept)."""
    if expires is None:
        perpetual = max(state.perpetual_purchases - 1, 0)
        running = [kept for kept in state.purchases if kept.expires > now]
    else:
        perpetual = state.perpetual_purchases
        running = [kept for kept in state.purchases if kept.expires > now and kept.purchase_id != purchase_id]
    starts, ends = state.starts, state.expires
    if running:
        starts, ends = _latest_chain(running)
    elif ends is not None:
        ends = min(ends, now)
    return state.model_copy(
        update={
            "purchases": running,
            "perpetual_purchases": perpetual,
            "perpetual": perpetual > 0,
            "starts": starts,
            "expires": ends,
        }
    )


def _latest_chain(purchases: list[PurchaseWindow]) -> tuple[datetime, datetime]:
    """The start of the last run of overlapping or touching purchases, and the latest end."""
    ordered = sorted(purchases, key=lambda purchase: purchase.starts)
    starts, ends = ordered[0].starts, ordered[0].expires
    for purchase in ordered[1:]:
        if purchase.starts > ends:
            starts = purchase.starts
        ends = max(ends, purchase.expires)
    return starts, ends


def soonest(first: datetime | None, second: datetime | None) -> datetime | None:
    """The earlier of two optional expiries (None means no expiry)."""
    if first is None or second is None:
        return first or second
    return min(first, second)


def grant_movement(lot: Lot, now: datetime, reason: str | None = None) -> Movement:
    """The journal movement that adds a lot's tokens to its group."""
    return Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.GRANT,
        tokens=lot.tokens,
        order_id=lot.order_id,
        lot_id=lot.lot_id,
        reason=reason,
        created_at=now,
    )


def settle_order(order: Order, windows: dict[str, GroupState], now: datetime, message: str) -> Settlement:
    """Compute everything that becomes true when ``order`` is paid at ``now``: one lot per purchase (the order and
    each bundle item) with its tokens, start and expiry, added to its group's balance with a ``grant`` movement."""
    before: dict[str, GroupState | None] = {}
    current = dict(windows)
    lots: list[Lot] = []
    grants: dict[str, list[Movement]] = {}

    def add(group: str, starts: datetime, expires: datetime | None, tokens: int = 0, lot_id: str = "") -> None:
        before.setdefault(group, windows.get(group))
        state = add_purchase(current.get(group), group, lot_id, starts, expires, now)
        if tokens > 0:  # a purchase without tokens extends the window only: no lot, no movement of 0
            lot = Lot(
                lot_id=lot_id,
                offer_group=group,
                tokens=tokens,
                starts=starts,
                expires=expires,
                order_id=lot_id,
                granted_at=now,
            )
            lots.append(lot)
            grants.setdefault(group, []).append(grant_movement(lot, now))
            state = state.model_copy(update={"next_expiry": soonest(state.next_expiry, expires)})
        current[group] = state

    root_start = (
        max(order.starts, now) if order.starts else start_for(order.append_date, current.get(order.offer_group), now)
    )
    root_end = cycle_end(root_start, order.cycle, order.quantity, order.custom_cycle_seconds)
    add(order.offer_group, root_start, root_end, order.total_tokens, order.order_id)

    lines: list[OrderLine] = []
    children: list[Order] = []
    for index, line in enumerate(order.combined_items, start=1):
        if line.append_date:
            starts = start_for(True, current.get(line.offer_group), now)
            expires = cycle_end(starts, line.cycle, line.quantity, line.custom_cycle_seconds)
        else:  # the bundle item shares the root purchase's validity (seed semantics)
            starts, expires = root_start, root_end
        child_id = f"{order.order_id}-{index:02d}"
        add(line.offer_group, starts, expires, line.total_tokens, child_id)
        lines.append(line.model_copy(update={"starts": starts, "expires": expires, "child_order_id": child_id}))
        children.append(_child_order(order, line, child_id, starts, expires, now))

    # a limited order holds a slot once paid, also after a refusal had given it back
    paid = order.model_copy(
        update={
            "status": OrderStatus.PAID,
            "starts": root_start,
            "expires": root_end,
            "combined_items": lines,
            "history": [*order.history, HistoryEntry(date=now, status=OrderStatus.PAID, message=message)],
            "updated_at": now,
        }
    ).with_slot()
    return Settlement(
        order=paid,
        child_orders=children,
        windows_after={group: current[group] for group in before},
        windows_before=before,
        lots=lots,
        grants=grants,
        events=[order_paid(paid), *(credits_granted(order.user_id, lot) for lot in lots)],
    )


def _child_order(
    root: Order, line: OrderLine, child_id: str, starts: datetime, expires: datetime | None, now: datetime
) -> Order:
    terms = line.model_dump(exclude={"child_order_id", "starts", "expires"})
    return Order(
        **terms,
        starts=starts,
        expires=expires,
        order_id=child_id,
        user_id=root.user_id,
        offer_name=line.offer_group,
        status=OrderStatus.PAID,
        total=Money(amount=0, currency=root.total.currency),
        parent_order_id=root.order_id,
        history=[HistoryEntry(date=now, status=OrderStatus.PAID, message=f"Bundled with order {root.order_id}")],
        created_at=now,
        updated_at=now,
    )


def too_many_items(what: str, items: int, outcome: str) -> str:
    return (
        f"{what} bundles {items} items, more than the {MAX_BUNDLE_ITEMS} one order can grant (its payment, refund "
        f"or dispute must fit in one storage transaction): {outcome}"
    )


def grantable(order: Order) -> bool:
    """An order bundles no more items than one transaction can grant (``MAX_BUNDLE_ITEMS``): always, for orders
    placed since the limit (bundles do not nest: an item grants its offer's own tokens, not that offer's items)."""
    return len(order.combined_items) <= MAX_BUNDLE_ITEMS
