"""The ledger invariant for any sequence of credit operations, on the in-memory repository: the same property the
integration tests check on moto, fast enough here for many more sequences (and, with small journal limits, with
compactions in the middle of them)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.credits import InMemoryCreditsRepository
from tests.helpers.credit_properties import Operation, operations, run_operations


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=operations)
def test_ledger_invariant_holds_for_any_sequence(ops: list[Operation]) -> None:
    credits = InMemoryCreditsRepository(lots_shown=2, journal_max=6, journal_keep=2)
    run_operations(ops, catalog=InMemoryCatalogRepository(), credits=credits, clock=FixedClock())
