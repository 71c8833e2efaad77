"""Seed operations reached through the customers API (issue 15 item 4): the default payment method with the seed's
reuse rules and its address (M04-M07), trials, the statement descriptor and the grace period as a setting.

Handler-level: the real lambda_handler with API Gateway events, on moto, the fixtures of test_customers_handler.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest

from tests.helpers.subscription_builders import address, base_customer, card, subscription
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.settings import get_customers_settings
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.models import Customer, ProcessorState

Call = Callable[..., tuple[int, Any]]
S = HTTPStatus
HOME = {"name": "Pesho", "country": "BG", "locality": "Sofia", "postalCode": "1000", "streetAddress": "Vitosha 1"}


@pytest.fixture
def api(customers_api: Call) -> Call:
    return customers_api


@pytest.fixture
def items(moto_tables: None) -> Callable[[], list[dict[str, Any]]]:
    return lambda: boto3.client("dynamodb").scan(TableName=os.environ["CUSTOMERS_TABLE_NAME"])["Items"]


def store(customer: Customer) -> Customer:
    return DynamoCustomerRepository().save(customer_changes(None, customer))


def stored(user: str = "alice") -> Customer | None:
    return DynamoCustomerRepository().load(user)


def set_default(api: Call, **body: Any) -> tuple[int, Any]:
    return api("set_default_payment_method", body=body)


# --- the default payment method: token and address (M04-M07) ---------------------------------------------------------


def test_a_token_of_the_same_kind_updates_the_default_in_place(api: Call) -> None:
    """M04: a card default given a new card token keeps its local id (a synced one becomes changed), no duplicate."""
    store(base_customer(user_id="alice", default_payment_method_id="five", payment_methods=[card("five", "one")]))
    status, customer = set_default(api, token="pm_card_mastercard")
    assert status == S.OK
    assert [m["paymentMethodId"] for m in customer["paymentMethods"]] == ["five"]
    method = customer["paymentMethods"][0]
    assert method["token"] == "pm_card_mastercard" and method["processor"]["state"] == "changed"
    assert method["billingAddressId"] == "one" and customer["defaultPaymentMethodId"] == "five"


def test_a_paypal_token_is_always_a_new_method_inheriting_the_billing_address(api: Call) -> None:
    """M05/M06: the PayPal default `three` is never updated in place; the new one takes `three`'s billing address."""
    store(base_customer(user_id="alice"))
    status, customer = set_default(api, token="pm_paypal_other")
    assert status == S.OK
    ids = [m["paymentMethodId"] for m in customer["paymentMethods"]]
    assert len(ids) == 2 and ids[0] == "three" and customer["defaultPaymentMethodId"] == ids[1]
    new = customer["paymentMethods"][1]
    assert new["kind"] == "paypal" and new["billingAddressId"] == "one" and new["processor"]["state"] == "initial"
    assert customer["paymentMethods"][0]["processor"]["state"] == "saved"  # the old one is left alone


def test_a_change_of_kind_is_a_new_method(api: Call) -> None:
    store(base_customer(user_id="alice"))
    _, customer = set_default(api, token="pm_card_visa")
    assert [m["kind"] for m in customer["paymentMethods"]] == ["paypal", "card"]
    assert customer["defaultPaymentMethodId"] == customer["paymentMethods"][1]["paymentMethodId"]


def test_the_address_goes_to_the_defaults_billing_address(api: Call) -> None:
    """M07: the default's billing address `one` is updated (synced: changed); no new address."""
    store(base_customer(user_id="alice", default_payment_method_id="five", payment_methods=[card("five", "one")]))
    status, customer = set_default(api, token="pm_card_amex", address=HOME)
    assert status == S.OK
    assert [a["addressId"] for a in customer["addresses"]] == ["one"]
    one = customer["addresses"][0]
    assert one["locality"] == "Sofia" and one["streetAddress"] == "Vitosha 1" and one["processor"]["state"] == "changed"


def test_the_address_goes_to_an_unused_address_else_a_new_one(api: Call) -> None:
    # Given a card default without billing address, and an address `two` nobody uses
    store(
        base_customer(
            user_id="alice",
            default_payment_method_id="five",
            payment_methods=[card("five")],
            addresses=[address("two", name="Old", country="BG", postal_code="1000")],
        )
    )
    _, customer = set_default(api, token="pm_card_visa", address=HOME)
    assert [a["addressId"] for a in customer["addresses"]] == ["two"]
    assert customer["paymentMethods"][0]["billingAddressId"] == "two"
    # And with every address used, a new one (initial) is made
    _, again = set_default(api, token="pm_card_mastercard", address={**HOME, "name": "Other"})
    assert len(again["addresses"]) == 1  # the default's billing address `two` now: updated, not duplicated
    assert again["addresses"][0]["name"] == "Other"


def test_a_token_and_its_address_for_an_existing_customer_is_two_requests(api: Call) -> None:
    """The bench row's budget: the customer's Query and one save (the token is read at the processor)."""
    from usercredits.adapters.dynamodb.customers_table import CustomersItem

    api("get_customer")
    seen: list[str] = []
    client = CustomersItem._get_connection().connection.client

    def record(model: Any, params: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    try:
        status, _ = set_default(api, token="pm_card_visa", address=HOME)
    finally:
        client.meta.events.unregister("before-call.dynamodb", record)
    assert status == S.OK and seen == ["Query", "TransactWriteItems"]


def test_an_address_for_a_new_customer_is_a_new_address(api: Call) -> None:
    status, customer = set_default(api, token="pm_card_visa", address=HOME)
    assert status == S.OK
    (home,) = customer["addresses"]
    assert home["processor"]["state"] == "initial" and home["postalCode"] == "1000"
    assert customer["paymentMethods"][0]["billingAddressId"] == home["addressId"]


def test_a_token_the_customer_has_becomes_the_default_without_a_duplicate(api: Call) -> None:
    _, first = api("add_payment_method", body={"token": "pm_card_visa"})
    api("add_payment_method", body={"token": "pm_paypal_x"})
    status, customer = set_default(api, token="pm_card_visa")
    assert status == S.OK and len(customer["paymentMethods"]) == 2
    assert customer["defaultPaymentMethodId"] == first["paymentMethodId"]


def test_an_existing_method_with_an_address(api: Call) -> None:
    store(base_customer(user_id="alice", payment_methods=[card("three", "one"), card("five")]))
    status, customer = set_default(api, paymentMethodId="five", address=HOME)
    assert status == S.OK and customer["defaultPaymentMethodId"] == "five"
    five = next(m for m in customer["paymentMethods"] if m["paymentMethodId"] == "five")
    # `five` had no billing address and `one` is used by `three`: a new address is made and linked
    assert five["billingAddressId"] not in (None, "one") and len(customer["addresses"]) == 2


@pytest.mark.parametrize(
    ("token", "message"),
    [("tok_visa", "unknown payment method"), ("pm_foreign_card", "foreign payment method")],
)
def test_unknown_and_foreign_tokens_are_422_and_write_nothing(
    api: Call,
    items: Callable[[], list[dict[str, Any]]],
    token: str,
    message: str,
) -> None:
    status, body = set_default(api, token=token)
    assert status == S.UNPROCESSABLE_ENTITY and message in body["message"]
    assert items() == []


@pytest.mark.parametrize(
    "body",
    [{}, {"paymentMethodId": "five", "token": "pm_card_visa"}, {"token": ""}, {"token": "pm_card_visa", "address": 1}],
)
def test_a_default_request_names_exactly_one_method(api: Call, body: dict[str, Any]) -> None:
    status, error = set_default(api, **body)
    assert status == S.UNPROCESSABLE_ENTITY and error["error"] == "validation_error"
    assert stored() is None


def test_the_synced_state_of_the_default_method_is_kept(api: Call) -> None:
    store(base_customer(user_id="alice", default_payment_method_id="five", payment_methods=[card("five")]))
    set_default(api, token="pm_card_visa")
    customer = stored()
    assert customer is not None
    five = customer.payment_methods[0]
    assert five.processor.state is ProcessorState.CHANGED and five.processor.id == "id-pm-five"


# --- trials ----------------------------------------------------------------------------------------------------------

TRIAL_PLAN = {
    "name": "Pro",
    "price": {"amount": 1490, "currency": "usd"},
    "level": 2,
    "processorPlanId": "price_pro",
    "trialDuration": 14,
    "trialDurationUnit": "day",
}


def define_plan(api: Call, plan_id: str = "pro", **terms: Any) -> dict[str, Any]:
    status, plan = api("put_plan_admin", path=f"/admin/plans/{plan_id}", body={**TRIAL_PLAN, **terms}, admin=True)
    assert status == S.OK, plan
    return dict(plan)


def test_a_plans_trial_terms_round_trip_and_go_together(api: Call) -> None:
    plan = define_plan(api, gracePeriodDays=3)
    assert (plan["trialDuration"], plan["trialDurationUnit"], plan["gracePeriodDays"]) == (14, "day", 3)
    half = {**TRIAL_PLAN, "trialDurationUnit": None}
    status, error = api("put_plan_admin", path="/admin/plans/pro", body=half, admin=True)
    assert status == S.UNPROCESSABLE_ENTITY and "go together" in json.dumps(error)
    week = {**TRIAL_PLAN, "trialDurationUnit": "week"}
    assert api("put_plan_admin", path="/admin/plans/pro", body=week, admin=True)[0] == S.UNPROCESSABLE_ENTITY


def test_subscribing_to_a_plan_with_a_trial_starts_a_trial(api: Call) -> None:
    """5.6 (M28): the first billing date is the trial's end; the trial entitles once it is at the processor."""
    define_plan(api)
    before = datetime.now(UTC)
    status, sub = api("subscribe", body={"planId": "pro"})
    assert status == S.CREATED, sub
    assert sub["isTrial"] is True and (sub["trialDuration"], sub["trialDurationUnit"]) == (14, "day")
    first = datetime.fromisoformat(sub["firstBillingDate"])
    assert before + timedelta(days=14) <= first <= datetime.now(UTC) + timedelta(days=14)
    assert sub["paidThroughDate"] is None and sub["discounts"] == []


def test_a_trial_can_be_declined_and_is_given_once_per_plan(api: Call) -> None:
    define_plan(api)
    _, declined = api("subscribe", body={"planId": "pro", "trial": False})
    assert declined["isTrial"] is False and declined["firstBillingDate"] is None
    # A subscription withdrawn before it reached the processor does not use the trial up
    api("cancel_subscription", path=f"/customer/subscriptions/{declined['subscriptionId']}/cancel", body={})
    _, trial = api("subscribe", body={"planId": "pro"})
    assert trial["isTrial"] is True
    # But one that reached the processor does
    customer = stored()
    assert customer is not None
    synced = subscription("old", level=2).model_copy(update={"plan": customer.subscriptions[-1].plan})
    DynamoCustomerRepository().save(customer_changes(customer, customer.model_copy(update={"subscriptions": [synced]})))
    status, again = api("subscribe", body={"planId": "pro"})
    assert status == S.CREATED and again["isTrial"] is False


def test_a_trialing_subscription_shows_the_trialing_status() -> None:
    from customers.responses import subscription_response

    trial = subscription("one", is_trial=True, first_billing="2017-02-01")
    assert subscription_response(trial).status == "trialing"
    ended = trial.model_copy(update={"is_trial": False})
    assert subscription_response(ended).status == "active"


# --- the statement descriptor ---------------------------------------------------------------------------------------


def test_subscribe_with_a_descriptor_keeps_it(api: Call) -> None:
    define_plan(api)
    descriptor = {"name": "IBM*Pro Plan", "phone": "0888123456", "url": "example.com"}
    status, sub = api("subscribe", body={"planId": "pro", "descriptor": descriptor})
    assert status == S.CREATED and sub["descriptor"] == descriptor


@pytest.mark.parametrize(
    "descriptor",
    [{"name": "IB*Pro Plan"}, {"name": "A" * 23}, {"phone": "12"}, {"url": "a-very-long-url.example.com"}],
)
def test_a_descriptor_breaking_the_seeds_rules_is_422(api: Call, descriptor: dict[str, str]) -> None:
    define_plan(api)
    status, error = api("subscribe", body={"planId": "pro", "descriptor": descriptor})
    assert status == S.UNPROCESSABLE_ENTITY and error["error"] == "validation_error"
    customer = stored()
    assert customer is None or customer.subscriptions == []


# --- the grace period ----------------------------------------------------------------------------------------------


def entitled_on(api: Call, day: str) -> bool:
    status, body = api("current_subscription", query={"at": f"{day}T12:00:00Z"})
    assert status == S.OK, body
    return body["subscription"] is not None


def test_the_grace_period_is_a_setting(api: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    from customers import handler

    store(base_customer(user_id="alice", subscriptions=[subscription("one", first_billing="2017-01-01")]))
    # Given the default (one day): paid through 02-01, the 2nd entitles, the 3rd does not
    assert entitled_on(api, "2017-02-02") and not entitled_on(api, "2017-02-03")
    # When the setting says 3 days
    monkeypatch.setenv("SUBSCRIPTION_GRACE_DAYS", "3")
    get_customers_settings.cache_clear()
    handler.dependencies.cache_clear()
    # Then the 4th still entitles and the 5th does not, in every entitlement query
    assert entitled_on(api, "2017-02-04") and not entitled_on(api, "2017-02-05")
    status, valid = api("list_subscriptions", query={"at": "2017-02-04T12:00:00Z", "valid": "true"})
    assert status == S.OK and [s["subscriptionId"] for s in valid["subscriptions"]] == ["one"]


def test_a_plans_grace_beats_the_setting(api: Call) -> None:
    sub = subscription("one", first_billing="2017-01-01")
    sub = sub.model_copy(update={"plan": sub.plan.model_copy(update={"grace_period_days": 0})})
    store(base_customer(user_id="alice", subscriptions=[sub]))
    assert entitled_on(api, "2017-02-01") and not entitled_on(api, "2017-02-02")
