"""The dev server's test clock: ``GET/POST /_local/clock``, the clock file it makes, the environment it sets, and the
expiry scan's scheduled event stamped with the clock's time (no socket: the routes are called directly)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from devtools.devserver.environment import local_environment
from devtools.devserver.events import IncomingRequest
from devtools.devserver.local_clock import clock_reply, local_clock_file, scheduled_scan_event
from devtools.devserver.paths import CLOCK_PATH, EXPIRY_SCAN_PATH
from devtools.devserver.replies import Reply
from devtools.devserver.server import DevServer

from tests.conftest import load_event
from usercredits.adapters.clock import freeze_clock, parse_time, read_clock

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
SLACK = timedelta(seconds=5)


@pytest.fixture
def clock_file(tmp_path: Path) -> str:
    return str(tmp_path / "clock.json")


def body_of(reply: Reply) -> Any:
    assert ("Content-Type", "application/json") in reply.headers
    return json.loads(reply.body)


def post(clock_file: str, payload: Any) -> Reply:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return clock_reply(clock_file, "POST", raw)


def shown(reply: Reply) -> datetime:
    assert reply.status == 200, reply.body
    now = body_of(reply)["now"]
    assert now.endswith("Z")
    return parse_time(now)


def test_get_answers_now_in_utc_with_a_z(clock_file: str) -> None:
    # Given a fresh clock file (empty: the real time) / When GET /_local/clock
    now = shown(clock_reply(clock_file, "GET", b""))
    # Then it is the real time
    assert abs(now - datetime.now(UTC)) < SLACK


def test_post_advance_moves_the_clock_forward(clock_file: str) -> None:
    # Given a clock frozen at T0 (deterministic)
    freeze_clock(clock_file, T0)
    # When it is advanced by 2 hours, then by 1.5 s
    assert shown(post(clock_file, {"advanceSeconds": 7200})) == T0 + timedelta(hours=2)
    assert shown(post(clock_file, {"advanceSeconds": 1.5})) == T0 + timedelta(hours=2, seconds=1.5)
    # Then GET shows the same
    assert shown(clock_reply(clock_file, "GET", b"")) == T0 + timedelta(hours=2, seconds=1.5)


def test_post_set_shows_that_time_then_flows(clock_file: str) -> None:
    freeze_clock(clock_file, T0)
    now = shown(post(clock_file, {"set": "2040-01-01T12:00:00+02:00"}))
    assert abs(now - datetime(2040, 1, 1, 10, 0, tzinfo=UTC)) < SLACK
    # and it is no longer frozen: an advance is on top of the real time's flow
    assert abs(shown(post(clock_file, {"advanceSeconds": 60})) - datetime(2040, 1, 1, 10, 1, tzinfo=UTC)) < SLACK


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        [],
        {},
        {"advanceSeconds": -1},
        {"advanceSeconds": "10"},
        {"advanceSeconds": True},
        {"advanceSeconds": None},
        b'{"advanceSeconds": NaN}',
        {"advanceSeconds": 1e300},
        {"set": "2030-01-01T00:00:00"},
        {"set": "9001-01-01T00:00:00Z"},
        {"set": "next week"},
        {"set": 1893456000},
        {"advanceSeconds": 1, "set": "2030-01-01T00:00:00Z"},
        {"advance": 1},
    ],
)
def test_post_anything_else_is_a_422_and_leaves_the_clock_alone(clock_file: str, payload: Any) -> None:
    # Given a clock frozen at T0
    freeze_clock(clock_file, T0)
    # When the body is neither an advance by a number >= 0 nor a set to an aware time up to year 9000
    reply = post(clock_file, payload)
    # Then 422 in the contract's error shape, and the clock did not move
    assert reply.status == 422
    error = body_of(reply)
    assert error["error"] == "validation_error"
    assert isinstance(error["message"], str) and error["message"]
    assert read_clock(clock_file) == T0


def test_other_methods_and_a_server_without_a_clock_are_404(clock_file: str) -> None:
    assert clock_reply(clock_file, "DELETE", b"").status == 404
    reply = clock_reply(None, "GET", b"")
    assert (reply.status, body_of(reply)["error"]) == (404, "not_found")


def test_the_server_routes_the_clock_and_stamps_the_scan_with_it(clock_file: str) -> None:
    # Given a dev server (not bound: only its routing is exercised) whose clock is frozen at T0
    server = DevServer.__new__(DevServer)
    server.clock_file = clock_file
    server.cors = None
    freeze_clock(clock_file, T0)
    invoked: list[tuple[str, dict[str, Any]]] = []

    class Registry:
        def invoke(self, folder: str, event: dict[str, Any]) -> dict[str, Any]:
            invoked.append((folder, event))
            return {"lotsExpired": 0}

    server.registry = Registry()  # type: ignore[assignment]
    # When the clock is moved and the scan run through the server
    request = IncomingRequest("POST", CLOCK_PATH, "", [], b'{"advanceSeconds": 60}')
    reply, served_by = server.dispatch(request)
    assert (reply.status, served_by) == (200, "clock")
    assert body_of(reply) == {"now": "2031-05-06T07:09:09Z"}
    reply, served_by = server.dispatch(IncomingRequest("POST", EXPIRY_SCAN_PATH, "", [], b""))
    # Then the scan ran on the scheduled event, stamped with the clock's time
    assert (reply.status, served_by) == (200, "expiry_scan")
    [(folder, event)] = invoked
    assert folder == "expiry_scan"
    assert event["time"] == "2031-05-06T07:09:09Z"


def test_the_scheduled_event_is_the_sample_stamped_with_the_clock(clock_file: str) -> None:
    freeze_clock(clock_file, T0)
    event = scheduled_scan_event(clock_file)
    sample = load_event("expiry_scan/scheduled.json")
    assert event["time"] == "2031-05-06T07:08:09Z"
    assert event["id"] != sample["id"]
    assert {k: v for k, v in event.items() if k not in ("id", "time")} == {
        k: v for k, v in sample.items() if k not in ("id", "time")
    }
    # without a clock: the real time
    real = datetime.strptime(scheduled_scan_event(None)["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(real - datetime.now(UTC)) < SLACK


def test_the_local_environment_names_the_clock_file_only_when_given() -> None:
    assert "LOCAL_CLOCK_FILE" not in local_environment()
    assert local_environment(clock_file="/tmp/clock.json")["LOCAL_CLOCK_FILE"] == "/tmp/clock.json"


def test_the_server_makes_its_own_clock_file_and_removes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given no LOCAL_CLOCK_FILE / Then a fresh empty file (the real time) exists while serving, and not after
    monkeypatch.delenv("LOCAL_CLOCK_FILE", raising=False)
    with local_clock_file() as path:
        assert Path(path).is_file()
        assert Path(path).read_bytes() == b""
        freeze_clock(path, T0)  # a state written while serving is removed too
    assert not Path(path).exists()
    assert not [name for name in os.listdir(Path(path).parent) if name.startswith(f".{Path(path).name}.")]


def test_the_server_uses_and_keeps_a_clock_file_you_set(clock_file: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given LOCAL_CLOCK_FILE set (e.g. to share the clock with `make invoke`)
    monkeypatch.setenv("LOCAL_CLOCK_FILE", clock_file)
    freeze_clock(clock_file, T0)
    with local_clock_file() as path:
        assert path == clock_file
    # Then it is yours: kept at exit
    assert read_clock(clock_file) == T0
