"""DynamoDB credits repository: balances, lots and the ledger of the users, in the credits table.

A spend is one UpdateItem of the group item (ReturnValues ALL_NEW: the new balance and the journal with the spend at
its end); with an Idempotency-Key it is one TransactWriteItems that also records the key. Journal compaction and the
closing of lots past their expiry are conditional transactions of their own.

Longer than the ~400 lines the codebase aims at, on purpose: it is one concept, the ``CreditsRepository`` port's
fourteen operations, each a handful of DynamoDB actions whose conditions must be read together. How a read walks the
range lives in ``credit_reads.py``; the writes it shares with reversals in ``credit_writes.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, UpdateError
from pynamodb.expressions.condition import Condition

from usercredits.adapters.dynamodb.credit_reads import (
    add_group_holds,
    group_states,
    read_group,
    read_lots_after,
    read_range,
)
from usercredits.adapters.dynamodb.credit_writes import add_hold_cuts, move_closed_lot
from usercredits.adapters.dynamodb.credits_table import (
    CreditGroupItem,
    CreditsItem,
    HoldItem,
    LedgerItem,
    LotItem,
    OrderItem,
    SettledHoldItem,
)
from usercredits.adapters.dynamodb.cursors import decode_cursor, encode_cursor
from usercredits.adapters.dynamodb.errors import condition_failed, translate_errors
from usercredits.adapters.dynamodb.keys import (
    CREDITS_END,
    CREDITS_FIRST,
    LEDGER_PREFIX,
    closed_lot_sk,
    group_range_end,
    group_sk,
    hold_sk,
    ledger_sk,
    lots_due_by,
    lots_with_expiry_end,
    order_sk,
    settled_hold_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.mappers import (
    attribute_to_movement,
    index_by_expiry,
    item_to_group_state,
    item_to_lot,
    item_to_reservation,
    ledger_item,
    lot_to_item,
    movement_to_attribute,
    reservation_to_item,
    settled_hold_item,
)
from usercredits.adapters.dynamodb.transactions import (
    ConditionFailedError,
    IdempotentTransaction,
    add_outbox,
    equals_stored,
    set_or_remove,
)
from usercredits.domain.credits import HoldCut, journal_entries, to_entry
from usercredits.domain.models import (
    GroupState,
    LedgerEntry,
    LedgerKind,
    Lot,
    Movement,
    OrderStatus,
    Reservation,
    ReservationStatus,
)
from usercredits.domain.ports import CreditSnapshot, SpendRefusedError, StaleWindowError
from usercredits.kernel.models import DomainEvent, Page
from usercredits.kernel.writes import IdempotencyRecord

logger = logging.getLogger(__name__)

#: Compaction moves the oldest journal movements to ledger items once the journal is longer than this...
JOURNAL_MAX = 60
#: ...and keeps this many in the group item...
JOURNAL_KEEP = 20
#: ...moving at most this many per transaction (TransactWriteItems takes 100 actions).
MAX_MOVED = 99
#: Lots a read shows per group: the first in burn order; the others are pages behind the group's ``lotsCursor``.
LOTS_SHOWN = 20


def _spend_condition(count: int, floor: int | None, now: datetime) -> Condition:
    # DynamoDB conditions cannot do arithmetic, hence the stored `available` (balance - held).
    not_due: Condition = CreditGroupItem.next_expiry.does_not_exist() | (CreditGroupItem.next_expiry > now)
    if floor is None:
        return not_due
    covered: Condition = CreditGroupItem.available >= floor + count
    if floor + count <= 0:  # a group never bought may still be spent from, down to its overdraft limit
        covered = covered | CreditGroupItem.available.does_not_exist()
    combined: Condition = covered & not_due
    return combined


def _movement_actions(user_id: str, offer_group: str, movement: Movement, now: datetime) -> list[Any]:
    """Append ``movement`` to the group's journal and apply it to balance and held (creating the group if needed)."""
    return [
        CreditGroupItem.item_type.set(CreditGroupItem),
        CreditGroupItem.user_id.set(user_id),
        CreditGroupItem.offer_group.set(offer_group),
        CreditGroupItem.balance.add(movement.tokens),
        CreditGroupItem.held.add(movement.held),
        CreditGroupItem.available.add(movement.tokens - movement.held),
        CreditGroupItem.journal.set((CreditGroupItem.journal | []).append([movement_to_attribute(movement)])),
        CreditGroupItem.journal_first_seq.set(CreditGroupItem.journal_first_seq | 1),
        CreditGroupItem.updated_at.set(now),
    ]


class DynamoCreditsRepository:
    """Balances, lots and ledger of the users (items under ``USER#<userId>``)."""

    @translate_errors
    def snapshot(
        self,
        user_id: str,
        offer_group: str | None = None,
        *,
        consistent: bool = True,
        closed_ids: Collection[str] = (),
        due_by: datetime | None = None,
    ) -> CreditSnapshot:
        """Every group, open lot and open hold of a user (strongly consistent unless ``consistent=False``), for the
        writes that plan against all of them. With ``offer_group``: one Query of that group's range (its item and its
        open lots) and, only when it holds something, one of the open holds; with ``due_by`` too, only the lots that
        expire by then (a prefix of the burn order, as the keys are) and the first one after them that expires (one
        more Query of one item), for an expiry to cost what is due. ``closed_ids``: those lots closed too (by key, the
        ones not found open). Closed lots and settled holds live outside the ranges read: the cost is O(open lots and
        holds)."""
        snapshot = CreditSnapshot()
        if offer_group is None:
            read_range(user_id, snapshot, CREDITS_FIRST, CREDITS_END, consistent=consistent)
        elif due_by is None:
            read_range(user_id, snapshot, group_sk(offer_group), group_range_end(offer_group), consistent)
            add_group_holds(user_id, snapshot, offer_group, consistent)
        else:
            due_end = lots_due_by(offer_group, due_by)
            read_range(user_id, snapshot, group_sk(offer_group), due_end, consistent)
            next_expiring = LotItem.query(
                user_pk(user_id),
                LotItem.sk.between(due_end, lots_with_expiry_end(offer_group)),
                consistent_read=consistent,
                limit=1,
                page_size=1,
            )
            snapshot.lots.extend(item_to_lot(item) for item in next_expiring)
            add_group_holds(user_id, snapshot, offer_group, consistent)
        # Only the ones not open: a refund of lots still open (the usual case) reads nothing more.
        closed = set(closed_ids) - {lot.lot_id for lot in snapshot.lots}
        if closed:
            keys = [(user_pk(user_id), closed_lot_sk(lot_id)) for lot_id in sorted(closed)]
            for item in LotItem.batch_get(keys, consistent_read=True):
                snapshot.closed_lots.append(item_to_lot(item))
        return snapshot

    @translate_errors
    def view(self, user_id: str, offer_group: str | None = None, *, lots_after: str | None = None) -> CreditSnapshot:
        """What a read shows, costing what it shows: the groups (all, or ``offer_group``) with the first ``LOTS_SHOWN``
        open lots of each in burn order (``lots_before``: 0) and a cursor to the next ones (``more_lots``), and the
        open holds (for lapsed ones to be released). All groups: one Query while the user's groups, lots shown and
        open holds fit ``VIEW_PAGE`` items; past a group's shown lots the read jumps to the next group (one more
        request per group that has more). One group: one Query (+1 for its holds when it holds something); with
        ``lots_after`` (a cursor it gave) the lots after it: the group by key and one Query of the page."""
        shown = LOTS_SHOWN
        snapshot = CreditSnapshot()
        if offer_group is None:
            read_range(user_id, snapshot, CREDITS_FIRST, CREDITS_END, consistent=True, shown=shown)
        else:
            if lots_after is None:
                lower, upper = group_sk(offer_group), group_range_end(offer_group)
                read_range(user_id, snapshot, lower, upper, consistent=True, shown=shown, page_size=shown + 2)
            else:
                read_lots_after(user_id, snapshot, offer_group, lots_after, shown)
            add_group_holds(user_id, snapshot, offer_group, consistent=True)
        for state in snapshot.groups.values():
            self.compact_if_long(user_id, state)  # holds and releases do not compact; reads catch up for them
        return snapshot

    @translate_errors
    def get_hold(self, user_id: str, reservation_id: str) -> Reservation | None:
        """The hold wherever it is: open (one consistent GetItem, the usual case: a capture or release follows), else
        settled (a second GetItem, only for a settled hold, e.g. a repeated capture or release).

        Two GetItems in that order, not one BatchGetItem of both keys (a decision, measured): a GetItem is
        serializable with the settling transaction (which deletes the open item and puts the settled one), so "no
        open item" means the settled one is already readable, whereas a BatchGetItem is only read-committed as a whole
        and could miss both mid-transaction (a spurious 404, or a retry loop to rule it out). On DynamoDB Local an
        open hold is 1 request and 1 read unit either way; a settled one is 2 GetItems and 2 read units against 1
        BatchGetItem and 1 read unit (~7 ms less there): the price only a repeat of a settled hold pays."""
        pk = user_pk(user_id)
        try:
            return item_to_reservation(HoldItem.get(pk, hold_sk(reservation_id), consistent_read=True))
        except DoesNotExist:
            pass
        try:
            return item_to_reservation(SettledHoldItem.get(pk, settled_hold_sk(reservation_id), consistent_read=True))
        except DoesNotExist:
            return None

    @translate_errors
    def create_hold(
        self,
        user_id: str,
        reservation: Reservation,
        movement: Movement,
        *,
        floor: int | None,
        now: datetime,
        idempotency: IdempotencyRecord | None,
    ) -> None:
        key = CreditGroupItem(pk=user_pk(user_id), sk=group_sk(reservation.offer_group))
        try:
            with IdempotentTransaction(user_id, idempotency) as transaction:
                transaction.save(reservation_to_item(user_id, reservation), condition=HoldItem.pk.does_not_exist())
                transaction.update(
                    key,
                    actions=_movement_actions(user_id, reservation.offer_group, movement, now),
                    condition=_spend_condition(reservation.count, floor, now),
                )
        except ConditionFailedError as failed:
            raise SpendRefusedError(read_group(user_id, reservation.offer_group)) from failed

    @translate_errors
    def finish_hold(self, user_id: str, before: Reservation, after: Reservation, movement: Movement) -> bool:
        """Settle the hold in one transaction: delete the open item (conditional on it still being held with the
        count read, and for a capture on it not being expired), put its settled copy at ``HOLD#<id>`` (out of the
        credits Query and the ``ByExpiry`` index, with a TTL) and move the group. False when the hold's condition
        failed; ``SpendRefusedError`` when a capture found a lot of the group past its expiry (it draws from the
        lots: they must close first, and their expiry may cut this hold)."""
        now = after.updated_at
        condition = (HoldItem.status == ReservationStatus.HELD.value) & (HoldItem.held_count == before.count)
        group_condition = None
        if after.status is ReservationStatus.CAPTURED:  # an expired hold can only be released
            condition = condition & (HoldItem.hold_expires_at > now)
            group_condition = CreditGroupItem.next_expiry.does_not_exist() | (CreditGroupItem.next_expiry > now)
        group_actions = _movement_actions(user_id, before.offer_group, movement, now)
        if after.captured:
            group_actions.append(CreditGroupItem.drawn.add(after.captured))
        try:
            with IdempotentTransaction(user_id, None) as transaction:
                transaction.delete(
                    HoldItem(pk=user_pk(user_id), sk=hold_sk(before.reservation_id)), condition=condition
                )
                # Unconditional: the delete's condition already lets one settlement through; this copy is its record.
                transaction.save(settled_hold_item(user_id, after))
                transaction.update(
                    CreditGroupItem(pk=user_pk(user_id), sk=group_sk(before.offer_group)),
                    actions=group_actions,
                    condition=group_condition,
                )
        except ConditionFailedError as failed:
            if hold_sk(before.reservation_id) not in failed.sort_keys:  # only the group's: a lot past its expiry
                raise SpendRefusedError(read_group(user_id, before.offer_group)) from failed
            return False
        return True

    @translate_errors
    def group_state(self, user_id: str, offer_group: str) -> GroupState | None:
        """The group as it is now (one consistent GetItem); a long journal is compacted on the way (the use cases
        read the group after the writes that grow it)."""
        state = read_group(user_id, offer_group)
        if state is not None:
            self.compact_if_long(user_id, state)
        return state

    @translate_errors
    def spend(
        self,
        user_id: str,
        offer_group: str,
        movement: Movement,
        *,
        floor: int | None,
        now: datetime,
        idempotency: IdempotencyRecord | None,
    ) -> GroupState:
        """Apply a spend (``movement.tokens`` < 0) if the group's available balance and policy cover it.

        Without an idempotency key: one UpdateItem, returning the group as it is right after. With one: one
        TransactWriteItems that also records the key (``IdempotentReplayError`` if it exists), then a read.
        Raises ``SpendRefusedError`` when the condition fails (not covered, or a lot is past its expiry).
        """
        count = -movement.tokens
        key = CreditGroupItem(pk=user_pk(user_id), sk=group_sk(offer_group))
        actions = [*_movement_actions(user_id, offer_group, movement, now), CreditGroupItem.drawn.add(count)]
        condition = _spend_condition(count, floor, now)
        if idempotency is None:
            try:
                key.update(actions=actions, condition=condition)
            except UpdateError as exc:
                if condition_failed(exc):
                    raise SpendRefusedError(read_group(user_id, offer_group)) from exc
                raise
            state = item_to_group_state(key)
        else:
            try:
                with IdempotentTransaction(user_id, idempotency) as transaction:
                    transaction.update(key, actions=actions, condition=condition)
            except ConditionFailedError as failed:
                raise SpendRefusedError(read_group(user_id, offer_group)) from failed
            state = read_group(user_id, offer_group) or GroupState(offer_group=offer_group)
        self.compact_if_long(user_id, state)
        return state

    def compact_if_long(self, user_id: str, state: GroupState) -> None:
        """Best-effort compaction once the journal is long (after a spend, and on the reads of a group that follow
        the other writes): the movement that made it long is already committed, so a failure here is logged and left
        for the next writer, never reported as a failed movement. An adapter concern: the domain never asks."""
        if len(state.journal) <= JOURNAL_MAX:
            return
        try:
            self.compact(user_id, state)
        except Exception:  # noqa: BLE001 - any failure: the next writer compacts
            logger.warning("journal compaction failed; the next movement retries it", exc_info=True)

    @translate_errors
    def find_entry(self, user_id: str, offer_group: str, entry_id: str) -> LedgerEntry | None:
        """One movement: in the group's journal, or archived (compaction may have moved it; read in that order,
        so it is found either way)."""
        state = read_group(user_id, offer_group)
        entry = next((e for e in journal_entries(state) if e.entry_id == entry_id), None) if state else None
        if entry is not None:
            return entry
        try:
            item = LedgerItem.get(user_pk(user_id), ledger_sk(entry_id), consistent_read=True)
        except DoesNotExist:
            return None
        return to_entry(attribute_to_movement(item.movement), item.offer_group, int(item.seq), int(item.balance_after))

    @translate_errors
    def compact(self, user_id: str, state: GroupState) -> bool:
        """Move the journal's oldest movements to ledger items (exact sequence and balance after) in one
        transaction, conditional on the journal not having been compacted meanwhile. False if it had been."""
        # One transaction holds at most 100 actions: the group update plus up to 99 ledger items.
        moved = journal_entries(state)[: min(len(state.journal) - JOURNAL_KEEP, MAX_MOVED)]
        if not moved:
            return False
        key = CreditGroupItem(pk=user_pk(user_id), sk=group_sk(state.offer_group))
        try:
            with IdempotentTransaction(user_id, None) as transaction:
                transaction.update(
                    key,
                    actions=[
                        *(CreditGroupItem.journal[index].remove() for index in range(len(moved))),
                        CreditGroupItem.journal_first_seq.set(state.journal_first_seq + len(moved)),
                    ],
                    condition=CreditGroupItem.journal_first_seq == state.journal_first_seq,
                )
                for entry in moved:
                    transaction.save(ledger_item(user_id, entry), condition=LedgerItem.pk.does_not_exist())
        except ConditionFailedError:
            return False
        return True

    @translate_errors
    def ledger_page(
        self, user_id: str, *, offer_group: str | None, limit: int, cursor: str | None
    ) -> Page[LedgerEntry]:
        """The user's movements, newest first: the journals of the groups, then the archived ledger items.

        The groups are read first: a compaction in between can then only make an entry appear twice (deduplicated),
        never disappear.
        """
        before = decode_cursor(cursor, LEDGER_PREFIX).removeprefix(LEDGER_PREFIX) if cursor else None
        entries: dict[str, LedgerEntry] = {}
        if offer_group is None:
            states = list(group_states(user_id).values())
        else:
            states = [state] if (state := read_group(user_id, offer_group)) else []
        for state in states:
            for entry in journal_entries(state):
                if before is None or entry.entry_id < before:
                    entries[entry.entry_id] = entry
        archived: Iterable[CreditsItem]
        if offer_group is None:
            condition = LedgerItem.sk < ledger_sk(before) if before else LedgerItem.sk.startswith(LEDGER_PREFIX)
            archived = LedgerItem.query(
                user_pk(user_id), condition, scan_index_forward=False, limit=limit + 1, consistent_read=True
            )
        else:  # the group's entries only (a ``<`` on the index key alone would run into the groups sorting before)
            prefix = f"{offer_group}#"
            by_group = LedgerItem.group_entry.between(prefix, f"{prefix}{before}") if before else None
            archived = LedgerItem.by_group_ledger.query(
                user_pk(user_id),
                by_group if by_group is not None else LedgerItem.group_entry.startswith(prefix),
                scan_index_forward=False,
                limit=limit + 2,  # the cursor's own entry is inside ``between``: skipped below
                consistent_read=True,
            )
        for item in archived:
            if not isinstance(item, LedgerItem):  # the index holds ledger items only (the others lack its key)
                continue
            entry = to_entry(
                attribute_to_movement(item.movement), item.offer_group, int(item.seq), int(item.balance_after)
            )
            if before is None or entry.entry_id < before:
                entries.setdefault(entry.entry_id, entry)
        ordered = sorted(entries.values(), key=lambda entry: entry.entry_id, reverse=True)
        page = ordered[:limit]
        next_cursor = encode_cursor(ledger_sk(page[-1].entry_id)) if len(ordered) > limit else None
        return Page[LedgerEntry](items=page, next_cursor=next_cursor)

    @translate_errors
    def add_lot(
        self,
        user_id: str,
        lot: Lot,
        movement: Movement,
        before: GroupState | None,
        now: datetime,
        *,
        events: Sequence[DomainEvent] = (),
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """Grant a lot outside an order (admin grant): [the idempotency key], the lot, the group's balance, journal
        and soonest expiry, and the grant's events (outbox), in one transaction conditional on the group's version
        (``StaleWindowError`` if it moved, ``IdempotentReplayError`` if the key was recorded)."""
        key = CreditGroupItem(pk=user_pk(user_id), sk=group_sk(lot.offer_group))
        next_expiry = lot.expires
        if before is not None and before.next_expiry is not None:
            next_expiry = before.next_expiry if lot.expires is None else min(before.next_expiry, lot.expires)
        version = before.version if before else 0
        condition = equals_stored(CreditGroupItem.version, version) if before else CreditGroupItem.pk.does_not_exist()
        try:
            with IdempotentTransaction(user_id, idempotency) as transaction:
                transaction.save(lot_to_item(user_id, lot), condition=LotItem.pk.does_not_exist())
                transaction.update(
                    key,
                    actions=[
                        *_movement_actions(user_id, lot.offer_group, movement, now),
                        set_or_remove(CreditGroupItem.next_expiry, next_expiry),
                        CreditGroupItem.version.set(version + 1),
                    ],
                    condition=condition,
                )
                add_outbox(transaction, user_id, events, now)
        except ConditionFailedError as failed:
            raise StaleWindowError() from failed

    @translate_errors
    def close_lots(
        self,
        user_id: str,
        state: GroupState,
        lots: list[Lot],
        next_expiry: datetime | None,
        movements: list[Movement],
        events: list[DomainEvent],
        now: datetime,
        *,
        cuts: Sequence[HoldCut] = (),
    ) -> None:
        """Close lots (expired): each lot (with what expired of it) and its order, the holds ``cuts`` reduces, the
        group (balance, held, drawn, journal, ``next_expiry``, lots expired) and the expiry's events (outbox) in one
        transaction, conditional on the group's version, ``drawn`` and ``held`` being the ones the plan was computed
        from (``StaleWindowError`` otherwise). The plan fits one transaction (``lot_expiry.closing_writes``)."""
        expired_of = {movement.lot_id: -movement.tokens for movement in movements if movement.kind is LedgerKind.EXPIRE}
        expired = sum(expired_of.values())
        used = sum(lot.effective_tokens for lot in lots) - expired
        cut = sum(hold_cut.cut for hold_cut in cuts)
        key = CreditGroupItem(pk=user_pk(user_id), sk=group_sk(state.offer_group))
        try:
            with IdempotentTransaction(user_id, None) as transaction:
                actions = [
                    CreditGroupItem.balance.add(-expired),
                    CreditGroupItem.available.add(cut - expired),
                    CreditGroupItem.held.add(-cut),
                    CreditGroupItem.drawn.add(-used),
                    CreditGroupItem.expired_lots.add(len(lots)),
                    CreditGroupItem.version.set(state.version + 1),
                    CreditGroupItem.updated_at.set(now),
                    set_or_remove(CreditGroupItem.next_expiry, next_expiry),
                ]
                if movements:
                    actions.append(
                        CreditGroupItem.journal.set(
                            (CreditGroupItem.journal | []).append([movement_to_attribute(m) for m in movements])
                        )
                    )
                transaction.update(
                    key,
                    actions=actions,
                    condition=equals_stored(CreditGroupItem.version, state.version)
                    & equals_stored(CreditGroupItem.drawn, state.drawn)
                    & equals_stored(CreditGroupItem.held, state.held),
                )
                add_hold_cuts(transaction, user_id, cuts, now)
                for lot in lots:
                    move_closed_lot(
                        transaction,
                        user_id,
                        lot,
                        lot.model_copy(update={"closed": True, "expired": expired_of.get(lot.lot_id, 0)}),
                        condition=LotItem.closed == False,  # noqa: E712 - a DynamoDB condition, not a comparison
                    )
                    if lot.order_id:
                        transaction.update(
                            OrderItem(pk=user_pk(user_id), sk=order_sk(lot.order_id)),
                            actions=[OrderItem.status.set(OrderStatus.EXPIRED.value), OrderItem.updated_at.set(now)],
                            condition=OrderItem.status == OrderStatus.PAID.value,
                        )
                # The expiry's events exist exactly when it commits, whoever closed the lots (scan, read, spend).
                add_outbox(transaction, user_id, events, now)
        except ConditionFailedError as failed:
            raise StaleWindowError() from failed

    @translate_errors
    def mark_low(self, user_id: str, offer_group: str, at: datetime, fact_id: str) -> str:
        """Put the group in the ``ByExpiry`` index as owing the ``CreditsLow`` of ``fact_id`` (the movement that
        crossed, at ``at``): the expiry scan sends it unless it is cleared first. Returns the mark (its index key,
        unique per crossing: the event's id is made from it)."""
        probe = CreditGroupItem()
        index_by_expiry(probe, at.astimezone(UTC), f"{user_id}#LOW#{offer_group}#{fact_id}")
        CreditGroupItem(pk=user_pk(user_id), sk=group_sk(offer_group)).update(
            actions=[
                CreditGroupItem.expiry_bucket.set(probe.expiry_bucket),
                CreditGroupItem.expires_at.set(probe.expires_at),
            ],
            condition=CreditGroupItem.pk.exists(),
        )
        return str(probe.expires_at)

    @translate_errors
    def clear_low(self, user_id: str, offer_group: str, mark: str) -> bool:
        """Take the group out of the index if ``mark`` is still its mark (a newer crossing's mark stays)."""
        try:
            CreditGroupItem(pk=user_pk(user_id), sk=group_sk(offer_group)).update(
                actions=[CreditGroupItem.expiry_bucket.remove(), CreditGroupItem.expires_at.remove()],
                condition=CreditGroupItem.expires_at == mark,
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True


__all__ = ["DynamoCreditsRepository"]
