"""Grant rules on the in-memory credits repository: a grant adds a lot and its CreditsGranted in one write, keeps
the group's soonest expiry, is idempotent with a key, and a lot granted with an expiry expires."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.credits_world import USER, CreditsWorld
from usercredits.domain.models import LedgerKind
from usercredits.errors import ConflictError, InvalidRequestError


def test_a_grant_adds_a_lot_its_movement_and_its_event(world: CreditsWorld) -> None:
    entry = world.grant(10, days=30)
    assert (entry.kind, entry.tokens, entry.balance_after, entry.seq) == (LedgerKind.GRANT, 10, 10, 1)
    [lot] = world.shown().lots
    assert (lot.lot_id, lot.tokens, lot.remaining, lot.expires) == (
        entry.lot_id,
        10,
        10,
        world.clock.now() + timedelta(days=30),
    )
    [event] = world.credits.outbox
    assert event.kind == "CreditsGranted"
    assert (event.detail["userId"], event.detail["offerGroup"]) == (USER, "G")


def test_the_group_remembers_the_soonest_expiry_of_its_lots(world: CreditsWorld) -> None:
    now = world.clock.now()
    world.grant(5, days=10)
    world.grant(5)
    world.grant(5, days=3)
    world.grant(5, days=7)
    state = world.credits.group_state(USER, "G")
    assert state is not None and state.next_expiry == now + timedelta(days=3)


@pytest.mark.parametrize(("tokens", "days"), [(0, None), (-3, None), (5, 0), (5, -1)])
def test_a_grant_of_no_tokens_or_that_expires_at_once_is_invalid(
    world: CreditsWorld, tokens: int, days: float | None
) -> None:
    with pytest.raises(InvalidRequestError):
        world.grant(tokens, days=days)
    assert world.credits.group_state(USER, "G") is None


def test_a_repeated_idempotent_grant_answers_the_first_entry_and_grants_once(world: CreditsWorld) -> None:
    first = world.grant(10, key="g1")
    assert world.grant(10, key="g1") == first
    assert world.figures() == (10, 0, 10)
    assert world.outbox_kinds() == ["CreditsGranted"]
    with pytest.raises(ConflictError, match="different request"):
        world.grant(11, key="g1")


def test_a_lot_granted_with_an_expiry_loses_its_unused_tokens_at_that_moment(world: CreditsWorld) -> None:
    # Given 10 tokens granted for a day, 4 of them spent
    world.grant(10, days=1)
    world.consume(4)
    # When the expiry passes (at the exact moment)
    world.clock.advance(days=1)
    expired = world.expire()
    # Then the 6 unused tokens left the balance, the lot is closed with them
    assert (expired.tokens, expired.lots) == (6, 1)
    assert world.figures() == (0, 0, 0)
    [closed] = world.credits.closed_lots(USER)
    assert (closed.closed, closed.expired) == (True, 6)
    assert world.ledger()[0].kind is LedgerKind.EXPIRE


def test_a_lot_granted_with_an_expiry_is_untouched_before_it(world: CreditsWorld) -> None:
    world.grant(10, days=1)
    world.clock.advance(days=1, seconds=-1)
    assert world.expire().tokens == 0
    assert world.figures() == (10, 0, 10)
