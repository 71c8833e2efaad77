"""Counting DynamoDB requests (a botocore ``before-send`` hook on every PynamoDB model's client, cross-checked on the
wire) and what they read, for every part of the bench that measures requests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devtools.bench.rows import BenchError

if TYPE_CHECKING:
    from pynamodb.models import Model


def all_models() -> list[type[Model]]:
    """Every PynamoDB model class of the tables (bases and their subclasses, recursively)."""
    from usercredits.adapters.dynamodb.tables import TABLE_MODELS

    found: list[type[Model]] = []
    pending = list(TABLE_MODELS.values())
    while pending:
        model = pending.pop(0)
        if model not in found:
            found.append(model)
            pending += model.__subclasses__()
    return found


def capacity_units(parsed: Mapping[str, Any]) -> float:
    """The capacity units a response says it consumed (table and indexes; a list for transactions)."""
    consumed = parsed.get("ConsumedCapacity") or []
    return sum(float(part.get("CapacityUnits", 0)) for part in (consumed if isinstance(consumed, list) else [consumed]))


def items_read(operation: str, parsed: Mapping[str, Any]) -> int:
    """The items a read request read: ``ScannedCount`` of a Query or Scan (what DynamoDB read and bills, filtered or
    not), the items a GetItem, BatchGetItem or TransactGetItems returned; 0 for a write."""
    if operation in {"Query", "Scan"}:
        return int(parsed.get("ScannedCount", 0))
    if operation == "GetItem":
        return 1 if parsed.get("Item") else 0
    if operation == "BatchGetItem":
        return sum(len(items) for items in (parsed.get("Responses") or {}).values())
    if operation == "TransactGetItems":
        return sum(1 for response in parsed.get("Responses") or [] if response.get("Item"))
    return 0


@dataclass
class Measurement:
    hooked: list[str] = field(default_factory=list)  # operation names seen by the before-send hooks
    wire: list[str] = field(default_factory=list)  # operation names of the HTTP requests sent to DynamoDB Local

    @property
    def count(self) -> int:
        return len(self.hooked)


class DynamoDBRequestCounter:
    """Counts DynamoDB requests two ways: a botocore hook on each model's client, and on the wire (to cross-check)."""

    HOOK_ID = "devtools.bench.counting.count-dynamodb"

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self._current: Measurement | None = None

    def attach(self) -> int:
        """Register the hook on the client of every model (idempotent); returns the number of distinct clients."""
        clients: dict[int, Any] = {}
        for model in all_models():
            client = model._get_connection().connection.client
            client.meta.events.register("before-send.dynamodb", self._on_send, unique_id=self.HOOK_ID)
            clients[id(client)] = client
        return len(clients)

    def _on_send(self, event_name: str, **_: Any) -> None:  # must return None: a value would replace the request
        if self._current is not None:
            self._current.hooked.append(event_name.rsplit(".", 1)[-1])

    def _on_wire(self, request: Any) -> None:
        if self._current is not None and str(request.url).startswith(self.endpoint_url):
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else str(target)
            self._current.wire.append(target.rsplit(".", 1)[-1] or "?")

    @contextlib.contextmanager
    def wire_tap(self) -> Iterator[None]:
        """Patch ``botocore.endpoint.Endpoint._send`` (one call per HTTP attempt) for the ``with`` block."""
        from botocore.endpoint import Endpoint

        original = Endpoint._send
        counter = self

        def counting_send(endpoint: Any, request: Any) -> Any:
            counter._on_wire(request)
            return original(endpoint, request)

        Endpoint._send = counting_send
        try:
            yield
        finally:
            Endpoint._send = original

    @contextlib.contextmanager
    def measure(self) -> Iterator[Measurement]:
        self.attach()
        measurement = Measurement()
        self._current = measurement
        try:
            yield measurement
        finally:
            self._current = None
        if measurement.hooked != measurement.wire:
            raise BenchError(
                f"the hook saw {measurement.hooked} but the wire saw {measurement.wire}: a DynamoDB client is not "
                "hooked (or a request was answered without being sent)"
            )


class ReadTally:
    """Items and read units of the DynamoDB requests made inside ``tally()``: ``ScannedCount`` of each Query (what
    DynamoDB read and bills, filtered or not), the items of each GetItem, and the ``ConsumedCapacity`` asked of every
    request (hooks on every model's client, removed again when the block ends)."""

    HOOKS = (("before-parameter-build.dynamodb", "_on_params"), ("after-call.dynamodb", "_on_result"))

    def __init__(self) -> None:
        self.items = 0
        self.units = 0.0

    def _on_params(self, params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _on_result(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if "Error" in parsed:
            return
        self.items += items_read(model.name, parsed)
        self.units += capacity_units(parsed)

    @contextlib.contextmanager
    def tally(self) -> Iterator[ReadTally]:
        self.items, self.units = 0, 0.0
        clients = {id(client): client for client in (m._get_connection().connection.client for m in all_models())}
        for client in clients.values():
            for event, method in self.HOOKS:
                client.meta.events.register(event, getattr(self, method), unique_id=f"devtools.bench.counting.{method}")
        try:
            yield self
        finally:
            for client in clients.values():
                for event, method in self.HOOKS:
                    client.meta.events.unregister(event, unique_id=f"devtools.bench.counting.{method}")


def calibrate(counter: DynamoDBRequestCounter) -> int:
    """One known call through every model's connection must count exactly one request of the expected operation."""
    from pynamodb.exceptions import DoesNotExist
    from pynamodb.transactions import TransactWrite

    from usercredits.adapters.dynamodb.credits_table import (
        CreditGroupItem,
        CreditsItem,
        IdempotencyItem,
        OfferItem,
        OrderItem,
    )
    from usercredits.adapters.dynamodb.customers_table import CustomersItem

    def get(model: type[Model]) -> None:
        with contextlib.suppress(DoesNotExist):
            model.get("BENCH#calibration", "NONE#0", consistent_read=True)

    def transaction() -> None:
        with TransactWrite(connection=CreditsItem._get_connection().connection) as tx:
            tx.condition_check(
                IdempotencyItem, "BENCH#calibration", "NONE#0", condition=IdempotencyItem.pk.does_not_exist()
            )

    calls: list[tuple[str, Callable[[], object], str]] = [
        ("OfferItem.query", lambda: list(OfferItem.query("CATALOG", OfferItem.sk.startswith("OFFER#"))), "Query"),
        ("CreditGroupItem.query", lambda: list(CreditGroupItem.query("BENCH#calibration")), "Query"),
        ("OrderItem.get", lambda: get(OrderItem), "GetItem"),
        ("IdempotencyItem.get", lambda: get(IdempotencyItem), "GetItem"),
        ("CreditsItem.get", lambda: get(CreditsItem), "GetItem"),
        ("CustomersItem.get", lambda: get(CustomersItem), "GetItem"),
        ("TransactWrite (repositories' connection)", transaction, "TransactWriteItems"),
    ]
    for label, call, operation in calls:
        with counter.measure() as measurement:
            call()
        if measurement.hooked != [operation]:
            raise BenchError(f"calibration: {label} counted {measurement.hooked}, expected [{operation!r}]")
    return counter.attach()
