"""Property-based tests of the ledger invariant, through the real repositories (moto; sequential, so its lack of
atomicity does not matter here).

For any sequence of grants, consumes, holds, captures, releases, time passing and expiries: balance = sum of the
ledger's entries, each entry's balance after follows from the previous one, no lot's remaining is negative or above
its tokens, available = balance - held, held = what the open holds keep, and with overdraft off the open lots'
remaining adds up to the balance.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

import boto3
from devtools.local_tables import create_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.conftest import _reset_pynamodb_connections
from tests.fakes import FixedClock, RecordingEventPublisher
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.domain import balances, lapses, reservations, spending
from usercredits.domain.credits import lot_remaining
from usercredits.domain.models import GroupPolicy
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError

GROUPS = ["G", "P"]  # G: no overdraft; P: overdraft down to -5

operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("grant"), st.sampled_from(GROUPS), st.integers(1, 50), st.one_of(st.none(), st.integers(1, 30))
        ),
        st.tuples(st.just("consume"), st.sampled_from(GROUPS), st.integers(1, 40), st.none()),
        st.tuples(st.just("wait"), st.none(), st.integers(1, 20), st.none()),
        st.tuples(st.just("expire"), st.sampled_from(GROUPS), st.just(0), st.none()),
        st.tuples(st.just("hold"), st.sampled_from(GROUPS), st.integers(1, 30), st.integers(1, 3)),
        st.tuples(st.just("capture"), st.none(), st.integers(0, 30), st.none()),
        st.tuples(st.just("release"), st.none(), st.just(0), st.none()),
    ),
    min_size=1,
    max_size=25,
)


def all_entries(credits: DynamoCreditsRepository, user: str) -> list:  # type: ignore[type-arg]
    entries, cursor = [], None
    while True:
        page = balances.list_ledger(user, offer_group=None, limit=7, cursor=cursor, credits=credits)
        entries += page.items
        cursor = page.next_cursor
        if cursor is None:
            return entries


def check_invariants(credits: DynamoCreditsRepository, user: str) -> None:
    snapshot = credits.snapshot(user)
    entries = all_entries(credits, user)
    assert len({e.entry_id for e in entries}) == len(entries)
    for group, state in snapshot.groups.items():
        mine = sorted((e for e in entries if e.offer_group == group), key=lambda e: e.seq)
        assert [e.seq for e in mine] == list(range(1, len(mine) + 1))
        assert sum(e.tokens for e in mine) == state.balance
        running = 0
        for entry in mine:
            running += entry.tokens
            assert entry.balance_after == running
        assert state.available == state.balance - state.held
        assert state.held == sum(hold.count for hold in snapshot.holds if hold.offer_group == group)
        remaining = lot_remaining([lot for lot in snapshot.lots if lot.offer_group == group], state.drawn)
        lots = {lot.lot_id: lot for lot in snapshot.lots}
        assert all(0 <= left <= lots[lot_id].tokens for lot_id, left in remaining.items())
        if group == "G":
            assert state.balance >= 0
            assert sum(remaining.values()) == state.balance
        else:
            assert state.balance >= -5


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_ledger_invariant_holds_for_any_sequence(ops: list[tuple[str, str | None, int, int | None]]) -> None:
    with mock_aws():
        create_tables(boto3.client("dynamodb"))
        _reset_pynamodb_connections()
        catalog, credits, clock = DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository(), FixedClock()
        catalog.put_group_policy(GroupPolicy(offer_group="P", overdraft="limited", overdraft_limit=5))
        user = "prop-user"
        holds: list[str] = []
        for kind, group, amount, days in ops:
            if kind == "grant":
                expires = None if days is None else clock.now() + timedelta(days=days)
                spending.grant_credits(
                    user,
                    group,
                    amount,
                    expires=expires,
                    reason="p",
                    credits=credits,  # type: ignore[arg-type]
                    clock=clock,
                )
            elif kind == "consume":
                with contextlib.suppress(InsufficientCreditsError):
                    spending.consume_credits(
                        user,
                        group,
                        amount,
                        idempotency_key=None,
                        catalog=catalog,  # type: ignore[arg-type]
                        credits=credits,
                        clock=clock,
                        events=RecordingEventPublisher(),
                    )
            elif kind == "wait":
                clock.advance(days=amount)
            elif kind == "hold":
                with contextlib.suppress(InsufficientCreditsError):
                    holds.append(
                        reservations.create_reservation(
                            user,
                            group,
                            amount,
                            expires_in_seconds=(days or 1) * 86400,
                            idempotency_key=None,  # type: ignore[arg-type]
                            catalog=catalog,
                            credits=credits,
                            clock=clock,
                        ).reservation_id
                    )
            elif kind in ("capture", "release") and holds:
                with contextlib.suppress(ConflictError, InvalidRequestError):
                    if kind == "capture":
                        reservations.capture_reservation(
                            user,
                            holds[-1],
                            amount,
                            credits=credits,
                            clock=clock,
                            catalog=catalog,
                            events=RecordingEventPublisher(),
                        )
                    else:
                        reservations.release_reservation(user, holds[-1], credits=credits, clock=clock)
            elif kind == "expire":
                lapses.expire_group(user, group, credits=credits, clock=clock, catalog=catalog)  # type: ignore[arg-type]
                balances.list_credits(user, credits=credits, clock=clock, catalog=catalog)  # releases lapsed holds
            check_invariants(credits, user)
    _reset_pynamodb_connections()


def test_ledger_invariant_holds_across_journal_compactions(moto_tables: None) -> None:
    # Given a grant and 150 spends: the journal is compacted (more than 60 movements) several times
    catalog, credits, clock = DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository(), FixedClock()
    spending.grant_credits("u", "G", 200, expires=None, reason="seed", credits=credits, clock=clock)
    for _ in range(150):
        spending.consume_credits(
            "u",
            "G",
            1,
            idempotency_key=None,
            catalog=catalog,
            credits=credits,
            clock=clock,
            events=RecordingEventPublisher(),
        )
    # Then the group item keeps a short journal, and the whole history still adds up
    state = credits.group_state("u", "G")
    assert state is not None and len(state.journal) <= 60 and state.journal_first_seq > 1
    assert state.balance == 50
    check_invariants(credits, "u")
    assert len(all_entries(credits, "u")) == 151
