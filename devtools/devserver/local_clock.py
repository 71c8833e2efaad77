"""The local test clock every function reads (``usercredits.adapters.clock``): ``GET/POST /_local/clock``, its state
file, and the expiry scan's scheduled event stamped with its time."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from devtools.devserver.environment import ROOT
from devtools.devserver.event_sink import iso_now
from devtools.devserver.log import log
from devtools.devserver.paths import CLOCK_PATH
from devtools.devserver.replies import Reply, error_reply, json_reply

CLOCK_USAGE = 'expected {"advanceSeconds": <number >= 0>} or {"set": "<ISO-8601 time with a timezone>"}'


@contextlib.contextmanager
def local_clock_file() -> Iterator[str]:
    """The test clock's state file: ``LOCAL_CLOCK_FILE`` if set (kept at exit: ``make invoke`` may share it), else a
    new empty file (an empty file reads as the real time) removed at exit."""
    if existing := os.environ.get("LOCAL_CLOCK_FILE"):
        yield existing
        return
    fd, path = tempfile.mkstemp(prefix="user-credits-clock-", suffix=".json")
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def clock_reply(clock_file: str | None, method: str, body: bytes) -> Reply:
    """``GET /_local/clock`` -> ``{"now"}``; ``POST`` ``{"advanceSeconds": n}`` (n >= 0: time only moves forward) or
    ``{"set": "<ISO-8601 time with a timezone>"}`` moves the clock and answers ``{"now"}``; any other body is 422."""
    if clock_file is None:
        return error_reply(404, "not_found", "this server has no local clock (LOCAL_CLOCK_FILE)")
    from usercredits.adapters import clock  # after the environment is set up (sys.path)

    if method in ("GET", "HEAD"):
        return json_reply(200, {"now": clock.format_time(clock.read_clock(clock_file))})
    if method != "POST":
        return error_reply(404, "not_found", f"no route for {method} {CLOCK_PATH}")
    try:
        now = _move_clock(clock_file, body)
    except clock.LocalClockError as exc:
        return error_reply(422, "validation_error", str(exc))
    return json_reply(200, {"now": clock.format_time(now)})


def _move_clock(clock_file: str, body: bytes) -> datetime:
    """Apply the change ``body`` asks for; what the clock shows after it (``LocalClockError`` for a bad body)."""
    from usercredits.adapters import clock

    try:
        change = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise clock.LocalClockError(f"the body is not JSON: {CLOCK_USAGE}") from exc
    if not isinstance(change, dict) or len(change) != 1 or not set(change) <= {"advanceSeconds", "set"}:
        raise clock.LocalClockError(CLOCK_USAGE)
    if "set" in change:
        if not isinstance(change["set"], str):
            raise clock.LocalClockError("set must be an ISO-8601 time with a timezone, as a string")
        now = clock.set_clock(clock_file, clock.parse_time(change["set"]))
    else:
        now = clock.advance_clock(clock_file, change["advanceSeconds"])
    log(f"local clock: {json.dumps(change)} -> {clock.format_time(now)}")
    return now


def scheduled_scan_event(clock_file: str | None = None) -> dict[str, Any]:
    """The expiry scan's scheduled event (``events/expiry_scan/scheduled.json``) stamped with the local clock's time
    (the real time without a clock file)."""
    from usercredits.adapters.clock import read_clock

    event: dict[str, Any] = json.loads((ROOT / "events" / "expiry_scan" / "scheduled.json").read_text(encoding="utf-8"))
    stamp = read_clock(clock_file).strftime("%Y-%m-%dT%H:%M:%SZ") if clock_file else iso_now()
    event.update({"id": str(uuid.uuid4()), "time": stamp})
    return event
