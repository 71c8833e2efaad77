"""The credits repository contract: each scenario runs against the in-memory fake and the real DynamoDB repository
(on moto) and must give the same results, so the fake the unit tests rely on cannot drift from the adapter."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
import pytest

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.credits import InMemoryCreditsRepository
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.present import present
from tests.integration.conftest import outbox_events
from usercredits.adapters.dynamodb import credits as credits_adapter
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.domain import balances, lapses, reservations, spending
from usercredits.domain.models import GroupPolicy, LedgerKind, Lot, Movement, Reservation, ReservationStatus
from usercredits.domain.ports import CreditsRepository, SpendRefusedError, StaleWindowError
from usercredits.errors import ConflictError, InsufficientCreditsError
from usercredits.kernel.ids import new_ulid

USER = "u1"
#: Small limits, the same for both repositories, so paging and compaction happen within a few movements.
LOTS_SHOWN, JOURNAL_MAX, JOURNAL_KEEP = 2, 6, 2


@dataclass
class Bench:
    """One repository under test with the ports the use cases need, and a way to read its outbox."""

    credits: CreditsRepository
    outbox: Callable[[], list[tuple[str, dict[str, Any]]]]
    clock: FixedClock = field(default_factory=FixedClock)
    catalog: InMemoryCatalogRepository = field(default_factory=InMemoryCatalogRepository)

    def grant(self, tokens: int, group: str = "G", *, days: float | None = None, key: str | None = None) -> Any:
        expires = self.clock.now() + timedelta(days=days) if days is not None else None
        return spending.grant_credits(
            USER,
            group,
            tokens,
            expires=expires,
            reason="t",
            idempotency_key=key,
            credits=self.credits,
            clock=self.clock,
        )

    def consume(self, count: int, group: str = "G", *, key: str | None = None) -> spending.Consumed:
        return spending.consume_credits(
            USER,
            group,
            count,
            idempotency_key=key,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
            events=RecordingEventPublisher(),
        )

    def hold(self, count: int, group: str = "G", *, seconds: int | None = None) -> Any:
        return reservations.create_reservation(
            USER,
            group,
            count,
            expires_in_seconds=seconds,
            idempotency_key=None,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
        )

    def figures(self, group: str = "G") -> tuple[int, int, int]:
        """(balance, held, available) of the group as a read shows it."""
        shown = balances.get_credit_group(USER, group, credits=self.credits, clock=self.clock, catalog=self.catalog)
        return shown.balance, shown.held, shown.available


def _moto_outbox() -> list[tuple[str, dict[str, Any]]]:
    import os

    items = boto3.client("dynamodb").scan(TableName=os.environ["CREDITS_TABLE_NAME"])["Items"]
    return outbox_events(items)


@pytest.fixture(params=["in_memory", "dynamodb"])
def bench(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Bench:
    if request.param == "in_memory":
        fake = InMemoryCreditsRepository(lots_shown=LOTS_SHOWN, journal_max=JOURNAL_MAX, journal_keep=JOURNAL_KEEP)
        return Bench(fake, lambda: [(event.kind, event.detail) for event in fake.outbox])
    request.getfixturevalue("moto_tables")
    monkeypatch.setattr(credits_adapter, "LOTS_SHOWN", LOTS_SHOWN)
    monkeypatch.setattr(credits_adapter, "JOURNAL_MAX", JOURNAL_MAX)
    monkeypatch.setattr(credits_adapter, "JOURNAL_KEEP", JOURNAL_KEEP)
    return Bench(DynamoCreditsRepository(), _moto_outbox)


def test_a_spend_the_available_balance_covers_goes_through_and_one_it_does_not_is_refused(bench: Bench) -> None:
    bench.grant(10)
    assert bench.consume(4).balance == 6
    with pytest.raises(InsufficientCreditsError, match="6 available"):
        bench.consume(7)
    assert bench.figures() == (6, 0, 6)


def test_a_group_never_bought_is_spent_down_to_its_overdraft_floor_and_no_further(bench: Bench) -> None:
    bench.catalog.put_group_policy(GroupPolicy(offer_group="G", overdraft="limited", overdraft_limit=5))
    with pytest.raises(InsufficientCreditsError):
        bench.consume(6)
    assert bench.credits.group_state(USER, "G") is None  # a refused spend writes nothing
    assert bench.consume(5).balance == -5
    with pytest.raises(InsufficientCreditsError):
        bench.consume(1)
    assert bench.figures() == (-5, 0, -5)


def test_a_group_never_bought_is_refused_without_overdraft_and_unlimited_with_it(bench: Bench) -> None:
    with pytest.raises(InsufficientCreditsError):
        bench.consume(1)
    bench.catalog.put_group_policy(GroupPolicy(offer_group="P", overdraft="unlimited"))
    assert bench.consume(1000, "P").balance == -1000


def test_a_hold_sets_tokens_aside_and_its_capture_spends_part_of_them(bench: Bench) -> None:
    bench.grant(10)
    hold = bench.hold(6)
    assert bench.figures() == (10, 6, 4)
    with pytest.raises(InsufficientCreditsError):
        bench.consume(5)
    captured = reservations.capture_reservation(
        USER,
        hold.reservation_id,
        4,
        credits=bench.credits,
        clock=bench.clock,
        catalog=bench.catalog,
        events=RecordingEventPublisher(),
    )
    assert (captured.status, captured.captured) == (ReservationStatus.CAPTURED, 4)
    assert bench.figures() == (6, 0, 6)
    again = bench.hold(6)
    released = reservations.release_reservation(USER, again.reservation_id, credits=bench.credits, clock=bench.clock)
    assert released.status is ReservationStatus.RELEASED
    assert bench.figures() == (6, 0, 6)
    # A second settlement of the hold as first read finds it no longer held: nothing is written.
    movement = Movement(
        entry_id=new_ulid(bench.clock.now()),
        kind=LedgerKind.RELEASE,
        tokens=0,
        held=-again.count,
        created_at=bench.clock.now(),
    )
    assert bench.credits.finish_hold(USER, again, released, movement) is False
    assert bench.figures() == (6, 0, 6)


def test_an_expired_hold_is_not_captured_and_gives_its_tokens_back(bench: Bench) -> None:
    bench.grant(10)
    hold = bench.hold(3, seconds=60)
    bench.clock.advance(seconds=61)
    with pytest.raises(ConflictError, match="expired"):
        reservations.capture_reservation(
            USER,
            hold.reservation_id,
            None,
            credits=bench.credits,
            clock=bench.clock,
            catalog=bench.catalog,
            events=RecordingEventPublisher(),
        )
    assert present(bench.credits.get_hold(USER, hold.reservation_id)).status is ReservationStatus.RELEASED
    assert bench.figures() == (10, 0, 10)


def test_a_granted_lot_expires_with_its_unused_tokens_once(bench: Bench) -> None:
    bench.grant(10, days=1)
    bench.grant(5)
    bench.consume(3)  # burns the expiring lot first
    bench.clock.advance(days=2)
    expired = lapses.expire_group(USER, "G", credits=bench.credits, clock=bench.clock, catalog=bench.catalog)
    assert (expired.tokens, expired.lots) == (7, 1)
    assert lapses.expire_group(USER, "G", credits=bench.credits, clock=bench.clock, catalog=bench.catalog).tokens == 0
    state = bench.credits.group_state(USER, "G")
    assert state is not None
    assert (state.balance, state.drawn, state.expired_lots, state.next_expiry) == (5, 0, 1, None)
    assert [(kind, detail["tokens"]) for kind, detail in bench.outbox() if kind == "CreditsExpired"] == [
        ("CreditsExpired", 7)
    ]
    ledger = balances.list_ledger(USER, offer_group="G", limit=10, cursor=None, credits=bench.credits).items
    assert [(entry.kind, entry.tokens, entry.balance_after) for entry in ledger] == [
        (LedgerKind.EXPIRE, -7, 5),
        (LedgerKind.CONSUME, -3, 12),
        (LedgerKind.GRANT, 5, 15),
        (LedgerKind.GRANT, 10, 10),
    ]


def test_an_expiry_cuts_the_holds_its_tokens_were_set_aside_for(bench: Bench) -> None:
    bench.grant(10, days=1)
    hold = bench.hold(8, seconds=7 * 86400)
    bench.clock.advance(days=2)
    assert lapses.expire_group(USER, "G", credits=bench.credits, clock=bench.clock, catalog=bench.catalog).tokens == 10
    cut = bench.credits.get_hold(USER, hold.reservation_id)
    assert cut is not None
    assert (cut.status, cut.count, cut.reduced) == (ReservationStatus.RELEASED, 0, 8)
    assert bench.figures() == (0, 0, 0)


def test_a_repeated_idempotent_spend_answers_the_first_and_the_key_with_another_body_is_a_conflict(
    bench: Bench,
) -> None:
    bench.grant(10)
    first = bench.consume(3, key="k1")
    assert bench.consume(3, key="k1") == first
    with pytest.raises(ConflictError, match="different request"):
        bench.consume(4, key="k1")
    assert bench.figures() == (7, 0, 7)


def test_a_repeated_idempotent_grant_grants_once(bench: Bench) -> None:
    first = bench.grant(10, key="g1")
    assert bench.grant(10, key="g1") == first
    assert bench.figures() == (10, 0, 10)
    assert [kind for kind, _ in bench.outbox()] == ["CreditsGranted"]


def test_reads_show_the_first_lots_and_a_cursor_pages_through_the_others(bench: Bench) -> None:
    for days in (5, 1, 3, None, 2):
        bench.grant(2, days=days)
    bench.consume(3)
    pages = []
    cursor: str | None = None
    while True:
        shown = balances.get_credit_group(
            USER, "G", credits=bench.credits, clock=bench.clock, lots_after=cursor, catalog=bench.catalog
        )
        pages.append([(lot.tokens, lot.remaining, lot.expires) for lot in shown.lots])
        cursor = shown.lots_cursor
        if cursor is None:
            break
    now = bench.clock.now()
    assert pages == [
        [(2, 0, now + timedelta(days=1)), (2, 1, now + timedelta(days=2))],
        [(2, 2, now + timedelta(days=3)), (2, 2, now + timedelta(days=5))],
        [(2, 2, None)],
    ]
    [listed] = balances.list_credits(USER, credits=bench.credits, clock=bench.clock, catalog=bench.catalog)
    assert len(listed.lots) == LOTS_SHOWN and listed.lots_cursor is not None


def test_a_lots_cursor_stays_exact_after_the_group_changed(bench: Bench) -> None:
    for days in (1, 2, 3):
        bench.grant(2, days=days)
    cursor = balances.get_credit_group(
        USER, "G", credits=bench.credits, clock=bench.clock, catalog=bench.catalog
    ).lots_cursor
    bench.consume(5)  # the first two lots used up, one token of the third
    bench.grant(1)  # the group's version moves
    shown = balances.get_credit_group(
        USER, "G", credits=bench.credits, clock=bench.clock, lots_after=cursor, catalog=bench.catalog
    )
    assert [(lot.tokens, lot.remaining) for lot in shown.lots] == [(2, 1), (1, 1)]


def test_a_long_journal_is_compacted_and_every_movement_is_still_found(bench: Bench) -> None:
    bench.grant(100)
    spends = [bench.consume(1) for _ in range(8)]
    state = bench.credits.group_state(USER, "G")
    assert state is not None and len(state.journal) <= JOURNAL_MAX and state.journal_first_seq > 1
    first = bench.credits.find_entry(USER, "G", spends[0].entry_id)
    assert first is not None and first.balance_after == 99
    entries, cursor = [], None
    while True:
        page = balances.list_ledger(USER, offer_group=None, limit=3, cursor=cursor, credits=bench.credits)
        entries += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [entry.balance_after for entry in entries] == [92, 93, 94, 95, 96, 97, 98, 99, 100]
    assert [entry.seq for entry in entries] == list(range(9, 0, -1))


def test_credits_low_marks_are_set_and_cleared_only_by_their_own_mark(bench: Bench) -> None:
    bench.grant(10)
    mark = bench.credits.mark_low(USER, "G", bench.clock.now(), "fact-1")
    assert bench.credits.clear_low(USER, "G", "someone-else's") is False
    assert bench.credits.clear_low(USER, "G", mark) is True
    assert bench.credits.clear_low(USER, "G", mark) is False


def test_a_lots_cursor_stays_exact_after_lots_ahead_of_it_closed(bench: Bench) -> None:
    # Given four lots of 2 (days 1 to 4), 5 tokens spent, and the cursor after the first two
    for days in (1, 2, 3, 4):
        bench.grant(2, days=days)
    bench.consume(5)
    cursor = balances.get_credit_group(
        USER, "G", credits=bench.credits, clock=bench.clock, catalog=bench.catalog
    ).lots_cursor
    # When the first lot (used up) closes at its expiry before the next page is read
    bench.clock.advance(days=1, hours=12)
    shown = balances.get_credit_group(
        USER, "G", credits=bench.credits, clock=bench.clock, lots_after=cursor, catalog=bench.catalog
    )
    # Then what remains of the lots on that page is still exact
    assert [(lot.tokens, lot.remaining) for lot in shown.lots] == [(2, 1), (2, 2)]


def _capture(hold: Reservation, bench: Bench) -> tuple[Reservation, Movement]:
    now = bench.clock.now()
    after = hold.model_copy(update={"status": ReservationStatus.CAPTURED, "captured": hold.count, "updated_at": now})
    movement = Movement(
        entry_id=new_ulid(now), kind=LedgerKind.CAPTURE, tokens=-hold.count, held=-hold.count, created_at=now
    )
    return after, movement


def test_the_repository_refuses_to_capture_an_expired_hold(bench: Bench) -> None:
    bench.grant(10)
    hold = bench.hold(3, seconds=60)
    bench.clock.advance(seconds=60)
    assert bench.credits.finish_hold(USER, hold, *_capture(hold, bench)) is False
    state = bench.credits.group_state(USER, "G")
    assert state is not None and (state.balance, state.held) == (10, 3)


def test_the_repository_refuses_a_capture_while_a_lot_of_the_group_is_due(bench: Bench) -> None:
    bench.grant(10, days=1)
    hold = bench.hold(3, seconds=7 * 86400)
    bench.clock.advance(days=2)
    with pytest.raises(SpendRefusedError):
        bench.credits.finish_hold(USER, hold, *_capture(hold, bench))
    assert bench.credits.get_hold(USER, hold.reservation_id) == hold


def test_writes_planned_from_a_stale_read_of_the_group_are_refused(bench: Bench) -> None:
    # Given a group read, then moved by a spend and a grant
    bench.grant(10, days=1)
    read = bench.credits.group_state(USER, "G")
    snapshot = bench.credits.snapshot(USER, "G")
    bench.consume(1)
    bench.grant(1)
    # Then a lot added or lots closed against the old read are refused, and nothing changes
    now = bench.clock.now()
    lot = Lot(lot_id=new_ulid(now), offer_group="G", tokens=5, starts=now, granted_at=now)
    grant = Movement(entry_id=new_ulid(now), kind=LedgerKind.GRANT, tokens=5, lot_id=lot.lot_id, created_at=now)
    with pytest.raises(StaleWindowError):
        bench.credits.add_lot(USER, lot, grant, read, now)
    assert read is not None
    with pytest.raises(StaleWindowError):
        bench.credits.close_lots(USER, read, snapshot.lots, None, [], [], now)
    assert bench.figures() == (10, 0, 10)
