"""What time does to a group: holds past their expiry are released and lots past theirs close, before anything else
happens to the group (a read, a spend, a hold, a refund or the scheduled scan, whichever comes first)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from usercredits.domain.credits import lot_remaining
from usercredits.domain.lot_expiry import due_lots, needs_closing, plan_closing_step
from usercredits.domain.models import GroupPolicy, GroupState, LedgerKind, Lot, Movement, Reservation, ReservationStatus
from usercredits.domain.ports import CatalogRepository, CreditSnapshot, CreditsRepository, StaleWindowError
from usercredits.errors import ConflictError
from usercredits.kernel.clock import Clock
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS


def catch_up(
    user_id: str,
    snapshot: CreditSnapshot,
    *,
    groups: set[str] | None = None,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
) -> bool:
    """Bring groups up to date before anything else happens to them: holds past their expiry are released and lots
    past theirs expire (in that order). Only ``groups`` when given; True when something changed (read again)."""
    now = clock.now()
    changed = False
    for hold in snapshot.holds:
        if hold.expires_at <= now and (groups is None or hold.offer_group in groups):
            changed = release_hold(user_id, hold, credits=credits, now=now, reason="hold expired") or changed
    due = {lot.offer_group for lot in snapshot.lots if lot.expires is not None and lot.expires <= now}
    # A group remembering a soonest expiry that has passed refuses spends until it is written again (see expire_group).
    due |= {name for name, state in snapshot.groups.items() if state.next_expiry and state.next_expiry <= now}
    due = {group for group in due if groups is None or group in groups}
    for group in sorted(due):
        expire_group(user_id, group, credits=credits, clock=clock, catalog=catalog)
    return changed or bool(due)


def release_hold(
    user_id: str, hold: Reservation, *, credits: CreditsRepository, now: datetime, reason: str | None
) -> bool:
    """Give a hold's tokens back (a release, or a hold that lapsed: ``reason``); False when it was no longer held as
    read (someone else settled it first)."""
    after = hold.model_copy(update={"status": ReservationStatus.RELEASED, "updated_at": now})
    movement = Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.RELEASE,
        tokens=0,
        held=-hold.count,
        reservation_id=hold.reservation_id,
        reason=reason,
        created_at=now,
    )
    return credits.finish_hold(user_id, hold, after, movement)


@dataclass(frozen=True)
class Expired:
    """What one expiry of a group did: the tokens that left the balance and the lots it closed."""

    tokens: int = 0
    lots: int = 0


def expire_group(
    user_id: str,
    offer_group: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
    consistent: bool = True,
) -> Expired:
    """Close the group's lots whose expiry has passed; their unused tokens leave the balance with one ``expire``
    movement each (a lot fully used closes silently). Exactly once, even when called concurrently.

    The same transaction writes the expiry's events to the outbox (``expiry_events``): ``CreditsExpired`` per lot
    with tokens left, and ``CreditsLow`` when the expiry takes the balance across the group's threshold (looked up in
    ``catalog`` only when something expires), whoever expires the lots (the scan, a read, a spend, a hold).

    ``consistent=False`` plans from an eventually consistent read first (half its cost; the expiry scan): the
    closing transaction is conditional on the group's version and ``drawn`` and on each lot being open, so a stale
    read only fails it, and the retries read consistently. A stale read cannot hide a due lot: lots only close."""
    total = Expired()
    for attempt in range(OPTIMISTIC_ATTEMPTS):
        now = clock.now()
        # Only what is due (and the next lot to expire, for the group's next expiry): an expiry costs what expires.
        snapshot = credits.snapshot(user_id, offer_group, consistent=consistent or attempt > 0, due_by=now)
        state = snapshot.groups.get(offer_group)
        if state is None:
            return total
        lots = [lot for lot in snapshot.lots if lot.offer_group == offer_group]
        holds = [hold for hold in snapshot.holds if hold.offer_group == offer_group]
        policy: GroupPolicy | None = None
        while needs_closing(state, lots, now):
            if policy is None:
                policy = _closing_policy(catalog, state, lots, holds, now)
            step = plan_closing_step(user_id, state, lots, holds, policy, now)
            if step is None:  # pragma: no cover - needs_closing said there was work
                break
            try:
                credits.close_lots(
                    user_id, state, step.lots, step.next_expiry, step.movements, step.events, now, cuts=step.cuts
                )
            except StaleWindowError:
                break  # something else moved the group: read it again
            total = Expired(total.tokens + step.expired, total.lots + len(step.lots))
            if step.done:
                return total
            # More is due (a large batch closes in steps): the group as this step left it is the next step's start.
            fresh = credits.group_state(user_id, offer_group)
            if fresh is None or fresh.version != state.version + 1:
                break  # another change landed in between: read it again
            state, lots, holds = fresh, step.lots_left, step.holds_left
        else:
            return total
    raise ConflictError("the group kept changing while its lots expired; retry")


def _closing_policy(
    catalog: CatalogRepository, state: GroupState, lots: list[Lot], holds: list[Reservation], now: datetime
) -> GroupPolicy:
    """The group's policy when the expiry needs it (tokens leave, or cuts a step left are due); the default
    otherwise, which saves the catalog read when only used-up lots close."""
    remaining = lot_remaining(lots, state.drawn)
    expiring = any(remaining[lot.lot_id] > 0 for lot in due_lots(lots, state.offer_group, now))
    if expiring or holds:
        return catalog.group_policy(state.offer_group)
    return GroupPolicy(offer_group=state.offer_group)
