"""Moving tokens: spending them (one conditional write), granting them outside an order (admin, promotions), and
telling the app when a spend or a capture took a group below its threshold (``CreditsLow``, with a backstop)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from usercredits.domain.credits import journal_entries
from usercredits.domain.events import credits_granted, crossed_low, with_detail
from usercredits.domain.lapses import catch_up
from usercredits.domain.models import GroupPolicy, GroupState, LedgerEntry, LedgerKind, Lot, Movement
from usercredits.domain.ports import (
    CatalogRepository,
    CreditsRepository,
    EventPublisher,
    SpendRefusedError,
    StaleWindowError,
)
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError, NotFoundError
from usercredits.kernel.clock import Clock
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent
from usercredits.kernel.retries import CATCH_UP_ATTEMPTS, OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Consumed:
    """The result of a spend: ``{"offerGroup", "consumed", "balance", "entryId"}`` in the API."""

    offer_group: str
    consumed: int
    balance: int
    entry_id: str


def consume_credits(
    user_id: str,
    offer_group: str,
    count: int,
    *,
    idempotency_key: str | None,
    catalog: CatalogRepository,
    credits: CreditsRepository,
    clock: Clock,
    events: EventPublisher,
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
    for attempt in range(CATCH_UP_ATTEMPTS):
        try:
            state = credits.spend(user_id, offer_group, movement, floor=policy.floor, now=now, idempotency=record)
        except IdempotentReplayError as replay:
            if record is None or replay.fingerprint != record.fingerprint:
                raise ConflictError("Idempotency-Key was already used with a different request") from replay
            return _replayed(user_id, offer_group, replay.result_id, credits=credits)
        except SpendRefusedError as refused:
            if attempt < CATCH_UP_ATTEMPTS - 1 and _worth_retrying(
                refused.state, count, policy, user_id, credits=credits, clock=clock, catalog=catalog
            ):
                continue
            available = refused.state.available if refused.state else 0
            raise InsufficientCreditsError(
                f"consuming {count} tokens of {offer_group!r} is not covered: {available} available"
            ) from refused
        balance = _balance_after(user_id, offer_group, movement.entry_id, state, credits=credits)
        publish_if_crossed(
            user_id,
            policy,
            balance + count,
            balance,
            entry_id=movement.entry_id,
            events=events,
            credits=credits,
            now=now,
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
    event = credits_granted(user_id, lot, reason=reason)
    for _ in range(OPTIMISTIC_ATTEMPTS):
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
    state = credits.group_state(user_id, offer_group)  # one read: the entry with its balance after
    entry = next((e for e in journal_entries(state) if e.entry_id == movement.entry_id), None) if state else None
    return entry or _entry(user_id, offer_group, movement.entry_id, credits=credits)


def _entry(user_id: str, offer_group: str, entry_id: str, *, credits: CreditsRepository) -> LedgerEntry:
    entry = credits.find_entry(user_id, offer_group, entry_id)
    if entry is None:  # pragma: no cover - a committed movement is always in the journal or the archive
        raise NotFoundError("the grant was written but could not be read back; see the ledger")
    return entry


def publish_if_crossed(
    user_id: str,
    policy: GroupPolicy,
    before: int,
    after: int,
    *,
    entry_id: str,
    events: EventPublisher,
    credits: CreditsRepository,
    now: datetime,
) -> None:
    """Publish ``CreditsLow`` when the movement ``entry_id`` took the balance from ``before`` across the group's
    threshold to ``after``, marked first: if the publish fails (or this Lambda dies during it) the mark stays and the
    expiry scan sends it. Nothing is written when nothing crossed."""
    crossed = crossed_low(user_id, policy.offer_group, policy.low_threshold, before, after)
    if not crossed:
        return
    offer_group = policy.offer_group
    mark = None
    try:
        mark = credits.mark_low(user_id, offer_group, now, entry_id)
    except Exception:  # noqa: BLE001 - the warning still goes out; only its backstop is missing
        logger.warning("could not mark %s as owing CreditsLow", offer_group, exc_info=True)
    # The eventId is the mark's, as the scan's resend of it would carry: a consumer that got both drops one.
    event_id = f"CreditsLow#{mark}" if mark is not None else f"CreditsLow#{entry_id}"
    if _published(events, [with_detail(event, {"eventId": event_id}) for event in crossed]) and mark is not None:
        try:
            credits.clear_low(user_id, offer_group, mark)
        except Exception:  # noqa: BLE001 - left marked: the expiry scan sends it again (a duplicate at worst)
            logger.warning("could not clear the CreditsLow mark of %s", offer_group, exc_info=True)


def _published(events: EventPublisher, published: list[DomainEvent]) -> bool:
    # The movement is already committed: a failed publish is logged, never turned into a failed spend.
    try:
        events.publish(published)
    except Exception:  # noqa: BLE001 - any publishing failure
        logger.exception("could not publish %s", [event.kind for event in published])
        return False
    return True
