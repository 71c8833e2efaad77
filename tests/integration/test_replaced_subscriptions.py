"""Upgrades and switches never bill twice: the sync that sends a new subscription ends the ones it replaces at Stripe
(docs/rules.md#replaced-subscriptions), end to end through lambda_handler on moto and the fake Billing API."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import pytest
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers import stripe_customers
from tests.helpers.customers_api import Call
from tests.helpers.stripe_customers import PRO, SECRET_KEY
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor

S = HTTPStatus
fake = stripe_customers.fake  # the fake Billing API with the Pro price
stripe = stripe_customers.stripe  # the Stripe processor pointed at the fake
api = stripe_customers.api  # the customers function in Stripe mode, with that processor
BASIC = {**PRO, "name": "Basic", "price": {"amount": 490, "currency": "usd"}, "level": 1}


def with_plans(api: Call, fake: FakeStripeBilling) -> str:
    """Pro and Basic defined (Basic with its own Stripe price); alice's card; its local id."""
    fake.add_price("price_basic", 490)
    assert api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)[0] == S.OK
    basic = {**BASIC, "processorPlanId": "price_basic"}
    assert api("put_plan_admin", path="/admin/plans/basic", body=basic, admin=True)[0] == S.OK
    status, method = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED, method
    return str(method["paymentMethodId"])


def subscribe(api: Call, plan_id: str, method_id: str) -> dict[str, Any]:
    status, subscription = api("subscribe", body={"planId": plan_id, "paymentMethodId": method_id})
    assert status == S.CREATED, subscription
    return dict(subscription)


def synced(api: Call) -> dict[str, dict[str, Any]]:
    status, customer = api("sync")
    assert status == S.OK, customer
    return {sub["subscriptionId"]: sub for sub in customer["subscriptions"]}


def local(api: Call) -> dict[str, dict[str, Any]]:
    return {sub["subscriptionId"]: sub for sub in api("get_customer")[1]["subscriptions"]}


def at_stripe(fake: FakeStripeBilling, subscription: dict[str, Any]) -> dict[str, Any]:
    return dict(fake.render_subscription(subscription["processor"]["id"]))


def stripe_subscriptions(fake: FakeStripeBilling, price: str) -> list[dict[str, Any]]:
    return [s for s in fake.subscriptions.values() if s["items"]["data"][0]["price"]["id"] == price]


def test_an_upgrade_cancels_the_lower_subscription_at_stripe_in_the_same_sync(
    api: Call, fake: FakeStripeBilling
) -> None:
    # Given a synced Basic subscription
    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    basic = synced(api)[basic["subscriptionId"]]
    # When alice upgrades to Pro: it replaces Basic, with a credit for Basic's unused part
    pro = subscribe(api, "pro", method)
    assert pro["replaces"] == [basic["subscriptionId"]]
    assert pro["firstBillingDate"] is None
    [credit] = pro["discounts"]
    assert credit["kind"] == "previous_subscription" and 0 < credit["amount"]["amount"] <= 490
    # Then nothing happens at Stripe before the sync, and the sync creates Pro then cancels Basic, once each
    assert at_stripe(fake, basic)["status"] == "active"
    deletes = len(fake.calls("DELETE", r"/v1/subscriptions/.*"))
    after = synced(api)
    assert at_stripe(fake, basic)["status"] == "canceled"
    assert at_stripe(fake, after[pro["subscriptionId"]])["status"] == "active"
    assert len(fake.calls("DELETE", r"/v1/subscriptions/.*")) == deletes + 1
    assert (after[basic["subscriptionId"]]["status"], after[basic["subscriptionId"]]["processor"]["state"]) == (
        "canceled",
        "saved",
    )
    # And a second sync sends nothing more
    calls = len(fake.requests)
    synced(api)
    assert [r.path for r in fake.requests[calls:] if r.method in ("POST", "DELETE")] == []


def test_a_queued_switch_ends_the_current_one_at_its_period_end(api: Call, fake: FakeStripeBilling) -> None:
    # Given a synced Pro subscription
    method = with_plans(api, fake)
    pro = subscribe(api, "pro", method)
    pro = synced(api)[pro["subscriptionId"]]
    # When alice switches down to Basic: queued behind Pro, replacing it
    basic = subscribe(api, "basic", method)
    assert basic["replaces"] == [pro["subscriptionId"]]
    assert basic["firstBillingDate"] == pro["billingPeriodEndDate"]
    after = synced(api)
    # Then Pro ends at its period end at Stripe, and Basic starts there when Pro ends (never both renewing)
    assert (at_stripe(fake, pro)["status"], at_stripe(fake, pro)["cancel_at_period_end"]) == ("active", True)
    [queued] = stripe_subscriptions(fake, "price_basic")
    assert queued["trial_end"] == at_stripe(fake, pro)["items"]["data"][0]["current_period_end"]
    assert after[pro["subscriptionId"]]["cancelAtPeriodEnd"] is True
    assert after[pro["subscriptionId"]]["processor"]["state"] == "saved"


def test_a_sync_that_fails_between_the_two_calls_is_completed_without_billing_twice(
    api: Call, fake: FakeStripeBilling
) -> None:
    # Given a synced Basic and an upgrade to Pro, and Stripe failing the cancel of Basic
    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    basic = synced(api)[basic["subscriptionId"]]
    pro = subscribe(api, "pro", method)
    fake.fail_next(500, method="DELETE", path=r"/v1/subscriptions/.*")
    # When alice syncs: Pro is created, Basic's cancel fails
    status, body = api("sync")
    assert status in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY), body
    pending = local(api)
    assert pending[pro["subscriptionId"]]["processor"]["state"] == "saved"
    assert (pending[basic["subscriptionId"]]["status"], pending[basic["subscriptionId"]]["processor"]["state"]) == (
        "canceled",
        "changed",
    )
    assert at_stripe(fake, basic)["status"] == "active"
    assert at_stripe(fake, basic)["cancel_at_period_end"] is True  # held before Pro was made: it never renews
    # Then the next sync completes it: Basic canceled, Pro created once and charged once
    after = synced(api)
    assert at_stripe(fake, basic)["status"] == "canceled"
    assert after[basic["subscriptionId"]]["processor"]["state"] == "saved"
    assert len(stripe_subscriptions(fake, "price_pro")) == 1
    assert len(fake.charges) == 2  # Basic's first invoice, Pro's first invoice: nothing billed twice
    assert len(fake.calls("POST", r"/v1/subscriptions")) == 2  # Basic, then Pro (once)


def test_a_sync_that_fails_after_creating_the_upgrade_replays_it_and_ends_the_old_one(
    api: Call, fake: FakeStripeBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customers import handler

    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    basic = synced(api)[basic["subscriptionId"]]
    subscribe(api, "pro", method)
    # Stripe creates Pro but the answer is lost (the client gave up)
    slow = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0, timeout_seconds=0.5)
    monkeypatch.setattr(handler, "processor", lambda: slow)
    fake.fail_next(method="POST", path="^/v1/subscriptions$", hang=1.0)
    status, body = api("sync")
    assert status == S.SERVICE_UNAVAILABLE, body
    assert at_stripe(fake, basic)["status"] == "active"
    after = synced(api)
    assert len(stripe_subscriptions(fake, "price_pro")) == 1  # the retry got the first Pro back
    assert len(fake.charges) == 2
    assert at_stripe(fake, basic)["status"] == "canceled"
    assert after[basic["subscriptionId"]]["status"] == "canceled"


def test_withdrawing_the_upgrade_before_the_sync_leaves_the_old_one_running(api: Call, fake: FakeStripeBilling) -> None:
    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    basic = synced(api)[basic["subscriptionId"]]
    pro = subscribe(api, "pro", method)
    status, withdrawn = api("cancel_subscription", path=f"/customer/subscriptions/{pro['subscriptionId']}/cancel")
    assert status == S.OK and withdrawn["deleted"] is True
    after = synced(api)
    assert at_stripe(fake, basic)["status"] == "active"
    assert (after[basic["subscriptionId"]]["status"], after[basic["subscriptionId"]]["processor"]["state"]) == (
        "active",
        "saved",
    )
    assert stripe_subscriptions(fake, "price_pro") == []


def test_cancelling_a_queued_switch_before_it_starts_gives_its_coupon_use_back(
    api: Call, fake: FakeStripeBilling
) -> None:
    from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository

    def used() -> int:
        coupon = DynamoCouponRepository().get("TEN")
        assert coupon is not None
        return coupon.used_count

    # Given a synced Pro, and a switch to Basic with a coupon, queued behind it and synced (not billed yet)
    method = with_plans(api, fake)
    terms = {"kind": "percent", "percent": "10", "numberOfBillingCycles": 2, "maxUses": 5}
    assert api("put_coupon_admin", path="/admin/coupons/TEN", body=terms, admin=True)[0] == S.OK
    subscribe(api, "pro", method)
    synced(api)
    status, basic = api("subscribe", body={"planId": "basic", "paymentMethodId": method, "couponCode": "TEN"})
    assert status == S.CREATED, basic
    assert used() == 1
    assert synced(api)[basic["subscriptionId"]]["processor"]["state"] == "saved"
    # When alice cancels the switch before it starts
    path = f"/customer/subscriptions/{basic['subscriptionId']}/cancel"
    status, canceled = api("cancel_subscription", path=path, body={})
    # Then it is canceled at Stripe and the coupon's use is back
    assert status == S.OK, canceled
    assert at_stripe(fake, canceled)["status"] == "canceled"
    assert used() == 0
    # And Pro, which the switch was to end at its period end, renews again (at Stripe too, in the same request)
    [pro] = stripe_subscriptions(fake, "price_pro")
    assert pro["cancel_at_period_end"] is False
    assert [s["cancelAtPeriodEnd"] for s in local(api).values() if s["plan"]["planId"] == "pro"] == [False]


def test_cancelling_a_billed_subscription_keeps_its_coupon_use(api: Call, fake: FakeStripeBilling) -> None:
    from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository

    method = with_plans(api, fake)
    terms = {"kind": "percent", "percent": "10", "numberOfBillingCycles": 2}
    assert api("put_coupon_admin", path="/admin/coupons/TEN", body=terms, admin=True)[0] == S.OK
    status, pro = api("subscribe", body={"planId": "pro", "paymentMethodId": method, "couponCode": "TEN"})
    assert status == S.CREATED
    synced(api)
    path = f"/customer/subscriptions/{pro['subscriptionId']}/cancel"
    assert api("cancel_subscription", path=path, body={})[0] == S.OK
    coupon = DynamoCouponRepository().get("TEN")
    assert coupon is not None and coupon.used_count == 1


def test_a_sync_that_fails_at_the_create_never_leaves_two_subscriptions_renewing(
    api: Call, fake: FakeStripeBilling
) -> None:
    # Given a synced Basic and an upgrade to Pro, and Stripe failing the create of Pro
    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    basic = synced(api)[basic["subscriptionId"]]
    pro = subscribe(api, "pro", method)
    fake.fail_next(500, method="POST", path="^/v1/subscriptions$")
    status, body = api("sync")
    assert status in (S.SERVICE_UNAVAILABLE, S.BAD_GATEWAY), body
    # Then Basic was set to end at its period end before the create was tried, and Pro is not at Stripe yet
    assert (at_stripe(fake, basic)["status"], at_stripe(fake, basic)["cancel_at_period_end"]) == ("active", True)
    assert stripe_subscriptions(fake, "price_pro") == []
    assert local(api)[pro["subscriptionId"]]["processor"]["state"] == "initial"
    # When alice withdraws the upgrade instead of syncing again
    path = f"/customer/subscriptions/{pro['subscriptionId']}/cancel"
    status, withdrawn = api("cancel_subscription", path=path, body={})
    assert status == S.OK, withdrawn
    # Then Basic renews again, at Stripe too, and nothing of Pro was ever made
    assert at_stripe(fake, basic)["cancel_at_period_end"] is False
    assert local(api)[basic["subscriptionId"]]["processor"]["state"] == "saved"
    assert stripe_subscriptions(fake, "price_pro") == []


def test_an_upgrade_after_the_lower_period_was_refunded_still_ends_it(api: Call, fake: FakeStripeBilling) -> None:
    """A period refunded in full does not entitle, but the subscription still renews at Stripe: the upgrade ends it."""
    method = with_plans(api, fake)
    basic = subscribe(api, "basic", method)
    synced(api)
    [sale] = [t for t in api("get_customer")[1]["transactions"] if t["kind"] == "sale"]
    refund_path = f"/admin/customers/alice/transactions/{sale['transactionId']}/refund"
    assert api("refund_admin", path=refund_path, body={}, admin=True)[0] == S.OK
    pro = subscribe(api, "pro", method)
    assert pro["replaces"] == [basic["subscriptionId"]]
    assert [d["kind"] for d in pro["discounts"]] == []  # no credit for a period given back
    synced(api)
    assert at_stripe(fake, local(api)[basic["subscriptionId"]])["status"] == "canceled"
