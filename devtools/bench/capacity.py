"""Write units by AWS's rule: DynamoDB item sizes, and a meter that reads the size of every item a write names before
and after it (``CapacityMeter``), and what one operation cost (``GrowthMeter``, ``Cost``); shared by the hot-item and
growth parts of the bench.

AWS bills a write 1 unit per KB (1,024 bytes) started of the larger of the item's before and after images (2 in a
transaction). Sizes follow AWS's item size rules (names + values; numbers as DynamoDB Local charges them, byte for
byte). DynamoDB Local answers the rule's figure for each one-item write (checked on every one: a difference is
recorded), but less for a transaction of many items in one table, so transactions are counted by the rule.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from devtools.bench.counting import DynamoDBRequestCounter, all_models, capacity_units, items_read
from devtools.bench.rows import BenchError

WRITE_UNIT_BYTES = 1_024

_DATA_OPERATIONS = frozenset(
    {"GetItem", "Query", "BatchGetItem", "TransactGetItems", "PutItem", "UpdateItem", "DeleteItem"}
    | {"TransactWriteItems", "BatchWriteItem"}
)
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"})


# ------------------------------------------------------------------------------------------------ item size (AWS)
def number_size(text: str) -> int:
    """Bytes of a DynamoDB number: its significant digits in pairs aligned on the decimal point (leading and trailing
    zeros trimmed), one byte a pair, plus one byte, plus one more when negative (AWS documents the size as
    "approximately 1 byte per two significant digits + 1"; these are the bytes DynamoDB Local charges, checked)."""
    sign, digits, exponent = Decimal(text).normalize().as_tuple()
    if not any(digits) or not isinstance(exponent, int):
        return 1
    point = len(digits) + exponent  # digits are 0.d1d2...dn x 10**point
    aligned = ("0" if point % 2 else "") + "".join(map(str, digits))
    return math.ceil(len(aligned) / 2) + 1 + sign


def _list_size(elements: Sequence[Mapping[str, Any]]) -> int:
    return 3 + sum(1 + value_size(element) for element in elements)  # 3 bytes a list, 1 an element


def _map_size(elements: Mapping[str, Mapping[str, Any]]) -> int:
    # 3 bytes a map, 1 an element; an element is its name and its value
    return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in elements.items())


_VALUE_SIZES: dict[str, Any] = {
    "S": lambda data: len(str(data).encode()),
    "N": lambda data: number_size(str(data)),
    "B": len,
    "BOOL": lambda _: 1,
    "NULL": lambda _: 1,
    "SS": lambda data: sum(len(str(text).encode()) for text in data),
    "NS": lambda data: sum(number_size(str(number)) for number in data),
    "BS": lambda data: sum(len(blob) for blob in data),
    "L": _list_size,
    "M": _map_size,
}


def value_size(value: Mapping[str, Any]) -> int:
    """Bytes of one attribute value in DynamoDB JSON (``{"S": ...}``), by AWS's item size rules."""
    ((kind, data),) = value.items()
    if kind not in _VALUE_SIZES:
        raise ValueError(f"unknown DynamoDB type {kind!r}")
    return int(_VALUE_SIZES[kind](data))


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes of an item in DynamoDB JSON: the UTF-8 length of each attribute name plus the size of its value."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int, *, transactional: bool = False) -> int:
    """Write units of writing an item whose larger image is ``size`` bytes: 1 per KB started (2 in a transaction)."""
    return max(1, math.ceil(size / WRITE_UNIT_BYTES)) * (2 if transactional else 1)


# ------------------------------------------------------------------------------------------------------- metering
@dataclass(frozen=True)
class Target:
    """One item a write request wrote: its sort key and its size before and after (0: no item), in bytes."""

    action: str  # Put, Update, Delete, ConditionCheck
    sk: str
    before: int
    after: int

    def units(self, *, transactional: bool) -> int:
        return write_units(max(self.before, self.after), transactional=transactional)


@dataclass(frozen=True)
class Call:
    """One DynamoDB request: its operation, the capacity units DynamoDB Local answered, and for a write the items it
    wrote (sizes read before and after it, off the record), from which ``rule_units`` (AWS's billing rule) follows."""

    operation: str
    answered_units: float
    targets: tuple[Target, ...] = ()
    failed: bool = False

    @property
    def is_write(self) -> bool:
        return self.operation in _WRITES

    @property
    def transactional(self) -> bool:
        return self.operation == "TransactWriteItems"

    @property
    def rule_units(self) -> int:
        return sum(target.units(transactional=self.transactional) for target in self.targets)

    def target(self, prefix: str) -> Target:
        """The one item written whose sort key starts with ``prefix``."""
        (found,) = [target for target in self.targets if target.sk.startswith(prefix)]
        return found


@dataclass
class Calls:
    """The requests of one measured action, in order."""

    calls: list[Call] = field(default_factory=list)

    @property
    def writes(self) -> list[Call]:
        return [call for call in self.calls if call.is_write and not call.failed]

    @property
    def write_units(self) -> int:
        """The write units the action is billed, by AWS's rule."""
        return sum(call.rule_units for call in self.writes)

    @property
    def compacted(self) -> bool:
        """A spend that compacted the journal: a write transaction after the spend's own write."""
        return any(call.transactional for call in self.writes[1:])

    def describe(self) -> str:
        parts = [
            f"{call.operation} {call.rule_units if call.is_write else call.answered_units:g}" for call in self.calls
        ]
        return ", ".join(parts) or "(no request)"


def _targets(operation: str, params: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any] | None, Any]]:
    """(action, table, key or None, item put or None) of each item a write request names."""
    if operation == "TransactWriteItems":
        actions = [(action, spec) for entry in params["TransactItems"] for action, spec in entry.items()]
    elif operation in {"PutItem", "UpdateItem", "DeleteItem"}:
        actions = [(operation.removesuffix("Item"), params)]
    else:
        raise BenchError(f"{operation} is not metered by this bench")
    return [(action, spec["TableName"], spec.get("Key"), spec.get("Item")) for action, spec in actions]


class CapacityMeter(DynamoDBRequestCounter):
    """``DynamoDBRequestCounter`` (hooked requests cross-checked on the wire) that also asks every request for its
    ``ConsumedCapacity`` (TOTAL) and, for each write, reads the size of every item it names before and after it
    (BatchGetItem, consistent, through a client of its own and off the record): the write units by AWS's rule.

    Why both: DynamoDB Local answers AWS's figure for one-item writes (checked here on every one: a difference is
    recorded in ``mismatches``), but not for a transaction of several items in one table (e.g. 3 puts of 2 KB items
    answer 4 units where AWS bills 12), so transactions are counted by the rule, Local's answer kept for the notes.
    """

    HOOK_PARAMS = "devtools.bench.capacity.params"
    HOOK_RESULT = "devtools.bench.capacity.result"

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url)
        self._calls: Calls | None = None
        self._pending: list[list[tuple[str, str, dict[str, Any], Any, int]]] = []
        self._key_names: dict[str, list[str]] = {}
        self._side_client: Any = None
        self.mismatches: list[str] = []
        self.transactions: list[tuple[int, int, float]] = []  # (items, rule units, units Local answered)

    def _clients(self) -> list[Any]:
        clients = {id(client): client for client in (m._get_connection().connection.client for m in all_models())}
        return list(clients.values())

    def attach(self) -> int:
        clients = super().attach()
        for client in self._clients():
            client.meta.events.register("before-parameter-build.dynamodb", self._on_params, unique_id=self.HOOK_PARAMS)
            client.meta.events.register("after-call.dynamodb", self._on_result, unique_id=self.HOOK_RESULT)
        return clients

    def detach(self) -> None:
        for client in self._clients():
            client.meta.events.unregister("before-send.dynamodb", unique_id=self.HOOK_ID)
            client.meta.events.unregister("before-parameter-build.dynamodb", unique_id=self.HOOK_PARAMS)
            client.meta.events.unregister("after-call.dynamodb", unique_id=self.HOOK_RESULT)

    # ------------------------------------------------------------------------- reads off the record
    @contextlib.contextmanager
    def _off_the_record(self) -> Iterator[Any]:
        """The meter's own client (no hooks), with the wire count paused: its reads are not the action's."""
        if self._side_client is None:
            import boto3

            self._side_client = boto3.client("dynamodb", endpoint_url=self.endpoint_url)
        current, self._current = self._current, None
        try:
            yield self._side_client
        finally:
            self._current = current

    def _key(self, table: str, key: dict[str, Any] | None, item: Any) -> dict[str, Any]:
        if key is not None:
            return dict(key)
        if table not in self._key_names:
            with self._off_the_record() as client:
                schema = client.describe_table(TableName=table)["Table"]["KeySchema"]
            self._key_names[table] = [part["AttributeName"] for part in schema]
        return {name: item[name] for name in self._key_names[table]}

    def _sizes(self, keys: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """The size of each (table, key)'s item now (0: none)."""
        found: dict[str, int] = {}
        wanted: dict[str, list[dict[str, Any]]] = {}
        for table, key in keys:
            wanted.setdefault(table, [])
            if key not in wanted[table]:
                wanted[table].append(key)
        with self._off_the_record() as client:
            for table, table_keys in wanted.items():
                for start in range(0, len(table_keys), 100):
                    request = {table: {"Keys": table_keys[start : start + 100], "ConsistentRead": True}}
                    while request:
                        answer = client.batch_get_item(RequestItems=request)
                        for item in answer["Responses"].get(table, []):
                            found[_identity(table, self._key(table, None, item))] = item_size(item)
                        request = answer.get("UnprocessedKeys") or {}
        return [found.get(_identity(table, key), 0) for table, key in keys]

    # ------------------------------------------------------------------------------------ hooks
    def _on_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in _DATA_OPERATIONS:
            params["ReturnConsumedCapacity"] = "TOTAL"
        if self._calls is None:
            return
        named = []
        if model.name in _WRITES:
            for action, table, key, item in _targets(model.name, params):
                named.append((action, table, self._key(table, key, item), item))
        befores = self._sizes([(table, key) for _, table, key, _ in named])
        self._pending.append([(*target, before) for target, before in zip(named, befores, strict=True)])

    def _on_result(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if self._calls is None:
            return
        named = self._pending.pop(0)
        answered = capacity_units(parsed)
        if "Error" in parsed:
            self._calls.calls.append(Call(model.name, answered, failed=True))
            return
        afters = self._sizes([(table, key) for action, table, key, _, _ in named if action == "Update"])
        targets = []
        for action, _table, key, item, before in named:
            if action == "Put":
                after = item_size(item)
            elif action == "Update":
                after = afters.pop(0)
            else:
                after = 0 if action == "Delete" else before
            targets.append(Target(action, str(key.get("sk", {}).get("S", "")), before, after))
        call = Call(model.name, answered, tuple(targets))
        self._calls.calls.append(call)
        if call.is_write and not call.transactional and call.rule_units != answered:
            self.mismatches.append(
                f"{call.operation} of {targets}: DynamoDB Local answered {answered:g} write units, AWS's rule "
                f"gives {call.rule_units}"
            )
        elif call.transactional:
            self.transactions.append((len(targets), call.rule_units, answered))

    @contextlib.contextmanager
    def metered(self) -> Iterator[Calls]:
        calls = Calls()
        self._calls, self._pending = calls, []
        try:
            with self.measure():
                yield calls
        finally:
            self._calls = None

    def transaction_note(self) -> str:
        """How DynamoDB Local's answers for the transactions measured compare with the rule."""
        agree = [t for t in self.transactions if t[1] == t[2]]
        differ = [t for t in self.transactions if t[1] != t[2]]
        note = f"{len(self.transactions)} transactions counted by AWS's rule; DynamoDB Local answered the same for "
        note += f"{len(agree)}"
        if differ:
            items, rule, answered = max(differ)
            note += f", less for {len(differ)} (e.g. {items} items: {answered:g} answered, {rule} by the rule)"
        return note


def _identity(table: str, key: Mapping[str, Any]) -> str:
    return json.dumps([table, key], sort_keys=True)


# ------------------------------------------------------------------------------------------- cost of an operation
@dataclass
class Tally:
    """The requests of one measured operation: what they read, and the writes (``Calls``, with their units)."""

    calls: Calls = field(default_factory=Calls)
    items: int = 0
    requests: int = 0


@dataclass(frozen=True)
class Cost:
    """What one operation cost."""

    requests: int
    items_read: int
    read_units: float
    write_units: int  # by AWS's rule
    local_write_units: float  # what DynamoDB Local answered for the same writes
    closing_transactions: int  # transactions that closed lots
    operations: tuple[str, ...]

    @classmethod
    def of(cls, tally: Tally) -> Cost:
        calls = tally.calls.calls
        reads = [call for call in calls if not call.is_write]
        closing = [
            call
            for call in tally.calls.writes
            if call.transactional and any("#LOT#" in target.sk for target in call.targets)
        ]
        return cls(
            requests=tally.requests,
            items_read=tally.items,
            read_units=round(sum(call.answered_units for call in reads), 2),
            write_units=tally.calls.write_units,
            local_write_units=round(sum(call.answered_units for call in tally.calls.writes), 2),
            closing_transactions=len(closing),
            operations=tuple(call.operation for call in calls),
        )

    def cell(self, *, expiry: bool = False) -> str:
        """``1 req / 3 items / 0.5 RCU`` (``/ 2 WCU`` when it wrote; the closing transactions of an expiry)."""
        parts = [f"{self.requests:,} req"]
        if expiry:
            parts[0] += f" ({self.closing_transactions:,} closing txn)"
        parts += [f"{self.items_read:,} items", f"{self.read_units:,g} RCU"]
        if self.write_units:
            parts.append(f"{self.write_units:,} WCU")
        return " / ".join(parts)

    def describe(self) -> str:
        """The requests in order, repeats folded: ``Query, TransactWriteItems x3, GetItem``."""
        folded: list[list[Any]] = []
        for operation in self.operations:
            if folded and folded[-1][0] == operation:
                folded[-1][1] += 1
            else:
                folded.append([operation, 1])
        return ", ".join(name if count == 1 else f"{name} x{count}" for name, count in folded) or "(no request)"


class GrowthMeter(CapacityMeter):
    """``CapacityMeter`` (requests hooked and cross-checked on the wire, write units by AWS's rule) that also adds up
    the items each read request read."""

    def __init__(self, endpoint_url: str) -> None:
        super().__init__(endpoint_url)
        self._tally: Tally | None = None

    def _on_result(self, parsed: dict[str, Any], model: Any, **kwargs: Any) -> None:
        super()._on_result(parsed=parsed, model=model, **kwargs)
        if self._tally is not None and "Error" not in parsed:
            self._tally.items += items_read(model.name, parsed)

    @contextlib.contextmanager
    def costed(self) -> Iterator[Tally]:
        """Meter the ``with`` block: its requests, items read, and the calls with their units."""
        tally = Tally()
        self._calls, self._pending, self._tally = tally.calls, [], tally
        try:
            with self.measure() as measurement:
                yield tally
        finally:
            self._calls, self._tally = None, None
        tally.requests = measurement.count
