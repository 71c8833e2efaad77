"""The subscriptions half over HTTP on `make run`: the local provider's subscription processor is the dev server's
Stripe simulation, reached through the real Stripe adapter, its events signed and delivered to the webhook function
before the dev server answers (docs/api.md#local-simulation-dev-server-only).

One walk through subscribe -> sync -> renew -> upgrade -> cancel -> refund, checking after each step the customer's
subscriptions, transactions and entitlement, and that every webhook delivery was accepted. The module has its own
stack (conftest.py): it moves the test clock.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from http import HTTPStatus
from typing import Any

import pytest

from tests.e2e.conftest import Api, HttpResult, token_for

pytestmark = pytest.mark.e2e

S = HTTPStatus
DAY = 86400


def expect(result: HttpResult, status: HTTPStatus) -> Any:
    assert result.status == status, f"expected {int(status)}{result}"
    return result.json()


class Customer:
    """One user of the stack, and what the simulation delivered to the webhook since the last look."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.user = f"e2e-subs-{uuid.uuid4().hex[:10]}"
        self.token = token_for(self.user)
        self._seen = len(self._deliveries())

    def _deliveries(self) -> list[dict[str, Any]]:
        deliveries: list[dict[str, Any]] = expect(self.api.get("/_local/stripe/deliveries"), S.OK)["deliveries"]
        return deliveries

    def delivered(self) -> list[str]:
        """The event types delivered since the last call; each must have been accepted by the webhook (200)."""
        deliveries = self._deliveries()
        new, self._seen = deliveries[self._seen :], len(deliveries)
        refused = [d for d in new if d["webhook"]["status"] != S.OK]
        assert not refused, refused
        return [d["event"]["type"] for d in new]

    def get(self, path: str) -> Any:
        return expect(self.api.get(path, token=self.token), S.OK)

    def post(self, path: str, body: Any = None, status: HTTPStatus = S.OK) -> Any:
        return expect(self.api.post(path, token=self.token, json_body=body if body is not None else {}), status)

    def customer(self) -> dict[str, Any]:
        customer: dict[str, Any] = self.get("/customer")
        return customer

    def entitled_plan(self) -> str | None:
        current = self.get("/customer/subscription")["subscription"]
        return None if current is None else str(current["plan"]["planId"])


def by_plan(customer: dict[str, Any], plan_id: str) -> dict[str, Any]:
    [found] = [s for s in customer["subscriptions"] if s["plan"]["planId"] == plan_id]
    return found


def sales_and_refunds(customer: dict[str, Any]) -> list[tuple[str, int]]:
    return [(t["kind"], t["amount"]["amount"]) for t in customer["transactions"]]


def test_subscribe_sync_renew_upgrade_cancel_refund(api: Api, admin_token: str) -> None:
    alice = Customer(api)
    # ---- subscribe: local only until synced
    alice.post("/customer/addresses", {"name": "Alice Liddell", "country": "GB", "postalCode": "OX1 1AA"}, S.CREATED)
    method = alice.post("/customer/payment-methods", {"token": "pm_card_visa"}, S.CREATED)
    basic = alice.post("/customer/subscriptions", {"planId": "basic"}, S.CREATED)
    assert basic["processor"] == {"id": None, "state": "initial"}
    assert alice.delivered() == []
    assert alice.customer()["transactions"] == []

    # ---- sync: the customer, its card and the subscription are made at Stripe; the first invoice is paid
    synced = alice.post("/customer/sync")
    sub = by_plan(synced, "basic")
    assert (sub["status"], sub["processor"]["state"]) == ("active", "saved")
    basic_stripe_id = sub["processor"]["id"]
    assert basic_stripe_id.startswith("sub_")
    assert synced["paymentMethods"][0]["paymentMethodId"] == method["paymentMethodId"]
    assert sales_and_refunds(synced) == [("sale", 990)]
    assert alice.delivered() == ["customer.subscription.created", "invoice.paid"]
    assert alice.entitled_plan() == "basic"

    # ---- renew (now: the control starts the next period at the clock's time); the webhook mirrors the invoice
    paid_through = datetime.fromisoformat(sub["paidThroughDate"])
    renewed = expect(api.post(f"/_local/stripe/subscriptions/{basic_stripe_id}/renew"), S.OK)
    assert [d["event"]["type"] for d in renewed["deliveries"]] == ["customer.subscription.updated", "invoice.paid"]
    assert alice.delivered() == ["customer.subscription.updated", "invoice.paid"]
    after_renewal = alice.customer()
    assert sales_and_refunds(after_renewal) == [("sale", 990), ("sale", 990)]
    assert datetime.fromisoformat(by_plan(after_renewal, "basic")["paidThroughDate"]) >= paid_through
    assert alice.entitled_plan() == "basic"

    # ---- upgrade: Pro (a higher level) with credit for the unused Basic period
    alice.post("/customer/subscriptions", {"planId": "pro"}, S.CREATED)
    upgraded = alice.post("/customer/sync")
    pro = by_plan(upgraded, "pro")
    assert (pro["status"], pro["processor"]["state"]) == ("active", "saved")
    assert [d["kind"] for d in pro["discounts"]] == ["previous_subscription"]
    assert alice.entitled_plan() == "pro"
    # Basic was held to its period end before Pro was made, then canceled once Pro was at Stripe (never both renewing)
    assert alice.delivered() == [
        "customer.subscription.updated",
        "customer.subscription.created",
        "invoice.paid",
        "customer.subscription.deleted",
    ]
    assert pro["replaces"] == [by_plan(upgraded, "basic")["subscriptionId"]]
    assert (by_plan(upgraded, "basic")["status"], by_plan(upgraded, "basic")["processor"]["state"]) == (
        "canceled",
        "saved",
    )
    [pro_sale] = [t for t in upgraded["transactions"] if t["subscriptionId"] == pro["subscriptionId"]]
    assert pro_sale["amount"]["amount"] < 2990  # the credit for Basic's unused days came off the first invoice

    # ---- cancel: Pro now, at Stripe in the same request
    canceled = alice.post(f"/customer/subscriptions/{pro['subscriptionId']}/cancel", {"atPeriodEnd": False})
    assert (canceled["status"], canceled["processor"]["state"]) == ("canceled", "saved")
    assert alice.delivered() == ["customer.subscription.deleted"]
    # A canceled subscription entitles until its paid period ends (docs/rules.md#entitlement): still Pro.
    assert alice.entitled_plan() == "pro"

    # ---- refund: an admin refunds part of the Pro sale through the API; Stripe tells the webhook
    refund_path = f"/admin/customers/{alice.user}/transactions/{pro_sale['transactionId']}/refund"
    refund = expect(
        api.post(refund_path, token=admin_token, json_body={"amount": {"amount": 100, "currency": "usd"}}), S.OK
    )
    assert (refund["kind"], refund["amount"]["amount"]) == ("refund", 100)
    assert alice.delivered() == ["charge.refunded"]
    assert sales_and_refunds(alice.customer())[0] == ("refund", 100)
    # A partly refunded period still entitles (docs/rules.md#subscription-refunds-and-disputes) ...
    assert alice.entitled_plan() == "pro"
    # ... a period refunded in full does not
    expect(api.post(refund_path, token=admin_token), S.OK)
    assert alice.delivered() == ["charge.refunded"]
    assert alice.entitled_plan() != "pro"

    # ---- a dashboard refund of a Basic charge reaches the webhook; a reload mirrors it
    basic_charge = after_renewal["transactions"][0]["transactionId"]
    expect(api.post(f"/_local/stripe/charges/{basic_charge}/refund"), S.OK)
    assert alice.delivered() == ["charge.refunded"]
    reloaded = alice.post("/customer/reload")
    assert ("refund", 990) in sales_and_refunds(reloaded)


def test_moving_the_clock_renews_and_a_declined_invoice_makes_it_past_due(api: Api) -> None:
    bob = Customer(api)
    bob.post("/customer/payment-methods", {"token": "pm_local_bob"}, S.CREATED)
    bob.post("/customer/subscriptions", {"planId": "basic"}, S.CREATED)
    sub = by_plan(bob.post("/customer/sync"), "basic")
    bob.delivered()
    # When the clock moves 31 days on: Stripe renews it (its test clocks do)
    expect(api.post("/_local/clock", json_body={"advanceSeconds": 31 * DAY}), S.OK)
    assert bob.delivered().count("invoice.paid") >= 1
    assert [kind for kind, _ in sales_and_refunds(bob.customer())] == ["sale", "sale"]
    # When its next invoice is declined at the renewal
    stripe_id = sub["processor"]["id"]
    expect(api.post(f"/_local/stripe/subscriptions/{stripe_id}/fail-next-invoice"), S.OK)
    expect(api.post(f"/_local/stripe/subscriptions/{stripe_id}/renew"), S.OK)
    assert bob.delivered() == ["customer.subscription.updated", "invoice.payment_failed"]
    # Then the subscription is past due, with one failure
    past_due = by_plan(bob.customer(), "basic")
    assert (past_due["status"], past_due["failureCount"]) == ("past_due", 1)


def test_controls_answer_clear_errors(api: Api) -> None:
    missing = expect(api.post("/_local/stripe/subscriptions/sub_nope/renew"), S.NOT_FOUND)
    assert missing["error"] == "not_found"
    bad = expect(api.post("/_local/stripe/charges/ch_nope/refund", json_body={"amount": -1}), S.UNPROCESSABLE_ENTITY)
    assert bad["error"] == "validation_error"
