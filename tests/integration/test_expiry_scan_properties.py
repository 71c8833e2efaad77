"""Property-based test of the expiry scan through the real repositories (moto; sequential, so its lack of atomicity
does not matter here): for any sequence of grants, spends, holds, time passing and scans, a scan takes from each due
lot exactly what it had unused (never more, never twice), tells it once in the outbox, warns each lot at most once per
window, and the ledger invariant holds throughout."""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from datetime import timedelta

import boto3
from devtools.local_tables import create_tables
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from tests.conftest import _reset_pynamodb_connections
from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.credit_properties import check_invariants
from tests.helpers.moto_credits import expired_in_outbox
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
from usercredits.domain import balances, reservations, spending
from usercredits.domain.credits import lot_remaining
from usercredits.domain.expiry_scan import Unlimited, scan_expiry
from usercredits.domain.models import LedgerKind
from usercredits.errors import InsufficientCreditsError

GROUPS = ["G", "H"]
WINDOWS = (6 * 3600, 86400)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), st.sampled_from(GROUPS), st.integers(1, 40), st.integers(1, 72)),
        st.tuples(st.just("consume"), st.sampled_from(GROUPS), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("hold"), st.sampled_from(GROUPS), st.integers(1, 20), st.integers(1, 7200)),
        st.tuples(st.just("wait"), st.none(), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("scan"), st.none(), st.just(0), st.just(0)),
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_a_scan_takes_exactly_the_unused_tokens_of_each_due_lot_once(
    ops: list[tuple[str, str | None, int, int]],
) -> None:
    with mock_aws():
        create_tables(boto3.client("dynamodb"))
        _reset_pynamodb_connections()
        catalog, credits, clock = DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository(), FixedClock()
        index, events, user = DynamoExpiryIndex(), RecordingEventPublisher(), "prop-user"
        tokens: dict[str, int] = {}
        taken: Counter[str] = Counter()

        def scan() -> None:
            # What each due lot has unused right before the scan (nothing else runs in between)
            before = credits.snapshot(user)
            unused: dict[str, int] = {}
            for group, state in before.groups.items():
                mine = [lot for lot in before.lots if lot.offer_group == group]
                remaining = lot_remaining(mine, state.drawn)
                unused |= {
                    lot.lot_id: remaining[lot.lot_id] for lot in mine if lot.expires and lot.expires <= clock.now()
                }
            scan_expiry(
                run_id=str(uuid.uuid4()),
                lease=timedelta(minutes=1),
                windows=WINDOWS,
                budget=Unlimited(),
                index=index,
                credits=credits,
                catalog=catalog,
                events=events,
                clock=clock,
                page_size=3,
            )
            expired = {
                e.lot_id: -e.tokens
                for e in balances.list_ledger(user, offer_group=None, limit=200, cursor=None, credits=credits).items
                if e.kind is LedgerKind.EXPIRE and e.lot_id in unused
            }
            for lot_id, left in unused.items():
                assert 0 <= left <= tokens[lot_id]
                assert expired.get(lot_id, 0) == left  # exactly what it had unused (a used-up lot: no entry)
                taken[lot_id] += 1
            assert not {lot.lot_id for lot in credits.snapshot(user).lots} & set(unused)  # none left open

        for kind, group, amount, extra in ops:
            if kind == "grant" and group is not None:
                lot_id = spending.grant_credits(
                    user,
                    group,
                    amount,
                    expires=clock.now() + timedelta(hours=extra),
                    reason="p",
                    credits=credits,
                    clock=clock,
                ).lot_id
                assert lot_id is not None
                tokens[lot_id] = amount
            elif kind == "consume" and group is not None:
                with contextlib.suppress(InsufficientCreditsError):
                    spending.consume_credits(
                        user,
                        group,
                        amount,
                        idempotency_key=None,
                        catalog=catalog,
                        credits=credits,
                        clock=clock,
                        events=events,
                    )
            elif kind == "hold" and group is not None:
                with contextlib.suppress(InsufficientCreditsError):
                    reservations.create_reservation(
                        user,
                        group,
                        amount,
                        expires_in_seconds=extra,
                        idempotency_key=None,
                        catalog=catalog,
                        credits=credits,
                        clock=clock,
                    )
            elif kind == "wait":
                clock.advance(hours=amount)
            else:
                scan()
            check_invariants(credits, user)
        clock.advance(days=4)
        scan()
        # Then every lot expired once at most, was told once, and was warned at most once per window
        assert all(count == 1 for count in taken.values())
        told = Counter(detail["lotId"] for detail in expired_in_outbox())
        assert all(count == 1 for count in told.values())
        warned = Counter((e.detail["lotId"], e.detail["windowSeconds"]) for e in events.accepted)
        assert all(count == 1 for count in warned.values())
        assert credits.snapshot(user).lots == []
    _reset_pynamodb_connections()
