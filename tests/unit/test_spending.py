"""Spending rules on the in-memory credits repository: what a spend may take, overdraft floors, burn order,
idempotent replays, the CreditsLow crossing and usage totals."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.credits import InMemoryCreditsRepository
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.credits_world import USER, CreditsWorld
from usercredits.domain import balances
from usercredits.domain.models import LedgerKind
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError


def test_consume_within_the_available_balance_spends_and_answers_the_balance_after(world: CreditsWorld) -> None:
    # Given 10 tokens
    world.grant(10)
    # When 4 are spent
    consumed = world.consume(4)
    # Then the answer and the ledger say so
    assert (consumed.offer_group, consumed.consumed, consumed.balance) == ("G", 4, 6)
    [spend, _] = world.ledger()
    assert (spend.entry_id, spend.kind, spend.tokens, spend.balance_after) == (
        consumed.entry_id,
        LedgerKind.CONSUME,
        -4,
        6,
    )
    assert world.figures() == (6, 0, 6)


def test_consume_past_the_available_balance_is_refused_and_writes_nothing(world: CreditsWorld) -> None:
    world.grant(10)
    with pytest.raises(InsufficientCreditsError, match="10 available"):
        world.consume(11)
    assert world.figures() == (10, 0, 10)
    assert len(world.ledger()) == 1


def test_consume_of_all_that_is_available_leaves_zero(world: CreditsWorld) -> None:
    world.grant(10)
    assert world.consume(10).balance == 0


def test_consume_of_less_than_one_token_is_invalid(world: CreditsWorld) -> None:
    world.grant(10)
    with pytest.raises(InvalidRequestError):
        world.consume(0)


def test_consume_burns_the_soonest_expiring_lot_first_and_lots_without_expiry_last(world: CreditsWorld) -> None:
    world.grant(5)
    world.grant(5, days=10)
    world.grant(5, days=2)
    world.consume(7)
    now = world.clock.now()
    assert [(lot.expires, lot.remaining) for lot in world.shown().lots] == [
        (now + timedelta(days=2), 0),
        (now + timedelta(days=10), 3),
        (None, 5),
    ]


def test_a_group_never_bought_refuses_spends_without_an_overdraft(world: CreditsWorld) -> None:
    with pytest.raises(InsufficientCreditsError, match="0 available"):
        world.consume(1)
    assert world.credits.group_state(USER, "G") is None


@pytest.mark.parametrize(("bought", "limit"), [(0, 5), (3, 5), (10, 0)])
def test_a_limited_overdraft_spends_down_to_its_floor_and_no_further(
    world: CreditsWorld, bought: int, limit: int
) -> None:
    # Given a group whose balance may go down to -limit (bought or not)
    world.policy(overdraft="limited", overdraft_limit=limit)
    if bought:
        world.grant(bought)
    # When everything down to the floor is spent, then one more token
    assert world.consume(bought + limit).balance == -limit
    with pytest.raises(InsufficientCreditsError):
        world.consume(1)
    # Then the balance stays at the floor, the debt shown
    shown = world.shown()
    assert (shown.balance, shown.debt) == (-limit, limit)


def test_an_unlimited_overdraft_never_refuses(world: CreditsWorld) -> None:
    world.policy(overdraft="unlimited")
    assert world.consume(1_000_000).balance == -1_000_000


def test_a_grant_after_an_overdraft_repays_the_debt_first(world: CreditsWorld) -> None:
    world.policy(overdraft="limited", overdraft_limit=5)
    world.grant(3)
    world.consume(8)
    world.grant(10)
    shown = world.shown()
    assert (shown.balance, shown.debt) == (5, 0)
    assert [lot.remaining for lot in shown.lots] == [0, 5]


def test_a_repeated_idempotent_spend_answers_the_first_result_and_spends_once(world: CreditsWorld) -> None:
    world.grant(10)
    first = world.consume(3, key="k1")
    world.consume(2)
    assert world.consume(3, key="k1") == first
    assert world.figures() == (5, 0, 5)


@pytest.mark.parametrize(("count", "group"), [(4, "G"), (3, "H")])
def test_an_idempotency_key_reused_with_another_request_is_a_conflict(
    world: CreditsWorld, count: int, group: str
) -> None:
    world.grant(10)
    world.grant(10, "H")
    world.consume(3, key="k1")
    with pytest.raises(ConflictError, match="different request"):
        world.consume(count, group, key="k1")
    assert (world.figures("G"), world.figures("H")) == ((7, 0, 7), (10, 0, 10))


def test_credits_low_is_published_once_when_a_spend_crosses_the_threshold(world: CreditsWorld) -> None:
    # Given a threshold of 5 and 10 tokens
    world.policy(low_threshold=5)
    world.grant(10)
    # When spends take the balance to 6, 4 then 3
    world.consume(4)
    crossing = world.consume(2)
    world.consume(1)
    # Then only the crossing published CreditsLow, and its mark was cleared once published
    [event] = world.events.accepted
    assert event.kind == "CreditsLow"
    assert {key: event.detail[key] for key in ("userId", "offerGroup", "balance", "threshold")} == {
        "userId": USER,
        "offerGroup": "G",
        "balance": 4,
        "threshold": 5,
    }
    assert str(event.detail["eventId"]).startswith("CreditsLow#") and crossing.entry_id in str(event.detail["eventId"])
    assert world.credits.marked_low(USER) == {}


def test_credits_low_is_not_published_again_below_or_from_the_threshold(world: CreditsWorld) -> None:
    # Given a balance already at the threshold
    world.policy(low_threshold=5)
    world.grant(5)
    # When spends take it further down
    world.consume(1)
    world.consume(1)
    # Then no crossing happened, so nothing was published or marked
    assert world.events.accepted == []
    assert world.credits.marked_low(USER) == {}


def test_credits_low_that_could_not_be_published_stays_marked_and_the_spend_stands(world: CreditsWorld) -> None:
    world.policy(low_threshold=5)
    world.grant(10)
    world.events = RecordingEventPublisher(failure=RuntimeError("bus down"))
    assert world.consume(6).balance == 4
    assert list(world.credits.marked_low(USER)) == ["G"]


def test_a_spend_refused_by_a_lot_past_its_expiry_expires_it_and_goes_through(world: CreditsWorld) -> None:
    # Given 10 tokens expiring tomorrow and 5 that never expire
    world.grant(10, days=1)
    world.grant(5)
    # When a spend comes two days later
    world.clock.advance(days=2)
    consumed = world.consume(3)
    # Then the 10 expired first and the spend took from the 5
    assert consumed.balance == 2
    assert world.outbox_kinds() == ["CreditsGranted", "CreditsGranted", "CreditsExpired"]


def test_a_long_journal_is_compacted_and_the_ledger_still_has_every_movement_exactly() -> None:
    # Given a journal compacted past 6 movements down to 2
    world = CreditsWorld(credits=InMemoryCreditsRepository(journal_max=6, journal_keep=2))
    world.grant(100)
    first = world.consume(1, key="k1")
    for _ in range(9):
        world.consume(1)
    # Then the group keeps a short journal, and every movement is still in the ledger with its exact balance
    state = world.credits.group_state(USER, "G")
    assert state is not None and len(state.journal) <= 6 and state.journal_first_seq > 1
    assert [entry.balance_after for entry in world.ledger()] == list(range(90, 101))
    assert [entry.seq for entry in world.ledger()] == list(range(11, 0, -1))
    # And a replay of an archived spend still answers its first result
    assert world.consume(1, key="k1") == first
    assert world.figures() == (90, 0, 90)


def test_usage_totals_sum_the_movements_in_the_window_per_group(world: CreditsWorld) -> None:
    start = world.clock.now()
    world.grant(10)
    world.grant(10, "H")
    world.consume(3)
    world.clock.advance(days=1)
    world.consume(2)
    world.consume(4, "H")
    world.clock.advance(days=1)
    world.consume(1)  # after the window

    def totals(spent_only: bool) -> dict[str, int]:
        return balances.usage_totals(
            USER, start=start, end=start + timedelta(days=2), spent_only=spent_only, credits=world.credits
        )

    assert totals(spent_only=True) == {"G": -5, "H": -4}
    assert totals(spent_only=False) == {"G": 5, "H": 6}
