"""``python -m devtools.bench``: runs the parts, prints the table, writes ``bench-results.json``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from devtools.bench.dynamodb_requests import measure_dynamodb
from devtools.bench.environment import RESULTS_PATH
from devtools.bench.growth import measure_growth
from devtools.bench.hot_item import measure_hot_item
from devtools.bench.imports import DEFAULT_RUNS, measure_imports
from devtools.bench.rows import Report, write_results
from devtools.bench.scan import measure_scan
from devtools.bench.snapstart import measure_snapstart


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.bench",
        description="Performance budgets: DynamoDB requests per route, and cold-start import cost per function.",
    )
    parser.add_argument(
        "--only",
        choices=["dynamodb", "imports", "scan", "hot-item", "growth", "snapstart"],
        help="run one part only",
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="import runs per measurement (median)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results file (JSON)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    started = time.monotonic()
    report = Report()
    # Imports first: DynamoDB Local's JVM would compete for the CPU while the imports are timed.
    if args.only in (None, "imports"):
        report.run("imports", lambda: (*measure_imports(args.runs), []))
    if args.only in (None, "dynamodb"):
        report.run("dynamodb", measure_dynamodb)
    if args.only in (None, "scan"):
        report.run("expiry scan", measure_scan)
    if args.only in (None, "hot-item"):
        report.run("hot item", measure_hot_item)
    if args.only in (None, "growth"):
        report.run("growth", measure_growth)
    if args.only in (None, "snapstart"):
        report.run("snapstart", measure_snapstart)
    write_results(report.rows, args.output)
    report.print(args.output, time.monotonic() - started)
    return report.exit_code
