"""Reading the outbox back: the events of an ``OUTBOX#`` item as the table's stream delivers it (new image); a
transaction writes them with ``transactions.add_outbox``. Kept apart from the write side so the event publisher's
cold start loads neither PynamoDB's models nor the transaction kit.

Each event gets ``eventId`` = ``<outbox sort key>#<position>`` in its detail: the same fact always carries the same id,
so a consumer can drop the rare duplicate (EventBridge's PutEvents has no idempotency key; a retried stream batch may
put an event again after a failure that came after it was accepted).
"""

from __future__ import annotations

import json
from typing import Any

from usercredits.adapters.dynamodb.keys import (
    OUTBOX_PREFIX,
)
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
