"""Money going back, computed: what refunds and chargebacks take back (pure; the use cases are in ``refunds``).

Stripe reports cumulative figures: a charge's ``amount_refunded``, and a dispute's amount and status. The order keeps
the highest refunded amount seen and the dispute's state (``open`` → ``won`` | ``lost``; won and lost are final), so
events applied in any order, or twice, converge on the same order. What the buyer got back is
``returned = refunded + disputed`` (a dispute counts while open or lost), capped at the order's total. Only the
figures of the intent that paid the order move credits; those of its other intents (abandoned, or a duplicate payment
refunded at once) are kept apart on the order (``Order.other_intents``) and move nothing.

**One rule, so that value never stays with the buyer twice.** Each lot the order granted (its own, and one per
bundle item) owes ``ceil(tokens × returned / total)`` tokens (rounded up: a partial refund never leaves a fraction of
a token that is no longer paid for), and the revocation always happens in full:

- an **open lot** gives them all: its remaining first, then (what it had already used) the group's other tokens, like
  a spend, and what the group does not have becomes a **debt**, a negative balance that the group's next grants repay
  first. Before the available balance goes below the group's floor, the group's **holds are reduced** (newest first),
  so held tokens cannot be captured once they are no longer paid for;
- a lot that has **expired** gives only what it had used beyond what is still paid for (its expired tokens were never
  of use to the buyer): ``max(0, owed - revoked_at_close - expired)``, as a debt.

A won dispute gives back what it took: to an open lot in full; to a lot that expired since, only as far as the group
still owes tokens (``drawn``): the rest would have expired with the lot. A full refund moves the order (and its bundle
children) to ``refunded`` and closes its lots (nothing is left in them); a limited order gives its per-user slot back
then (``domain.limits``; a disputed one keeps it: it stays ``paid``). A purchase whose money went back in full
(refunds, or a dispute open or lost) no longer counts: it is ``withdrawn`` and its window leaves its groups (no more
unlocking, no subscription, an appendDate purchase starts from what still counts); a won dispute puts it back.

Everything one report changes (the order, its bundle children, the lots, the holds, the groups' balances, journals and
windows, the outbox, the Stripe event id) is one transaction, conditional on what was read. It is the largest
transaction of a bundle: ``ACTIONS_PER_PURCHASE`` actions per purchase (order or child, group, and the lot: closed by a
full refund, its open item deleted and its closed copy put), ``ACTIONS_PER_ORDER`` per order (event id, outbox,
per-user limit counter) and 2 per hold cut (open item deleted, settled copy put). Bundles are limited to
``MAX_BUNDLE_ITEMS`` so that the revocation always fits DynamoDB's 100 actions with ``HOLD_CUTS_IN_PLACE`` hold cuts
(``models``: the arithmetic).
Holds beyond what fits are cut by the group's next step (``_fitted``): the group stays due until then, so none of
them can be captured in between.

Longer than ~400 lines as one concept: the plan of one reversal, whose parts (lots, debts, holds, windows, the
transaction's size) must be read together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from usercredits.domain.credits import HoldCut, cut_holds, cut_movement
from usercredits.domain.events import credits_restored, credits_revoked, with_detail
from usercredits.domain.models import (
    GRANTED,
    DisputeStatus,
    GroupPolicy,
    GroupState,
    HistoryEntry,
    IntentFigures,
    LedgerKind,
    Lot,
    Movement,
    Order,
    OrderStatus,
    Reservation,
)
from usercredits.domain.settlement import add_purchase, withdraw_purchase
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

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
    """A lot as read, and what it becomes: its revoked tokens, its debt (once closed), closed (a full refund)."""

    lot: Lot
    revoked: int
    debt: int
    closed: bool


@dataclass(frozen=True)
class GroupChange:
    """What one report does to a group: the balance and ``drawn`` change, holds reduced, the movements for the
    journal, its window when a purchase was withdrawn or put back, and what the write must find unchanged.

    ``fits_floor``: the write requires ``available >= fits_floor`` (taking fits above the floor, so no hold needed
    reducing); ``pinned``: the write requires the balance and held as read (holds were reduced, or a debt arose,
    from what was read)."""

    before: GroupState
    balance: int = 0
    drawn: int = 0
    cuts: list[HoldCut] = field(default_factory=list)
    movements: list[Movement] = field(default_factory=list)
    window: GroupState | None = None
    fits_floor: int | None = None
    pinned: bool = False
    # The group's soonest expiry is written: lots closed by this report (a full refund: the soonest among the lots
    # still open), or hold cuts left for the group's next step (``_fitted``: now, so the group stays due).
    closes_lots: bool = False
    next_expiry: datetime | None = None

    @property
    def held(self) -> int:
        return -sum(cut.cut for cut in self.cuts)


@dataclass(frozen=True)
class Reversal:
    """The writes of one report: the order as it becomes (and as read), its children's new status and withdrawn flag,
    lot changes, group changes and the events to publish."""

    order: Order
    read: Order
    children_status: dict[str, OrderStatus] = field(default_factory=dict)
    children_withdrawn: dict[str, bool] = field(default_factory=dict)
    lot_changes: list[LotChange] = field(default_factory=list)
    groups: dict[str, GroupChange] = field(default_factory=dict)
    events: list[DomainEvent] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return self.order != self.read


def merge_report(order: Order, report: ChargeReport) -> Order:
    """The order once ``report`` is taken in (never backwards): into the order's own figures when it is about the
    intent that pays (or would pay) the order, into ``other_intents`` when it is about another of its intents."""
    if report.payment_intent_id and order.payment_intent_id and report.payment_intent_id != order.payment_intent_id:
        figures = order.other_intents.get(report.payment_intent_id, IntentFigures())
        merged = _merge_figures(figures, report, order.total.amount)
        if merged == figures:
            return order
        return order.model_copy(update={"other_intents": {**order.other_intents, report.payment_intent_id: merged}})
    own = IntentFigures(
        refunded_amount=order.refunded_amount,
        disputed_amount=order.disputed_amount,
        dispute_status=order.dispute_status,
    )
    merged = _merge_figures(own, report, order.total.amount)
    if merged == own:
        return order
    return order.model_copy(
        update={
            "refunded_amount": merged.refunded_amount,
            "disputed_amount": merged.disputed_amount,
            "dispute_status": merged.dispute_status,
        }
    )


def _merge_figures(figures: IntentFigures, report: ChargeReport, total: int) -> IntentFigures:
    update: dict[str, object] = {}
    if report.refunded_amount is not None and report.refunded_amount > figures.refunded_amount:
        update["refunded_amount"] = min(report.refunded_amount, total)
    if (
        report.dispute_status is not None
        and _DISPUTE_ORDER[report.dispute_status] > _DISPUTE_ORDER[figures.dispute_status]
    ):
        update["dispute_status"] = report.dispute_status
        # An open or lost dispute holds its amount back from the merchant; a won one gives it back.
        held_back = report.dispute_status is not DisputeStatus.WON
        update["disputed_amount"] = min(report.dispute_amount or 0, total) if held_back else 0
    return figures.model_copy(update=update) if update else figures


def owed_lots(order: Order) -> list[OwedLot]:
    """The lots paying ``order`` granted: its own (lot id = order id) and one per bundle item (the child order id)."""
    lots = [OwedLot(order.order_id, order.offer_group, order.total_tokens)] if order.total_tokens > 0 else []
    lots += [
        OwedLot(line.child_order_id, line.offer_group, line.total_tokens)
        for line in order.combined_items
        if line.child_order_id and line.total_tokens > 0
    ]
    return lots


def touched_groups(order: Order) -> set[str]:
    """Every group paying ``order`` wrote: its own and each bundle item's (for lots, and for windows)."""
    return {order.offer_group, *(line.offer_group for line in order.combined_items)}


def owed_share(tokens: int, returned: int, total: int) -> int:
    """Tokens a lot owes back when ``returned`` of ``total`` went back: ``ceil(tokens × returned / total)``."""
    if total <= 0 or returned <= 0:
        return 0
    return -(-tokens * min(returned, total) // total)


@dataclass
class _Plan:
    """The group changes being planned for one report (mutable while planning)."""

    groups: dict[str, GroupState]
    balance: dict[str, int] = field(default_factory=dict)
    drawn: dict[str, int] = field(default_factory=dict)
    movements: dict[str, list[Movement]] = field(default_factory=dict)
    windows: dict[str, GroupState] = field(default_factory=dict)
    next_expiry: dict[str, datetime | None] = field(default_factory=dict)
    # Groups whose changes were computed from their ``drawn`` as read (an expired lot giving back).
    drawn_read: set[str] = field(default_factory=set)

    def move(self, group: str, movement: Movement, drawn: int = 0) -> None:
        self.balance[group] = self.balance.get(group, 0) + movement.tokens
        self.drawn[group] = self.drawn.get(group, 0) + drawn
        self.movements.setdefault(group, []).append(movement)

    def drawn_now(self, group: str) -> int:
        return self.groups[group].drawn + self.drawn.get(group, 0)


def plan_reversal(
    order: Order,
    read: Order,
    *,
    groups: dict[str, GroupState],
    lots: list[Lot],
    holds: list[Reservation],
    policies: dict[str, GroupPolicy],
    now: datetime,
    open_lots: list[Lot] | None = None,
) -> Reversal:
    """Everything that becomes true when ``order`` (``read`` merged with a report) is settled (see the module):
    ``groups`` the order's groups, ``lots`` the order's lots open or closed, ``holds`` the open holds, ``open_lots``
    every open lot of those groups (for their soonest expiry when some close), all up to date (nothing in them past
    its expiry)."""
    settled = order.model_copy(update={"withdrawn": order.fully_returned}) if order.status in GRANTED else order
    returned = settled.returned_amount
    fully_refunded = settled.refunded_amount >= settled.total.amount > 0
    unchanged = returned == order.revoked_for_amount and settled.withdrawn == read.withdrawn
    if settled.status not in GRANTED or (unchanged and (read.status is OrderStatus.REFUNDED or not fully_refunded)):
        return Reversal(order=_with_status(settled, read, now), read=read)
    plan = _Plan(groups=groups)
    changes, events = _revoke_lots(settled, read, {lot.lot_id: lot for lot in lots}, plan, now)
    if fully_refunded:  # nothing is left in its lots: they close, and no expiry will ever look at them again
        changes = _close_all(settled, changes, {lot.lot_id: lot for lot in lots})
        closing = {change.lot.lot_id for change in changes if change.closed and not change.lot.closed}
        for group in {change.lot.offer_group for change in changes if change.lot.lot_id in closing}:
            left = [lot for lot in open_lots or lots if lot.offer_group == group and lot.lot_id not in closing]
            plan.next_expiry[group] = min((lot.expires for lot in left if lot.expires and not lot.closed), default=None)
    if settled.withdrawn != read.withdrawn:
        _move_windows(settled, plan, now)
    settled = _with_status(settled.model_copy(update={"revoked_for_amount": returned}), read, now)
    newly_refunded = settled.status is OrderStatus.REFUNDED and read.status is not OrderStatus.REFUNDED
    children = [line.child_order_id for line in settled.combined_items if line.child_order_id]
    group_changes = _group_changes(plan, holds, policies, _reason(settled, read), now)
    reversal = Reversal(
        order=settled,
        read=read,
        children_status=dict.fromkeys(children, OrderStatus.REFUNDED) if newly_refunded else {},
        children_withdrawn=dict.fromkeys(children, settled.withdrawn) if settled.withdrawn != read.withdrawn else {},
        lot_changes=changes,
        groups=group_changes,
        events=[_with_debt(event, group_changes) for event in events],
    )
    return _fitted(reversal, now)


def reversal_writes(reversal: Reversal) -> int:
    """Items the reversal's transaction writes: the order, its idempotency record, the children, the lots (a lot it
    closes: its open item deleted and its closed copy put), the groups and the holds they cut (a hold cut to nothing:
    its open item deleted and its settled copy put), the outbox item and the per-user limit's counter (counted
    whether or not they are written: the bound must hold either way)."""
    children = set(reversal.children_status) | set(reversal.children_withdrawn)
    cuts = sum(2 if cut.count == 0 else 1 for change in reversal.groups.values() for cut in change.cuts)
    lots = sum(2 if change.closed and not change.lot.closed else 1 for change in reversal.lot_changes)
    return 4 + len(children) + lots + len(reversal.groups) + cuts


def _fitted(reversal: Reversal, now: datetime) -> Reversal:
    """The reversal within one transaction. The revocation itself always fits (``MAX_BUNDLE_ITEMS``); holds to cut
    beyond what fits are left to the group's next step: the group keeps a past ``next_expiry`` (as an expiry in
    steps does), so no spend, hold or capture passes its condition until whoever comes next (a read, a spend, a
    capture) has cut the rest (``lot_expiry.plan_closing_step``: the same cuts, newest first, as the available
    balance still falls short of the floor). Exact in between: the tokens left the balance at once."""
    excess = reversal_writes(reversal) - MAX_TRANSACTION_ACTIONS
    if excess <= 0:
        return reversal
    groups = dict(reversal.groups)
    for group in sorted(groups, reverse=True):
        change = groups[group]
        cuts = list(change.cuts)
        while cuts and excess > 0:
            excess -= 2 if cuts.pop().count == 0 else 1  # the oldest holds wait; the newest are cut now
        if len(cuts) == len(change.cuts):
            continue
        kept = {cut.hold.reservation_id for cut in cuts}
        groups[group] = replace(
            change,
            cuts=cuts,
            movements=[m for m in change.movements if m.reservation_id is None or m.reservation_id in kept],
            closes_lots=True,
            next_expiry=now,
        )
        if excess <= 0:
            break
    return replace(reversal, groups=groups)


def _with_debt(event: DomainEvent, groups: dict[str, GroupChange]) -> DomainEvent:
    """``CreditsRevoked`` says what the group owes once the revocation is done (0 when it could pay it all)."""
    change = groups.get(str(event.detail.get("offerGroup")))
    if event.kind != "CreditsRevoked" or change is None:
        return event
    return with_detail(event, {"debt": max(-(change.before.balance + change.balance), 0)})


def _revoke_lots(
    order: Order, read: Order, lots: dict[str, Lot], plan: _Plan, now: datetime
) -> tuple[list[LotChange], list[DomainEvent]]:
    reason = _reason(order, read)
    changes: list[LotChange] = []
    events: list[DomainEvent] = []
    for owed in owed_lots(order):
        lot = lots.get(owed.lot_id)
        if lot is None or owed.offer_group not in plan.groups:
            continue  # a paid order's lots and groups exist; nothing to take from what was never written
        target = owed_share(owed.tokens, order.returned_amount, order.total.amount)
        if not lot.closed:
            change, tokens, drawn = LotChange(lot, target, lot.debt, False), lot.revoked - target, 0
        else:
            change, tokens, drawn = _closed_lot_change(lot, target, plan.drawn_now(owed.offer_group))
            if target < lot.revoked + lot.debt:
                plan.drawn_read.add(owed.offer_group)
        if (change.revoked, change.debt) == (lot.revoked, lot.debt):
            continue
        changes.append(change)
        if tokens == 0:
            continue  # an expired lot whose give-back had expired with it: recorded, nothing moves
        kind = LedgerKind.REVOKE if change.revoked + change.debt > lot.revoked + lot.debt else LedgerKind.ADJUST
        movement = Movement(
            entry_id=new_ulid(now),
            kind=kind,
            tokens=tokens,
            order_id=owed.lot_id,
            lot_id=owed.lot_id,
            reason=reason,
            created_at=now,
        )
        plan.move(owed.offer_group, movement, drawn)
        events.append(_event(order, owed, movement, change))
    return changes, events


def _closed_lot_change(lot: Lot, target: int, drawn: int) -> tuple[LotChange, int, int]:
    """A lot that expired before the money went back: (the change, the balance change, the ``drawn`` change).

    Taking: only what it had used beyond what is still paid for, as a debt (``drawn`` grows like a spend). Giving
    back: what the group still owes (``drawn``), the rest having expired with the lot."""
    before = lot.revoked + lot.debt
    if target >= lot.revoked:
        change = LotChange(lot, lot.revoked, max(0, target - lot.revoked - lot.expired), True)
    else:
        change = LotChange(lot, target, 0, True)
    back = before - (change.revoked + change.debt)
    if back < 0:
        return change, back, -back
    given = min(back, max(drawn, 0))
    return change, given, -given


def _close_all(order: Order, changes: list[LotChange], lots: dict[str, Lot]) -> list[LotChange]:
    """Every lot of a fully refunded order closed (all its tokens are revoked: nothing remains in it)."""
    changed = {change.lot.lot_id: change for change in changes}
    closed = []
    for owed in owed_lots(order):
        lot = lots.get(owed.lot_id)
        change = changed.get(owed.lot_id)
        if change is not None:
            closed.append(LotChange(change.lot, change.revoked, change.debt, True))
        elif lot is not None and not lot.closed:
            closed.append(LotChange(lot, lot.revoked, lot.debt, True))
    return closed


def _move_windows(order: Order, plan: _Plan, now: datetime) -> None:
    """Withdraw the purchase's windows from its groups (or put them back, for a won dispute)."""
    purchases = [(order.order_id, order.offer_group, order.starts, order.expires)]
    purchases += [
        (line.child_order_id, line.offer_group, line.starts, line.expires)
        for line in order.combined_items
        if line.child_order_id
    ]
    for purchase_id, group, starts, expires in purchases:
        state = plan.windows.get(group) or plan.groups.get(group)
        if state is None or starts is None:
            continue
        if order.withdrawn:
            plan.windows[group] = withdraw_purchase(state, purchase_id, expires, now)
        else:
            restored = add_purchase(state, group, purchase_id, starts, expires, now)
            plan.windows[group] = restored.model_copy(update={"paid_orders": state.paid_orders})


def _group_changes(
    plan: _Plan, holds: list[Reservation], policies: dict[str, GroupPolicy], reason: str, now: datetime
) -> dict[str, GroupChange]:
    changes: dict[str, GroupChange] = {}
    for group in sorted(set(plan.movements) | set(plan.windows) | set(plan.next_expiry)):
        before = plan.groups[group]
        balance = plan.balance.get(group, 0)
        floor = policies[group].floor if group in policies else 0
        cuts = cut_holds(holds, group, floor, before.available + balance) if balance < 0 else []
        fits = floor is not None and balance < 0 and not cuts and before.available + balance >= floor
        changes[group] = GroupChange(
            before=before,
            balance=balance,
            drawn=plan.drawn.get(group, 0),
            cuts=cuts,
            movements=[
                *plan.movements.get(group, []),
                *(cut_movement(cut, now, f"hold cut: {reason}") for cut in cuts),
            ],
            window=plan.windows.get(group),
            fits_floor=floor - balance if fits and floor is not None else None,
            pinned=(balance < 0 and floor is not None and not fits) or group in plan.drawn_read,
            closes_lots=group in plan.next_expiry,
            next_expiry=plan.next_expiry.get(group),
        )
    return changes


def _reason(order: Order, read: Order) -> str:
    if order.dispute_status is not read.dispute_status:
        return {
            DisputeStatus.OPEN: "dispute opened",
            DisputeStatus.WON: "dispute won: revoked credits restored",
            DisputeStatus.LOST: "dispute lost",
        }[order.dispute_status or DisputeStatus.OPEN]
    if order.other_intents != read.other_intents and order.refunded_amount == read.refunded_amount:
        changed = sorted(key for key, value in order.other_intents.items() if read.other_intents.get(key) != value)
        return f"money went back on payment {', '.join(changed)}, which did not pay this order: no credits move"
    return f"refund of {order.refunded_amount} of {order.total.amount} {order.total.currency}"


def _with_status(order: Order, read: Order, now: datetime) -> Order:
    """The order with its new status and a history entry when a report changed it."""
    if order == read:
        return order
    fully_refunded = order.refunded_amount >= order.total.amount > 0
    status = OrderStatus.REFUNDED if fully_refunded and order.status in GRANTED else order.status
    message = _reason(order, read)
    if order.status not in GRANTED and order.other_intents == read.other_intents:
        message += " (no credits were granted yet)"
    entry = HistoryEntry(date=now, status=status, message=message)
    # A refunded order no longer counts towards its offer's per-user limit: its slot goes back in the same write.
    changed = order.model_copy(update={"status": status, "history": [*order.history, entry], "updated_at": now})
    return changed.with_slot()


def _event(order: Order, owed: OwedLot, movement: Movement, change: LotChange) -> DomainEvent:
    if movement.tokens > 0:
        restored = change.lot.model_copy(update={"revoked": change.revoked})
        return credits_restored(order.user_id, restored, movement.tokens, movement.reason)
    return credits_revoked(order, owed.offer_group, owed.lot_id, -movement.tokens, movement.reason)
