"""The hot-item ceiling: write units per spend of a group item, by journal length (``make bench``; alone:
``python -m devtools.bench.hot_item``).

Every spend of a user's offer group writes one item, the group item (``CREDIT#<group>``), whose journal grows by one
movement per spend until compaction (journal longer than ``JOURNAL_MAX``) moves all but ``JOURNAL_KEEP`` of them to
ledger items. DynamoDB gives one partition 1,000 write units per second, and a write unit covers 1 KB (1,024 bytes)
of the larger of the item's before and after images (a transaction: twice that). So the item's size sets how many
spends per second one user's group can take.

Measured, not assumed: spends go through the domain (``consume_credits``) with the real DynamoDB repository, against
DynamoDB Local (tables from template.yaml). For each write request of a measured spend, the size of every item it names
is read before and after it (``CapacityMeter``: ``before-parameter-build`` / ``after-call`` hooks on every PynamoDB
model's botocore client; the reads go through a client of its own, off the record), and its write units follow AWS's
rule (``devtools.bench.capacity``): per item, 1 per KB started of the larger image, 2 in a transaction. Sizes follow
AWS's item size rules (names + values; numbers as DynamoDB Local charges them, byte for byte). Every request also asks
``ReturnConsumedCapacity=TOTAL``: DynamoDB Local answers the rule's figure for each one-item write (checked on every
one; a difference fails the run), but less for a transaction of many items in one table (the compaction: 22 answered for
42 items, 102 by the rule), so transactions are counted by the rule. The requests are also counted on the wire
(``devtools.bench.counting.DynamoDBRequestCounter``): a request from a client the hooks do not see fails the run.

``hot_item_rows`` (one row per journal length: the movements in the journal before the measured spend; each
measurement on a user of its own: one grant, then spends up to that length, then the measured spend):

- ``item_bytes``: the group item right after the spend (its larger image: the one the write is billed on);
- ``wcu_spend``: the spend without Idempotency-Key (one UpdateItem);
- ``wcu_keyed_spend``: with one (one TransactWriteItems: the group item and the idempotency record, 2x), the journal
  filled with keyed spends (each movement then carries its key, a UUID here); ``wcu_keyed_group`` is the group item's
  share (2 x ceil(bytes / 1 KB), by the rule), the rest is the idempotency record;
- ``wcu_compaction_spend`` / ``wcu_keyed_compaction_spend``: at the journal length whose spend triggers compaction
  (``JOURNAL_MAX``), the spend plus the compaction transaction (the group item and one ledger item per movement moved,
  2x).

``journal_cycle_rows`` measures whole compaction cycles (from one compaction to the next, inclusive) for several
``(JOURNAL_MAX, JOURNAL_KEEP)`` settings (patched on the repository module for the run): the write units of every
spend and of the compaction, per spend: the sustained cost a smaller journal trades.

``measure_hot_item()`` starts its own DynamoDB Local and returns ``devtools.bench`` rows (``Report.run`` takes it).
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from devtools.bench.capacity import Call, Calls, CapacityMeter, Target
from devtools.bench.environment import fresh_dynamodb_local
from devtools.bench.rows import BenchError, Row, format_table

#: Journal lengths measured (movements before the spend): right after compaction (JOURNAL_KEEP), between, and the
#: length whose spend triggers compaction (JOURNAL_MAX).
JOURNAL_LENGTHS = (20, 30, 40, 50, 60)
#: ``(JOURNAL_MAX, JOURNAL_KEEP)`` settings whose compaction cycles ``journal_cycle_rows`` measures (the first: now).
JOURNAL_SETTINGS = ((60, 20), (40, 20), (30, 10), (20, 5))
#: Write units per second one DynamoDB partition takes (and so one item, which never spans partitions).
PARTITION_WCU_PER_SECOND = 1_000
GROUP = "HotItemBench"
GRANT = 1_000_000


# --------------------------------------------------------------------------------------------------- the spends
@dataclass(frozen=True)
class HotItemRow:
    """What one spend costs at one journal length (see the module docstring)."""

    journal: int
    item_bytes: int
    wcu_spend: int
    keyed_item_bytes: int
    wcu_keyed_spend: int
    wcu_keyed_group: int
    wcu_compaction_spend: int | None = None
    wcu_keyed_compaction_spend: int | None = None
    wcu_compaction_group: int | None = None  # the group item's share of the compaction transaction
    moved: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class SpendCost:
    """One measured spend: the journal length it found, and its requests (the spend's write first)."""

    journal: int
    calls: Calls

    @property
    def spend(self) -> Call:
        return self.calls.writes[0]

    @property
    def group(self) -> Target:
        """The group item as the spend wrote it."""
        return self.spend.target("CREDIT#")

    @property
    def compaction(self) -> Call | None:
        writes = self.calls.writes
        return writes[1] if len(writes) > 1 else None


def _integer(units: float, what: str) -> int:
    if units <= 0 or not float(units).is_integer():
        raise BenchError(f"{what}: {units} write units, expected a positive whole number")
    return int(units)


class SpendBench:
    """Spends of 1 token through ``consume_credits`` with the real repository, on users of their own."""

    def __init__(self, meter: CapacityMeter) -> None:
        from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
        from usercredits.adapters.events import EventBridgePublisher
        from usercredits.kernel.clock import SystemClock

        self.meter = meter
        self.credits = DynamoCreditsRepository()
        self.catalog = DynamoCatalogRepository(cache_seconds=3600)
        # The bench's group has no low threshold: nothing is ever published (the client is built on first publish).
        self.events = EventBridgePublisher("user-credits-bench")
        self.clock = SystemClock()

    def new_user(self) -> str:
        from usercredits.domain.spending import grant_credits

        user = f"hot-item-{uuid.uuid4().hex[:12]}"
        grant_credits(user, GROUP, GRANT, expires=None, reason="bench", credits=self.credits, clock=self.clock)
        return user

    def spend(self, user: str, *, keyed: bool) -> None:
        from usercredits.domain.spending import consume_credits

        key = str(uuid.uuid4()) if keyed else None
        consume_credits(
            user,
            GROUP,
            1,
            idempotency_key=key,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
            events=self.events,
        )

    def journal_length(self, user: str) -> int:
        state = self.credits.group_state(user, GROUP)
        return len(state.journal) if state is not None else 0

    def measured_spend(self, user: str, *, keyed: bool) -> SpendCost:
        journal = self.journal_length(user)
        with self.meter.metered() as calls:
            self.spend(user, keyed=keyed)
        if not calls.writes or calls.writes[0].transactional != keyed:
            raise BenchError(f"a {'keyed ' if keyed else ''}spend at journal {journal} wrote {calls.describe()}")
        return SpendCost(journal, calls)

    def spend_at(self, journal: int, *, keyed: bool) -> SpendCost:
        """A new user's group with ``journal`` movements (its grant, then spends), and its next spend, measured."""
        user = self.new_user()
        for _ in range(journal - 1):
            self.spend(user, keyed=keyed)
        cost = self.measured_spend(user, keyed=keyed)
        if cost.journal != journal:
            raise BenchError(f"setup: the journal had {cost.journal} movements, expected {journal}")
        return cost


def hot_item_rows(
    journal_lengths: Sequence[int] = JOURNAL_LENGTHS,
    *,
    endpoint_url: str | None = None,
    meter: CapacityMeter | None = None,
) -> list[HotItemRow]:
    """Write units of a spend (without and with an Idempotency-Key) at each journal length, and of the spend that
    compacts the journal at ``JOURNAL_MAX``; against the DynamoDB Local the models point at (``endpoint_url``, by
    default ``AWS_ENDPOINT_URL_DYNAMODB``), whose tables must exist. Raises ``BenchError`` if the figures cannot be
    trusted (an unhooked request, a zero unit count, a one-item write DynamoDB Local bills otherwise than the rule)."""
    from usercredits.adapters.dynamodb.credits import JOURNAL_MAX

    if any(not 1 <= length <= JOURNAL_MAX for length in journal_lengths):
        raise BenchError(f"journal lengths {list(journal_lengths)} must be within 1..{JOURNAL_MAX}")
    meter = meter or CapacityMeter(endpoint_url or _endpoint_url())
    bench = SpendBench(meter)
    rows = []
    try:
        with meter.wire_tap():
            for length in journal_lengths:
                plain, keyed = bench.spend_at(length, keyed=False), bench.spend_at(length, keyed=True)
                rows.append(_row(length, plain, keyed, compacts=length == JOURNAL_MAX))
    finally:
        meter.detach()
    if meter.mismatches:
        raise BenchError("; ".join(meter.mismatches))
    return rows


def _row(length: int, plain: SpendCost, keyed: SpendCost, *, compacts: bool) -> HotItemRow:
    for cost in (plain, keyed):
        if cost.calls.compacted != compacts:
            done = "did not compact" if compacts else "compacted"
            raise BenchError(f"the spend at journal {length} {done} the journal: {cost.calls.describe()}")
    compaction = plain.compaction
    return HotItemRow(
        journal=length,
        item_bytes=plain.group.after,
        wcu_spend=_integer(plain.spend.rule_units, f"spend at journal {length}"),
        keyed_item_bytes=keyed.group.after,
        wcu_keyed_spend=_integer(keyed.spend.rule_units, f"keyed spend at journal {length}"),
        wcu_keyed_group=keyed.group.units(transactional=True),
        wcu_compaction_spend=_integer(plain.calls.write_units, "compacting spend") if compacts else None,
        wcu_keyed_compaction_spend=_integer(keyed.calls.write_units, "compacting keyed spend") if compacts else None,
        wcu_compaction_group=compaction.target("CREDIT#").units(transactional=True) if compaction else None,
        moved=sum(1 for target in compaction.targets if target.sk.startswith("LEDGER#")) if compaction else None,
    )


# ---------------------------------------------------------------------------------------------- compaction cycles
@dataclass(frozen=True)
class CycleRow:
    """One compaction cycle at a ``(journal_max, journal_keep)`` setting: the spends from one compaction to the
    next, the last one included (it compacts)."""

    journal_max: int
    journal_keep: int
    keyed: bool
    spends: int
    spend_wcu: int  # the spends' own writes (UpdateItem / TransactWriteItems), summed
    spend_wcu_max: int
    compaction_wcu: int  # the compaction transaction (group item + ledger items)
    compaction_group_wcu: int  # of which the group item
    group_spend_wcu: int  # the spends' writes of the group item alone (a keyed spend also writes its key record)

    @property
    def group_wcu_per_spend(self) -> float:
        """What the group item alone takes per spend (the key records and ledger items are other items)."""
        return (self.group_spend_wcu + self.compaction_group_wcu) / self.spends

    @property
    def wcu_per_spend(self) -> float:
        return (self.spend_wcu + self.compaction_wcu) / self.spends

    @property
    def spends_per_second(self) -> float:
        return PARTITION_WCU_PER_SECOND / self.wcu_per_spend

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.__dict__,
            "wcu_per_spend": round(self.wcu_per_spend, 2),
            "group_wcu_per_spend": round(self.group_wcu_per_spend, 2),
            "spends_per_second": round(self.spends_per_second),
        }


@contextlib.contextmanager
def journal_limits(journal_max: int, journal_keep: int) -> Iterator[None]:
    """Run the repository with other compaction limits for the ``with`` block (module constants, restored after)."""
    from usercredits.adapters.dynamodb import credits

    saved = credits.JOURNAL_MAX, credits.JOURNAL_KEEP
    if not 0 < journal_keep < journal_max or journal_max + 1 - journal_keep > credits.MAX_MOVED:
        raise BenchError(f"journal limits {journal_max}/{journal_keep}: a compaction must move 1..{credits.MAX_MOVED}")
    credits.JOURNAL_MAX, credits.JOURNAL_KEEP = journal_max, journal_keep
    try:
        yield
    finally:
        credits.JOURNAL_MAX, credits.JOURNAL_KEEP = saved


def _cycle(bench: SpendBench, journal_max: int, journal_keep: int, *, keyed: bool) -> CycleRow:
    user = bench.new_user()
    for _ in range(journal_max - 1):  # the grant and these: JOURNAL_MAX movements, the next spend compacts
        bench.spend(user, keyed=keyed)
    if not bench.measured_spend(user, keyed=keyed).calls.compacted or bench.journal_length(user) != journal_keep:
        raise BenchError(f"setup {journal_max}/{journal_keep}: the first compaction did not leave {journal_keep}")
    costs = [bench.measured_spend(user, keyed=keyed) for _ in range(journal_max + 1 - journal_keep)]
    if [cost.calls.compacted for cost in costs] != [False] * (len(costs) - 1) + [True]:
        raise BenchError(f"{journal_max}/{journal_keep}: not one compaction at the end of the cycle")
    spends = [_integer(cost.spend.rule_units, f"spend at journal {cost.journal}") for cost in costs]
    compaction = costs[-1].compaction
    assert compaction is not None
    return CycleRow(
        journal_max=journal_max,
        journal_keep=journal_keep,
        keyed=keyed,
        spends=len(costs),
        spend_wcu=sum(spends),
        spend_wcu_max=max(spends),
        compaction_wcu=_integer(compaction.rule_units, f"compaction at {journal_max}/{journal_keep}"),
        compaction_group_wcu=compaction.target("CREDIT#").units(transactional=True),
        group_spend_wcu=sum(cost.group.units(transactional=keyed) for cost in costs),
    )


def journal_cycle_rows(
    settings: Sequence[tuple[int, int]] = JOURNAL_SETTINGS,
    *,
    keyed: Sequence[bool] = (False, True),
    endpoint_url: str | None = None,
    meter: CapacityMeter | None = None,
) -> list[CycleRow]:
    """One steady-state compaction cycle per ``(JOURNAL_MAX, JOURNAL_KEEP)`` setting (and per keyed/plain spends):
    the write units of its spends and of its compaction, measured like ``hot_item_rows``."""
    meter = meter or CapacityMeter(endpoint_url or _endpoint_url())
    bench = SpendBench(meter)
    rows = []
    try:
        with meter.wire_tap():
            for journal_max, journal_keep in settings:
                with journal_limits(journal_max, journal_keep):
                    rows += [_cycle(bench, journal_max, journal_keep, keyed=flag) for flag in keyed]
    finally:
        meter.detach()
    if meter.mismatches:
        raise BenchError("; ".join(meter.mismatches))
    return rows


def _endpoint_url() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    if not endpoint:
        raise BenchError("AWS_ENDPOINT_URL_DYNAMODB is not set: point it at DynamoDB Local (or pass endpoint_url)")
    return endpoint


# ---------------------------------------------------------------------------------------------- bench rows, main
def ceiling(wcu_per_spend: float) -> float:
    """Spends per second one partition (one item) takes at ``wcu_per_spend`` write units each."""
    return PARTITION_WCU_PER_SECOND / wcu_per_spend


def ceilings(rows: Sequence[HotItemRow], cycles: Sequence[CycleRow]) -> dict[str, int]:
    """Spends/s of one user's group (``1,000 / write units per spend``), without and with an Idempotency-Key:

    - ``largest spend``: the spend on the longest journal (``JOURNAL_MAX``), alone;
    - ``average spend``: the spends of a compaction cycle at the current limits, compaction left out;
    - ``sustained``: the same cycle with its compaction (the group item and the ledger items it writes) spread over
      its spends: all the writes under the user's partition key, the figure to plan with.
    """
    largest = max(rows, key=lambda row: row.journal)
    out = {"largest spend": ceiling(largest.wcu_spend), "largest spend, keyed": ceiling(largest.wcu_keyed_spend)}
    for cycle in cycles:
        if (cycle.journal_max, cycle.journal_keep) != JOURNAL_SETTINGS[0]:
            continue
        keyed = ", keyed" if cycle.keyed else ""
        out[f"average spend{keyed}"] = ceiling(cycle.spend_wcu / cycle.spends)
        out[f"sustained{keyed}"] = cycle.spends_per_second
    return {name: round(value) for name, value in out.items()}


def bench_rows(rows: Sequence[HotItemRow], cycles: Sequence[CycleRow]) -> list[Row]:
    """``devtools.bench`` rows (reported, no budget) of the measurements."""
    out = []
    for row in rows:
        name = f"hot item: spend at journal {row.journal}"
        out += [
            Row(name, "item_bytes", row.item_bytes, None, f"group item after the spend ({row.journal + 1} movements)"),
            Row(name, "write_units", row.wcu_spend, None, f"UpdateItem; {ceiling(row.wcu_spend):.0f} spends/s"),
            Row(
                f"{name}, Idempotency-Key",
                "write_units",
                row.wcu_keyed_spend,
                None,
                f"TransactWriteItems: group item {row.wcu_keyed_group} ({row.keyed_item_bytes} bytes) + key record "
                f"{row.wcu_keyed_spend - row.wcu_keyed_group}; {ceiling(row.wcu_keyed_spend):.0f} spends/s",
            ),
        ]
        if row.wcu_compaction_spend is not None:
            out.append(
                Row(
                    f"{name} (compacts the journal)",
                    "write_units",
                    row.wcu_compaction_spend,
                    None,
                    f"the spend {row.wcu_spend} + the compaction transaction (group item {row.wcu_compaction_group}, "
                    f"{row.moved} ledger items); with a key: {row.wcu_keyed_compaction_spend}",
                )
            )
    for cycle in cycles:
        label = "keyed spends" if cycle.keyed else "spends"
        out.append(
            Row(
                f"hot item: compaction cycle {cycle.journal_max}/{cycle.journal_keep}, {label}",
                "write_units_per_spend",
                round(cycle.wcu_per_spend, 2),
                None,
                f"{cycle.spends} spends {cycle.spend_wcu} + compaction {cycle.compaction_wcu}; "
                f"{cycle.spends_per_second:.0f} spends/s (group item alone: {cycle.group_wcu_per_spend:.2f})",
            )
        )
    for name, value in ceilings(rows, cycles).items():
        out.append(Row(f"hot item: ceiling, {name}", "spends_per_s", value, None, "one user's group, one partition"))
    return out


def _measure(endpoint_url: str) -> tuple[list[HotItemRow], list[CycleRow], list[str]]:
    """Both measurements on a fresh DynamoDB Local at ``endpoint_url`` (its tables made): (rows, cycles, notes)."""
    meter = CapacityMeter(endpoint_url)
    rows = hot_item_rows(meter=meter)
    cycles = journal_cycle_rows(meter=meter)
    notes = [
        "spends of 1 token through consume_credits with the real repository on DynamoDB Local; write units by AWS's "
        "rule (per item: 1 per KB started of its larger image, 2 in a transaction) on item sizes read before and "
        "after each write; DynamoDB Local answered the same for every one-item write (checked)",
        meter.transaction_note(),
        f"one partition (and so one item) takes {PARTITION_WCU_PER_SECOND:,} write units/s: spends/s = "
        f"{PARTITION_WCU_PER_SECOND:,} / write units per spend",
    ]
    return rows, cycles, notes


def measure_hot_item() -> tuple[list[Row], list[str], list[str]]:
    """The hot-item rows for ``devtools.bench`` (``report.run("hot item", measure_hot_item)``); starts its own
    DynamoDB Local."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with fresh_dynamodb_local() as endpoint_url:
        rows, cycles, notes = _measure(endpoint_url)
    return bench_rows(rows, cycles), notes, []


def format_rows(rows: Sequence[HotItemRow], cycles: Sequence[CycleRow]) -> str:
    """The two tables as Markdown (the README section's)."""
    lines = [
        "| journal (before the spend) | group item bytes (after) | WCU spend | spends/s "
        "| keyed: item bytes | keyed: WCU (group + key record) | spends/s | compacting spend: WCU (plain / keyed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        compaction = "–"
        if row.wcu_compaction_spend is not None:
            compaction = f"{row.wcu_compaction_spend} / {row.wcu_keyed_compaction_spend} ({row.moved} moved)"
        lines.append(
            f"| {row.journal} | {row.item_bytes:,} | {row.wcu_spend} | {ceiling(row.wcu_spend):.0f} "
            f"| {row.keyed_item_bytes:,} | {row.wcu_keyed_spend} ({row.wcu_keyed_group} + "
            f"{row.wcu_keyed_spend - row.wcu_keyed_group}) | {ceiling(row.wcu_keyed_spend):.0f} | {compaction} |"
        )
    lines += [
        "",
        "| JOURNAL_MAX / KEEP | spends a cycle | spends' WCU (largest) | compaction WCU (group item) "
        "| WCU per spend | group item's WCU per spend | spends/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for cycle in cycles:
        lines.append(
            f"| {cycle.journal_max} / {cycle.journal_keep}{', keyed' if cycle.keyed else ''} | {cycle.spends} "
            f"| {cycle.spend_wcu} ({cycle.spend_wcu_max}) | {cycle.compaction_wcu} ({cycle.compaction_group_wcu}) "
            f"| {cycle.wcu_per_spend:.2f} | {cycle.group_wcu_per_spend:.2f} | {cycle.spends_per_second:.0f} |"
        )
    return "\n".join(lines)


def main() -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        with fresh_dynamodb_local() as endpoint_url:
            rows, cycles, notes = _measure(endpoint_url)
    except BenchError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    print(format_table(bench_rows(rows, cycles)))
    print()
    for note in notes:
        print(f"note  {note}")
    print()
    print(format_rows(rows, cycles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
