"""Seed operations reached through the customers API (issue 15 item 4): the default payment method with the seed's
reuse rules and its address (M04-M07), trials, the statement descriptor and the grace period as a setting.

Handler-level: the real lambda_handler with API Gateway events, on moto, the fixtures of test_customers_handler.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import boto3
import pytest

from tests.helpers.subscription_builders import address, base_customer, card
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
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
