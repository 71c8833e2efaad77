"""Over HTTP against `make run`: the subscriptions half's events reach the local bus through the customers table's
stream (the dev server's second stream pump), as the credits half's do."""

from __future__ import annotations

import json
import time
import uuid
from http import HTTPStatus
from typing import Any

from tests.e2e.conftest import Api, HttpResult, token_for


def expect(result: HttpResult, status: HTTPStatus) -> Any:
    assert result.status == status, f"expected {int(status)}{result}"
    return result.json()


def test_a_subscribe_publishes_subscription_created_on_the_local_bus(api: Api) -> None:
    # Given a plan (admin) and a user
    plan_id = f"e2e-plan-{uuid.uuid4().hex[:8]}"
    plan = {"name": "Pro", "price": {"amount": 1490, "currency": "usd"}, "billingFrequencyMonths": 1, "level": 2}
    admin = token_for(f"e2e-admin-{uuid.uuid4().hex[:8]}", admin=True)
    expect(api.put(f"/admin/plans/{plan_id}", token=admin, json_body=plan), HTTPStatus.OK)
    user = f"events-{uuid.uuid4().hex[:8]}"
    # When the user subscribes
    created = expect(
        api.post("/customer/subscriptions", token=token_for(user), json_body={"planId": plan_id}), HTTPStatus.CREATED
    )
    # Then SubscriptionCreated for that subscription reaches the local bus once (the pump polls every 0.5 s)
    deadline, mine = time.monotonic() + 10, list[tuple[str, dict[str, Any]]]()
    while not mine and time.monotonic() < deadline:
        events = expect(api.get("/_local/events"), HTTPStatus.OK)["events"]
        details = [(e["DetailType"], json.loads(e["Detail"])) for e in events]
        mine = [(kind, detail) for kind, detail in details if detail.get("userId") == user]
        time.sleep(0.2)
    created_events = [detail for kind, detail in mine if kind == "SubscriptionCreated"]
    assert [d["subscriptionId"] for d in created_events] == [created["subscriptionId"]]
    assert created_events[0]["plan"] == plan_id and created_events[0]["eventId"].startswith("OUTBOX#SUB#")
