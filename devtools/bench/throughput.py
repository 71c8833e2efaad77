"""Consume throughput (metric ``ops_per_s``, no budget): the real spend and a naive read-then-write spend through the
consumption handler, in 1 then 8 worker processes against the same DynamoDB Local (see the package's docstring)."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from devtools.bench.consumption_routes import ConsumptionBench
from devtools.bench.environment import EVENTS_DIR, configure_environment
from devtools.bench.handlers import http_event
from devtools.bench.rows import BenchError, Row
from devtools.lambda_context import LambdaContext

#: Consumes of 1 token per throughput row (split over its workers), and the worker counts measured.
THROUGHPUT_OPS = 500
THROUGHPUT_WORKERS = (1, 8)
THROUGHPUT_GRANT = 1_000_000
#: Conflicts the naive spend retries before it gives up (a 503).
NAIVE_RETRIES = 100
THROUGHPUT_MODES = {
    "handler": "consume throughput (handler)",
    "naive": "consume throughput (naive read-then-write)",
}


def naive_credits_repository() -> Any:
    """The credits repository with the naive spend: read the group (consistent GetItem), check the balance in Python,
    then an UpdateItem that sets the new balance conditional on the balance read, from the start again on a conflict.

    Everything else (the handler, validation, catalog, journal and its compaction, the response) is the real code, so
    the two throughput rows differ only in the spend's DynamoDB pattern.
    """
    from pynamodb.exceptions import DoesNotExist, UpdateError
    from pynamodb.expressions.update import Action

    from usercredits.adapters.dynamodb.credits import JOURNAL_MAX, DynamoCreditsRepository
    from usercredits.adapters.dynamodb.credits_table import CreditGroupItem
    from usercredits.adapters.dynamodb.keys import group_sk, user_pk
    from usercredits.adapters.dynamodb.mappers import item_to_group_state, movement_to_attribute
    from usercredits.domain.ports import SpendRefusedError
    from usercredits.errors import UnavailableError

    class NaiveCreditsRepository(DynamoCreditsRepository):
        conflicts = 0

        def spend(self, user_id: str, offer_group: str, movement: Any, **kwargs: Any) -> Any:
            floor, now = kwargs["floor"], kwargs["now"]
            if kwargs.get("idempotency") is not None:
                raise BenchError("the naive spend is measured without an Idempotency-Key")
            count = -movement.tokens
            for _ in range(NAIVE_RETRIES):
                try:
                    item = CreditGroupItem.get(user_pk(user_id), group_sk(offer_group), consistent_read=True)
                except DoesNotExist:
                    raise SpendRefusedError(None) from None
                if floor is not None and item.available < floor + count:
                    raise SpendRefusedError(item_to_group_state(item))
                actions: list[Action] = [
                    CreditGroupItem.balance.set(item.balance - count),
                    CreditGroupItem.available.set(item.available - count),
                    CreditGroupItem.drawn.set(item.drawn + count),
                    CreditGroupItem.journal.set(CreditGroupItem.journal.append([movement_to_attribute(movement)])),
                    CreditGroupItem.updated_at.set(now),
                ]
                try:
                    item.update(actions=actions, condition=CreditGroupItem.balance == item.balance)
                except UpdateError as exc:
                    if exc.cause_response_code != "ConditionalCheckFailedException":
                        raise
                    type(self).conflicts += 1
                    continue
                state = item_to_group_state(item)
                if len(state.journal) > JOURNAL_MAX:
                    self.compact(user_id, state)
                return state
            raise UnavailableError("the group kept changing", retry_after=1)

    return NaiveCreditsRepository()


def throughput_worker(mode: str, user: str, ops: int, endpoint_url: str, barrier: Any, results: Any) -> None:
    """One Lambda instance (a process: the Powertools resolver keeps the current event on the app, so one handler
    module serves one request at a time): ``ops`` consumes of 1 through ``consumption.handler.lambda_handler``."""
    try:
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        configure_environment(endpoint_url)
        from consumption import handler

        # With POWERTOOLS_METRICS_DISABLED, Powertools keeps the metric values and prints them every 100: not here.
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the worker
        conflicts: Callable[[], int] = lambda: 0  # noqa: E731
        if mode == "naive":
            repository = naive_credits_repository()
            deps = dataclasses.replace(handler.dependencies(), credits=repository)
            handler.dependencies = lambda: deps  # type: ignore[assignment]
            conflicts = lambda: type(repository).conflicts  # noqa: E731
        base = json.loads((EVENTS_DIR / ConsumptionBench.BASE_EVENT).read_text(encoding="utf-8"))
        method, _, route = ConsumptionBench.CONSUME.partition(" ")
        event = http_event(
            base, method, route, user=user, path_parameters={"offerGroup": ConsumptionBench.GROUP}, body={"count": 1}
        )
        warm = handler.lambda_handler(copy.deepcopy(event), LambdaContext("ConsumptionFunction", 512, 15))
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        barrier.wait(timeout=120)
        start = time.monotonic()
        for _ in range(ops):
            began = time.perf_counter()
            response = handler.lambda_handler(copy.deepcopy(event), LambdaContext("ConsumptionFunction", 512, 15))
            latencies.append((time.perf_counter() - began) * 1000.0)
            status = int(response["statusCode"])
            statuses[status] = statuses.get(status, 0) + 1
        end = time.monotonic()
        results.put(
            {
                "start": start,
                "end": end,
                "statuses": statuses,
                "latencies": latencies,
                "conflicts": conflicts(),
                "warm": int(warm["statusCode"]),
            }
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the row
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def split_work(total: int, workers: int) -> list[int]:
    """``total`` operations over ``workers``, as evenly as possible."""
    return [total // workers + (1 if index < total % workers else 0) for index in range(workers)]


def run_workers(mode: str, workers: int, user: str, endpoint_url: str, ops: int) -> tuple[list[int], list[dict]]:  # type: ignore[type-arg]
    """Start ``workers`` processes of :func:`throughput_worker` sharing ``ops``; what each reported."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    shares = split_work(ops, workers)
    processes = [
        context.Process(target=throughput_worker, args=(mode, user, share, endpoint_url, barrier, results), daemon=True)
        for share in shares
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in processes]
    except Exception as exc:
        raise BenchError(f"throughput {mode} x{workers}: a worker did not report ({type(exc).__name__})") from exc
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # pragma: no cover - a stuck worker
                process.kill()
    if errors := [outcome["error"] for outcome in outcomes if "error" in outcome]:
        raise BenchError(f"throughput {mode} x{workers}: {errors[0]}")
    return shares, outcomes


def throughput_row(mode: str, workers: int, endpoint_url: str, ops: int = THROUGHPUT_OPS) -> tuple[Row, str | None]:
    """``ops`` consumes of 1 by one user through the consumption handler in ``workers`` processes started together;
    ``ops_per_s`` = successful consumes / (last end - first start). The balance is checked afterwards: a lost update
    (two spends read the same balance and both wrote) fails the row."""
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.domain.spending import grant_credits
    from usercredits.kernel.clock import SystemClock

    user, group = f"bench-throughput-{mode}-{workers}", ConsumptionBench.GROUP
    credits = DynamoCreditsRepository()
    grant_credits(user, group, THROUGHPUT_GRANT, expires=None, reason="bench", credits=credits, clock=SystemClock())
    shares, outcomes = run_workers(mode, workers, user, endpoint_url, ops)
    statuses: Counter[int] = Counter()
    for outcome in outcomes:
        statuses.update(outcome["statuses"])
    ok = statuses[200]
    wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    latencies = [latency for outcome in outcomes for latency in outcome["latencies"]]
    state = credits.group_state(user, group)
    spent = ok + sum(1 for outcome in outcomes if outcome["warm"] == 200)
    problem = None
    if state is None or state.balance != THROUGHPUT_GRANT - spent:
        found = state.balance if state else None
        problem = f"balance {found} after {spent} successful consumes of 1 from {THROUGHPUT_GRANT}: lost updates"
    elif mode == "handler" and ok != ops:
        problem = f"statuses {dict(statuses)}, expected {ops} x 200"
    share = f"{shares[0]}" if len(set(shares)) == 1 else f"{min(shares)}-{max(shares)}"
    detail = (
        f"{ops} consumes of 1 by one user, {workers} process{'es' if workers > 1 else ''} x {share}; {wall:.2f} s; p50 "
        f"{percentile(latencies, 0.5):.1f} / p95 {percentile(latencies, 0.95):.1f} ms"
    )
    if mode == "naive":
        detail += f"; {sum(outcome['conflicts'] for outcome in outcomes)} conflicts retried"
    if set(statuses) != {200}:
        detail += f"; statuses {dict(statuses)}"
    if problem:
        detail = f"FAILED: {problem} | {detail}"
    name = f"{THROUGHPUT_MODES[mode]}, {workers} worker{'s' if workers > 1 else ''}"
    row = Row(name, "ops_per_s", round(ok / wall, 1) if wall > 0 else 0.0, None, detail)
    return row, (f"{name}: {problem}" if problem else None)


def measure_throughput(endpoint_url: str) -> tuple[list[Row], list[str], list[str]]:
    """The consume throughput rows: the real handler and the naive spend, one worker then several, same engine."""
    rows, problems = [], []
    for workers in THROUGHPUT_WORKERS:
        for mode in THROUGHPUT_MODES:
            row, problem = throughput_row(mode, workers, endpoint_url)
            rows.append(row)
            if problem:
                problems.append(problem)
    notes = [
        f"throughput: {THROUGHPUT_OPS} consumes of 1 per row through consumption.handler.lambda_handler, in worker "
        "processes (one per Lambda instance: the Powertools resolver keeps the current event on the app, so threads "
        f"cannot share one handler module), against the same DynamoDB Local on this {os.cpu_count()}-CPU machine "
        "(the workers and the engine share the CPUs): compare the rows with each other, not with AWS",
        "throughput: handler = the real spend (one UpdateItem conditional on the available balance); naive = the same "
        "handler with a spend that reads the group (GetItem), checks the balance in Python and writes the new balance "
        "conditional on the balance read, re-reading on a conflict",
    ]
    return rows, notes, problems
