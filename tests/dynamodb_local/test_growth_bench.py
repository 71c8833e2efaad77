"""The growth bench measures what it says (devtools/bench/growth.py; README "Limits and growth"): every figure is a
non-negative whole count, and the budgets of issue 16 hold at a size past one page of every read (120 lots: more than
``VIEW_PAGE`` items and than ``LOTS_SHOWN`` lots): a spend is one request; ``GET /credits`` one Query up to a page,
at most one more past it, reading at most two pages of items; ``GET /credits/{group}`` one Query of the lots it shows;
a ledger page 2 requests (one more past a page of open lots) reading the page and the groups; after an expiry the
closed lots are not read at all."""

from __future__ import annotations

import pytest
from devtools.bench.growth import HISTORIES, LEDGER_LIMIT, Result, bench_rows, format_growth, growth_results

from usercredits.adapters.dynamodb.credit_reads import VIEW_PAGE
from usercredits.adapters.dynamodb.credits import LOTS_SHOWN

pytestmark = pytest.mark.dynamodb_local

SIZES = (1, 120)


def test_growth_figures_are_counts_and_the_read_and_spend_budgets_hold(dynamodb_local: str) -> None:
    # When every history is measured at two sizes
    results, bench = growth_results(SIZES, endpoint_url=dynamodb_local)

    # Then every operation answered what the history implies (balances, lots shown, ledger page, lots closed)
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

    # And the budgets hold at every size of every history
    for result in results:
        assert_within_budget(result)
    # And an expiry closes the lots in at least one transaction
    assert all(r.cost.closing_transactions >= 1 for r in results if r.operation == "expiry")

    # And the report has its rows (no budget) and one table column per size
    rows = bench_rows(results)
    assert rows and all(row.budget is None for row in rows)
    assert format_growth(results).splitlines()[0].count("N = ") == len(SIZES)


def assert_within_budget(result: Result) -> None:
    cost, operation = result.cost, result.operation
    one_page = result.size + 1 <= VIEW_PAGE or result.history != "lots"
    if operation == "spend":
        assert cost.operations == ("UpdateItem",), result
    if operation in ("credits", "after_expiry"):
        assert set(cost.operations) == {"Query"} and cost.requests <= (1 if one_page else 2), result
        assert cost.items_read <= 2 * VIEW_PAGE, result
    if operation == "group":  # the group and the lots it shows (and one to know there are more)
        assert cost.operations == ("Query",) and cost.items_read <= LOTS_SHOWN + 2, result
    if operation == "ledger_group":  # the group by key, then its archived entries through the LSI
        assert cost.operations == ("GetItem", "Query") and cost.items_read <= LEDGER_LIMIT + 3, result
    if operation == "ledger":  # the groups (for their journals), then the archive
        assert set(cost.operations) == {"Query"} and cost.requests <= (2 if one_page else 3), result
        assert cost.items_read <= 2 * VIEW_PAGE + LEDGER_LIMIT + 1, result
    if operation == "after_expiry":
        assert cost.items_read == 1, result  # the group item: the closed lots are out of the range read
