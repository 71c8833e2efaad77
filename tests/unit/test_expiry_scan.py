"""The expiry scan's pure parts and its cursor logic, against an in-memory index (no I/O): index keys compare like
times, events are built from the movements, windows move on only past what was sent, the publisher reports per entry."""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes.clock import FixedClock
from usercredits.adapters.events import EventBridgePublisher
from usercredits.domain.expiry_index import IndexedLot, IndexEntry, IndexPage, LowMark, ScanState, bound_key, hour_of
from usercredits.domain.expiry_scan import Unlimited, scan_expiry
from usercredits.domain.lot_expiry import expiry_events
from usercredits.domain.models import GroupPolicy, GroupState, LedgerKind, Lot, Movement
from usercredits.domain.ports import CreditSnapshot
from usercredits.errors import UnavailableError
from usercredits.kernel.models import DomainEvent
from usercredits.settings import ExpiryScanSettings

T0 = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
DAY = 86400

times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))


@given(times, times)
def test_index_keys_compare_like_their_times(at: datetime, moment: datetime) -> None:
    # Given an index key written for `at` (what index_by_expiry writes) and the bound for `moment`
    key = f"{at.isoformat()}#user#group#01LOT"
    # Then the key is within the bound exactly when `at` is at or before `moment`
    assert (key < bound_key(moment)) == (at <= moment)


def test_hour_of_is_the_utc_hour_bucket() -> None:
    assert hour_of(datetime(2026, 1, 31, 12, 59, 59, 999999, tzinfo=UTC)) == datetime(2026, 1, 31, 12, tzinfo=UTC)


def movement(kind: LedgerKind, tokens: int, lot_id: str) -> Movement:
    return Movement(
        entry_id=f"E{lot_id}", kind=kind, tokens=tokens, lot_id=lot_id, order_id=f"O{lot_id}", created_at=T0
    )


def lot(lot_id: str, expires: datetime | None = T0, granted: datetime = T0 - timedelta(days=30)) -> Lot:
    return Lot(lot_id=lot_id, offer_group="G", tokens=10, starts=granted, expires=expires, granted_at=granted)


def test_expired_events_tell_each_lot_with_tokens_left_and_the_balance_after_it() -> None:
    # Given a group at 20 closing three lots: 6 and 4 unused, one used up (no movement)
    state = GroupState(offer_group="G", balance=20)
    movements = [movement(LedgerKind.EXPIRE, -6, "A"), movement(LedgerKind.EXPIRE, -4, "B")]
    # When the events are built
    events = expiry_events("u", state, [lot("A"), lot("B"), lot("C")], movements)
    # Then one per expired lot, with the running balance
    assert [(e.kind, e.detail["lotId"], e.detail["tokens"], e.detail["balance"]) for e in events] == [
        ("CreditsExpired", "A", 6, 14),
        ("CreditsExpired", "B", 4, 10),
    ]
    assert events[0].detail["orderId"] == "OA" and events[0].detail["expires"] == T0.isoformat()


def test_nothing_is_told_when_nothing_was_left() -> None:
    assert expiry_events("u", GroupState(offer_group="G", balance=0), [lot("A")], [], low_threshold=0) == []


@pytest.mark.parametrize(
    ("threshold", "low"),
    [(None, []), (20, []), (15, [("CreditsLow", 10, 15)]), (10, [("CreditsLow", 10, 10)]), (9, [])],
)
def test_an_expiry_that_crosses_the_threshold_owes_credits_low(threshold: int | None, low: list[Any]) -> None:
    # Given a group at 20 whose expiry takes 10 (to 10), and a threshold
    state = GroupState(offer_group="G", balance=20)
    movements = [movement(LedgerKind.EXPIRE, -10, "A")]
    # When the events are built
    events = expiry_events("u", state, [lot("A")], movements, low_threshold=threshold)
    # Then CreditsLow only when the balance went from above the threshold to at or below it (20: it was not above)
    assert [(e.kind, e.detail["balance"], e.detail["threshold"]) for e in events if e.kind == "CreditsLow"] == low


# --- settings ---------------------------------------------------------------------------------------------------------


def test_warning_windows_default_to_a_week_and_a_day_and_parse_in_order() -> None:
    base = {"CREDITS_TABLE_NAME": "table", "EVENT_BUS_NAME": "bus"}
    assert ExpiryScanSettings.model_validate(base).warning_windows == (DAY, 7 * DAY)
    assert ExpiryScanSettings.model_validate(base | {"EXPIRY_WARNING_WINDOWS": "3600, 60,3600"}).warning_windows == (
        60,
        3600,
    )
    assert ExpiryScanSettings.model_validate(base | {"EXPIRY_WARNING_WINDOWS": ""}).warning_windows == ()


@pytest.mark.parametrize("windows", ["0", "-5", "1d", "7776001", "60,,60"])
def test_warning_windows_must_be_positive_seconds_up_to_90_days(windows: str) -> None:
    with pytest.raises(ValueError, match="EXPIRY_WARNING_WINDOWS|warning window"):
        ExpiryScanSettings.model_validate(
            {"CREDITS_TABLE_NAME": "t12", "EVENT_BUS_NAME": "b", "EXPIRY_WARNING_WINDOWS": windows}
        )


# --- the publisher's per-entry results --------------------------------------------------------------------------------


class Client:
    """PutEvents stand-in: ``script`` lists, per call, the positions to reject (or an exception to raise)."""

    def __init__(self, *script: Any) -> None:
        self.script = list(script)
        self.calls: list[list[Any]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto's name
        self.calls.append([json.loads(entry["Detail"])["n"] for entry in Entries])
        step = self.script.pop(0) if self.script else ()
        if isinstance(step, Exception):
            raise step
        results = [{"ErrorCode": "Throttled"} if i in step else {"EventId": "x"} for i in range(len(Entries))]
        return {"FailedEntryCount": len(step), "Entries": results}


def publisher(client: Client) -> EventBridgePublisher:
    bus = EventBridgePublisher("bus")
    bus._client = client
    return bus


def events(count: int) -> list[DomainEvent]:
    return [DomainEvent("CreditsExpiringSoon", {"n": n}) for n in range(count)]


def test_publish_each_sends_batches_of_ten_and_resends_only_rejected_entries() -> None:
    client = Client({2, 5}, set(), {0})
    assert publisher(client).publish_each(events(12)) == [True] * 12
    assert client.calls == [list(range(10)), [2, 5], [10, 11], [10]]


def test_publish_each_reports_entries_never_accepted_and_failed_calls_without_raising() -> None:
    client = Client({1}, {0}, {0}, RuntimeError("network"), RuntimeError("network"), RuntimeError("network"))
    assert publisher(client).publish_each(events(12)) == [True, False] + [True] * 8 + [False, False]


def test_publish_still_raises_and_stops_at_the_first_batch_it_could_not_send() -> None:
    client = Client({0}, {0}, {0})
    with pytest.raises(UnavailableError):
        publisher(client).publish(events(12))
    assert client.calls == [list(range(10)), [0], [0]]  # the second batch was not sent


# --- cursor logic, against an in-memory index -------------------------------------------------------------------------


class MemoryIndex:
    """The ExpiryIndex port over a sorted list of entries (one bucket per hour, keys as the adapter writes them)."""

    def __init__(self, entries: Sequence[IndexEntry] = ()) -> None:
        self.entries = sorted(entries, key=lambda e: e.key)
        self.state = ScanState()
        self.lease: str | None = None
        self.marked: list[tuple[str, int]] = []
        self.reads = 0

    def begin(self, run_id: str, now: datetime, lease_until: datetime) -> ScanState | None:
        if self.lease is not None:
            return None
        self.lease = run_id
        return ScanState(self.state.due_from, dict(self.state.windows))

    def finish(self, run_id: str, state: ScanState, now: datetime) -> bool:
        self.state, self.lease = state, None
        return True

    def read(
        self, hour: datetime, *, after: str | None, until: datetime, limit: int, not_warned: int | None = None
    ) -> IndexPage:
        self.reads += 1
        keys = [e.key for e in self.entries]
        start = bisect.bisect_left(keys, after) if after else 0
        chosen = [
            e
            for e in self.entries[start:]
            if hour_of(datetime.fromisoformat(e.key.split("#")[0])) == hour and e.key < bound_key(until)
        ][:limit]
        more = len(chosen) == limit
        visible = [
            e
            for e in chosen
            if e.key != after and not (not_warned and isinstance(e, IndexedLot) and not_warned in e.warned)
        ]
        return IndexPage(visible, chosen[-1].key if more else None)

    def mark_warned(self, warned: Sequence[tuple[IndexedLot, int]]) -> list[bool]:
        self.marked += [(entry.lot.lot_id, window) for entry, window in warned]
        for entry, window in warned:
            index = self.entries.index(entry)
            self.entries[index] = IndexedLot(entry.user_id, entry.lot, entry.key, entry.warned | {window})
        return [True] * len(warned)

    def clear_low(self, marks: Sequence[LowMark]) -> list[bool]:
        return [True] * len(marks)


class Credits:
    """Only what warnings read: one snapshot per group, every lot with all its tokens left."""

    def __init__(self, lots: list[Lot]) -> None:
        self.lots = lots
        self.snapshots = 0

    def snapshot(self, user_id: str, offer_group: str | None = None, *, consistent: bool = True) -> CreditSnapshot:
        self.snapshots += 1
        mine = [lot for lot in self.lots if lot.offer_group == offer_group]
        return CreditSnapshot(groups={offer_group or "": GroupState(offer_group=offer_group or "")}, lots=mine)


class Catalog:
    def group_policy(self, offer_group: str) -> GroupPolicy:
        return GroupPolicy(offer_group=offer_group)


class Bus:
    def __init__(self, reject: set[str] | None = None) -> None:
        self.reject = reject or set()
        self.sent: list[str] = []

    def publish_each(self, events: list[DomainEvent]) -> list[bool]:
        results = [str(e.detail["lotId"]) not in self.reject for e in events]
        self.sent += [str(e.detail["lotId"]) for e, ok in zip(events, results, strict=True) if ok]
        return results


def indexed(lot_id: str, expires: datetime) -> IndexedLot:
    return IndexedLot("u", lot(lot_id, expires), f"{expires.isoformat()}#u#G#{lot_id}")


def run(index: MemoryIndex, credits: Credits, bus: Bus, clock: FixedClock, **kwargs: Any) -> Any:
    return scan_expiry(
        run_id="r",
        lease=timedelta(minutes=1),
        windows=kwargs.pop("windows", (DAY,)),
        budget=kwargs.pop("budget", Unlimited()),
        index=index,
        credits=credits,  # type: ignore[arg-type]
        catalog=Catalog(),  # type: ignore[arg-type]
        events=bus,
        clock=clock,
        **kwargs,
    )


def test_a_window_cursor_stops_before_a_rejected_warning_and_reads_only_new_keys_after() -> None:
    # Given three lots entering the 1-day window, the middle one's warning rejected once
    entries = [indexed(name, T0 + timedelta(days=1, minutes=n)) for n, name in enumerate("ABC")]
    index, credits, bus, clock = MemoryIndex(entries), Credits([e.lot for e in entries]), Bus({"B"}), FixedClock(T0)
    run(index, credits, bus, clock)  # the window is read up to T0 + 1 day: nothing yet
    clock.advance(minutes=10)
    # When runs go on
    first = run(index, credits, bus, clock, page_size=2)
    bus.reject.clear()
    second = run(index, credits, bus, clock, page_size=2)
    # Then A was sent, B waited for the next run, C was sent by the first run or the second: each once
    assert (first.caught_up, second.caught_up) == (False, True)
    assert sorted(bus.sent) == ["A", "B", "C"] and len(bus.sent) == 3
    assert sorted(index.marked) == [("A", DAY), ("B", DAY), ("C", DAY)]
    # and a run with nothing new reads the window's last bucket from where it stopped, once
    reads = index.reads
    run(index, credits, bus, clock)
    assert index.reads - reads <= 3  # the due buckets (previous and current hour) and the window's one


def test_another_run_holding_the_lease_makes_this_one_skip() -> None:
    index = MemoryIndex()
    index.lease = "other"
    assert run(index, Credits([]), Bus(), FixedClock(T0)).skipped


def test_a_page_of_one_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        run(MemoryIndex(), Credits([]), Bus(), FixedClock(T0), page_size=1)


def test_a_clock_that_went_back_reads_nothing_twice_and_stops() -> None:
    # Given a window read up to a day from now, then a clock an hour earlier
    entries = [indexed("A", T0 + timedelta(hours=20))]
    index, credits, bus, clock = MemoryIndex(entries), Credits([e.lot for e in entries]), Bus(), FixedClock(T0)
    run(index, credits, bus, clock)
    clock.advance(hours=-1)
    # When a run starts, it ends (no loop) and sends nothing again
    assert run(index, credits, bus, clock).caught_up
    assert bus.sent == ["A"]
