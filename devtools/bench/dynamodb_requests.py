"""The DynamoDB part of the bench: requests per route of the ordering, consumption and customers functions, and the
consume throughput, on one DynamoDB Local."""

from __future__ import annotations

import warnings

from devtools.bench.consumption_routes import ConsumptionBench
from devtools.bench.counting import DynamoDBRequestCounter, calibrate
from devtools.bench.customers_routes import CustomersBench
from devtools.bench.environment import DEMO_CATALOG, fresh_dynamodb_local
from devtools.bench.ordering_routes import OrderingBench
from devtools.bench.rows import Row
from devtools.bench.throughput import measure_throughput


def measure_dynamodb() -> tuple[list[Row], list[str], list[str]]:
    """dynamodb_requests rows of the ordering, consumption and customers routes, and the consume throughput rows;
    (rows, notes, problems)."""
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with fresh_dynamodb_local() as endpoint_url:
        from devtools.catalog import load_catalog

        offers = load_catalog(DEMO_CATALOG)
        counter = DynamoDBRequestCounter(endpoint_url)
        with counter.wire_tap():
            ordering = OrderingBench(counter)  # imports the handlers (after the env is set)
            consumption = ConsumptionBench(counter)
            customers = CustomersBench(counter)
            clients = calibrate(counter)
            ordering.run()
            consumption.run(paid_user=OrderingBench.GRANT_USER)
            customers.run()
        throughput_rows, throughput_notes, throughput_problems = measure_throughput(endpoint_url)
    notes = [
        f"DynamoDB Local (in memory), {offers} demo offers; requests counted by a before-send hook on "
        f"{clients} PynamoDB botocore client(s), cross-checked on the wire; calibration passed",
        *throughput_notes,
    ]
    benches = (ordering, consumption, customers)
    rows = [row for bench in benches for row in bench.rows()] + throughput_rows
    return rows, notes, [problem for bench in benches for problem in bench.problems()] + throughput_problems
