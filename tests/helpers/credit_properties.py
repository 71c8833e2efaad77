"""Property-based sequences of credit operations and the ledger invariant they must keep, on any credits repository
(the real one on moto in the integration tests, the in-memory fake in the unit tests).

For any sequence of grants, consumes, holds, captures, releases, time passing and expiries: balance = sum of the
ledger's entries, each entry's balance after follows from the previous one, no lot's remaining is negative or above
its tokens, available = balance - held, held = what the open holds keep, and with overdraft off the open lots'
remaining adds up to the balance.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from hypothesis import strategies as st

from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.ledger import whole_ledger
from usercredits.domain import balances, lapses, reservations, spending
from usercredits.domain.credits import lot_remaining
from usercredits.domain.models import GroupPolicy
from usercredits.domain.ports import CatalogRepository, CreditsRepository
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError

GROUPS = ["G", "P"]  # G: no overdraft; P: overdraft down to -5
USER = "prop-user"

type Operation = tuple[str, str | None, int, int | None]

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


def check_invariants(credits: CreditsRepository, user: str) -> None:
    """The ledger invariant for every group of ``user`` (G without overdraft, P down to -5)."""
    snapshot = credits.snapshot(user)
    entries = whole_ledger(user, credits, limit=7)
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


def run_operations(
    ops: list[Operation], *, catalog: CatalogRepository, credits: CreditsRepository, clock: FixedClock
) -> None:
    """Apply ``ops`` for ``USER`` through the consumption use cases, checking the invariant after each."""
    catalog.put_group_policy(GroupPolicy(offer_group="P", overdraft="limited", overdraft_limit=5))
    holds: list[str] = []
    for kind, group, amount, days in ops:
        _apply(kind, group or "", amount, days, holds, catalog=catalog, credits=credits, clock=clock)
        check_invariants(credits, USER)


def _apply(  # noqa: PLR0913 - one operation of the sequence and the ports it runs on
    kind: str,
    group: str,
    amount: int,
    days: int | None,
    holds: list[str],
    *,
    catalog: CatalogRepository,
    credits: CreditsRepository,
    clock: FixedClock,
) -> None:
    if kind == "grant":
        expires = None if days is None else clock.now() + timedelta(days=days)
        spending.grant_credits(USER, group, amount, expires=expires, reason="p", credits=credits, clock=clock)
    elif kind == "consume":
        with contextlib.suppress(InsufficientCreditsError):
            spending.consume_credits(
                USER,
                group,
                amount,
                idempotency_key=None,
                catalog=catalog,
                credits=credits,
                clock=clock,
                events=RecordingEventPublisher(),
            )
    elif kind == "wait":
        clock.advance(days=amount)
    elif kind == "hold":
        with contextlib.suppress(InsufficientCreditsError):
            hold = reservations.create_reservation(
                USER,
                group,
                amount,
                expires_in_seconds=(days or 1) * 86400,
                idempotency_key=None,
                catalog=catalog,
                credits=credits,
                clock=clock,
            )
            holds.append(hold.reservation_id)
    elif kind in ("capture", "release") and holds:
        with contextlib.suppress(ConflictError, InvalidRequestError):
            if kind == "capture":
                reservations.capture_reservation(
                    USER,
                    holds[-1],
                    amount,
                    credits=credits,
                    clock=clock,
                    catalog=catalog,
                    events=RecordingEventPublisher(),
                )
            else:
                reservations.release_reservation(USER, holds[-1], credits=credits, clock=clock)
    elif kind == "expire":
        lapses.expire_group(USER, group, credits=credits, clock=clock, catalog=catalog)
        balances.list_credits(USER, credits=credits, clock=clock, catalog=catalog)  # releases lapsed holds
