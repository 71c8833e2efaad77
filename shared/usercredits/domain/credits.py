"""Credits: what a user holds per offer group, and the pure rules behind reading and spending it.

Remaining per lot is derived, not stored, so a spend touches one item (the group). The group keeps ``drawn``: the
tokens taken from its open lots. Open lots are ordered by burn order (soonest expiry first, lots without expiry last,
then oldest grant, then lot id) and ``drawn`` is allocated along that order: each lot's remaining is its tokens minus
the part of ``drawn`` that falls on it. A refund or dispute revokes tokens of a lot: it then counts as ``tokens -
revoked``, and what it had used beyond that falls on the next lots. When a lot closes (expiry) what it had used leaves
``drawn`` and its remaining leaves the balance, so the allocation of the other lots is unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from usercredits.domain.models import GroupState, LedgerEntry, LedgerKind, Lot, Movement, Reservation, ReservationStatus
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainModel


class LotView(DomainModel):
    lot_id: str
    order_id: str | None
    tokens: int
    remaining: int
    revoked: int = 0
    starts: datetime
    expires: datetime | None


class CreditGroup(DomainModel):
    """A group as the API shows it (``CreditGroup`` in docs/api.md#credits-consumptionfunction); ``debt``: tokens
    the group owes (a negative balance), repaid first by its next grants."""

    offer_group: str
    balance: int
    available: int
    held: int
    debt: int = 0
    starts: datetime | None
    expires: datetime | None
    lots: list[LotView]
    lots_cursor: str | None = Field(
        default=None,
        description=(
            "Set when the group has more open lots than shown (reads show the first ones in burn order): "
            "GET /credits/{offerGroup}?lotsCursor=... gives the next ones."
        ),
    )


def burn_order(lot: Lot) -> tuple[bool, datetime, datetime, str]:
    """Sort key: soonest expiry first (no expiry last), then the oldest grant, then the lot id."""
    return (lot.expires is None, lot.expires or lot.granted_at, lot.granted_at, lot.lot_id)


def lot_remaining(lots: Iterable[Lot], drawn: int) -> dict[str, int]:
    """Remaining tokens of each open lot once ``drawn`` is allocated along the burn order."""
    remaining: dict[str, int] = {}
    left = max(drawn, 0)
    for lot in sorted((lot for lot in lots if not lot.closed), key=burn_order):
        used = min(lot.effective_tokens, left)
        left -= used
        remaining[lot.lot_id] = lot.effective_tokens - used
    return remaining


def credit_group(state: GroupState, lots: Sequence[Lot], *, before: int = 0, cursor: str | None = None) -> CreditGroup:
    """The API view of one group: balance, held, available, window, and each open lot given with what remains of it.

    ``lots`` are the group's first open lots in burn order, or (``before``: the tokens of the open lots ahead of
    them) a later run of them: ``drawn`` falls on the lots ahead first, so what remains of these is exact either way.
    ``cursor``: where the lots after these are."""
    mine = [lot for lot in lots if lot.offer_group == state.offer_group and not lot.closed]
    remaining = lot_remaining(mine, state.drawn - before)
    return CreditGroup(
        offer_group=state.offer_group,
        balance=state.balance,
        available=state.available,
        held=state.held,
        debt=max(-state.balance, 0),
        starts=state.starts,
        expires=state.expires,
        lots=[
            LotView(
                lot_id=lot.lot_id,
                order_id=lot.order_id,
                tokens=lot.tokens,
                remaining=remaining[lot.lot_id],
                revoked=lot.revoked,
                starts=lot.starts,
                expires=lot.expires,
            )
            for lot in sorted(mine, key=burn_order)
        ],
        lots_cursor=cursor,
    )


def empty_group(offer_group: str) -> CreditGroup:
    """A group never bought: balance 0."""
    return CreditGroup(offer_group=offer_group, balance=0, available=0, held=0, starts=None, expires=None, lots=[])


def journal_entries(state: GroupState) -> list[LedgerEntry]:
    """The journal's movements with their sequence number and the balance right after each, oldest first.

    The journal is in commit order and the group's balance is the balance after its last movement, so walking back
    from it gives every balance exactly.
    """
    entries: list[LedgerEntry] = []
    balance = state.balance
    for index in range(len(state.journal) - 1, -1, -1):
        movement = state.journal[index]
        entries.append(to_entry(movement, state.offer_group, state.journal_first_seq + index, balance))
        balance -= movement.tokens
    entries.reverse()
    return entries


def to_entry(movement: Movement, offer_group: str, seq: int, balance_after: int) -> LedgerEntry:
    return LedgerEntry(**movement.model_dump(), offer_group=offer_group, seq=seq, balance_after=balance_after)


def opening_balance(state: GroupState) -> int:
    """The balance before the journal's first movement (after the last archived one)."""
    return state.balance - sum(movement.tokens for movement in state.journal)


# --- holds, when what they hold leaves the balance ----------------------------------------------------------------


@dataclass(frozen=True)
class HoldCut:
    """A hold reduced to ``count`` (0: released) because the tokens it held left the balance."""

    hold: Reservation
    count: int

    @property
    def cut(self) -> int:
        return self.hold.count - self.count


def cut_holds(holds: Sequence[Reservation], offer_group: str, floor: int | None, available_after: int) -> list[HoldCut]:
    """Holds come before a debt: when tokens leave a group (a refund, a dispute, an expiry) and the available balance
    would end below the floor (``None``: unlimited overdraft, nothing to do), the group's open holds are reduced by
    what is missing, newest first, so nobody can capture tokens that are no longer there."""
    if floor is None or available_after >= floor:
        return []
    short = floor - available_after
    cuts = []
    mine = (hold for hold in holds if hold.offer_group == offer_group and hold.status is ReservationStatus.HELD)
    for hold in sorted(mine, key=lambda hold: hold.reservation_id, reverse=True):
        if short <= 0:
            break
        cut = min(hold.count, short)
        if cut > 0:
            cuts.append(HoldCut(hold, hold.count - cut))
            short -= cut
    return cuts


def cut_movement(cut: HoldCut, now: datetime, reason: str) -> Movement:
    """The journal movement of a hold reduced: ``held`` goes down, the balance does not move."""
    return Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.RELEASE,
        tokens=0,
        held=-cut.cut,
        reservation_id=cut.hold.reservation_id,
        reason=reason,
        created_at=now,
    )
