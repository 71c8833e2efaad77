"""Expiry rules on the in-memory credits repository: lots past their expiry close exactly once with their unused
tokens, holds whose tokens expired are cut newest first, the expiry writes its events, and the per-user expiry
check lists what expired and warns about what is about to."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.credits import InMemoryCreditsRepository
from tests.helpers.credits_world import USER, CreditsWorld
from usercredits.domain import expiry_check, lapses
from usercredits.domain.models import LedgerKind, ReservationStatus

DAY = 86400


def check(world: CreditsWorld, *, warn_days: int = 1, low: dict[str, int] | None = None) -> expiry_check.ExpiryReport:
    return expiry_check.check_expiry(
        USER,
        warn_before_seconds=warn_days * DAY,
        low=low or {},
        credits=world.credits,
        clock=world.clock,
        catalog=world.catalog,
    )


def test_an_expiry_closes_due_lots_with_their_unused_tokens_and_a_used_up_lot_silently(world: CreditsWorld) -> None:
    # Given a used-up lot and a half-used one, both expiring tomorrow, and a lot that never expires
    world.grant(4, days=1)
    world.grant(6, days=1)
    world.grant(5)
    world.consume(7)
    # When their expiry passes
    world.clock.advance(days=2)
    expired = world.expire()
    # Then both close, only the unused 3 tokens expire, with one movement and one event
    assert (expired.tokens, expired.lots) == (3, 2)
    assert world.figures() == (5, 0, 5)
    assert [(entry.kind, entry.tokens) for entry in world.ledger() if entry.kind is LedgerKind.EXPIRE] == [
        (LedgerKind.EXPIRE, -3)
    ]
    assert [event.detail["tokens"] for event in world.credits.outbox if event.kind == "CreditsExpired"] == [3]
    assert sorted(lot.expired for lot in world.credits.closed_lots(USER)) == [0, 3]
    state = world.credits.group_state(USER, "G")
    assert state is not None and (state.expired_lots, state.drawn, state.next_expiry) == (2, 0, None)


def test_an_expiry_happens_once(world: CreditsWorld) -> None:
    world.grant(10, days=1)
    world.clock.advance(days=2)
    assert world.expire().tokens == 10
    assert world.expire() == lapses.Expired()
    assert world.outbox_kinds().count("CreditsExpired") == 1


def test_the_next_expiry_moves_to_the_soonest_lot_left(world: CreditsWorld) -> None:
    world.grant(1, days=1)
    world.grant(1, days=5)
    world.clock.advance(days=2)
    world.expire()
    state = world.credits.group_state(USER, "G")
    assert state is not None and state.next_expiry == world.clock.now() + timedelta(days=3)


def test_an_expiry_cuts_the_holds_it_leaves_uncovered_newest_first(world: CreditsWorld) -> None:
    # Given 10 expiring tokens, 4 that stay, and two holds of 5 then 6 (newest)
    world.grant(10, days=1)
    world.grant(4)
    older = world.hold(5, seconds=7 * DAY)
    newer = world.hold(6, seconds=7 * DAY)
    # When the 10 expire, 4 are left for 11 held
    world.clock.advance(days=2)
    assert world.expire().tokens == 10
    # Then the newest hold is released and the older cut by one
    cut_newer = world.credits.get_hold(USER, newer.reservation_id)
    cut_older = world.credits.get_hold(USER, older.reservation_id)
    assert cut_newer is not None and cut_older is not None
    assert (cut_newer.status, cut_newer.count, cut_newer.reduced) == (ReservationStatus.RELEASED, 0, 6)
    assert (cut_older.status, cut_older.count, cut_older.reduced) == (ReservationStatus.HELD, 4, 1)
    assert world.figures() == (4, 4, 0)
    assert world.capture(cut_older).captured == 4


def test_an_expiry_leaves_holds_alone_when_what_is_left_covers_them(world: CreditsWorld) -> None:
    world.grant(10, days=1)
    world.grant(10)
    hold = world.hold(8, seconds=7 * DAY)
    world.clock.advance(days=2)
    world.expire()
    kept = world.credits.get_hold(USER, hold.reservation_id)
    assert kept is not None and (kept.status, kept.count) == (ReservationStatus.HELD, 8)
    assert world.figures() == (10, 8, 2)


def test_an_expiry_crossing_the_low_threshold_writes_credits_low_with_it(world: CreditsWorld) -> None:
    world.policy(low_threshold=5)
    world.grant(10, days=1)
    world.grant(3)
    world.clock.advance(days=2)
    world.expire()
    [low] = [event for event in world.credits.outbox if event.kind == "CreditsLow"]
    assert (low.detail["balance"], low.detail["threshold"]) == (3, 5)


def test_a_read_expires_the_lots_past_their_expiry_first(world: CreditsWorld) -> None:
    world.grant(10, days=1)
    world.grant(2)
    world.clock.advance(days=2)
    shown = world.shown()
    assert (shown.balance, [lot.tokens for lot in shown.lots]) == (2, [2])
    assert "CreditsExpired" in world.outbox_kinds()


def test_a_large_batch_expires_in_steps_and_every_lot_once() -> None:
    world = CreditsWorld(credits=InMemoryCreditsRepository(journal_max=10, journal_keep=4))
    for _ in range(120):
        world.grant(1, days=1)
    world.clock.advance(days=2)
    expired = world.expire()
    assert (expired.tokens, expired.lots) == (120, 120)
    assert world.figures() == (0, 0, 0)
    assert world.outbox_kinds().count("CreditsExpired") == 120


def test_check_expiry_lists_groups_whose_lots_expired_and_nothing_valid_is_left(world: CreditsWorld) -> None:
    world.grant(10, "Gone", days=1)
    world.grant(10, "Kept", days=1)
    world.grant(1, "Kept")
    world.clock.advance(days=2)
    report = check(world)
    assert [group.offer_group for group in report.expired] == ["Gone"]
    assert world.figures("Gone") == (0, 0, 0) and world.figures("Kept") == (1, 0, 1)


def test_check_expiry_warns_of_lots_expiring_soon_and_of_low_groups(world: CreditsWorld) -> None:
    now = world.clock.now()
    world.grant(10, "Soon", days=2)
    world.grant(10, "Later", days=5)
    world.grant(3, "Low")
    report = check(world, warn_days=3, low={"Low": 5, "Never": 0, "Later": 1})
    assert [(w.offer_group, w.kind, w.balance, w.expires, w.min) for w in report.warnings] == [
        ("Soon", "expiring", 10, now + timedelta(days=2), None),
        ("Low", "low", 3, None, 5),
        ("Never", "low", 0, None, 0),
    ]
    assert report.expired == []


def test_check_expiry_does_not_warn_of_a_used_up_lot(world: CreditsWorld) -> None:
    world.grant(10, days=2)
    world.grant(5)
    world.consume(10)
    assert check(world, warn_days=3).warnings == []


@pytest.mark.parametrize("spent", [0, 4])
def test_an_expiry_keeps_the_ledger_equal_to_the_balance(world: CreditsWorld, spent: int) -> None:
    world.grant(10, days=1)
    world.grant(5, days=3)
    if spent:
        world.consume(spent)
    world.clock.advance(days=2)
    world.expire()
    assert sum(entry.tokens for entry in world.ledger()) == world.figures()[0] == 5
