"""Hold rules on the in-memory credits repository: a hold sets tokens aside, a capture spends part or all of them,
a release gives them back, an expired hold is never captured, and keys make holds idempotent."""

from __future__ import annotations

import pytest

from tests.helpers.credits_world import USER, CreditsWorld
from tests.helpers.present import present
from usercredits.domain import reservations
from usercredits.domain.models import LedgerKind, ReservationStatus
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError, NotFoundError


def test_a_hold_reduces_the_available_balance_not_the_balance(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    assert (hold.status, hold.count) == (ReservationStatus.HELD, 6)
    assert world.figures() == (10, 6, 4)
    assert world.ledger()[0].kind is LedgerKind.HOLD


def test_a_hold_past_the_available_balance_is_refused_and_sets_nothing_aside(world: CreditsWorld) -> None:
    world.grant(10)
    world.hold(6)
    with pytest.raises(InsufficientCreditsError, match="4 available"):
        world.hold(5)
    assert world.figures() == (10, 6, 4)


def test_held_tokens_cannot_be_spent(world: CreditsWorld) -> None:
    world.grant(10)
    world.hold(6)
    with pytest.raises(InsufficientCreditsError):
        world.consume(5)
    assert world.consume(4).balance == 6


def test_a_partial_capture_spends_what_it_took_and_gives_the_rest_back(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    captured = world.capture(hold, 4)
    assert (captured.status, captured.captured) == (ReservationStatus.CAPTURED, 4)
    assert world.figures() == (6, 0, 6)
    capture = world.ledger()[0]
    assert (capture.kind, capture.tokens, capture.held, capture.balance_after) == (LedgerKind.CAPTURE, -4, -6, 6)


def test_a_capture_without_a_count_takes_everything_held(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    assert world.capture(hold).captured == 6
    assert world.figures() == (4, 0, 4)
    assert [lot.remaining for lot in world.shown().lots] == [4]  # captured tokens are drawn from the lots


def test_a_capture_of_more_than_is_held_is_invalid(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    with pytest.raises(InvalidRequestError):
        world.capture(hold, 7)
    assert world.figures() == (10, 6, 4)


def test_a_repeated_capture_answers_the_capture_and_spends_once(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    first = world.capture(hold, 4)
    assert world.capture(hold, 4) == first
    assert world.figures() == (6, 0, 6)
    with pytest.raises(ConflictError, match="captured"):
        world.capture(hold, 5)  # another count: not a repeat
    with pytest.raises(ConflictError, match="captured"):
        world.release(hold)


def test_a_release_gives_everything_back_and_a_repeat_answers_it(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6)
    released = world.release(hold)
    assert released.status is ReservationStatus.RELEASED
    assert world.release(hold) == released
    assert world.figures() == (10, 0, 10)
    with pytest.raises(ConflictError, match="released"):
        world.capture(hold)


def test_an_expired_hold_is_not_captured_and_its_tokens_go_back(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6, seconds=60)
    world.clock.advance(seconds=60)
    with pytest.raises(ConflictError, match="expired"):
        world.capture(hold)
    stored = world.credits.get_hold(USER, hold.reservation_id)
    assert stored is not None and stored.status is ReservationStatus.RELEASED
    assert world.figures() == (10, 0, 10)


def test_a_read_releases_holds_past_their_expiry(world: CreditsWorld) -> None:
    world.grant(10)
    hold = world.hold(6, seconds=60)
    world.clock.advance(minutes=2)
    assert world.figures() == (10, 0, 10)
    release = world.ledger()[0]
    assert (release.kind, release.held, release.reason) == (LedgerKind.RELEASE, -6, "hold expired")
    assert present(world.credits.get_hold(USER, hold.reservation_id)).status is ReservationStatus.RELEASED


def test_a_hold_refused_while_a_lapsed_hold_still_counts_releases_it_and_goes_through(world: CreditsWorld) -> None:
    world.grant(10)
    world.hold(8, seconds=60)
    world.clock.advance(minutes=2)
    assert world.hold(9).count == 9
    assert world.figures() == (10, 9, 1)


def test_a_repeated_idempotent_hold_answers_the_first_and_another_body_is_a_conflict(world: CreditsWorld) -> None:
    world.grant(10)
    first = world.hold(3, key="h1")
    assert world.hold(3, key="h1") == first
    assert world.figures() == (10, 3, 7)
    with pytest.raises(ConflictError, match="different request"):
        world.hold(4, key="h1")


def test_an_unknown_hold_is_not_found(world: CreditsWorld) -> None:
    with pytest.raises(NotFoundError):
        reservations.get_reservation(USER, "nope", credits=world.credits)


def test_a_capture_crossing_the_low_threshold_publishes_credits_low(world: CreditsWorld) -> None:
    world.policy(low_threshold=5)
    world.grant(10)
    hold = world.hold(6)
    assert world.events.kinds() == []  # holding moves no balance
    world.capture(hold)
    [event] = world.events.accepted
    assert (event.kind, event.detail["balance"]) == ("CreditsLow", 4)
