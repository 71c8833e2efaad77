"""The expiry of a group's lots, planned in steps that each fit one atomic write (pure rules, no I/O).

Lots past their expiry close soonest first (they are the head of the burn order, so what each has left follows from
the group's ``drawn`` alone). However many are due at once (an admin's batch of promotional grants with one expiry),
each step closes only as many as one transaction can hold, with the holds its expiry cuts and its events; the group
stays due (its ``next_expiry`` in the past: no spend, hold or capture passes its condition) until the last step, so
nothing can be taken from tokens that are about to leave, and every step is exact on its own. A step whose cuts alone
would not fit cuts what fits and leaves the group due: the next step (no lot left to close) cuts the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from usercredits.domain.credits import HoldCut, burn_order, cut_holds, cut_movement, lot_remaining
from usercredits.domain.events import credits_expired, crossed_low
from usercredits.domain.models import GroupPolicy, GroupState, LedgerKind, Lot, Movement, Reservation
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

#: The most items one atomic change of the store may write (DynamoDB's TransactWriteItems takes 100 actions).
MAX_WRITES = MAX_TRANSACTION_ACTIONS


def closing_writes(lots: Sequence[Lot], events: Sequence[DomainEvent], cuts: Sequence[HoldCut]) -> int:
    """Items a closing step writes: the group, the outbox item (one for all its events), each lot (its open item
    deleted, its closed copy put) and its order, each hold cut (a hold cut to 0 settles: its open item is deleted and
    its settled copy put)."""
    lot_writes = sum(3 if lot.order_id else 2 for lot in lots)
    cut_writes = sum(2 if cut.count == 0 else 1 for cut in cuts)
    return 1 + (1 if events else 0) + lot_writes + cut_writes


@dataclass(frozen=True)
class ClosingStep:
    """One atomic step of an expiry: ``lots`` close (``movements``: an ``expire`` per lot with tokens left, then the
    cuts), ``events`` go to the outbox, and the group remembers ``next_expiry`` (in the past while work is left)."""

    lots: list[Lot]
    movements: list[Movement]
    events: list[DomainEvent]
    cuts: list[HoldCut]
    next_expiry: datetime | None
    expired: int
    done: bool
    lots_left: list[Lot] = field(default_factory=list)
    holds_left: list[Reservation] = field(default_factory=list)


def expiry_events(
    user_id: str,
    state: GroupState,
    lots: Sequence[Lot],
    movements: Sequence[Movement],
    *,
    low_threshold: int | None = None,
) -> list[DomainEvent]:
    """What an expiry publishes: ``CreditsExpired`` for each lot it closes with tokens left (one per ``expire``
    movement: a lot fully used expires silently) with the group's balance right after it, and ``CreditsLow`` when
    the expiry takes the balance from above ``low_threshold`` to or below it. Written to the outbox by the
    transaction that closes the lots (``state``: the group they were computed from, which that transaction's
    condition pins)."""
    expires = {lot.lot_id: lot.expires for lot in lots}
    balance = state.balance
    events = []
    for movement in movements:
        if movement.kind is not LedgerKind.EXPIRE or movement.tokens >= 0:
            continue
        balance += movement.tokens
        expired = credits_expired(user_id, state.offer_group, movement, expires.get(movement.lot_id or ""), balance)
        events.append(expired)
    return [*events, *crossed_low(user_id, state.offer_group, low_threshold, state.balance, balance)]


def due_lots(lots: Sequence[Lot], offer_group: str, now: datetime) -> list[Lot]:
    """The group's open lots past their expiry, in burn order (soonest first)."""
    mine = (lot for lot in lots if lot.offer_group == offer_group and not lot.closed)
    return sorted((lot for lot in mine if lot.expires is not None and lot.expires <= now), key=burn_order)


def needs_closing(state: GroupState, lots: Sequence[Lot], now: datetime) -> bool:
    """True when the group has expiry work: a lot past its expiry, or a soonest expiry it remembers that has passed
    (its lot closed otherwise, or a step left cuts to make)."""
    return bool(due_lots(lots, state.offer_group, now)) or (state.next_expiry is not None and state.next_expiry <= now)


def plan_closing_step(
    user_id: str,
    state: GroupState,
    lots: Sequence[Lot],
    holds: Sequence[Reservation],
    policy: GroupPolicy,
    now: datetime,
    *,
    max_writes: int | None = None,
) -> ClosingStep | None:
    """The next step of the group's expiry, or None when it has none. ``lots``: the group's open lots; ``holds``: its
    open holds; ``policy``: its floor (holds are cut before the available balance passes it) and low threshold;
    ``max_writes``: ``MAX_WRITES`` unless given."""
    max_writes = MAX_WRITES if max_writes is None else max_writes
    group = state.offer_group
    mine = [lot for lot in lots if lot.offer_group == group and not lot.closed]
    due = due_lots(mine, group, now)
    if not needs_closing(state, mine, now):
        return None
    remaining = lot_remaining(mine, state.drawn)

    def step_for(count: int) -> tuple[list[Lot], list[Movement], list[DomainEvent], list[HoldCut]]:
        closing = due[:count]
        movements = [
            Movement(
                entry_id=new_ulid(now),
                kind=LedgerKind.EXPIRE,
                tokens=-remaining[lot.lot_id],
                order_id=lot.order_id,
                lot_id=lot.lot_id,
                created_at=now,
            )
            for lot in closing
            if remaining[lot.lot_id] > 0
        ]
        expired = -sum(movement.tokens for movement in movements)
        events = expiry_events(user_id, state, closing, movements, low_threshold=policy.low_threshold)
        cuts = cut_holds(holds, group, policy.floor, state.available - expired)
        return closing, movements, events, cuts

    # The most lots whose closing fits (the cuts grow with what expires: fewer lots, fewer cuts).
    count = min(len(due), max_writes)
    closing, movements, events, cuts = step_for(count)
    while count > 1 and closing_writes(closing, events, cuts) > max_writes:
        count -= 1
        closing, movements, events, cuts = step_for(count)
    cuts_left = False
    while cuts and closing_writes(closing, events, cuts) > max_writes:
        cuts.pop()  # the newest cuts first are kept; the rest waits for the next step
        cuts_left = True
    expired = -sum(movement.tokens for movement in movements)
    closed_ids = {lot.lot_id for lot in closing}  # by id: thousands of lots may be open
    lots_left = [lot for lot in mine if lot.lot_id not in closed_ids]
    next_expiry = min((lot.expires for lot in lots_left if lot.expires is not None), default=None)
    if cuts_left:
        next_expiry = min(next_expiry, now) if next_expiry else now  # still due: the next step cuts the rest
    cut_of = {cut.hold.reservation_id: cut for cut in cuts}
    holds_left = []
    for hold in holds:
        cut = cut_of.get(hold.reservation_id)
        if cut is None:
            holds_left.append(hold)
        elif cut.count > 0:
            holds_left.append(hold.model_copy(update={"count": cut.count, "reduced": hold.reduced + cut.cut}))
    return ClosingStep(
        lots=closing,
        movements=[*movements, *(cut_movement(cut, now, _cut_reason(closing)) for cut in cuts)],
        events=events,
        cuts=cuts,
        next_expiry=next_expiry,
        expired=expired,
        done=next_expiry is None or next_expiry > now,
        lots_left=lots_left,
        holds_left=holds_left,
    )


def _cut_reason(closing: Sequence[Lot]) -> str:
    # A step that closes no lot makes the cuts an earlier change left (an expiry step or a refund that did not fit).
    return "hold cut: its tokens expired" if closing else "hold cut: its tokens left the balance"
