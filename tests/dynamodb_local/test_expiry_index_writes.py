"""What the ``ByExpiry`` index costs in write units, measured on the real engine (it reports each index's units).

A spend that takes a group to its low threshold marks the group in the index (the scan's backstop for the
``CreditsLow``), publishes, then clears the mark; while it is marked (publishing failed), every spend rewrites the
group (its balance and its journal of up to 60 movements). With the index projecting whole items (``ALL``), the mark,
its clearing and each of those spends wrote the whole group to the index too; the index now projects only what the
scan reads (``INCLUDE``): one unit each, whatever the journal's size. Lots and holds are projected in full either way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.fakes.events import RecordingEventPublisher
from tests.helpers.races import grant
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, CreditsItem
from usercredits.adapters.dynamodb.keys import group_sk, user_pk
from usercredits.domain import spending
from usercredits.domain.models import GroupPolicy
from usercredits.kernel.clock import SystemClock

pytestmark = pytest.mark.dynamodb_local
HOOK = "tests.expiry-index-units"


@contextmanager
def write_units() -> Iterator[list[dict[str, float]]]:
    """Each DynamoDB write's units while inside: ``{"table": units, "ByExpiry": units, ...}``."""
    client = CreditsItem._get_connection().connection.client
    measured: list[dict[str, float]] = []

    def ask(params: dict[str, Any], **_: Any) -> None:
        params["ReturnConsumedCapacity"] = "INDEXES"

    def record(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in {"UpdateItem", "PutItem", "TransactWriteItems", "DeleteItem"}:
            return
        consumed = parsed.get("ConsumedCapacity") or []
        units: dict[str, float] = {}
        for part in consumed if isinstance(consumed, list) else [consumed]:
            units["table"] = units.get("table", 0) + float((part.get("Table") or {}).get("CapacityUnits", 0))
            for index, figures in (part.get("GlobalSecondaryIndexes") or {}).items():
                units[index] = units.get(index, 0) + float(figures["CapacityUnits"])
        measured.append(units)

    client.meta.events.register("before-parameter-build.dynamodb", ask, unique_id=f"{HOOK}-ask")
    client.meta.events.register("after-call.dynamodb", record, unique_id=f"{HOOK}-record")
    try:
        yield measured
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb", unique_id=f"{HOOK}-ask")
        client.meta.events.unregister("after-call.dynamodb", unique_id=f"{HOOK}-record")


def test_marking_a_group_low_writes_one_unit_to_the_expiry_index(user_id: str) -> None:
    catalog, credits = DynamoCatalogRepository(cache_seconds=0), DynamoCreditsRepository()
    group = f"Low-{uuid.uuid4().hex[:8]}"
    catalog.put_group_policy(GroupPolicy(offer_group=group, low_threshold=500))

    def spend(count: int) -> None:
        spending.consume_credits(
            user_id,
            group,
            count,
            idempotency_key=None,
            catalog=catalog,
            credits=credits,
            clock=SystemClock(),
            events=RecordingEventPublisher(),
        )

    # Given a group with a full journal (60 movements), just above its low threshold
    grant(user_id, group, 2025, credits, days=30)
    for _ in range(60):
        spend(25)
    assert CreditGroupItem.get(user_pk(user_id), group_sk(group), consistent_read=True).balance == 525
    # When a spend crosses the threshold: the group is marked in the index (the scan's backstop), the CreditsLow is
    # published, and the mark is cleared
    with write_units() as measured:
        spend(25)
    # Then the spend writes the whole group to the table (several units: the journal), and the mark and its clearing
    # one unit each to the index
    print(f"\nthe crossing spend's writes: {measured}")
    assert [units.get("ByExpiry", 0) for units in measured] == [0, 1, 1]
    assert measured[0]["table"] >= 3
