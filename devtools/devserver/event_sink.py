"""A fake EventBridge: answers ``PutEvents`` (``AWS_ENDPOINT_URL_EVENTBRIDGE`` points at it) and keeps the last
events the functions published, for ``GET /_local/events``."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from typing import Any

from devtools.devserver.log import log
from devtools.devserver.replies import Reply, json_reply


def iso_now() -> str:
    """The real time, ISO-8601 in UTC to the second (``2031-01-06T12:00:00Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class EventSink:
    """Answers EventBridge ``PutEvents`` calls (``AWS_ENDPOINT_URL_EVENTBRIDGE``) and keeps the last events
    published."""

    def __init__(self, keep: int = 500) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def put_events(self, body: bytes) -> Reply:
        try:
            entries = json.loads(body or b"{}").get("Entries") or []
        except (ValueError, AttributeError):
            return json_reply(400, {"__type": "SerializationException", "message": "bad PutEvents body"})
        results = []
        with self._lock:
            for entry in entries:
                event_id = str(uuid.uuid4())
                self.events.append({"id": event_id, "time": iso_now(), **entry})
                results.append({"EventId": event_id})
                log(
                    f"event {entry.get('Source')}/{entry.get('DetailType')} on {entry.get('EventBusName')}: "
                    f"{entry.get('Detail')}"
                )
        return Reply(
            200,
            [("Content-Type", "application/x-amz-json-1.1")],
            json.dumps({"FailedEntryCount": 0, "Entries": results}).encode(),
        )

    def list(self) -> Reply:
        with self._lock:
            return json_reply(200, {"events": list(self.events)})
