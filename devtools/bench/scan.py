"""The expiry scan's cost at scale (``make bench`` runs it; ``python -m devtools.bench.scan`` alone).

10,000 users each hold one group with one lot (written straight into an in-memory DynamoDB Local started for the run,
tables from template.yaml): 100 lots expire 5 minutes after the start, the 9,900 others in 30 to 60 days. A first
scan at the start sets the cursors (not measured: a first run also reads back a week of empty buckets and each
window's hours). The measured scan runs 15 minutes later, as the schedule would, through ``scan_expiry`` with the
real adapters; then an idle scan 15 minutes after that.

Requests are counted as the other parts count them (``devtools.bench.counting.DynamoDBRequestCounter``: a botocore
before-send hook on every PynamoDB model's client, cross-checked on the wire). Items read and written are taken from the
same clients' ``before-parameter-build`` (the request: which index, how many transaction items) and ``after-call``
(``ScannedCount`` of a Query: what DynamoDB read and bills, filtered or not) events.

Rows (metric ``items_read``, ``writes_per_expired_lot``, ``read_units``, ``dynamodb_requests``, ``lots``,
``write_units``):
- items read from the ``ByExpiry`` index (budget 110: proportional to the 100 due lots, not to the 10,000);
- items read in all: the index, plus the read of each expiring group (``expire_group``'s snapshot of the user's
  credit items: the group and its lots, eventually consistent first) that makes the expiry exact;
- expiry transactions per expired lot (budget 1: one TransactWriteItems closes a group's due lots, its order and
  writes CreditsExpired to the outbox);
- read units per expired lot (``ConsumedCapacity``, requested on every call of the run): what the reads cost;
- every request of the run, and of an idle run (nothing due: constant, whatever the table's size);
- a spend's write units now, and if the scan planned expiries from the index alone (``measure_spend_units``): the
  price of not reading the group (README "Behaviour (expiry scan)", "Why each expiring group is read").
"""

from __future__ import annotations

import contextlib
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from devtools.bench.counting import DynamoDBRequestCounter, Measurement, all_models, capacity_units, items_read
from devtools.bench.environment import fresh_dynamodb_local
from devtools.bench.rows import BenchError, Row, format_table

USERS = 10_000
DUE = 100
GROUP = "ScanBench"
TOKENS = 50
START = datetime(2031, 1, 6, 12, 0, tzinfo=UTC)
INDEX_BUDGET = 110


_READS = frozenset({"Query", "GetItem", "BatchGetItem", "TransactGetItems"})
_WRITES = frozenset({"UpdateItem", "PutItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})


@dataclass
class Traffic:
    """What the DynamoDB calls of one measurement read and wrote."""

    index_items: int = 0
    table_items: int = 0
    written: Counter[str] = field(default_factory=Counter)
    read_units: float = 0.0  # ConsumedCapacity of the reads (table and index), as DynamoDB bills them
    write_units: float = 0.0

    @property
    def items_read(self) -> int:
        return self.index_items + self.table_items


class ItemCounter(DynamoDBRequestCounter):
    """``DynamoDBRequestCounter`` that also adds up the items each request read and wrote."""

    HOOK_PARAMS = "devtools.bench.scan.params"
    HOOK_RESULT = "devtools.bench.scan.result"

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url)
        self.traffic: Traffic | None = None
        self._pending: list[tuple[str, bool, int]] = []

    def attach(self) -> int:
        clients = super().attach()
        for model in all_models():
            events = model._get_connection().connection.client.meta.events
            events.register("before-parameter-build.dynamodb", self._on_params, unique_id=self.HOOK_PARAMS)
            events.register("after-call.dynamodb", self._on_result, unique_id=self.HOOK_RESULT)
        return clients

    def _on_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        writes = len(params.get("TransactItems") or []) if model.name == "TransactWriteItems" else 0
        if model.name in {"UpdateItem", "PutItem", "DeleteItem"}:
            writes = 1
        if model.name in _READS | _WRITES:
            params.setdefault("ReturnConsumedCapacity", "INDEXES")
        self._pending.append((model.name, "IndexName" in params, writes))

    def _on_result(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if not self._pending:
            return
        operation, on_index, writes = self._pending.pop(0)
        if self.traffic is None or "Error" in parsed:
            return
        read = items_read(operation, parsed)
        if on_index:
            self.traffic.index_items += read
        else:
            self.traffic.table_items += read
        units = capacity_units(parsed)
        if operation in _READS:
            self.traffic.read_units += units
        else:
            self.traffic.write_units += units
        if writes:
            self.traffic.written[operation] += writes

    @contextlib.contextmanager
    def measure_items(self) -> Iterator[tuple[Measurement, Traffic]]:
        traffic = Traffic()
        self.traffic = traffic
        try:
            with self.measure() as measurement:
                yield measurement, traffic
        finally:
            self.traffic = None


def seed(users: int = USERS, due: int = DUE) -> list[str]:
    """One group and one lot per user, written with BatchWriteItem; returns the users whose lot is due."""
    from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, CreditsItem
    from usercredits.adapters.dynamodb.keys import group_sk, user_pk
    from usercredits.adapters.dynamodb.mappers import lot_to_item, movement_to_attribute
    from usercredits.domain.models import LedgerKind, Lot, Movement
    from usercredits.kernel.ids import new_ulid

    granted = START - timedelta(days=1)
    due_users = []
    with CreditsItem.batch_write() as batch:
        for n in range(users):
            user = f"bench-scan-{n:05d}"
            is_due = n % (users // due) == 0 and len(due_users) < due
            expires = START + (timedelta(minutes=5) if is_due else timedelta(days=30, minutes=n * 4))
            if is_due:
                due_users.append(user)
            lot = Lot(
                lot_id=new_ulid(granted),
                offer_group=GROUP,
                tokens=TOKENS,
                starts=granted,
                expires=expires,
                granted_at=granted,
            )
            grant = Movement(
                entry_id=new_ulid(granted),
                kind=LedgerKind.GRANT,
                tokens=TOKENS,
                lot_id=lot.lot_id,
                reason="bench",
                created_at=granted,
            )
            batch.save(lot_to_item(user, lot))
            batch.save(
                CreditGroupItem(
                    pk=user_pk(user),
                    sk=group_sk(GROUP),
                    user_id=user,
                    offer_group=GROUP,
                    version=1,
                    balance=TOKENS,
                    available=TOKENS,
                    held=0,
                    drawn=0,
                    next_expiry=expires,
                    journal=[movement_to_attribute(grant)],
                    journal_first_seq=1,
                    updated_at=granted,
                )
            )
    return due_users


class Clock:
    def __init__(self, now: datetime) -> None:
        self.current = now

    def now(self) -> datetime:
        return self.current


def run_scan(clock: Clock, name: str) -> Any:
    from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
    from usercredits.domain.expiry_scan import Unlimited, scan_expiry

    class Accepting:
        def publish_each(self, events: list[Any]) -> list[bool]:
            return [True] * len(events)

    return scan_expiry(
        run_id=str(uuid.uuid4()),
        lease=timedelta(minutes=2),
        windows=(7 * 86400, 86400),
        budget=Unlimited(),
        index=DynamoExpiryIndex(name),
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(),
        events=Accepting(),
        clock=clock,
    )


#: Spends that give the measured group a journal of a realistic length (compaction keeps 20 to 60 movements).
JOURNAL_SPENDS = 20


def measure_spend_units(endpoint_url: str) -> tuple[float, float, float]:
    """What a spend writes now, and what it would write if the expiry scan planned expiries from the index alone.

    Planning from the index needs the group's ``drawn`` in it (what each due lot has left depends on it), and
    ``drawn`` changes with every spend: DynamoDB then also writes the index on each spend. Measured, not assumed: a
    real spend's UpdateItem (captured from ``consume_credits`` on a group with a journal of realistic length) is
    replayed on two copies of that group in a table beside the real one, with a ``ByDue`` index that projects what
    the plan needs (INCLUDE: version, balance, drawn, next expiry and a one-lot summary of the open lots): one copy
    outside the index (as groups are now), one in it. Returns (units now, units in the index, of which the index).
    """
    import copy
    import json

    import boto3

    from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, CreditsItem
    from usercredits.adapters.dynamodb.keys import group_sk, user_pk
    from usercredits.domain import spending

    user, clock = "bench-spend", Clock(START)
    credits, catalog = DynamoCreditsRepository(), DynamoCatalogRepository()
    spending.grant_credits(
        user, GROUP, 10_000, expires=START + timedelta(days=30), reason="bench", credits=credits, clock=clock
    )

    def spend() -> None:
        spending.consume_credits(
            user, GROUP, 1, idempotency_key=None, catalog=catalog, credits=credits, clock=clock, events=None
        )

    for _ in range(JOURNAL_SPENDS):
        spend()
    captured: list[dict[str, Any]] = []

    def capture(params: dict[str, Any], **_: Any) -> None:
        captured.append(copy.deepcopy(params))

    events = CreditGroupItem._get_connection().connection.client.meta.events
    events.register("before-parameter-build.dynamodb.UpdateItem", capture, unique_id="devtools.bench.scan.capture")
    try:
        spend()
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", unique_id="devtools.bench.scan.capture")
    (update,) = captured
    client = boto3.client("dynamodb", endpoint_url=endpoint_url)
    table = f"bench-planned-{uuid.uuid4().hex[:8]}"
    planned = ["itemType", "userId", "offerGroup", "version", "balance", "drawn", "nextExpiry", "expiringLots"]
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"} for name in ("pk", "sk", "expiryBucket", "expiresAt")
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByDue",
                "KeySchema": [
                    {"AttributeName": "expiryBucket", "KeyType": "HASH"},
                    {"AttributeName": "expiresAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": planned},
            }
        ],
    )
    raw = client.get_item(
        TableName=CreditsItem.Meta.table_name, Key={"pk": {"S": user_pk(user)}, "sk": {"S": group_sk(GROUP)}}
    )["Item"]
    lots = [{"lotId": "L", "tokens": 10_000, "revoked": 0, "expires": (START + timedelta(days=30)).isoformat()}]
    indexed = {
        **raw,
        "pk": {"S": "INDEXED"},
        "expiryBucket": {"S": f"{START + timedelta(days=30):%Y-%m-%dT%H}"},
        "expiresAt": {"S": f"{(START + timedelta(days=30)).isoformat()}#{user}#GROUP#{GROUP}"},
        "expiringLots": {"S": json.dumps(lots)},
    }
    units = []
    for item in ({**raw, "pk": {"S": "PLAIN"}}, indexed):
        client.put_item(TableName=table, Item=item)
        replay = {**update, "TableName": table, "Key": {**update["Key"], "pk": item["pk"]}}
        replay["ReturnConsumedCapacity"] = "INDEXES"
        units.append(client.update_item(**replay)["ConsumedCapacity"])
    client.delete_table(TableName=table)
    index_units = sum(float(part["CapacityUnits"]) for part in (units[1].get("GlobalSecondaryIndexes") or {}).values())
    return float(units[0]["CapacityUnits"]), float(units[1]["CapacityUnits"]), index_units


def expired_in_outbox(users: list[str]) -> int:
    from usercredits.adapters.dynamodb.credits_table import OutboxItem
    from usercredits.adapters.dynamodb.keys import user_pk

    return sum(
        1
        for user in users
        for item in OutboxItem.query(user_pk(user), OutboxItem.sk.startswith("OUTBOX#"), consistent_read=True)
        for event in item.events
        if event.kind == "CreditsExpired"
    )


def _breakdown(measurement: Measurement) -> str:
    return ", ".join(f"{op} {n}" for op, n in sorted(Counter(measurement.hooked).items()))


def measure_scan() -> tuple[list[Row], list[str], list[str]]:
    """The scan rows; (rows, notes, problems). Starts its own DynamoDB Local."""
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with fresh_dynamodb_local() as endpoint_url:
        began = time.monotonic()
        due_users = seed()
        seeded = time.monotonic() - began
        counter = ItemCounter(endpoint_url)
        clock, name = Clock(START), f"bench-{uuid.uuid4().hex[:8]}"
        with counter.wire_tap():
            run_scan(clock, name)  # sets the cursors
            clock.current = START + timedelta(minutes=15)
            with counter.measure_items() as (measured, traffic):
                report = run_scan(clock, name)
            clock.current = START + timedelta(minutes=30)
            with counter.measure_items() as (idle, idle_traffic):
                idle_report = run_scan(clock, name)
        told = expired_in_outbox(due_users)
        spend_units = measure_spend_units(endpoint_url)
    rows, notes, problems = _rows(measured, traffic, report, idle, idle_traffic, idle_report, told, seeded)
    return [*rows, *_spend_rows(*spend_units)], notes, problems


def _spend_rows(now: float, planned: float, planned_index: float) -> list[Row]:
    label = f"a spend on a group with an expiring lot and {JOURNAL_SPENDS + 1} movements in its journal"
    return [
        Row(f"{label}: write units (the group is in no index)", "write_units", now),
        Row(
            f"{label}: write units if expiries were planned from the index alone",
            "write_units",
            planned,
            None,
            f"of which {planned_index:g} for the index: drawn would be projected, and it changes with every spend",
        ),
    ]


def _rows(
    measured: Measurement,
    traffic: Traffic,
    report: Any,
    idle: Measurement,
    idle_traffic: Traffic,
    idle_report: Any,
    told: int,
    seeded: float,
) -> tuple[list[Row], list[str], list[str]]:
    label = f"expiry scan, {USERS:,} users / {DUE} due"
    transactions = Counter(measured.hooked)["TransactWriteItems"]
    problems = []
    if report.lots_expired != DUE or report.tokens_expired != DUE * TOKENS or not report.caught_up:
        problems.append(f"{label}: the scan reported {report.as_dict()}, expected {DUE} lots / {DUE * TOKENS} tokens")
    if told != DUE:
        problems.append(f"{label}: {told} CreditsExpired in the outbox, expected {DUE}")
    if idle_report.lots_expired or idle_report.backlog:
        problems.append(f"{label}: the idle scan still found work: {idle_report.as_dict()}")
    per_lot = transactions / max(report.lots_expired, 1)
    rows = [
        Row(f"{label}: items read from the ByExpiry index", "items_read", traffic.index_items, INDEX_BUDGET),
        Row(
            f"{label}: items read in all",
            "items_read",
            traffic.items_read,
            None,
            f"index {traffic.index_items} + the read of each expiring group (its item and its lots) "
            f"{traffic.table_items}",
        ),
        Row(
            f"{label}: expiry transactions per expired lot",
            "writes_per_expired_lot",
            round(per_lot, 2),
            1,
            f"{transactions} TransactWriteItems ({traffic.written['TransactWriteItems']} items: group, lot, outbox) "
            f"for {report.lots_expired} lots; other writes: {traffic.written['UpdateItem']} UpdateItem (lease, cursor)",
        ),
        Row(
            f"{label}: read units per expired lot",
            "read_units",
            round(traffic.read_units / max(report.lots_expired, 1), 2),
            None,
            f"{traffic.read_units:g} read units in all (ConsumedCapacity): the index pages, and one eventually "
            "consistent Query of each expiring group (its item and its open lots)",
        ),
        Row(f"{label}: DynamoDB requests", "dynamodb_requests", measured.count, None, _breakdown(measured)),
        Row(f"{label}: lots expired", "lots", report.lots_expired, None, f"{told} CreditsExpired in the outbox"),
        Row(
            f"{label}: idle run (nothing due)",
            "dynamodb_requests",
            idle.count,
            None,
            f"{_breakdown(idle)}; {idle_traffic.items_read} items read",
        ),
    ]
    notes = [
        f"{USERS:,} users x 1 group + 1 lot seeded in {seeded:.1f} s (BatchWriteItem), DynamoDB Local "
        "in memory; measured: the scheduled run 15 minutes after the cursors were set, then an idle run"
    ]
    return rows, notes, problems


def main() -> int:
    try:
        rows, notes, problems = measure_scan()
    except BenchError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    print(format_table(rows))
    for note in notes:
        print(f"note  {note}")
    for problem in problems:
        print(f"FAIL  {problem}")
    return 1 if problems or any(row.over for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
