"""Holds (reservations): tokens set aside for work in progress, then captured (spent) or released."""

from __future__ import annotations

from datetime import timedelta

from usercredits.domain.credits import journal_entries
from usercredits.domain.lapses import catch_up, expire_group, release_hold
from usercredits.domain.models import LedgerKind, Movement, Reservation, ReservationStatus
from usercredits.domain.ports import CatalogRepository, CreditsRepository, EventPublisher, SpendRefusedError
from usercredits.domain.spending import publish_if_crossed
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError, NotFoundError
from usercredits.kernel.clock import Clock
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.retries import CATCH_UP_ATTEMPTS, OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

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
    for attempt in range(CATCH_UP_ATTEMPTS):
        try:
            credits.create_hold(user_id, reservation, movement, floor=floor, now=now, idempotency=record)
            return reservation
        except IdempotentReplayError as replay:
            if record is None or replay.fingerprint != record.fingerprint:
                raise ConflictError("Idempotency-Key was already used with a different request") from replay
            return get_reservation(user_id, replay.result_id, credits=credits)
        except SpendRefusedError as refused:
            if attempt < CATCH_UP_ATTEMPTS - 1 and _freed_something(user_id, offer_group, credits, clock, catalog):
                continue
            available = refused.state.available if refused.state else 0
            raise InsufficientCreditsError(
                f"holding {count} tokens of {offer_group!r} is not covered: {available} available"
            ) from refused
    raise ConflictError("the group kept changing; retry")  # pragma: no cover


def _freed_something(
    user_id: str, offer_group: str, credits: CreditsRepository, clock: Clock, catalog: CatalogRepository
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
    catalog: CatalogRepository,
    events: EventPublisher,
) -> Reservation:
    """Spend up to the held amount (all of it by default); the rest goes back. A repeat returns the capture."""
    for _ in range(OPTIMISTIC_ATTEMPTS):
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
            release_hold(user_id, hold, credits=credits, now=now, reason="hold expired")
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
        try:
            finished = credits.finish_hold(user_id, hold, after, movement)
        except SpendRefusedError:
            # A lot of the group is past its expiry: it expires first (which may cut this hold), then read it again.
            expire_group(user_id, hold.offer_group, credits=credits, clock=clock, catalog=catalog)
            continue
        if not finished:
            continue  # the hold moved (cut by an expiry, settled by another call): read it again
        state = credits.group_state(user_id, hold.offer_group)
        entry = next((e for e in journal_entries(state) if e.entry_id == movement.entry_id), None) if state else None
        if captured and entry is not None:
            policy = catalog.group_policy(hold.offer_group)
            before = entry.balance_after + captured
            publish_if_crossed(
                user_id,
                policy,
                before,
                entry.balance_after,
                entry_id=movement.entry_id,
                events=events,
                credits=credits,
                now=now,
            )
        return after
    raise ConflictError("the reservation kept changing; retry")


def release_reservation(user_id: str, reservation_id: str, *, credits: CreditsRepository, clock: Clock) -> Reservation:
    """Give all the held tokens back. A repeat returns the release; a captured reservation is a 409."""
    hold = get_reservation(user_id, reservation_id, credits=credits)
    if hold.status is ReservationStatus.RELEASED:
        return hold
    if hold.status is ReservationStatus.CAPTURED:
        raise ConflictError(f"reservation {reservation_id!r} is captured")
    release_hold(user_id, hold, credits=credits, now=clock.now(), reason=None)  # lost a race: the re-read tells
    return get_reservation(user_id, reservation_id, credits=credits)
