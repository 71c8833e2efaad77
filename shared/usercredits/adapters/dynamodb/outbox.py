"""The outbox: a transaction that changes money writes the events it owes as one ``OUTBOX#`` item (``add_outbox``),
and the event publisher reads them back from the table's stream (``outbox_events``, from the new image).

Each event gets ``eventId`` = ``<outbox sort key>#<position>`` in its detail: the same fact always carries the same id,
so a consumer can drop the rare duplicate (EventBridge's PutEvents has no idempotency key; a retried stream batch may
put an event again after a failure that came after it was accepted).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.keys import (
    OUTBOX_PREFIX,
    outbox_sk,
    user_pk,
)
from usercredits.adapters.dynamodb.tables import (
    OutboxEventAttribute,
    OutboxItem,
)
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent


def is_outbox_item(image: dict[str, Any]) -> bool:
    return str(image.get("sk", "")).startswith(OUTBOX_PREFIX) and image.get("itemType") == "outbox"


def outbox_events(image: dict[str, Any]) -> list[DomainEvent]:
    """The events of one outbox item (a deserialised DynamoDB image), in the order they were written."""
    key = str(image["sk"])
    events = []
    for position, entry in enumerate(image.get("events") or []):
        detail = json.loads(entry["detail"])
        detail["eventId"] = f"{key}#{position}"
        events.append(DomainEvent(str(entry["kind"]), detail))
    return events


#: Outbox items outlive the stream's 24 h retention, then DynamoDB's TTL deletes them (deletes are not published).
OUTBOX_TTL = timedelta(days=2)


def add_outbox(transaction: TransactWrite, user_id: str, events: Sequence[DomainEvent], now: datetime) -> None:
    """Write ``events`` to the outbox in ``transaction``: they exist exactly when the fact they tell commits, and the
    table's stream hands them to the event publisher function (see ``OutboxItem``)."""
    if not events:
        return
    item = OutboxItem(
        pk=user_pk(user_id),
        sk=outbox_sk(new_ulid(now)),
        events=[
            OutboxEventAttribute(kind=event.kind, detail=json.dumps(event.detail, sort_keys=True, default=str))
            for event in events
        ],
        created_at=now,
        ttl=now + OUTBOX_TTL,
    )
    transaction.save(item, condition=OutboxItem.pk.does_not_exist())
