"""An in-memory credits repository with the conditional semantics of ``DynamoCreditsRepository``.

Each write is one atomic step, as the real one's UpdateItem or TransactWriteItems is: every condition is checked
before anything changes, and a failed one changes nothing. Models are deep-copied on the way in and out, so a test
cannot change stored state by holding on to what it passed or got. The journal, its compaction and the ledger
reuse the domain's pure functions (``journal_entries``, ``burn_order``), so only the storage is modelled here.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

from tests.fakes.credit_items import (
    CreditItems,
    copy_model,
    copy_or_none,
    covers,
    decode_cursor,
    decode_lots_cursor,
    encode_cursor,
    lots_cursor,
    not_due,
    with_movement,
)
from usercredits.domain.credits import HoldCut, burn_order, journal_entries
from usercredits.domain.models import GroupState, LedgerEntry, LedgerKind, Lot, Movement, Reservation, ReservationStatus
from usercredits.domain.ports import CreditSnapshot, SpendRefusedError, StaleWindowError
from usercredits.errors import InvalidRequestError, PersistenceError
from usercredits.kernel.models import DomainEvent, Page
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

#: The real adapter's limits (``adapters/dynamodb/credits.py``); each is a constructor argument so tests can force
#: paging and compaction with a few movements.
LOTS_SHOWN = 20
JOURNAL_MAX = 60
JOURNAL_KEEP = 20
MAX_MOVED = 99


class InMemoryCreditsRepository:
    """Balances, lots, holds and the ledger of the users; ``outbox``: the events ``add_lot`` and ``close_lots``
    wrote with their facts, in commit order; ``expired_orders``: the orders ``close_lots`` moved to expired (orders
    themselves are ``InMemoryOrderRepository``'s)."""

    def __init__(
        self,
        *,
        lots_shown: int = LOTS_SHOWN,
        journal_max: int = JOURNAL_MAX,
        journal_keep: int = JOURNAL_KEEP,
        max_moved: int = MAX_MOVED,
    ) -> None:
        self.lots_shown = lots_shown
        self.journal_max = journal_max
        self.journal_keep = journal_keep
        self.max_moved = max_moved
        self.outbox: list[DomainEvent] = []
        self.expired_orders: list[str] = []
        self._users: dict[str, CreditItems] = {}

    def __contains__(self, user_id: object) -> bool:
        """True when the user holds some group."""
        return isinstance(user_id, str) and bool(self._users.get(user_id, CreditItems()).groups)

    def __len__(self) -> int:
        """How many users hold some group."""
        return sum(1 for user in self._users.values() if user.groups)

    def _user(self, user_id: str) -> CreditItems:
        return self._users.setdefault(user_id, CreditItems())

    # --- reads ----------------------------------------------------------------------------------------------------

    def group_state(self, user_id: str, offer_group: str) -> GroupState | None:
        """The group as it is now; a long journal is compacted on the way, as the real repository does."""
        state = copy_or_none(self._user(user_id).groups.get(offer_group))
        if state is not None:
            self.compact_if_long(user_id, state)
        return state

    def get_hold(self, user_id: str, reservation_id: str) -> Reservation | None:
        """The hold wherever it is: open, else settled."""
        user = self._user(user_id)
        hold = user.holds.get(reservation_id) or user.settled.get(reservation_id)
        return copy_model(hold) if hold is not None else None

    def closed_lots(self, user_id: str) -> list[Lot]:
        """Every closed lot of the user (a test's view of the history; reads never meet it)."""
        return [copy_model(lot) for _, lot in sorted(self._user(user_id).closed.items())]

    def marked_low(self, user_id: str) -> dict[str, str]:
        """The groups marked as owing a ``CreditsLow``, with their marks."""
        return dict(self._user(user_id).low_marks)

    def snapshot(
        self,
        user_id: str,
        offer_group: str | None = None,
        *,
        consistent: bool = True,
        closed_ids: Collection[str] = (),
        due_by: datetime | None = None,
    ) -> CreditSnapshot:
        """Every group, open lot and open hold (or one group's: its holds only when it holds something; with
        ``due_by`` only its lots expiring by then and the next one to expire); ``closed_ids``: those closed lots too.
        Always consistent: ``consistent`` is accepted for the port's sake."""
        user = self._user(user_id)
        snapshot = CreditSnapshot()
        if offer_group is None:
            snapshot.groups.update({name: copy_model(state) for name, state in sorted(user.groups.items())})
            snapshot.lots.extend(copy_model(lot) for lot in user.open_lots())
            snapshot.holds.extend(copy_model(hold) for hold in user.open_holds())
        else:
            self._add_group(user, snapshot, offer_group)
            lots = user.open_lots(offer_group)
            if due_by is not None:  # what is due, and the next lot to expire (burn order puts them first)
                expiring = [lot for lot in lots if lot.expires is not None]
                due = [lot for lot in expiring if lot.expires is not None and lot.expires <= due_by]
                lots = expiring[: len(due) + 1]
            snapshot.lots.extend(copy_model(lot) for lot in lots)
            self._add_group_holds(user, snapshot, offer_group)
        open_ids = {lot.lot_id for lot in snapshot.lots}
        for lot_id in sorted(set(closed_ids) - open_ids):
            if lot_id in user.closed:
                snapshot.closed_lots.append(copy_model(user.closed[lot_id]))
        return snapshot

    def view(self, user_id: str, offer_group: str | None = None, *, lots_after: str | None = None) -> CreditSnapshot:
        """``_view``, then the groups read with a long journal compacted (as the real repository does)."""
        snapshot = self._view(user_id, offer_group, lots_after=lots_after)
        for state in snapshot.groups.values():
            self.compact_if_long(user_id, state)
        return snapshot

    def _view(self, user_id: str, offer_group: str | None = None, *, lots_after: str | None = None) -> CreditSnapshot:
        """What a read shows: the groups with the first ``lots_shown`` open lots of each in burn order and a cursor
        to the next ones (``more_lots``), or one group's lots after ``lots_after`` (``lots_before``: the tokens of
        the lots ahead of them), and the open holds."""
        user = self._user(user_id)
        snapshot = CreditSnapshot()
        if offer_group is None:
            snapshot.groups.update({name: copy_model(state) for name, state in sorted(user.groups.items())})
            for name in sorted({lot.offer_group for lot in user.lots.values()}):
                self._add_page(user, snapshot, name, user.open_lots(name), before=0)
            snapshot.holds.extend(copy_model(hold) for hold in user.open_holds())
            return snapshot
        self._add_group(user, snapshot, offer_group)
        lots = user.open_lots(offer_group)
        before = 0
        if lots_after is not None:
            after, before, version = decode_lots_cursor(lots_after, offer_group)
            state = user.groups.get(offer_group)
            if state is None:
                return snapshot
            if version != state.version:  # the group's lots changed since: count the ones ahead again
                before = sum(lot.effective_tokens for lot in lots if burn_order(lot) <= after)
            snapshot.lots_before[offer_group] = before
            lots = [lot for lot in lots if burn_order(lot) > after]
        self._add_page(user, snapshot, offer_group, lots, before=before)
        self._add_group_holds(user, snapshot, offer_group)
        return snapshot

    def _add_group(self, user: CreditItems, snapshot: CreditSnapshot, offer_group: str) -> None:
        state = user.groups.get(offer_group)
        if state is not None:
            snapshot.groups[offer_group] = copy_model(state)

    def _add_group_holds(self, user: CreditItems, snapshot: CreditSnapshot, offer_group: str) -> None:
        state = snapshot.groups.get(offer_group)
        if state is not None and state.held > 0:  # a group holding nothing has no open hold: not read
            snapshot.holds.extend(copy_model(hold) for hold in user.open_holds(offer_group))

    def _add_page(self, user: CreditItems, snapshot: CreditSnapshot, group: str, lots: list[Lot], before: int) -> None:
        shown = lots[: self.lots_shown]
        snapshot.lots.extend(copy_model(lot) for lot in shown)
        state = user.groups.get(group)
        if len(lots) > len(shown) and state is not None:
            tokens = before + sum(lot.effective_tokens for lot in shown)
            snapshot.more_lots[group] = lots_cursor(group, shown[-1], tokens, state.version)

    def ledger_page(
        self, user_id: str, *, offer_group: str | None, limit: int, cursor: str | None
    ) -> Page[LedgerEntry]:
        """The user's movements (or one group's), newest first: the journals, then the archived entries."""
        user = self._user(user_id)
        before = str(decode_cursor(cursor, "cursor").get("entry", "")) if cursor else None
        if before == "":
            raise InvalidRequestError("cursor is not valid")
        states = [state for name, state in user.groups.items() if offer_group in (None, name)]
        entries = {entry.entry_id: entry for state in states for entry in journal_entries(state)}
        for entry in user.archive.values():
            if offer_group in (None, entry.offer_group):
                entries.setdefault(entry.entry_id, entry)
        ordered = sorted(
            (entry for entry in entries.values() if before is None or entry.entry_id < before),
            key=lambda entry: entry.entry_id,
            reverse=True,
        )
        page = [copy_model(entry) for entry in ordered[:limit]]
        next_cursor = encode_cursor({"entry": page[-1].entry_id}) if len(ordered) > limit else None
        return Page[LedgerEntry](items=page, next_cursor=next_cursor)

    def find_entry(self, user_id: str, offer_group: str, entry_id: str) -> LedgerEntry | None:
        """One movement: in the group's journal, or archived (by id, as the real ledger item is keyed)."""
        user = self._user(user_id)
        state = user.groups.get(offer_group)
        journal = journal_entries(state) if state is not None else []
        entry = next((entry for entry in journal if entry.entry_id == entry_id), None) or user.archive.get(entry_id)
        return copy_model(entry) if entry is not None else None

    # --- writes ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _check_key(user: CreditItems, idempotency: IdempotencyRecord | None) -> None:
        # Checked first: a replay is reported whatever the write's other conditions say.
        if idempotency is not None and (found := user.keys.get((idempotency.scope, idempotency.key))):
            raise IdempotentReplayError(found.result_id, found.fingerprint)

    @staticmethod
    def _record_key(user: CreditItems, idempotency: IdempotencyRecord | None) -> None:
        if idempotency is not None:
            user.keys[(idempotency.scope, idempotency.key)] = idempotency

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
        """Apply a spend if the group covers it (``SpendRefusedError`` otherwise); the group right after, then a
        compaction if its journal grew long (as the real one does after its write)."""
        user = self._user(user_id)
        self._check_key(user, idempotency)
        count = -movement.tokens
        state = user.groups.get(offer_group)
        if not covers(state, count, floor, now):
            raise SpendRefusedError(copy_or_none(state))
        user.groups[offer_group] = after = with_movement(state, offer_group, movement, drawn=count)
        self._record_key(user, idempotency)
        self.compact_if_long(user_id, after)
        return copy_model(after)

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
        """Write the open hold and set its tokens aside, if the group covers them (``SpendRefusedError``)."""
        user = self._user(user_id)
        self._check_key(user, idempotency)
        group = reservation.offer_group
        state = user.groups.get(group)
        if reservation.reservation_id in user.holds or not covers(state, reservation.count, floor, now):
            raise SpendRefusedError(copy_or_none(state))
        user.holds[reservation.reservation_id] = copy_model(reservation)
        user.groups[group] = with_movement(state, group, movement)
        self._record_key(user, idempotency)

    def finish_hold(self, user_id: str, before: Reservation, after: Reservation, movement: Movement) -> bool:
        """Settle a hold still held with the count read (a capture: not expired, and no lot of its group due);
        False when the hold moved, ``SpendRefusedError`` when a capture found a lot due."""
        user = self._user(user_id)
        now = after.updated_at
        capture = after.status is ReservationStatus.CAPTURED
        hold = user.holds.get(before.reservation_id)
        if hold is None or hold.status is not ReservationStatus.HELD or hold.count != before.count:
            return False
        if capture and hold.expires_at <= now:  # an expired hold can only be released
            return False
        group = before.offer_group
        state = user.groups.get(group)
        if capture and not not_due(state, now):
            raise SpendRefusedError(copy_or_none(state))
        del user.holds[before.reservation_id]
        user.settled[before.reservation_id] = copy_model(after)
        user.groups[group] = with_movement(state, group, movement, drawn=after.captured)
        return True

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
        """Grant a lot, conditional on the group's version being ``before``'s (``StaleWindowError``), with its
        events in the outbox and the key recorded."""
        user = self._user(user_id)
        self._check_key(user, idempotency)
        group = lot.offer_group
        state = user.groups.get(group)
        stored_version = state.version if state is not None else 0
        fresh = state is None if before is None else stored_version == before.version
        if not fresh or lot.lot_id in user.lots:
            raise StaleWindowError()
        next_expiry = lot.expires
        if before is not None and before.next_expiry is not None:
            next_expiry = before.next_expiry if lot.expires is None else min(before.next_expiry, lot.expires)
        version = before.version if before is not None else 0
        grown = with_movement(state, group, movement)
        user.groups[group] = grown.model_copy(update={"next_expiry": next_expiry, "version": version + 1})
        user.lots[lot.lot_id] = copy_model(lot)
        self.outbox.extend(copy.deepcopy(list(events)))
        self._record_key(user, idempotency)

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
        """Close lots with what expired of them, cut holds, move the group and write the events, conditional on the
        group's version, ``drawn`` and ``held``, each hold as read and each lot open (``StaleWindowError``)."""
        user = self._user(user_id)
        group = state.offer_group
        stored = user.groups.get(group) or GroupState(offer_group=group)
        unchanged = (stored.version, stored.drawn, stored.held) == (state.version, state.drawn, state.held)
        holds_as_read = all(
            (hold := user.holds.get(cut.hold.reservation_id)) is not None and hold.count == cut.hold.count
            for cut in cuts
        )
        lots_open = all(lot.lot_id in user.lots and lot.lot_id not in user.closed for lot in lots)
        if not (unchanged and holds_as_read and lots_open):
            raise StaleWindowError()
        expired_of = {m.lot_id: -m.tokens for m in movements if m.kind is LedgerKind.EXPIRE}
        expired = sum(expired_of.values())
        used = sum(lot.effective_tokens for lot in lots) - expired
        cut = sum(hold_cut.cut for hold_cut in cuts)
        user.groups[group] = stored.model_copy(
            update={
                "balance": stored.balance - expired,
                "held": stored.held - cut,
                "drawn": stored.drawn - used,
                "expired_lots": stored.expired_lots + len(lots),
                "version": state.version + 1,
                "next_expiry": next_expiry,
                "journal": [*stored.journal, *(copy_model(movement) for movement in movements)],
            }
        )
        for hold_cut in cuts:
            self._cut(user, hold_cut, now)
        for lot in lots:
            del user.lots[lot.lot_id]
            user.closed[lot.lot_id] = lot.model_copy(
                update={"closed": True, "expired": expired_of.get(lot.lot_id, 0)}, deep=True
            )
            if lot.order_id:
                self.expired_orders.append(lot.order_id)
        self.outbox.extend(copy.deepcopy(events))

    @staticmethod
    def _cut(user: CreditItems, cut: HoldCut, now: datetime) -> None:
        """A hold cut to 0 is released (settled); the others keep less."""
        stored = user.holds[cut.hold.reservation_id]
        update = {"count": cut.count, "reduced": cut.hold.reduced + cut.cut, "updated_at": now}
        if cut.count == 0:
            del user.holds[cut.hold.reservation_id]
            user.settled[cut.hold.reservation_id] = cut.hold.model_copy(
                update={**update, "status": ReservationStatus.RELEASED}, deep=True
            )
        else:
            user.holds[cut.hold.reservation_id] = stored.model_copy(update=update)

    def compact_if_long(self, user_id: str, state: GroupState) -> None:
        """Archive the oldest journal movements once the journal is longer than ``journal_max``."""
        if len(state.journal) > self.journal_max:
            self.compact(user_id, state)

    def compact(self, user_id: str, state: GroupState) -> bool:
        """Move the oldest movements of ``state``'s journal to the archive, down to ``journal_keep`` (at most
        ``max_moved`` at once), conditional on the journal not having been compacted since; False if it had been."""
        user = self._user(user_id)
        moved = journal_entries(state)[: min(len(state.journal) - self.journal_keep, self.max_moved)]
        stored = user.groups.get(state.offer_group)
        if not moved or stored is None or stored.journal_first_seq != state.journal_first_seq:
            return False
        if any(entry.entry_id in user.archive for entry in moved):
            return False
        user.groups[state.offer_group] = stored.model_copy(
            update={"journal": stored.journal[len(moved) :], "journal_first_seq": stored.journal_first_seq + len(moved)}
        )
        user.archive.update({entry.entry_id: entry for entry in moved})
        return True

    def mark_low(self, user_id: str, offer_group: str, at: datetime, fact_id: str) -> str:
        """Mark an existing group as owing the ``CreditsLow`` of ``fact_id``; the mark (unique per crossing)."""
        user = self._user(user_id)
        if offer_group not in user.groups:
            raise PersistenceError("storage error: ConditionalCheckFailedException")
        mark = f"{at.astimezone(UTC).isoformat()}#{user_id}#LOW#{offer_group}#{fact_id}"
        user.low_marks[offer_group] = mark
        return mark

    def clear_low(self, user_id: str, offer_group: str, mark: str) -> bool:
        """Clear the group's mark if it is still ``mark``."""
        user = self._user(user_id)
        if user.low_marks.get(offer_group) != mark:
            return False
        del user.low_marks[offer_group]
        return True
