"""Money going back, computed: what refunds and chargebacks take back (pure; the use cases are in ``refunds``).

Stripe reports cumulative figures: a charge's ``amount_refunded``, and a dispute's amount and status. The order keeps
the highest refunded amount seen and the dispute's state (``open`` → ``won`` | ``lost``; won and lost are final), so
events applied in any order, or twice, converge on the same order. What the buyer got back is
``returned = refunded + disputed`` (a dispute counts while open or lost), capped at the order's total.

Each lot the order granted (its own, and one per bundle item) owes ``ceil(tokens × returned / total)`` revoked tokens:
rounded up, so a partial refund never leaves the buyer a fraction of a token they no longer paid for. The order
remembers the returned amount its revocation is settled for (``revoked_for_amount``): a later, larger refund revokes
only the difference, and a won dispute gives back what the dispute took. A lot gives up to its tokens (what it had
already used then falls on the group's other lots, like a spend); the group's available balance never goes below
its overdraft floor for it (0 by default), and what could not be taken is the ``shortfall``, recorded on the ledger
entry and in the published event. Lots that expired meanwhile give nothing (their part is shortfall too).

Everything one report changes (the order, its bundle children, the lots, the groups' balances and journals, the
outbox, the Stripe event id) is one transaction, conditional on what was read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from usercredits.domain.ids import new_ulid
from usercredits.domain.models import (
    DisputeStatus,
    DomainEvent,
    GroupPolicy,
    GroupState,
    HistoryEntry,
    LedgerKind,
    Lot,
    Movement,
    Order,
    OrderStatus,
)
from usercredits.domain.settlement import credits_granted_event

#: Orders whose credits were granted: money going back takes credits back from them.
GRANTED = frozenset({OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.REFUNDED})
_DISPUTE_ORDER = {None: 0, DisputeStatus.OPEN: 1, DisputeStatus.WON: 2, DisputeStatus.LOST: 2}


@dataclass(frozen=True)
class ChargeReport:
    """What one verified Stripe event says about money going back on a payment intent.

    ``refunded_amount``: the charge's cumulative ``amount_refunded`` (``charge.refunded``); ``dispute_amount`` and
    ``dispute_status``: a dispute's (``charge.dispute.created`` / ``closed``).
    """

    payment_intent_id: str
    currency: str
    refunded_amount: int | None = None
    dispute_amount: int | None = None
    dispute_status: DisputeStatus | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OwedLot:
    """A lot an order granted (read from the order: it exists even when the lot has closed since)."""

    lot_id: str
    offer_group: str
    tokens: int


@dataclass(frozen=True)
class LotChange:
    """A lot's revoked tokens going from ``lot.revoked`` (as read) to ``revoked``."""

    lot: Lot
    revoked: int


@dataclass(frozen=True)
class Reversal:
    """The writes of one report: the order as it becomes (and as read), its children's new status, lot changes,
    and per group the movements to append, the net balance change and the floor the available balance keeps."""

    order: Order
    read: Order
    children_status: dict[str, OrderStatus] = field(default_factory=dict)
    lot_changes: list[LotChange] = field(default_factory=list)
    movements: dict[str, list[Movement]] = field(default_factory=dict)
    groups_before: dict[str, GroupState] = field(default_factory=dict)
    net: dict[str, int] = field(default_factory=dict)
    floors: dict[str, int | None] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return self.order != self.read


def merge_report(order: Order, report: ChargeReport) -> Order:
    """The order's refunded amount, dispute amount and dispute state once ``report`` is taken in (never backwards)."""
    update: dict[str, object] = {}
    if report.refunded_amount is not None and report.refunded_amount > order.refunded_amount:
        update["refunded_amount"] = min(report.refunded_amount, order.total.amount)
    if (
        report.dispute_status is not None
        and _DISPUTE_ORDER[report.dispute_status] > _DISPUTE_ORDER[order.dispute_status]
    ):
        update["dispute_status"] = report.dispute_status
        # An open or lost dispute holds its amount back from the merchant; a won one gives it back.
        held_back = report.dispute_status is not DisputeStatus.WON
        update["disputed_amount"] = min(report.dispute_amount or 0, order.total.amount) if held_back else 0
    return order.model_copy(update=update) if update else order


def owed_lots(order: Order) -> list[OwedLot]:
    """The lots paying ``order`` granted: its own (lot id = order id) and one per bundle item (the child order id)."""
    lots = [OwedLot(order.order_id, order.offer_group, order.total_tokens)] if order.total_tokens > 0 else []
    lots += [
        OwedLot(line.child_order_id, line.offer_group, line.total_tokens)
        for line in order.combined_items
        if line.child_order_id and line.total_tokens > 0
    ]
    return lots


def owed_share(tokens: int, returned: int, total: int) -> int:
    """Tokens a lot owes back when ``returned`` of ``total`` went back: ``ceil(tokens × returned / total)``."""
    if total <= 0 or returned <= 0:
        return 0
    return -(-tokens * min(returned, total) // total)


def plan_reversal(
    order: Order,
    read: Order,
    *,
    groups: dict[str, GroupState],
    open_lots: list[Lot],
    policies: dict[str, GroupPolicy],
    now: datetime,
) -> Reversal:
    """Everything that becomes true when ``order`` (``read`` merged with a report) is settled: lots revoked or
    restored, group balances, the order's status (``refunded`` once fully refunded) and the events to publish.
    An order whose credits were not granted yet only records the amounts (paying it later settles them)."""
    returned = order.returned_amount
    if order.status not in GRANTED or returned == order.revoked_for_amount:
        return Reversal(order=_with_status(order, read, now), read=read)
    lots_by_id = {lot.lot_id: lot for lot in open_lots}
    reason = _reason(order, read)
    room: dict[str, int | None] = {}
    floors: dict[str, int | None] = {}
    movements: dict[str, list[Movement]] = {}
    net: dict[str, int] = {}
    changes: list[LotChange] = []
    events: list[DomainEvent] = []
    for owed in owed_lots(order):
        delta = owed_share(owed.tokens, returned, order.total.amount) - owed_share(
            owed.tokens, order.revoked_for_amount, order.total.amount
        )
        group = groups.get(owed.offer_group)
        if delta == 0 or group is None:  # a paid order's groups exist; nothing to take from a group never written
            continue
        if owed.offer_group not in floors:
            floor = policies[owed.offer_group].floor if owed.offer_group in policies else 0
            floors[owed.offer_group] = floor
            room[owed.offer_group] = None if floor is None else max(group.available - floor, 0)
        for movement, change in _lot_movements(owed, lots_by_id.get(owed.lot_id), delta, room, reason, now):
            movements.setdefault(owed.offer_group, []).append(movement)
            net[owed.offer_group] = net.get(owed.offer_group, 0) + movement.tokens
            if change is not None:
                changes.append(change)
            events.append(_event(order, owed, movement, change))
    settled = _with_status(order.model_copy(update={"revoked_for_amount": returned}), read, now)
    newly_refunded = settled.status is OrderStatus.REFUNDED and read.status is not OrderStatus.REFUNDED
    return Reversal(
        order=settled,
        read=read,
        children_status={
            line.child_order_id: OrderStatus.REFUNDED for line in settled.combined_items if line.child_order_id
        }
        if newly_refunded
        else {},
        lot_changes=changes,
        movements=movements,
        groups_before={name: groups[name] for name in movements},
        net=net,
        floors={name: floors[name] for name in movements},
        events=events,
    )


def _lot_movements(
    owed: OwedLot, lot: Lot | None, delta: int, room: dict[str, int | None], reason: str, now: datetime
) -> Iterator[tuple[Movement, LotChange | None]]:
    group_room = room.get(owed.offer_group, 0)
    if delta > 0:
        take = 0
        if lot is not None and not lot.closed:
            take = (
                min(delta, lot.effective_tokens) if group_room is None else min(delta, lot.effective_tokens, group_room)
            )
        if group_room is not None:
            room[owed.offer_group] = group_room - take
        shortfall = delta - take
        movement = Movement(
            entry_id=new_ulid(now),
            kind=LedgerKind.REVOKE,
            tokens=-take,
            order_id=owed.lot_id,
            lot_id=owed.lot_id,
            reason=reason,
            shortfall=shortfall or None,
            created_at=now,
        )
        yield movement, LotChange(lot, lot.revoked + take) if lot is not None and take else None
        return
    give = min(-delta, lot.revoked) if lot is not None and not lot.closed else 0
    if give and lot is not None:
        if group_room is not None:
            room[owed.offer_group] = group_room + give
        movement = Movement(
            entry_id=new_ulid(now),
            kind=LedgerKind.ADJUST,
            tokens=give,
            order_id=owed.lot_id,
            lot_id=owed.lot_id,
            reason=reason,
            created_at=now,
        )
        yield movement, LotChange(lot, lot.revoked - give)


def _reason(order: Order, read: Order) -> str:
    if order.dispute_status is not read.dispute_status:
        return {
            DisputeStatus.OPEN: "dispute opened",
            DisputeStatus.WON: "dispute won: revoked credits restored",
            DisputeStatus.LOST: "dispute lost",
        }[order.dispute_status or DisputeStatus.OPEN]
    return f"refund of {order.refunded_amount} of {order.total.amount} {order.total.currency}"


def _with_status(order: Order, read: Order, now: datetime) -> Order:
    """The order with its new status and a history entry when a report changed it."""
    if order == read:
        return order
    fully_refunded = order.refunded_amount >= order.total.amount > 0
    status = OrderStatus.REFUNDED if fully_refunded and order.status in GRANTED else order.status
    message = _reason(order, read)
    if order.status not in GRANTED:
        message += " (no credits were granted yet)"
    entry = HistoryEntry(date=now, status=status, message=message)
    return order.model_copy(update={"status": status, "history": [*order.history, entry], "updated_at": now})


def _event(order: Order, owed: OwedLot, movement: Movement, change: LotChange | None) -> DomainEvent:
    if movement.tokens > 0 and change is not None:
        restored = change.lot.model_copy(update={"revoked": change.revoked})
        return credits_granted_event(order.user_id, restored, reason=movement.reason)
    detail: dict[str, object] = {
        "userId": order.user_id,
        "offerGroup": owed.offer_group,
        "orderId": order.order_id,
        "lotId": owed.lot_id,
        "tokens": -movement.tokens,
        "shortfall": movement.shortfall or 0,
        "reason": movement.reason,
        "refundedAmount": order.refunded_amount,
        "disputedAmount": order.disputed_amount,
        "currency": order.total.currency,
    }
    return DomainEvent("CreditsRevoked", detail)
