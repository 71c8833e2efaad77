"""The test clock of `make run` over HTTP: expiry, hold lapses and expiry warnings shown without waiting.

The clock is shared by the whole stack, and this module has its own stack (one per module, see conftest.py): its tests
read the clock before planning anything, only ever move it forward, and each uses its own user.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import pytest

from tests.e2e.conftest import Api, HttpResult, token_for

pytestmark = pytest.mark.e2e

GROUP = "AiTokens"
WEEK, DAY = 7 * 86400, 86400


def expect(result: HttpResult, status: HTTPStatus) -> Any:
    assert result.status == status, f"expected {int(status)}{result}"
    return result.json()


def expect_error(result: HttpResult, status: HTTPStatus, code: str) -> dict[str, Any]:
    body = expect(result, status)
    assert body.get("error") == code and isinstance(body.get("message"), str) and body["message"], str(result)
    return body


def parse(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def clock_now(api: Api) -> datetime:
    return parse(expect(api.get("/_local/clock"), HTTPStatus.OK)["now"])


def advance(api: Api, seconds: float) -> datetime:
    return parse(expect(api.post("/_local/clock", json_body={"advanceSeconds": seconds}), HTTPStatus.OK)["now"])


def new_user(prefix: str) -> tuple[str, str]:
    user = f"e2e-clock-{prefix}-{uuid.uuid4().hex[:8]}"
    return user, token_for(user)


def grant(api: Api, admin_token: str, user: str, tokens: int, expires: datetime | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"offerGroup": GROUP, "tokens": tokens, "reason": "e2e clock"}
    if expires is not None:
        body["expires"] = iso(expires)
    entry: dict[str, Any] = expect(
        api.post(f"/admin/users/{user}/grants", token=admin_token, json_body=body), HTTPStatus.CREATED
    )
    return entry


def my_group(api: Api, token: str) -> dict[str, Any] | None:
    groups = expect(api.get("/credits", token=token), HTTPStatus.OK)["groups"]
    return next((group for group in groups if group["offerGroup"] == GROUP), None)


def events_of(api: Api, user: str, kind: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    """The ``kind`` events about ``user`` on the local bus, once ``count`` arrived (the outbox reaches the bus through
    the stream pump, which polls)."""
    deadline = time.monotonic() + timeout
    while True:
        events = expect(api.get("/_local/events"), HTTPStatus.OK)["events"]
        details = [json.loads(event["Detail"]) for event in events if event.get("DetailType") == kind]
        mine = [detail for detail in details if detail.get("userId") == user]
        if len(mine) >= count or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


# ------------------------------------------------------------------------------------------------------ the routes
def test_clock_reads_and_moves_forward(api: Api) -> None:
    # Given the stack's clock
    before = clock_now(api)
    # When it is advanced by an hour, then set to a day after that
    advanced = advance(api, 3600)
    assert advanced - before >= timedelta(hours=1)
    target = advanced + timedelta(days=1)
    moved = parse(expect(api.post("/_local/clock", json_body={"set": iso(target)}), HTTPStatus.OK)["now"])
    # Then it shows that time, and keeps flowing from it
    assert timedelta(0) <= moved - target < timedelta(seconds=5)
    assert clock_now(api) >= moved


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"advanceSeconds": -60},
        {"advanceSeconds": "60"},
        {"set": "2030-01-01T00:00:00"},
        {"set": "9001-01-01T00:00:00Z"},
        {"advanceSeconds": 1, "set": "2030-01-01T00:00:00Z"},
    ],
)
def test_clock_refuses_a_body_that_is_neither_an_advance_nor_a_set(api: Api, body: dict[str, Any]) -> None:
    before = clock_now(api)
    expect_error(api.post("/_local/clock", json_body=body), HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error")
    assert clock_now(api) - before < timedelta(seconds=5)  # not moved (only the real time flowed)


# ------------------------------------------------------------------------------------------------ what it shows
def test_a_lot_expires_on_read_and_through_the_scan_once_the_clock_passes_its_expiry(
    api: Api, admin_token: str
) -> None:
    user, token = new_user("expiry")
    # Given an admin grant expiring an hour from now (the stack's now)
    first = grant(api, admin_token, user, 50, clock_now(api) + timedelta(hours=1))
    group = my_group(api, token)
    assert group is not None and group["balance"] == 50
    assert [lot["lotId"] for lot in group["lots"]] == [first["lotId"]]
    # When the clock moves two hours on
    advance(api, 2 * 3600)
    # Then reading the credits expires the lot: it is gone, and the ledger has its expire entry
    group = my_group(api, token)
    assert group is None or (group["balance"], group["lots"]) == (0, []), group
    ledger = expect(api.get(f"/credits/ledger?offerGroup={GROUP}", token=token), HTTPStatus.OK)["entries"]
    assert [(entry["kind"], entry["tokens"], entry["balanceAfter"]) for entry in ledger] == [
        ("expire", -50, 0),
        ("grant", 50, 50),
    ]

    # Given a second grant expiring an hour from the new now, that nobody reads
    second = grant(api, admin_token, user, 30, clock_now(api) + timedelta(hours=1))
    # When the clock moves two hours on and the scheduled scan runs
    advance(api, 2 * 3600)
    report = expect(api.post("/_local/expiry-scan"), HTTPStatus.OK)
    # Then the scan expired it, and its CreditsExpired reached the bus
    assert report["lotsExpired"] >= 1 and report["tokensExpired"] >= 30, report
    expired = events_of(api, user, "CreditsExpired", count=2)
    assert sorted((event["lotId"], event["tokens"]) for event in expired) == sorted(
        [(first["lotId"], 50), (second["lotId"], 30)]
    ), expired
    group = my_group(api, token)
    assert group is None or (group["balance"], group["lots"]) == (0, []), group


def test_a_hold_lapses_once_the_clock_passes_its_expiry(api: Api, admin_token: str) -> None:
    user, token = new_user("hold")
    # Given 10 tokens and a hold of 4 for 60 seconds
    grant(api, admin_token, user, 10)
    hold = expect(
        api.post(f"/credits/{GROUP}/reservations", token=token, json_body={"count": 4, "expiresInSeconds": 60}),
        HTTPStatus.CREATED,
    )
    group = my_group(api, token)
    assert group is not None and (group["held"], group["available"]) == (4, 6)
    # When the clock moves 120 seconds on
    advance(api, 120)
    # Then nothing is held any more, and the hold can no longer be captured
    group = my_group(api, token)
    assert group is not None and (group["balance"], group["held"], group["available"]) == (10, 0, 10), group
    expect_error(
        api.post(f"/reservations/{hold['reservationId']}/capture", token=token, json_body={"count": 4}),
        HTTPStatus.CONFLICT,
        "conflict",
    )
    assert my_group(api, token)["balance"] == 10  # type: ignore[index]


def test_the_scan_warns_before_a_lot_expires_once_the_clock_enters_the_window(api: Api, admin_token: str) -> None:
    user, token = new_user("warn")
    # Given a lot granted with 10 days left, and a scan run now (it saves its cursors; nothing to warn yet)
    lot = grant(api, admin_token, user, 25, clock_now(api) + timedelta(days=10))
    expect(api.post("/_local/expiry-scan"), HTTPStatus.OK)
    assert events_of(api, user, "CreditsExpiringSoon", timeout=0) == []
    # When the clock moves 6.5 days on (3.5 days left: inside the 7-day window, outside the 1-day one) and it runs
    advance(api, 6.5 * DAY)
    report = expect(api.post("/_local/expiry-scan"), HTTPStatus.OK)
    # Then the 7-day warning went out, once, with what would expire
    assert report["expiringSoonSent"] >= 1, report
    warnings = events_of(api, user, "CreditsExpiringSoon")
    assert [(w["lotId"], w["tokens"], w["windowSeconds"]) for w in warnings] == [(lot["lotId"], 25, WEEK)], warnings
    # And a second run sends nothing new for it
    expect(api.post("/_local/expiry-scan"), HTTPStatus.OK)
    assert len(events_of(api, user, "CreditsExpiringSoon", timeout=0)) == 1
    group = my_group(api, token)
    assert group is not None and group["balance"] == 25
