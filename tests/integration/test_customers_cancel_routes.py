"""Cancels reach the processor in the request, cancel-all, and the admin's reset-processor, end to end:
lambda_handler -> cancelling -> PynamoDB on moto and the real ``stripe`` SDK against the fake Billing API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers import stripe_customers
from tests.helpers.customers_api import Call
from tests.helpers.stripe_customers import PRO, subscribed

S = HTTPStatus
fake = stripe_customers.fake  # the fake Billing API with the Pro price
stripe = stripe_customers.stripe  # the Stripe processor pointed at the fake
api = stripe_customers.api  # the customers function in Stripe mode, with that processor
BASIC = {**PRO, "name": "Basic", "level": 1, "processorPlanId": "price_pro"}


def synced(api: Call) -> dict[str, Any]:
    """Alice's Pro subscription, synced (created and charged at Stripe)."""
    subscription = subscribed(api)
    status, customer = api("sync")
    assert status == S.OK, customer
    return next(s for s in customer["subscriptions"] if s["subscriptionId"] == subscription["subscriptionId"])


def cancel(api: Call, subscription: dict[str, Any], **overrides: Any) -> tuple[int, Any]:
    path = f"/customer/subscriptions/{subscription['subscriptionId']}/cancel"
    return api("cancel_subscription", path=path, **overrides)


def stripe_subscription(fake: FakeStripeBilling, subscription: dict[str, Any]) -> dict[str, Any]:
    return dict(fake.render_subscription(subscription["processor"]["id"]))


def local(api: Call, subscription: dict[str, Any]) -> dict[str, Any]:
    _, customer = api("get_customer")
    return next(s for s in customer["subscriptions"] if s["subscriptionId"] == subscription["subscriptionId"])


# --- cancel one ----------------------------------------------------------------------------------------------------


def test_cancel_now_reaches_stripe_in_the_request(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced Pro subscription
    subscription = synced(api)
    # When alice cancels it now
    status, canceled = cancel(api, subscription, body={})
    # Then Stripe canceled it in the same request, and the answer says it is in step
    assert status == S.OK, canceled
    assert stripe_subscription(fake, subscription)["status"] == "canceled"
    assert (canceled["status"], canceled["processor"]["state"]) == ("canceled", "saved")
    # And a sync afterwards has nothing left to send
    deletes = len(fake.calls("DELETE", r"/v1/subscriptions/.*"))
    assert api("sync")[0] == S.OK
    assert len(fake.calls("DELETE", r"/v1/subscriptions/.*")) == deletes == 1


def test_cancel_at_period_end_reaches_stripe_in_the_request(api: Call, fake: FakeStripeBilling) -> None:
    subscription = synced(api)
    status, canceled = cancel(api, subscription, body={"atPeriodEnd": True})
    assert status == S.OK, canceled
    at_stripe = stripe_subscription(fake, subscription)
    assert (at_stripe["status"], at_stripe["cancel_at_period_end"]) == ("active", True)
    assert (canceled["status"], canceled["cancelAtPeriodEnd"], canceled["processor"]["state"]) == (
        "active",
        True,
        "saved",
    )


def test_a_failed_cancel_stays_pending_and_a_repeat_completes_it_once(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced subscription, and Stripe failing the next cancel
    subscription = synced(api)
    fake.fail_next(500, method="DELETE", path=r"/v1/subscriptions/.*")
    # When alice cancels it (with a key)
    status, body = cancel(api, subscription, body={}, headers={"Idempotency-Key": "cancel-1"})
    # Then the error is answered, and the cancel shows as pending at the processor
    assert status in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY), body
    pending = local(api, subscription)
    assert (pending["status"], pending["processor"]["state"]) == ("canceled", "changed")
    assert stripe_subscription(fake, subscription)["status"] == "active"
    # When the same request is retried, it completes it
    status, canceled = cancel(api, subscription, body={}, headers={"Idempotency-Key": "cancel-1"})
    assert status == S.OK, canceled
    assert canceled["processor"]["state"] == "saved"
    assert stripe_subscription(fake, subscription)["status"] == "canceled"
    # And a further retry, or a cancel with another key, replays without calling Stripe again
    calls = len(fake.requests)
    assert cancel(api, subscription, body={}, headers={"Idempotency-Key": "cancel-1"}) == (S.OK, canceled)
    status, again = cancel(api, subscription, body={}, headers={"Idempotency-Key": "cancel-2"})
    assert (status, again["processor"]["state"]) == (S.OK, "saved")
    assert len(fake.requests) == calls


def test_a_sync_completes_a_cancel_the_processor_failed(api: Call, fake: FakeStripeBilling) -> None:
    subscription = synced(api)
    fake.fail_next(500, method="DELETE", path=r"/v1/subscriptions/.*")
    assert cancel(api, subscription, body={})[0] in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY)
    status, customer = api("sync")
    assert status == S.OK, customer
    assert local(api, subscription)["processor"]["state"] == "saved"
    assert stripe_subscription(fake, subscription)["status"] == "canceled"


def test_withdrawing_a_never_synced_subscription_calls_no_processor(api: Call, fake: FakeStripeBilling) -> None:
    subscription = subscribed(api)
    calls = len(fake.requests)
    status, withdrawn = cancel(api, subscription, body={})
    assert status == S.OK, withdrawn
    assert (withdrawn["status"], withdrawn["deleted"], withdrawn["processor"]["state"]) == ("canceled", True, "initial")
    assert len(fake.requests) == calls
    # and the next sync creates nothing
    assert api("sync")[0] == S.OK
    assert fake.calls("POST", r"/v1/subscriptions") == []


# --- cancel all ----------------------------------------------------------------------------------------------------


def test_cancel_all_cancels_the_synced_at_stripe_and_withdraws_the_others(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced Pro subscription and a Basic one queued behind it, never synced
    pro = synced(api)
    assert api("put_plan_admin", path="/admin/plans/basic", body=BASIC, admin=True)[0] == S.OK
    status, basic = api("subscribe", body={"planId": "basic", "paymentMethodId": pro["paymentMethodId"]})
    assert status == S.CREATED, basic
    # When alice cancels all at period end
    route = {"path": "/customer/subscriptions/cancel-all", "headers": {"Idempotency-Key": "all-1"}}
    status, body = api("cancel_all_subscriptions", body={"atPeriodEnd": True}, **route)
    # Then Pro ends at Stripe at its period end and Basic is withdrawn
    assert status == S.OK, body
    by_id = {s["subscriptionId"]: s for s in body["subscriptions"]}
    assert (by_id[pro["subscriptionId"]]["cancelAtPeriodEnd"], by_id[pro["subscriptionId"]]["processor"]["state"]) == (
        True,
        "saved",
    )
    assert by_id[basic["subscriptionId"]]["deleted"] is True
    assert stripe_subscription(fake, pro)["cancel_at_period_end"] is True
    # And the keyed retry replays; a cancel-all without key has nothing left to send
    calls = len(fake.requests)
    assert api("cancel_all_subscriptions", body={"atPeriodEnd": True}, **route) == (S.OK, body)
    status, _ = api("cancel_all_subscriptions", path="/customer/subscriptions/cancel-all", body={"atPeriodEnd": True})
    assert status == S.OK
    assert len(fake.requests) == calls


def test_cancel_all_now_after_a_failure_completes_each_once(api: Call, fake: FakeStripeBilling) -> None:
    pro = synced(api)
    fake.fail_next(500, method="DELETE", path=r"/v1/subscriptions/.*")
    route = {"path": "/customer/subscriptions/cancel-all"}
    assert api("cancel_all_subscriptions", body={}, **route)[0] in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY)
    assert local(api, pro)["processor"]["state"] == "changed"
    status, body = api("cancel_all_subscriptions", raw_body="", **route)
    assert status == S.OK, body
    assert [(s["status"], s["processor"]["state"]) for s in body["subscriptions"]] == [("canceled", "saved")]
    assert stripe_subscription(fake, pro)["status"] == "canceled"


def test_cancel_all_of_a_user_without_a_customer_is_empty(api: Call) -> None:
    status, body = api("cancel_all_subscriptions", path="/customer/subscriptions/cancel-all", body={}, user="nobody")
    assert (status, body) == (S.OK, {"subscriptions": []})


# --- reset processor (admin) ---------------------------------------------------------------------------------------


def test_reset_processor_drops_what_never_reached_stripe(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced subscription, then a new one never synced and an address never synced
    pro = synced(api)
    assert api("put_plan_admin", path="/admin/plans/basic", body=BASIC, admin=True)[0] == S.OK
    status, basic = api("subscribe", body={"planId": "basic", "paymentMethodId": pro["paymentMethodId"]})
    assert status == S.CREATED
    calls = len(fake.requests)
    # When an admin resets alice's processor state (twice, the same key)
    route = {"path": "/admin/customers/alice/reset-processor", "headers": {"Idempotency-Key": "r-1"}, "admin": True}
    status, customer = api("reset_processor_admin", **route)
    # Then the never-synced subscription is gone, the synced one stays, and Stripe was not called
    assert status == S.OK, customer
    assert [s["subscriptionId"] for s in customer["subscriptions"]] == [pro["subscriptionId"]]
    assert len(fake.requests) == calls
    assert api("reset_processor_admin", **route) == (S.OK, customer)
    assert basic["subscriptionId"] not in {s["subscriptionId"] for s in api("get_customer")[1]["subscriptions"]}


def test_reset_processor_reverts_a_pending_cancel(api: Call, fake: FakeStripeBilling) -> None:
    pro = synced(api)
    fake.fail_next(500, method="DELETE", path=r"/v1/subscriptions/.*")
    assert cancel(api, pro, body={})[0] in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY)
    status, customer = api("reset_processor_admin", path="/admin/customers/alice/reset-processor", admin=True)
    assert status == S.OK, customer
    [reverted] = customer["subscriptions"]
    assert (reverted["status"], reverted["processor"]["state"]) == ("active", "saved")


def test_reset_processor_is_for_admins_and_known_customers(api: Call) -> None:
    status, body = api("reset_processor_admin", path="/admin/customers/alice/reset-processor", admin=False)
    assert status == S.FORBIDDEN, body
    status, body = api("reset_processor_admin", path="/admin/customers/nobody/reset-processor", admin=True)
    assert status == S.NOT_FOUND, body


def test_reset_processor_waits_for_a_payment_operation_in_progress(api: Call) -> None:
    from datetime import UTC, datetime, timedelta

    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository

    synced(api)
    now = datetime.now(UTC)
    assert DynamoCustomerRepository().acquire_payment_lock("alice", now=now, until=now + timedelta(seconds=30))
    status, body = api("reset_processor_admin", path="/admin/customers/alice/reset-processor", admin=True)
    assert status == S.CONFLICT, body
