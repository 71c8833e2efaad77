"""Property-based tests of the ledger invariant, through the real repositories (moto; sequential, so its lack of
atomicity does not matter here).

For any sequence of grants, consumes, holds, captures, releases, time passing and expiries: balance = sum of the
ledger's entries, each entry's balance after follows from the previous one, no lot's remaining is negative or above
its tokens, available = balance - held, held = what the open holds keep, and with overdraft off the open lots'
remaining adds up to the balance.
"""

from __future__ import annotations

import boto3
from devtools.local_tables import create_tables
from hypothesis import HealthCheck, given, settings
from moto import mock_aws

from tests.conftest import _reset_pynamodb_connections
from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.credit_properties import Operation, check_invariants, operations, run_operations
from tests.helpers.ledger import whole_ledger
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.domain import spending


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_ledger_invariant_holds_for_any_sequence(ops: list[Operation]) -> None:
    with mock_aws():
        create_tables(boto3.client("dynamodb"))
        _reset_pynamodb_connections()
        catalog, credits, clock = DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository(), FixedClock()
        run_operations(ops, catalog=catalog, credits=credits, clock=clock)
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
    assert len(whole_ledger("u", credits)) == 151
