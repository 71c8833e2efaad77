"""The growth bench measures what it says (devtools/bench_growth.py; README "Observability and cold start"): every
figure is a non-negative whole count, and what must hold whatever the data layout does: a spend is one request and
``GET /credits`` one Query, however much history the user has. (Other costs grow today; they are reported, not held
to a bound here.)"""

from __future__ import annotations

import pytest
from devtools.bench_growth import HISTORIES, bench_rows, format_growth, growth_results

pytestmark = pytest.mark.dynamodb_local

SIZES = (1, 20)


def test_growth_figures_are_counts_and_spends_and_reads_stay_one_request(dynamodb_local: str) -> None:
    # When every history is measured at two sizes
    results, bench = growth_results(SIZES, endpoint_url=dynamodb_local)

    # Then every operation answered what the history implies (balances, lots, ledger page, lots closed)
    assert bench.problems == []
    measured = {(result.history, result.size, result.operation) for result in results}
    operations = ("credits", "group", "ledger", "ledger_group", "spend", "hold")
    assert {(history, size, op) for history in HISTORIES for size in SIZES for op in operations} <= measured
    assert {("lots", size, "expiry") for size in SIZES} <= measured

    # And every figure is a non-negative whole count (read units: whole or half units, as DynamoDB bills them)
    for result in results:
        cost = result.cost
        for figure in (cost.requests, cost.items_read, cost.write_units, cost.closing_transactions):
            assert isinstance(figure, int) and figure >= 0, result
        assert cost.read_units >= 0 and (2 * cost.read_units).is_integer(), result
        assert cost.requests == len(cost.operations) >= 1, result

    # And a spend is one request (UpdateItem), and GET /credits one Query, at every size of every history
    for result in results:
        if result.operation == "spend":
            assert result.cost.operations == ("UpdateItem",), result
        if result.operation == "credits":
            assert result.cost.operations == ("Query",), result
    # And an expiry closes the lots in at least one transaction
    assert all(r.cost.closing_transactions >= 1 for r in results if r.operation == "expiry")

    # And the report has its rows (no budget) and one table column per size
    rows = bench_rows(results)
    assert rows and all(row.budget is None for row in rows)
    assert format_growth(results).splitlines()[0].count("N = ") == len(SIZES)
