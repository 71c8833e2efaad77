"""EventBridge publisher for the domain's events (source ``user-credits``).

The client is built from botocore on first publish (botocore is already loaded by PynamoDB; boto3 is not needed), so
functions that never publish pay nothing at cold start.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from usercredits.errors import UnavailableError
from usercredits.kernel.models import DomainEvent

logger = logging.getLogger(__name__)

SOURCE = "user-credits"
#: PutEvents takes at most 10 entries per call.
BATCH = 10
_ATTEMPTS = 3
#: Pause before sending rejected entries again (times the attempt number): rejections are mostly throttling.
_BACKOFF_SECONDS = 0.05


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
        """Publish every event or raise (``UnavailableError`` once a batch's rejected entries were sent 3 times; the
        batches after a failed one are not sent, so a caller retrying keeps the order)."""
        entries = self._entries(events)
        for start in range(0, len(entries), BATCH):
            accepted = self._put(entries[start : start + BATCH], raise_errors=True)
            if not all(accepted):
                rejected = accepted.count(False)
                raise UnavailableError(f"EventBridge rejected {rejected} event(s) after {_ATTEMPTS} attempts")

    def publish_each(self, events: list[DomainEvent]) -> list[bool]:
        """Publish every event, 10 per PutEvents call, sending the entries a call rejected (or a failed call's) again
        up to 3 times; never raises. Returns, per event, whether EventBridge accepted it."""
        entries = self._entries(events)
        accepted: list[bool] = []
        for start in range(0, len(entries), BATCH):
            accepted += self._put(entries[start : start + BATCH], raise_errors=False)
        return accepted

    def _entries(self, events: list[DomainEvent]) -> list[dict[str, str]]:
        return [
            {
                "Source": SOURCE,
                "DetailType": event.kind,
                "Detail": json.dumps(event.detail, default=str, sort_keys=True),
                "EventBusName": self._bus_name,
            }
            for event in events
        ]

    def _put(self, entries: list[dict[str, str]], *, raise_errors: bool) -> list[bool]:
        """One batch: which entries were accepted, after up to 3 attempts for the rejected ones."""
        accepted = [False] * len(entries)
        pending = list(range(len(entries)))
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(_BACKOFF_SECONDS * attempt)
            try:
                response = self._events_client().put_events(Entries=[entries[index] for index in pending])
            except Exception:
                if raise_errors:
                    raise
                logger.warning("PutEvents failed (attempt %d of %d)", attempt + 1, _ATTEMPTS, exc_info=True)
                continue
            if not response.get("FailedEntryCount"):
                failed = []
            else:
                results = response["Entries"]
                failed = [index for index, result in zip(pending, results, strict=True) if "ErrorCode" in result]
            for index in set(pending) - set(failed):
                accepted[index] = True
            pending = failed
            if not pending:
                break
        return accepted
