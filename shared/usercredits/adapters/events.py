"""EventBridge publisher for the domain's events (source ``user-credits``).

The client is built from botocore on first publish (botocore is already loaded by PynamoDB; boto3 is not needed), so
functions that never publish pay nothing at cold start.
"""

from __future__ import annotations

import json
from typing import Any

from usercredits.domain.ports import DomainEvent
from usercredits.errors import UnavailableError

SOURCE = "user-credits"
#: PutEvents takes at most 10 entries per call.
BATCH = 10
_ATTEMPTS = 3


class EventBridgePublisher:
    """Publishes to one bus; entries a partial failure rejected are sent again (up to 3 attempts)."""

    def __init__(self, bus_name: str) -> None:
        self._bus_name = bus_name
        self._client: Any = None

    def _events_client(self) -> Any:
        if self._client is None:
            from botocore.session import get_session

            self._client = get_session().create_client("events")
        return self._client

    def publish(self, events: list[DomainEvent]) -> None:
        entries = [
            {
                "Source": SOURCE,
                "DetailType": event.kind,
                "Detail": json.dumps(event.detail, default=str, sort_keys=True),
                "EventBusName": self._bus_name,
            }
            for event in events
        ]
        for start in range(0, len(entries), BATCH):
            self._put(entries[start : start + BATCH])

    def _put(self, entries: list[dict[str, str]]) -> None:
        pending = entries
        for _ in range(_ATTEMPTS):
            response = self._events_client().put_events(Entries=pending)
            if not response.get("FailedEntryCount"):
                return
            pending = [
                entry for entry, result in zip(pending, response["Entries"], strict=True) if "ErrorCode" in result
            ]
        raise UnavailableError(f"EventBridge rejected {len(pending)} event(s) after {_ATTEMPTS} attempts")
