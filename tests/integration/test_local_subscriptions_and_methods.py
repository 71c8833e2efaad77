"""The last two seed operations reached through the customers API (issue 15 item 4): an admin's app-managed
(``local``) subscription, whose dates are filled locally (the seed's M28), and paying one subscription with another of
the customer's payment methods. Handler-level: the real lambda_handler with API Gateway events, on moto."""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import pytest

Call = Callable[..., tuple[int, Any]]
S = HTTPStatus
TRIAL_PLAN = {
    "name": "Pro",
    "price": {"amount": 1490, "currency": "usd"},
    "level": 2,
    "processorPlanId": "price_pro",
    "trialDuration": 14,
    "trialDurationUnit": "day",
}
GRANT = "/admin/customers/bob/subscriptions"


@pytest.fixture
def api(customers_api: Call) -> Call:
    assert customers_api("put_plan_admin", path="/admin/plans/pro", body=TRIAL_PLAN, admin=True)[0] == S.OK
    return customers_api


def grant(api: Call, **body: Any) -> tuple[int, Any]:
    return api("grant_local_subscription_admin", path=GRANT, body=body, admin=True)


def test_an_admin_grants_a_local_subscription_that_entitles_and_is_never_sent(api: Call) -> None:
    # When an admin gives bob Pro, app-managed
    status, granted = grant(api, planId="pro")
    # Then it is active and local, its dates filled locally (paid through one billing period, next billing a day on)
    assert status == S.CREATED, granted
    assert (granted["status"], granted["processor"]) == ("active", {"id": None, "state": "local"})
    assert granted["firstBillingDate"] == granted["createdAt"]
    assert granted["paidThroughDate"] == granted["billingPeriodEndDate"] is not None
    # And bob is entitled to Pro, and a sync has nothing of it to send (no processor needed: the local provider)
    status, current = api("current_subscription", user="bob")
    assert status == S.OK and current["subscription"]["subscriptionId"] == granted["subscriptionId"]


def test_a_local_trial_takes_the_plans_trial_terms(api: Call) -> None:
    status, granted = grant(api, planId="pro", trial=True)
    assert status == S.CREATED, granted
    assert (granted["isTrial"], granted["trialDuration"], granted["trialDurationUnit"]) == (True, 14, "day")
    assert granted["firstBillingDate"] is not None and granted["paidThroughDate"] is None
    # A plan without trial terms cannot give one
    plain = {key: value for key, value in TRIAL_PLAN.items() if not key.startswith("trial")}
    assert api("put_plan_admin", path="/admin/plans/plain", body=plain, admin=True)[0] == S.OK
    status, body = grant(api, planId="plain", trial=True)
    assert status == S.UNPROCESSABLE_ENTITY, body


def test_granting_is_for_admins_idempotent_and_names_a_known_plan(api: Call) -> None:
    assert api("grant_local_subscription_admin", path=GRANT, body={"planId": "pro"})[0] == S.FORBIDDEN
    assert grant(api, planId="nope")[0] == S.NOT_FOUND
    first = api(
        "grant_local_subscription_admin",
        path=GRANT,
        body={"planId": "pro"},
        admin=True,
        headers={"Idempotency-Key": "g-1"},
    )
    again = api(
        "grant_local_subscription_admin",
        path=GRANT,
        body={"planId": "pro"},
        admin=True,
        headers={"Idempotency-Key": "g-1"},
    )
    assert first[0] == S.CREATED and again == first
    status, customer = api("get_customer_admin", path="/admin/customers/bob", admin=True)
    assert status == S.OK and len(customer["subscriptions"]) == 1


def test_a_subscription_is_paid_with_another_payment_method(api: Call) -> None:
    # Given alice with two cards and a subscription paid by the first
    status, first = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CREATED, first
    status, second = api("add_payment_method", body={"token": "pm_card_mastercard"})
    assert status == S.CREATED, second
    status, sub = api("subscribe", body={"planId": "pro", "paymentMethodId": first["paymentMethodId"], "trial": False})
    assert status == S.CREATED, sub
    path = f"/customer/subscriptions/{sub['subscriptionId']}/payment-method"
    # When she pays it with the second
    status, changed = api(
        "set_subscription_payment_method", path=path, body={"paymentMethodId": second["paymentMethodId"]}
    )
    # Then the subscription names it
    assert status == S.OK, changed
    assert changed["paymentMethodId"] == second["paymentMethodId"]
    # And an unknown method or subscription is a 404, a malformed body a 422
    assert api("set_subscription_payment_method", path=path, body={"paymentMethodId": "nope"})[0] == S.NOT_FOUND
    unknown = "/customer/subscriptions/nope/payment-method"
    assert (
        api("set_subscription_payment_method", path=unknown, body={"paymentMethodId": second["paymentMethodId"]})[0]
        == S.NOT_FOUND
    )
    assert api("set_subscription_payment_method", path=path, body={})[0] == S.UNPROCESSABLE_ENTITY
