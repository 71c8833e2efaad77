"""Growth: what the credits operations cost as a user's history grows (``make bench``; alone:
``python -m devtools.bench.growth [--sizes 1,100,1000]``).

Three histories, each at several sizes N, each size on a user of its own (same tables, one group ``GrowthBench``):

- ``open lots``: N admin grants (``grant_credits``, one transaction each) of 10 tokens expiring a day later (one
  second apart), all open in the group;
- ``ledger entries``: one grant of N + 10 tokens without expiry, then N spends of 1 (``consume_credits``); compaction
  moves all but the journal's last movements to ``LEDGER#`` items, as it does for any user;
- ``settled holds``: one grant of 10 tokens, then N hold + release pairs (``create_reservation`` +
  ``release_reservation``), the journal compacted every 25 pairs as the reads in between would do (holds and releases
  do not compact; ``devtools.bench.consumption_routes`` makes its 1,000 pairs the same way).

The histories are made first, in a few threads at once (users of their own: DynamoDB Local's latency overlaps), then
measured one operation at a time with nothing else running. Before the measurements each group's journal is compacted
down to ``JOURNAL_KEEP`` movements (the repository's ``compact``, what a read does once it is long): the group item
is then the same size at every N > 1 and no measured write pays for a compaction, so what differs between the
columns is the history alone.

Measured on each user, in this order, through the domain use cases the consumption handler calls (same arguments,
the real DynamoDB repositories, the catalog cache warm; the group has no policy, so no ``CreditsLow`` to publish):
``GET /credits`` (``list_credits``), ``GET /credits/{group}`` (``get_credit_group``), one ledger page
(``list_ledger``, limit 50) without and with ``offerGroup``, a spend of 1 (``consume_credits``, no
Idempotency-Key), a hold of 1 (``create_reservation``; released afterwards, not measured). Then, for the ``open
lots`` users, the clock (a test clock of this module: the real time plus an offset) moves two days on, past every
lot's expiry, and on each one ``GET /credits`` closes the lots (in steps of one transaction each:
``expire_group``), then ``GET /credits`` once more, after the expiry (closed lots leave the group's key range).

Sizes: ``DEFAULT_SIZES`` (1, 100, 1,000) in ``make bench``; ``--sizes 1,100,1000,10000`` for the README table
(about 14 minutes on 2 CPUs: making 10,000 lots or hold/release pairs on one user is sequential).

Figures per operation (``devtools.bench.capacity.GrowthMeter``, a ``CapacityMeter``: requests counted by a
``before-send`` hook on every model's client and cross-checked on the wire, ``ReturnConsumedCapacity=TOTAL`` asked of
every request): requests; items read (``ScannedCount`` of each Query, the items GetItem / BatchGetItem /
TransactGetItems returned); read units (the ``ConsumedCapacity`` DynamoDB Local answered for the reads); write units
by AWS's rule on the item sizes read before and after each write (per item 1 per KB started of its larger image, 2 in
a transaction; index writes left out): DynamoDB Local answers less for transactions of several items in one table,
so its own figure is only kept in the rows' detail and the notes. An expiry also counts its closing transactions
(the ``TransactWriteItems`` that close lots) apart from the compactions in between.

``measure_growth()`` starts its own DynamoDB Local and returns ``devtools.bench`` rows (``Report.run`` takes it);
``growth_results(sizes, endpoint_url=...)`` measures against tables that exist (the tests').
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devtools.bench.capacity import Cost, GrowthMeter
from devtools.bench.environment import fresh_dynamodb_local
from devtools.bench.rows import BenchError, Row, format_table

#: Sizes of the default run (``make bench``), every history at each: about 2 minutes on 2 CPUs. 10,000 as well
#: (``--sizes 1,100,1000,10000``, the README table) takes about 14: 10,000 grants or hold/release pairs on one user
#: are sequential (~60 ms each on DynamoDB Local there), and so is the expiry of 10,000 lots.
DEFAULT_SIZES = (1, 100, 1_000)
GROUP = "GrowthBench"
LEDGER_LIMIT = 50
LOT_TOKENS = 10
#: Hold/release pairs between two compactions of the journal (as the reads in between would compact it).
PAIRS_PER_COMPACTION = 25
#: Threads making the histories (measured on 2 CPUs: ~1.8x faster than one; the measurements run one at a time).
SETUP_WORKERS = 4

HISTORIES: dict[str, str] = {
    "lots": "open lots in one group",
    "ledger": "ledger entries",
    "holds": "settled holds",
}
#: (key, label) of the measured operations, in the order they run.
OPERATIONS: tuple[tuple[str, str], ...] = (
    ("credits", "GET /credits"),
    ("group", "GET /credits/{group}"),
    ("ledger", f"GET /credits/ledger?limit={LEDGER_LIMIT}"),
    ("ledger_group", f"GET /credits/ledger?limit={LEDGER_LIMIT}&offerGroup="),
    ("spend", "spend (consume 1)"),
    ("hold", "hold (create)"),
    ("expiry", "expiry of the N due lots (one GET /credits)"),
    ("after_expiry", "GET /credits after the expiry"),
)
_LABELS = dict(OPERATIONS)


# ------------------------------------------------------------------------------------------------------ the clock
class OffsetClock:
    """The real time plus an offset that only grows (the dev server's local clock, in memory)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


# ------------------------------------------------------------------------------------------------------ the bench
@dataclass(frozen=True)
class Result:
    """One operation measured on one history of one size."""

    history: str
    size: int
    operation: str
    cost: Cost


class GrowthBench:
    """Histories made and operations measured through the domain use cases with the real DynamoDB repositories."""

    def __init__(self, meter: GrowthMeter) -> None:
        from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
        from usercredits.adapters.events import EventBridgePublisher

        self.meter = meter
        self.credits = DynamoCreditsRepository()
        self.catalog = DynamoCatalogRepository(cache_seconds=3600)  # warm: the handler's after its first request
        # The bench's group has no low threshold: nothing is ever published (the client is built on first publish).
        self.events = EventBridgePublisher("user-credits-bench")
        self.clock = OffsetClock()
        self.problems: list[str] = []
        self.workers = 1
        self.pending_expiry: list[tuple[str, int]] = []  # (user, size) of the lots histories, once measured
        self.setup_seconds: dict[tuple[str, int], float] = {}

    # ---------------------------------------------------------------------------------------------- histories
    def grant(self, user: str, tokens: int, expires: datetime | None) -> None:
        from usercredits.domain.spending import grant_credits

        grant_credits(user, GROUP, tokens, expires=expires, reason="bench", credits=self.credits, clock=self.clock)

    def spend(self, user: str) -> Any:
        from usercredits.domain.spending import consume_credits

        return consume_credits(
            user,
            GROUP,
            1,
            idempotency_key=None,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
            events=self.events,
        )

    def hold(self, user: str) -> str:
        from usercredits.domain.reservations import create_reservation

        reservation = create_reservation(
            user,
            GROUP,
            1,
            expires_in_seconds=None,
            idempotency_key=None,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
        )
        return reservation.reservation_id

    def release(self, user: str, reservation_id: str) -> None:
        from usercredits.domain.reservations import release_reservation

        release_reservation(user, reservation_id, credits=self.credits, clock=self.clock)

    def make_history(self, history: str, size: int) -> str:
        """A new user with ``size`` of ``history``, the journal compacted down to ``JOURNAL_KEEP``."""
        user = f"growth-{history}-{size}-{uuid.uuid4().hex[:8]}"
        started = time.monotonic()
        if history == "lots":
            first = self.clock.now() + timedelta(days=1)
            for index in range(size):
                self.grant(user, LOT_TOKENS, first + timedelta(seconds=index))
        elif history == "ledger":
            self.grant(user, size + LOT_TOKENS, None)
            for _ in range(size):
                self.spend(user)
        elif history == "holds":
            self.grant(user, LOT_TOKENS, None)
            for pair in range(size):
                self.release(user, self.hold(user))
                if pair % PAIRS_PER_COMPACTION == PAIRS_PER_COMPACTION - 1:
                    self.compact(user)
        else:
            raise BenchError(f"unknown history {history!r}")
        self.compact(user)
        self.setup_seconds[(history, size)] = time.monotonic() - started
        return user

    def compact(self, user: str) -> None:
        """Compact the group's journal down to ``JOURNAL_KEEP`` movements (at most 99 moved a transaction)."""
        from usercredits.adapters.dynamodb.credits import JOURNAL_KEEP

        failures = 0
        while (state := self.credits.group_state(user, GROUP)) is not None and len(state.journal) > JOURNAL_KEEP:
            # The read itself compacts a journal past JOURNAL_MAX: the state it returns is then already stale.
            failures = 0 if self.credits.compact(user, state) else failures + 1
            if failures > 1:
                raise BenchError(f"{user}: the journal could not be compacted")

    def list_credits(self, user: str) -> list[Any]:
        """``GET /credits``: the handler's ``balances.list_credits``."""
        from usercredits.domain.balances import list_credits

        return list_credits(user, credits=self.credits, clock=self.clock, catalog=self.catalog)

    def get_group(self, user: str) -> Any:
        """``GET /credits/{offerGroup}``: the handler's ``balances.get_credit_group``."""
        from usercredits.domain.balances import get_credit_group

        return get_credit_group(user, GROUP, credits=self.credits, clock=self.clock, catalog=self.catalog)

    def ledger_page(self, user: str, offer_group: str | None) -> Any:
        """``GET /credits/ledger?limit=50[&offerGroup=]``: the handler's ``balances.list_ledger``."""
        from usercredits.domain.balances import list_ledger

        return list_ledger(user, offer_group=offer_group, limit=LEDGER_LIMIT, cursor=None, credits=self.credits)

    # ---------------------------------------------------------------------------------------------- measuring
    def measure_user(self, user: str, history: str, size: int) -> list[Result]:
        """The reads, a spend and a hold on ``user``'s history (the hold released afterwards, not measured)."""
        results: list[Result] = []

        def measure(operation: str, action: Callable[[], Any]) -> Any:
            with self.meter.costed() as tally:
                answer = action()
            results.append(Result(history, size, operation, Cost.of(tally)))
            return answer

        balance = size * LOT_TOKENS if history == "lots" else LOT_TOKENS
        lots = size if history == "lots" else 1
        entries = {"lots": size, "ledger": size + 1, "holds": 2 * size + 1}[history]
        where = f"{HISTORIES[history]}, {size:,}"
        from usercredits.adapters.dynamodb.credits import LOTS_SHOWN

        groups = measure("credits", lambda: self.list_credits(user))
        shown = [(g.balance, len(g.lots), g.lots_cursor is not None) for g in groups]
        self.check(where, "GET /credits", shown, [(balance, min(lots, LOTS_SHOWN), lots > LOTS_SHOWN)])
        self.check(where, "GET /credits/{group}", measure("group", lambda: self.get_group(user)).balance, balance)
        for operation, offer_group in (("ledger", None), ("ledger_group", GROUP)):
            page = measure(operation, functools.partial(self.ledger_page, user, offer_group))
            self.check(where, _LABELS[operation], len(page.items), min(entries, LEDGER_LIMIT))
        self.check(where, "spend", measure("spend", lambda: self.spend(user)).balance, balance - 1)
        self.release(user, measure("hold", lambda: self.hold(user)))
        if history == "lots":
            self.pending_expiry.append((user, size))
        return results

    def measure_expiry(self, user: str, size: int) -> list[Result]:
        """With the clock past every lot's expiry: the ``GET /credits`` that closes them, and the one after."""
        results: list[Result] = []
        where = f"{HISTORIES['lots']}, {size:,}"
        for operation in ("expiry", "after_expiry"):
            with self.meter.costed() as tally:
                groups = self.list_credits(user)
            results.append(Result("lots", size, operation, Cost.of(tally)))
            self.check(where, _LABELS[operation], [(g.balance, len(g.lots)) for g in groups], [(0, 0)])
        state = self.credits.group_state(user, GROUP)
        self.check(where, "lots closed by the expiry", state.expired_lots if state else None, size)
        return results

    def check(self, where: str, what: str, found: Any, expected: Any) -> None:
        if found != expected:
            self.problems.append(f"growth, {where}: {what} answered {found!r}, expected {expected!r}")

    def run(self, sizes: Sequence[int], histories: Sequence[str], workers: int) -> list[Result]:
        """Make every history (``workers`` threads, largest first: DynamoDB Local's latency overlaps), then measure
        them one at a time (nothing else runs while an operation is metered); the lots expire last, all at once."""
        from concurrent.futures import ThreadPoolExecutor

        self.catalog.group_policy(GROUP)  # the catalog cache, warm (as in a warm Lambda)
        self.workers = workers
        plan = sorted(((history, size) for history in histories for size in sizes), key=lambda p: -p[1])
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {key: pool.submit(self.make_history, *key) for key in plan}
            users = {key: future.result() for key, future in futures.items()}
        results: list[Result] = []
        for history in histories:
            for size in sizes:
                results += self.measure_user(users[(history, size)], history, size)
        if self.pending_expiry:
            self.clock.advance(days=2)  # past every lot's expiry
            for user, size in self.pending_expiry:
                results += self.measure_expiry(user, size)
        return results


def growth_results(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    histories: Sequence[str] = tuple(HISTORIES),
    endpoint_url: str,
    meter: GrowthMeter | None = None,
    workers: int = SETUP_WORKERS,
) -> tuple[list[Result], GrowthBench]:
    """Every history at every size, measured against the DynamoDB Local at ``endpoint_url`` (its tables must exist);
    raises ``BenchError`` if the figures cannot be trusted (an unhooked request, a one-item write DynamoDB Local bills
    otherwise than AWS's rule)."""
    if not sizes or any(size < 1 for size in sizes):
        raise BenchError(f"sizes {list(sizes)} must be positive")
    sizes = sorted(set(sizes))
    meter = meter or GrowthMeter(endpoint_url)
    bench = GrowthBench(meter)
    try:
        with meter.wire_tap():
            results = bench.run(sizes, histories, workers)
    finally:
        meter.detach()
    if meter.mismatches:
        raise BenchError("; ".join(meter.mismatches))
    return results, bench


# ------------------------------------------------------------------------------------------------ rows and table
def _name(result: Result) -> str:
    return f"growth: {_LABELS[result.operation]} ({HISTORIES[result.history]}: {result.size:,})"


def bench_rows(results: Sequence[Result]) -> list[Row]:
    """``devtools.bench`` rows (reported, no budget): requests, items read, read units, and for writes their write
    units (an expiry also its closing transactions)."""
    rows = []
    for result in results:
        name, cost = _name(result), result.cost
        rows += [
            Row(name, "dynamodb_requests", cost.requests, None, cost.describe()),
            Row(name, "items_read", cost.items_read, None),
            Row(name, "read_units", cost.read_units, None),
        ]
        if cost.write_units:
            detail = f"by AWS's rule; DynamoDB Local answered {cost.local_write_units:g}"
            rows.append(Row(name, "write_units", cost.write_units, None, detail))
        if result.operation == "expiry":
            rows.append(Row(name, "closing_transactions", cost.closing_transactions, None))
    return rows


def format_growth(results: Sequence[Result]) -> str:
    """The Markdown table (README): a row per history and operation, a column per size."""
    sizes = sorted({result.size for result in results})
    cells = {(r.history, r.operation, r.size): r.cost for r in results}
    lines = [
        "| history | operation | " + " | ".join(f"N = {size:,}" for size in sizes) + " |",
        "|---|---|" + "---|" * len(sizes),
    ]
    for history, label in HISTORIES.items():
        for operation, operation_label in OPERATIONS:
            costs = [cells.get((history, operation, size)) for size in sizes]
            if not any(costs):
                continue
            row = [c.cell(expiry=operation == "expiry") if c else "–" for c in costs]
            lines.append(f"| N {label} | {operation_label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def transaction_note(meter: GrowthMeter) -> str:
    """How DynamoDB Local's answers for the measured transactions compare with AWS's rule (on table items)."""
    seen = meter.transactions  # (items, units by the rule, units DynamoDB Local answered)
    less = [t for t in seen if t[2] < t[1]]
    more = [t for t in seen if t[2] > t[1]]
    note = f"{len(seen)} transactions measured, WCU by AWS's rule on the table's items; DynamoDB Local answered "
    note += f"the same for {len(seen) - len(less) - len(more)}"
    if less:
        items, rule, answered = max(less)
        note += f", less for {len(less)} (several items in one table; e.g. {items} items: {answered:g}, rule {rule})"
    if more:
        items, rule, answered = min(more)
        note += (
            f", more for {len(more)} (e.g. {items} items: {answered:g}, rule {rule}: a hold is also written to the "
            "ByExpiry index, which the rule leaves out)"
        )
    return note


def notes_of(results: Sequence[Result], bench: GrowthBench, meter: GrowthMeter, seconds: float) -> list[str]:
    setup = ", ".join(
        f"{history} x{size:,} {elapsed:.0f} s" for (history, size), elapsed in sorted(bench.setup_seconds.items())
    )
    sizes = ", ".join(f"{size:,}" for size in sorted({result.size for result in results}))
    return [
        f"every history at N = {sizes}, each size on a user of its own, through the domain use cases with the real "
        "DynamoDB repositories on DynamoDB Local; the journal compacted to JOURNAL_KEEP before measuring",
        f"{seconds:.0f} s in all on {os.cpu_count()} CPUs; making the histories ({bench.workers} threads at once) "
        f"took {setup}",
        "items read = ScannedCount of each Query + the items of GetItem / BatchGetItem; RCU = the ConsumedCapacity "
        "DynamoDB Local answered for the reads; WCU by AWS's rule on item sizes read before and after each write",
        transaction_note(meter),
        "table (README):\n" + format_growth(results),
    ]


def measure_growth(sizes: Sequence[int] = DEFAULT_SIZES) -> tuple[list[Row], list[str], list[str]]:
    """The growth rows for ``devtools.bench`` (``report.run("growth", measure_growth)``); starts its own DynamoDB
    Local."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    started = time.monotonic()
    with fresh_dynamodb_local() as endpoint_url:
        meter = GrowthMeter(endpoint_url)
        results, bench = growth_results(sizes, endpoint_url=endpoint_url, meter=meter)
    return bench_rows(results), notes_of(results, bench, meter, time.monotonic() - started), bench.problems


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated positive integers") from exc
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"{text!r}: comma-separated positive integers")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench.growth", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=DEFAULT_SIZES,
        help="comma-separated history sizes (default 1,100,1000; README table: 1,100,1000,10000)",
    )
    args = parser.parse_args(argv)
    try:
        rows, notes, problems = measure_growth(args.sizes)
    except BenchError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    print()
    for note in notes:
        print(f"note  {note}")
    for problem in problems:
        print(f"FAIL  {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
