"""Consumption use cases: read credits and the ledger, spend tokens, grant tokens, close lots past their expiry."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from usercredits.domain.credits import (
    CreditGroup,
    credit_group,
    empty_group,
    journal_entries,
    lot_remaining,
)
from usercredits.domain.ids import new_ulid
from usercredits.domain.lot_expiry import due_lots, needs_closing, plan_closing_step
from usercredits.domain.models import (
    DomainEvent,
    DomainModel,
    GroupPolicy,
    GroupState,
    LedgerEntry,
    LedgerKind,
    Lot,
    Movement,
    Page,
    Reservation,
    ReservationStatus,
)
from usercredits.domain.ports import (
    CatalogRepository,
    Clock,
    CreditSnapshot,
    CreditsRepository,
    EventPublisher,
    IdempotencyRecord,
    IdempotentReplayError,
    SpendRefusedError,
    StaleWindowError,
)
from usercredits.domain.settlement import credits_granted_event
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError, NotFoundError

logger = logging.getLogger(__name__)

#: Optimistic retries when a concurrent movement changed the group a lot change was computed from.
_RETRIES = 5


@dataclass(frozen=True)
class Consumed:
    """The result of a spend (api-contract: ``{"offerGroup", "consumed", "balance", "entryId"}``)."""

    offer_group: str
    consumed: int
    balance: int
    entry_id: str


def _fresh_view(
    user_id: str,
    offer_group: str | None,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
    lots_after: str | None = None,
) -> CreditSnapshot:
    """One read of what the user's credits show; lots found past their expiry are closed first (an extra write and
    read that happens only when one is due)."""
    snapshot = credits.view(user_id, offer_group, lots_after=lots_after)
    for state in snapshot.groups.values():
        credits.compact_if_long(user_id, state)  # holds and releases do not compact; reads catch up for them
    if catch_up(user_id, snapshot, credits=credits, clock=clock, catalog=catalog):
        return credits.view(user_id, offer_group, lots_after=lots_after)
    return snapshot


def _shown(state: GroupState, snapshot: CreditSnapshot) -> CreditGroup:
    group = state.offer_group
    before, cursor = snapshot.lots_before.get(group, 0), snapshot.more_lots.get(group)
    return credit_group(state, snapshot.lots, before=before, cursor=cursor)


def catch_up(
    user_id: str,
    snapshot: CreditSnapshot,
    *,
    groups: set[str] | None = None,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None,
) -> bool:
    """Bring groups up to date before anything else happens to them: holds past their expiry are released and lots
    past theirs expire (in that order). Only ``groups`` when given; True when something changed (read again)."""
    now = clock.now()
    changed = False
    for hold in snapshot.holds:
        if hold.expires_at <= now and (groups is None or hold.offer_group in groups):
            changed = _release(user_id, hold, credits=credits, now=now, reason="hold expired") or changed
    due = {lot.offer_group for lot in snapshot.lots if lot.expires is not None and lot.expires <= now}
    # A group remembering a soonest expiry that has passed refuses spends until it is written again (see expire_group).
    due |= {name for name, state in snapshot.groups.items() if state.next_expiry and state.next_expiry <= now}
    due = {group for group in due if groups is None or group in groups}
    for group in sorted(due):
        expire_due_lots(user_id, group, credits=credits, clock=clock, catalog=catalog)
    return changed or bool(due)


def list_credits(
    user_id: str, *, credits: CreditsRepository, clock: Clock, catalog: CatalogRepository | None = None
) -> list[CreditGroup]:
    """Every group of the user with balance, held, available, window and lots (``catalog``: the thresholds of a
    ``CreditsLow`` that closing an expired lot may owe)."""
    snapshot = _fresh_view(user_id, None, credits=credits, clock=clock, catalog=catalog)
    return [_shown(state, snapshot) for _, state in sorted(snapshot.groups.items())]


def get_credit_group(
    user_id: str,
    offer_group: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
    lots_after: str | None = None,
) -> CreditGroup:
    """One group with its first open lots, or those after ``lots_after`` (a ``lotsCursor`` it gave); a group never
    bought has balance 0."""
    snapshot = _fresh_view(user_id, offer_group, credits=credits, clock=clock, catalog=catalog, lots_after=lots_after)
    state = snapshot.groups.get(offer_group)
    return _shown(state, snapshot) if state else empty_group(offer_group)


def low_balance_events(user_id: str, policy: GroupPolicy, balance_before: int, balance_after: int) -> list[DomainEvent]:
    """``CreditsLow`` when a movement takes the balance from above the group's threshold to or below it: once per
    crossing, not on every later spend (the balance before was already at or below it then)."""
    threshold = policy.low_threshold
    if threshold is None or not balance_before > threshold >= balance_after:
        return []
    detail: dict[str, object] = {
        "userId": user_id,
        "offerGroup": policy.offer_group,
        "balance": balance_after,
        "threshold": threshold,
    }
    return [DomainEvent("CreditsLow", detail)]


def _publish(events: EventPublisher, published: list[DomainEvent]) -> bool:
    # The movement is already committed: a failed publish is logged, never turned into a failed spend.
    if not published:
        return True
    try:
        events.publish(published)
    except Exception:  # noqa: BLE001 - any publishing failure
        logger.exception("could not publish %s", [event.kind for event in published])
        return False
    return True


def _publish_low(
    user_id: str,
    offer_group: str,
    crossed: list[DomainEvent],
    *,
    entry_id: str,
    events: EventPublisher,
    credits: CreditsRepository,
    now: datetime,
) -> None:
    """Publish a ``CreditsLow`` crossing, marked first: if the publish fails (or this Lambda dies during it) the
    mark stays and the expiry scan sends it. Nothing is written when nothing crossed."""
    if not crossed:
        return
    mark = None
    try:
        mark = credits.mark_low(user_id, offer_group, now, entry_id)
    except Exception:  # noqa: BLE001 - the warning still goes out; only its backstop is missing
        logger.warning("could not mark %s as owing CreditsLow", offer_group, exc_info=True)
    # The eventId is the mark's, as the scan's resend of it would carry: a consumer that got both drops one.
    event_id = f"CreditsLow#{mark}" if mark is not None else f"CreditsLow#{entry_id}"
    published = [DomainEvent(event.kind, {**event.detail, "eventId": event_id}) for event in crossed]
    if _publish(events, published) and mark is not None:
        try:
            credits.clear_low(user_id, offer_group, mark)
        except Exception:  # noqa: BLE001 - left marked: the expiry scan sends it again (a duplicate at worst)
            logger.warning("could not clear the CreditsLow mark of %s", offer_group, exc_info=True)


def consume_credits(
    user_id: str,
    offer_group: str,
    count: int,
    *,
    idempotency_key: str | None,
    catalog: CatalogRepository,
    credits: CreditsRepository,
    clock: Clock,
    events: EventPublisher | None = None,
) -> Consumed:
    """Spend ``count`` tokens of a group, in one conditional write.

    Refused with ``InsufficientCreditsError`` (nothing changes) when the available balance, with the group's
    overdraft allowance, does not cover it; a group never bought follows the same policy. Tokens burn from the lot
    that expires soonest. With an ``idempotency_key`` a retry returns the first result and spends nothing.
    """
    if count < 1:
        raise InvalidRequestError("count must be a positive integer")
    now = clock.now()
    policy = catalog.group_policy(offer_group)
    movement = Movement(
        entry_id=new_ulid(now), kind=LedgerKind.CONSUME, tokens=-count, idempotency_key=idempotency_key, created_at=now
    )
    record = None
    if idempotency_key is not None:
        request: dict[str, object] = {"offerGroup": offer_group, "count": count}
        record = IdempotencyRecord.of("consume", idempotency_key, request, movement.entry_id)
    for attempt in range(3):
        try:
            state = credits.spend(user_id, offer_group, movement, floor=policy.floor, now=now, idempotency=record)
        except IdempotentReplayError as replay:
            if record is None or replay.fingerprint != record.fingerprint:
                raise ConflictError("Idempotency-Key was already used with a different request") from replay
            return _replayed(user_id, offer_group, replay.result_id, credits=credits)
        except SpendRefusedError as refused:
            if attempt < 2 and _worth_retrying(
                refused.state, count, policy, user_id, credits=credits, clock=clock, catalog=catalog
            ):
                continue
            available = refused.state.available if refused.state else 0
            raise InsufficientCreditsError(
                f"consuming {count} tokens of {offer_group!r} is not covered: {available} available"
            ) from refused
        balance = _balance_after(user_id, offer_group, movement.entry_id, state, credits=credits)
        if events is not None:
            crossed = low_balance_events(user_id, policy, balance + count, balance)
            _publish_low(
                user_id, offer_group, crossed, entry_id=movement.entry_id, events=events, credits=credits, now=now
            )
        return Consumed(offer_group, count, balance, movement.entry_id)
    raise ConflictError("the group kept changing; retry")  # pragma: no cover - bounded by the loop above


def _worth_retrying(
    state: GroupState | None,
    count: int,
    policy: GroupPolicy,
    user_id: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
) -> bool:
    """After a refused spend: close the group's lots that are past their expiry (what refused it), or notice that
    the group read back covers the spend after all (another caller closed them meanwhile)."""
    if state is None:
        return False
    if (state.next_expiry is not None and state.next_expiry <= clock.now()) or state.held > 0:
        # Lots past their expiry refuse spends until they close; holds past theirs still count in ``held``.
        snapshot = credits.snapshot(user_id, state.offer_group)
        if catch_up(user_id, snapshot, credits=credits, clock=clock, catalog=catalog):
            return True
    return policy.floor is None or state.available - count >= policy.floor


def _balance_after(
    user_id: str, offer_group: str, entry_id: str, state: GroupState, *, credits: CreditsRepository
) -> int:
    """The balance right after a movement just written: from the journal read back with it, or (if a compaction
    archived it before that read) from the ledger."""
    entry = next((entry for entry in journal_entries(state) if entry.entry_id == entry_id), None)
    entry = entry or credits.find_entry(user_id, offer_group, entry_id)
    if entry is None:  # pragma: no cover - a committed movement is always in one of the two
        raise ConflictError("the movement was written but could not be read back; see the ledger")
    return entry.balance_after


def _replayed(user_id: str, offer_group: str, entry_id: str, *, credits: CreditsRepository) -> Consumed:
    """The first result of a repeated idempotent spend, found in the group's history."""
    entry = credits.find_entry(user_id, offer_group, entry_id)
    if entry is None:
        raise ConflictError("Idempotency-Key was already used for another group")
    return Consumed(offer_group, -entry.tokens, entry.balance_after, entry.entry_id)


def list_ledger(
    user_id: str, *, offer_group: str | None, limit: int, cursor: str | None, credits: CreditsRepository
) -> Page[LedgerEntry]:
    """The user's movements, newest first, each with its signed tokens and the group's balance right after it."""
    return credits.ledger_page(user_id, offer_group=offer_group, limit=limit, cursor=cursor)


def usage_totals(
    user_id: str,
    *,
    start: datetime,
    end: datetime,
    spent_only: bool,
    credits: CreditsRepository,
) -> dict[str, int]:
    """Sum of the user's movements per group with ``start <= createdAt < end`` (only spends, the negative ones, with
    ``spent_only``): the seed's checkTokens / consumptionInDateRange, per user instead of across all users."""
    totals: dict[str, int] = {}
    cursor: str | None = None
    while True:
        page = credits.ledger_page(user_id, offer_group=None, limit=200, cursor=cursor)
        for entry in page.items:
            if start <= entry.created_at < end and (entry.tokens < 0 or not spent_only):
                totals[entry.offer_group] = totals.get(entry.offer_group, 0) + entry.tokens
        cursor = page.next_cursor
        if cursor is None or (page.items and page.items[-1].created_at < start):
            return totals


def grant_credits(
    user_id: str,
    offer_group: str,
    tokens: int,
    *,
    expires: datetime | None,
    reason: str,
    idempotency_key: str | None = None,
    credits: CreditsRepository,
    clock: Clock,
) -> LedgerEntry:
    """A manual or promotional grant (admin): a lot of ``tokens`` in the group, with an optional expiry, and its
    ``CreditsGranted`` event, in one transaction. With an ``idempotency_key`` a retry returns the first grant's entry
    and grants nothing; the key with another request is a 409."""
    now = clock.now()
    if tokens < 1:
        raise InvalidRequestError("tokens must be a positive integer")
    if expires is not None and expires <= now:
        raise InvalidRequestError("expires must be in the future")
    lot_id = new_ulid(now)
    lot = Lot(lot_id=lot_id, offer_group=offer_group, tokens=tokens, starts=now, expires=expires, granted_at=now)
    movement = Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.GRANT,
        tokens=tokens,
        lot_id=lot_id,
        idempotency_key=idempotency_key,
        reason=reason,
        created_at=now,
    )
    record = None
    if idempotency_key is not None:
        request: dict[str, object] = {"offerGroup": offer_group, "tokens": tokens, "expires": expires, "reason": reason}
        record = IdempotencyRecord.of("grant", idempotency_key, request, f"{offer_group}:{movement.entry_id}")
    event = credits_granted_event(user_id, lot, reason=reason)
    for _ in range(_RETRIES):
        try:
            before = credits.group_state(user_id, offer_group)
            credits.add_lot(user_id, lot, movement, before, now, events=[event], idempotency=record)
            break
        except StaleWindowError:
            continue
        except IdempotentReplayError as replay:
            if record is None or replay.fingerprint != record.fingerprint:
                raise ConflictError("Idempotency-Key was already used with a different request") from replay
            group, _, entry_id = replay.result_id.partition(":")
            return _entry(user_id, group, entry_id, credits=credits)
    else:
        raise ConflictError("the group kept changing; retry")
    state = credits.group_state(user_id, offer_group)  # one read: the entry's balance after, and the compaction
    if state is not None:
        credits.compact_if_long(user_id, state)
        entry = next((e for e in journal_entries(state) if e.entry_id == movement.entry_id), None)
        if entry is not None:
            return entry
    return _entry(user_id, offer_group, movement.entry_id, credits=credits)


def _entry(user_id: str, offer_group: str, entry_id: str, *, credits: CreditsRepository) -> LedgerEntry:
    entry = credits.find_entry(user_id, offer_group, entry_id)
    if entry is None:  # pragma: no cover - a committed movement is always in the journal or the archive
        raise NotFoundError("the grant was written but could not be read back; see the ledger")
    return entry


@dataclass(frozen=True)
class Expired:
    """What one expiry of a group did: the tokens that left the balance and the lots it closed."""

    tokens: int = 0
    lots: int = 0


def expire_due_lots(
    user_id: str,
    offer_group: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
) -> int:
    """``expire_group`` with a consistent read; returns the tokens expired."""
    return expire_group(user_id, offer_group, credits=credits, clock=clock, catalog=catalog).tokens


def expire_group(
    user_id: str,
    offer_group: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
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
    for attempt in range(_RETRIES):
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
            # More is due (a large batch closes in steps): the group as this step left it, compacted if its
            # journal grew long, is the next step's starting point.
            fresh = credits.group_state(user_id, offer_group)
            if fresh is None or fresh.version != state.version + 1:
                break  # another change landed in between: read it again
            credits.compact_if_long(user_id, fresh)
            state, lots, holds = fresh, step.lots_left, step.holds_left
        else:
            return total
    raise ConflictError("the group kept changing while its lots expired; retry")


def _closing_policy(
    catalog: CatalogRepository | None,
    state: GroupState,
    lots: list[Lot],
    holds: list[Reservation],
    now: datetime,
) -> GroupPolicy:
    """The group's policy when the expiry needs it (tokens leave, or cuts a step left are due); the default
    otherwise, which saves the catalog read when only used-up lots close."""
    remaining = lot_remaining(lots, state.drawn)
    expiring = any(remaining[lot.lot_id] > 0 for lot in due_lots(lots, state.offer_group, now))
    if expiring or holds:
        return _policy(catalog, state.offer_group)
    return GroupPolicy(offer_group=state.offer_group)


def _policy(catalog: CatalogRepository | None, offer_group: str) -> GroupPolicy:
    return catalog.group_policy(offer_group) if catalog is not None else GroupPolicy(offer_group=offer_group)


# --- holds ---------------------------------------------------------------------------------------------------------

#: How long a hold lasts when the request does not say, and the longest allowed.
DEFAULT_HOLD_SECONDS = 300
MAX_HOLD_SECONDS = 7 * 86400


def create_reservation(
    user_id: str,
    offer_group: str,
    count: int,
    *,
    expires_in_seconds: int | None,
    idempotency_key: str | None,
    catalog: CatalogRepository,
    credits: CreditsRepository,
    clock: Clock,
) -> Reservation:
    """Hold ``count`` tokens for work in progress: they leave ``available`` (not the balance) until captured,
    released, or the hold expires. Concurrent holds never set aside more than the policy allows."""
    now = clock.now()
    seconds = expires_in_seconds or DEFAULT_HOLD_SECONDS
    reservation = Reservation(
        reservation_id=new_ulid(now),
        offer_group=offer_group,
        count=count,
        status=ReservationStatus.HELD,
        expires_at=now + timedelta(seconds=seconds),
        created_at=now,
        updated_at=now,
    )
    movement = Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.HOLD,
        tokens=0,
        held=count,
        reservation_id=reservation.reservation_id,
        idempotency_key=idempotency_key,
        created_at=now,
    )
    record = None
    if idempotency_key is not None:
        request: dict[str, object] = {"offerGroup": offer_group, "count": count, "seconds": seconds}
        record = IdempotencyRecord.of("reservation", idempotency_key, request, reservation.reservation_id)
    floor = catalog.group_policy(offer_group).floor
    for attempt in range(3):
        try:
            credits.create_hold(user_id, reservation, movement, floor=floor, now=now, idempotency=record)
            return reservation
        except IdempotentReplayError as replay:
            if record is None or replay.fingerprint != record.fingerprint:
                raise ConflictError("Idempotency-Key was already used with a different request") from replay
            return get_reservation(user_id, replay.result_id, credits=credits)
        except SpendRefusedError as refused:
            if attempt < 2 and _freed_something(user_id, offer_group, credits=credits, clock=clock, catalog=catalog):
                continue
            available = refused.state.available if refused.state else 0
            raise InsufficientCreditsError(
                f"holding {count} tokens of {offer_group!r} is not covered: {available} available"
            ) from refused
    raise ConflictError("the group kept changing; retry")  # pragma: no cover


def _freed_something(
    user_id: str, offer_group: str, *, credits: CreditsRepository, clock: Clock, catalog: CatalogRepository
) -> bool:
    """Close due lots and release lapsed holds of a group; True if anything changed (worth retrying a refusal)."""
    snapshot = credits.snapshot(user_id, offer_group)
    return catch_up(user_id, snapshot, credits=credits, clock=clock, catalog=catalog)


def get_reservation(user_id: str, reservation_id: str, *, credits: CreditsRepository) -> Reservation:
    """One of the user's reservations (another user's id is 404)."""
    hold = credits.get_hold(user_id, reservation_id)
    if hold is None:
        raise NotFoundError(f"reservation {reservation_id!r} not found")
    return hold


def capture_reservation(
    user_id: str,
    reservation_id: str,
    count: int | None,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
    events: EventPublisher | None = None,
) -> Reservation:
    """Spend up to the held amount (all of it by default); the rest goes back. A repeat returns the capture."""
    hold = get_reservation(user_id, reservation_id, credits=credits)
    captured = hold.count if count is None else count
    if hold.status is ReservationStatus.CAPTURED and captured == hold.captured:
        return hold
    if hold.status is not ReservationStatus.HELD:
        raise ConflictError(f"reservation {reservation_id!r} is {hold.status.value}")
    if captured > hold.count:
        raise InvalidRequestError(f"count {captured} is more than the {hold.count} tokens held")
    now = clock.now()
    if hold.expires_at <= now:
        _release(user_id, hold, credits=credits, now=now, reason="hold expired")
        raise ConflictError(f"reservation {reservation_id!r} expired; its tokens were returned")
    after = hold.model_copy(update={"status": ReservationStatus.CAPTURED, "captured": captured, "updated_at": now})
    movement = Movement(
        entry_id=new_ulid(now),
        kind=LedgerKind.CAPTURE,
        tokens=-captured,
        held=-hold.count,
        reservation_id=reservation_id,
        created_at=now,
    )
    again = {"credits": credits, "clock": clock, "catalog": catalog, "events": events}
    try:
        finished = credits.finish_hold(user_id, hold, after, movement)
    except SpendRefusedError:
        # A lot of the group is past its expiry: it expires first (which may cut this hold), then read it again.
        expire_due_lots(user_id, hold.offer_group, credits=credits, clock=clock, catalog=catalog)
        return capture_reservation(user_id, reservation_id, count, **again)  # type: ignore[arg-type]
    if not finished:
        return capture_reservation(user_id, reservation_id, count, **again)  # type: ignore[arg-type]  # it moved
    state = credits.group_state(user_id, hold.offer_group)
    if state is not None:
        credits.compact_if_long(user_id, state)
    if events is not None and catalog is not None and captured and state is not None:
        entry = next((e for e in journal_entries(state) if e.entry_id == movement.entry_id), None)
        if entry is not None:
            policy = catalog.group_policy(hold.offer_group)
            crossed = low_balance_events(user_id, policy, entry.balance_after + captured, entry.balance_after)
            _publish_low(
                user_id,
                hold.offer_group,
                crossed,
                entry_id=movement.entry_id,
                events=events,
                credits=credits,
                now=now,
            )
    return after


def release_reservation(user_id: str, reservation_id: str, *, credits: CreditsRepository, clock: Clock) -> Reservation:
    """Give all the held tokens back. A repeat returns the release; a captured reservation is a 409."""
    hold = get_reservation(user_id, reservation_id, credits=credits)
    if hold.status is ReservationStatus.RELEASED:
        return hold
    if hold.status is ReservationStatus.CAPTURED:
        raise ConflictError(f"reservation {reservation_id!r} is captured")
    _release(user_id, hold, credits=credits, now=clock.now(), reason=None)  # lost a race: the re-read tells
    return get_reservation(user_id, reservation_id, credits=credits)


def _release(user_id: str, hold: Reservation, *, credits: CreditsRepository, now: datetime, reason: str | None) -> bool:
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


# --- the seed's per-user expiry check ------------------------------------------------------------------------------


class Warning(DomainModel):  # noqa: A001 - the contract's name
    """api-contract ``Warning``: a group expiring soon, or at or below its minimum."""

    offer_group: str
    kind: Literal["expiring", "low"]
    balance: int
    expires: datetime | None = None
    min: int | None = None


@dataclass(frozen=True)
class ExpiryReport:
    expired: list[CreditGroup]
    warnings: list[Warning]


def check_expiry(
    user_id: str,
    *,
    warn_before_seconds: int,
    low: dict[str, int],
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository | None = None,
) -> ExpiryReport:
    """The seed's checkForExpiredOrders for one user, done right (seeds-spec 2.9, 7.1-8).

    Lots past their expiry lose exactly their unused tokens (one ``expire`` movement each, once, even when called
    twice or concurrently) and their orders move to ``expired``; ``expired`` lists the groups in which lots expired
    (whoever closed them: this call, a read, a spend or the scheduled scan) and nothing valid is left: no open lot
    and no paid window still running (the seed listed the groups whose window had ended). Warnings: ``expiring``
    for a group whose soonest open lot with tokens left expires within ``warn_before_seconds``; ``low`` for each
    group of ``low`` whose balance is at or below its minimum (zero and groups never bought included).
    """
    now = clock.now()
    before = credits.snapshot(user_id)
    due = sorted({lot.offer_group for lot in before.lots if lot.expires is not None and lot.expires <= now})
    for offer_group in due:
        expire_due_lots(user_id, offer_group, credits=credits, clock=clock, catalog=catalog)
    snapshot = credits.snapshot(user_id) if due else before
    views = {group: credit_group(state, snapshot.lots) for group, state in snapshot.groups.items()}
    warnings: list[Warning] = []
    horizon = now + timedelta(seconds=warn_before_seconds)
    for group, view in sorted(views.items()):
        soonest = min((lot.expires for lot in view.lots if lot.remaining > 0 and lot.expires), default=None)
        if soonest is not None and soonest <= horizon:
            warnings.append(Warning(offer_group=group, kind="expiring", balance=view.balance, expires=soonest))
    for group, minimum in sorted(low.items()):
        balance = views[group].balance if group in views else 0
        if balance <= minimum:
            warnings.append(Warning(offer_group=group, kind="low", balance=balance, min=minimum))
    expired = [
        views[group]
        for group, state in sorted(snapshot.groups.items())
        if state.expired_lots > 0 and not state.active_at(now) and not views[group].lots
    ]
    return ExpiryReport(expired=expired, warnings=warnings)
