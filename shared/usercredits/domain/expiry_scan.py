"""The scheduled expiry scan: expire due lots, release lapsed holds, warn before lots expire, and send the
``CreditsLow`` warnings a spend could not.

Work is found through the sparse ``ByExpiry`` index, never a table scan. In it: open lots with an expiry, held holds,
and groups owing a ``CreditsLow`` (a "low mark"), bucketed by the hour of their time, sorted within an hour by keys
that start with that time (``<ISO-8601 UTC>#...``). A run reads:

- **due**: the hour buckets from the due cursor up to now, keys up to now. Expiring a lot, releasing a hold or clearing
  a low mark takes the item out of the index in the same write, so what a run finished is gone for the next one. The
  cursor stays on the earliest hour that still holds something undone, and never passes the previous hour (the index
  is eventually consistent: an item written a moment ago may show up late);
- **warnings**: for each window W, the keys after that window's cursor up to now + W: the lots that came within W of
  their expiry since the last run. A lot is warned for W once EventBridge accepted the warning, recorded by a
  conditional mark on the lot (its ``warned`` set), and only if its window opened after it was granted (a lot granted
  with less than W left was sold with its expiry in view; it is warned for the shorter windows it enters later).

So reads and writes grow with the work due, not with the table. Expiring reuses ``lapses.expire_group`` (one
eventually consistent read and one transaction per group, conditional: nothing expires twice, whoever else closes the
lot, and a plan made from a stale read is refused and made again; README "Why each expiring group is read" says why
the group is read rather than planned from the index), whose transaction also
writes ``CreditsExpired`` (and the ``CreditsLow`` an expiry crossing owes) to the outbox
(``lot_expiry.expiry_events``): the events exist exactly when the expiry commits, also
when a read or a spend closed the lot first. One run at a time holds the scan's lease (an overlapping run skips); a
run stops taking work when its time budget runs short and saves its cursors, so a backlog drains over several runs.

What can be sent twice: EventBridge has no idempotent put, so a crash between an accepted PutEvents and the mark after
it re-sends that warning on the next run. Every event the scan publishes carries a deterministic ``eventId`` in its
detail, so a consumer can drop the duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from usercredits.domain.credits import lot_remaining
from usercredits.domain.events import credits_expiring_soon, credits_low
from usercredits.domain.expiry_index import (
    IndexedHold,
    IndexedLot,
    IndexEntry,
    LowMark,
    Position,
    ScanState,
    bound_key,
    hour_of,
)
from usercredits.domain.lapses import expire_group, release_hold
from usercredits.domain.models import ReservationStatus
from usercredits.domain.ports import (
    BatchPublisher,
    Budget,
    CatalogRepository,
    CreditSnapshot,
    CreditsRepository,
    ExpiryIndex,
)
from usercredits.errors import ConflictError
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import DomainEvent

logger = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
#: Index entries read per request.
PAGE_SIZE = 100
#: A low mark younger than this belongs to the spend that made it (it is publishing right now; the consumption
#: function's timeout is far shorter).
LOW_MARK_GRACE = timedelta(seconds=60)
#: How far back a first run (no cursor saved yet) looks for due items.
FIRST_RUN_LOOKBACK = timedelta(days=7)


class Unlimited:
    """A budget that never runs out (local tools, tests)."""

    def exhausted(self) -> bool:
        return False


# --- the scan ---------------------------------------------------------------------------------------------------------


@dataclass
class ScanReport:
    """What one run did. ``backlog``: entries it saw and left for a later run (time ran out, an event was not
    accepted, a group kept changing); ``caught_up``: it read everything due and every window to its end."""

    lots_expired: int = 0
    tokens_expired: int = 0
    holds_released: int = 0
    expiring_soon_sent: int = 0
    low_sent: int = 0
    events_rejected: int = 0
    backlog: int = 0
    caught_up: bool = False
    skipped: bool = False

    def as_dict(self) -> dict[str, int | bool]:
        return {
            "lotsExpired": self.lots_expired,
            "tokensExpired": self.tokens_expired,
            "holdsReleased": self.holds_released,
            "expiringSoonSent": self.expiring_soon_sent,
            "lowSent": self.low_sent,
            "eventsRejected": self.events_rejected,
            "backlog": self.backlog,
            "caughtUp": self.caught_up,
            "skipped": self.skipped,
        }

    def metrics(self) -> dict[str, int]:
        """Metric name -> value (counts)."""
        return {
            "LotsExpired": self.lots_expired,
            "TokensExpired": self.tokens_expired,
            "HoldsReleased": self.holds_released,
            "WarningsSent": self.expiring_soon_sent + self.low_sent,
            "EventsRejected": self.events_rejected,
            "Backlog": self.backlog,
        }


def scan_expiry(
    *,
    run_id: str,
    lease: timedelta,
    windows: Sequence[int],
    budget: Budget,
    index: ExpiryIndex,
    credits: CreditsRepository,
    catalog: CatalogRepository,
    events: BatchPublisher,
    clock: Clock,
    page_size: int = PAGE_SIZE,
) -> ScanReport:
    """One scheduled run: expire what is due, release lapsed holds, send owed ``CreditsLow``, then warn per window.

    Takes the scan's lease for ``lease`` (the run's time limit: a run that dies keeps it no longer than it could have
    run) and skips when another run holds it. Stops taking work once ``budget`` is exhausted; the cursors saved at
    the end (also when something raised) let the next run go on from there.
    """
    if page_size < 2:  # resuming after a key re-reads that key; one entry per page would never move on
        raise ValueError("page_size must be at least 2")
    now = clock.now()
    state = index.begin(run_id, now, now + lease)
    if state is None:
        logger.info("another expiry scan holds the lease; skipping this run")
        return ScanReport(skipped=True)
    state.windows = {window: position for window, position in state.windows.items() if window in windows}
    run = _Run(now, budget, index, credits, catalog, events, clock, page_size)
    try:
        caught_up = run.due(state)
        for window in sorted(set(windows)):
            caught_up = run.warn(window, state) and caught_up
        run.report.caught_up = caught_up and run.report.backlog == 0
    finally:
        if not index.finish(run_id, state, clock.now()):
            logger.warning("the expiry scan's lease was taken over; this run's cursors were not saved")
    return run.report


@dataclass(frozen=True)
class _Owed:
    """An event to publish, and the low mark to clear once it is accepted."""

    event: DomainEvent
    mark: LowMark | None = None


class _Run:
    def __init__(
        self,
        now: datetime,
        budget: Budget,
        index: ExpiryIndex,
        credits: CreditsRepository,
        catalog: CatalogRepository,
        events: BatchPublisher,
        clock: Clock,
        page_size: int,
    ) -> None:
        self.now = now
        self.budget = budget
        self.index = index
        self.credits = credits
        self.catalog = catalog
        self.events = events
        self.clock = clock
        self.page_size = page_size
        self.report = ScanReport()
        self._snapshots: dict[tuple[str, str], CreditSnapshot] = {}

    # --- due: lots past their expiry, lapsed holds, low marks ---------------------------------------------------

    def due(self, state: ScanState) -> bool:
        """Every bucket up to now; False when the budget ran out first. Moves ``state.due_from`` to the earliest hour
        left with something undone (at most the previous hour)."""
        last = hour_of(self.now)
        hour = state.due_from or hour_of(self.now - FIRST_RUN_LOOKBACK)
        undone: datetime | None = None
        finished = True
        while hour <= last:
            if self.budget.exhausted():
                finished = False
                undone = min(undone or hour, hour)
                break
            if not self._due_hour(hour):
                undone = min(undone or hour, hour)
            hour += HOUR
        state.due_from = min(undone or last, last - HOUR)
        return finished

    def _due_hour(self, hour: datetime) -> bool:
        """True when everything due in the bucket was done."""
        after: str | None = None
        drained = True
        while True:
            if self.budget.exhausted():
                return False
            page = self.index.read(hour, after=after, until=self.now, limit=self.page_size)
            drained = self._settle_due(page.entries) and drained
            if page.last_key is None:
                return drained
            after = page.last_key

    def _settle_due(self, entries: list[IndexEntry]) -> bool:
        groups: dict[tuple[str, str], int] = {}
        owed: list[_Owed] = []
        clear: list[LowMark] = []
        undone = 0
        for entry in entries:
            match entry:
                case IndexedLot(lot=lot) if not lot.closed and lot.expires is not None and lot.expires <= self.now:
                    key = (entry.user_id, lot.offer_group)
                    groups[key] = groups.get(key, 0) + 1
                case IndexedHold():
                    undone += 0 if self._release(entry) else 1
                case LowMark() if entry.marked_at > self.now - LOW_MARK_GRACE:
                    undone += 1  # the spend that marked it is still publishing
                case LowMark():
                    event = self._low_warning(entry)
                    if event is None:
                        clear.append(entry)
                    else:
                        owed.append(_Owed(event, entry))
                case _:
                    pass  # closed meanwhile (the index is eventually consistent): already out of it
        for (user_id, offer_group), seen in groups.items():
            if self.budget.exhausted():
                undone += seen
                continue
            undone += 0 if self._expire(user_id, offer_group) else seen
        undone += self._publish_owed(owed, clear)
        self.report.backlog += undone
        return undone == 0

    def _expire(self, user_id: str, offer_group: str) -> bool:
        """Expire the group's due lots (the one algorithm, ``expire_group``, whose transaction also writes the
        ``CreditsExpired`` and any ``CreditsLow`` the expiry owes to the outbox)."""
        try:
            expired = expire_group(
                user_id,
                offer_group,
                credits=self.credits,
                clock=self.clock,
                catalog=self.catalog,
                consistent=False,  # the index is read in the same eventually consistent way; stale plans fail
            )
        except ConflictError:
            logger.warning("group kept changing while its lots expired; left for the next run", exc_info=True)
            return False
        self.report.tokens_expired += expired.tokens
        self.report.lots_expired += expired.lots
        return True

    def _release(self, entry: IndexedHold) -> bool:
        hold = entry.hold
        if hold.status is not ReservationStatus.HELD or hold.expires_at > self.now:
            return True  # finished meanwhile (the index is eventually consistent)
        if self.budget.exhausted():
            return False
        # The release a read makes of a lapsed hold (conditional on the hold still being held).
        released = release_hold(entry.user_id, hold, credits=self.credits, now=self.clock.now(), reason="hold expired")
        self.report.holds_released += int(released)
        return True

    def _low_warning(self, mark: LowMark) -> DomainEvent | None:
        """The ``CreditsLow`` a low mark owes, or None when the group is above its threshold again (or has none)."""
        threshold = self.catalog.group_policy(mark.offer_group).low_threshold
        if threshold is None or mark.balance > threshold:
            return None
        return credits_low(mark.user_id, mark.offer_group, mark.balance, threshold, event_id=f"CreditsLow#{mark.key}")

    def _publish_owed(self, owed: list[_Owed], clear: list[LowMark]) -> int:
        """Publish ``owed``; clear the marks of those accepted and ``clear``. Returns how many stay owed."""
        accepted = self.events.publish_each([item.event for item in owed]) if owed else []
        rejected = accepted.count(False)
        self.report.events_rejected += rejected
        self.report.low_sent += sum(1 for item, ok in zip(owed, accepted, strict=True) if ok)
        clear = clear + [item.mark for item, ok in zip(owed, accepted, strict=True) if ok and item.mark is not None]
        if clear:
            self.index.clear_low(clear)  # a failed condition: a newer crossing marked it again, which stays owed
        return rejected

    # --- warnings: CreditsExpiringSoon once per lot and window ---------------------------------------------------

    def warn(self, window: int, state: ScanState) -> bool:
        """Read the window from its position to now + ``window``; False when the budget ran out or an event was not
        accepted first (the position stops before the first entry not done)."""
        end = self.now + timedelta(seconds=window)
        bound = bound_key(end)
        position = state.windows.get(window) or Position(hour_of(self.now))
        while position.after is None or position.after < bound:
            if self.budget.exhausted():
                state.windows[window] = position
                return False
            page = self.index.read(
                position.hour, after=position.after, until=end, limit=self.page_size, not_warned=window
            )
            done = self._warn_page(page.entries, window)
            if done < len(page.entries):
                last = page.entries[done - 1].key if done else position.after
                state.windows[window] = Position(position.hour, last)
                return False
            if page.last_key is not None:
                position = Position(position.hour, page.last_key)
            elif position.hour < hour_of(end):
                position = Position(position.hour + HOUR)
            else:
                position = Position(position.hour, bound)  # read up to the end: the next run goes on after it
        state.windows[window] = position
        return True

    def _warn_page(self, entries: list[IndexEntry], window: int) -> int:
        """Warn the page's lots that need it; how many entries, from the first, are done."""
        done = [True] * len(entries)
        owed: list[tuple[int, IndexedLot, DomainEvent]] = []
        for position, entry in enumerate(entries):
            if not isinstance(entry, IndexedLot) or not self._wants_warning(entry, window):
                continue
            if self.budget.exhausted():
                done[position:] = [False] * (len(entries) - position)
                break
            remaining = self._remaining(entry)
            if remaining > 0:
                owed.append((position, entry, credits_expiring_soon(entry.user_id, entry.lot, remaining, window)))
        accepted = self.events.publish_each([event for _, _, event in owed]) if owed else []
        sent = [(entry, window) for (_, entry, _), ok in zip(owed, accepted, strict=True) if ok]
        recorded = self.index.mark_warned(sent) if sent else []
        if recorded.count(False):
            logger.warning("%d warning(s) were already recorded by another run: sent twice", recorded.count(False))
        for (position, _, _), ok in zip(owed, accepted, strict=True):
            done[position] = done[position] and ok
        self.report.expiring_soon_sent += len(sent)
        self.report.events_rejected += accepted.count(False)
        first_undone = done.index(False) if False in done else len(done)
        self.report.backlog += len(done) - first_undone
        return first_undone

    def _wants_warning(self, entry: IndexedLot, window: int) -> bool:
        lot = entry.lot
        if lot.closed or lot.expires is None or lot.expires <= self.now or window in entry.warned:
            return False
        # A lot granted with less than the window left is not warned for it (it was sold with that expiry in view).
        return lot.granted_at < lot.expires - timedelta(seconds=window)

    def _remaining(self, entry: IndexedLot) -> int:
        """The lot's unused tokens, from one consistent read of its group (cached for the run)."""
        key = (entry.user_id, entry.lot.offer_group)
        snapshot = self._snapshots.get(key)
        if snapshot is None:
            # Eventually consistent (half the cost): the number only informs the warning.
            snapshot = self._snapshots[key] = self.credits.snapshot(*key, consistent=False)
        state = snapshot.groups.get(entry.lot.offer_group)
        if state is None:
            return 0
        mine = [lot for lot in snapshot.lots if lot.offer_group == entry.lot.offer_group]
        return lot_remaining(mine, state.drawn).get(entry.lot.lot_id, 0)
