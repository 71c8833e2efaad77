"""The customers function's OpenAPI document describes its response models: exact keys, nothing else allowed, and
no sync bookkeeping anywhere (schemathesis checks the running API against this document)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.helpers import customer_shapes as shapes

#: Each response model and the keys the contract shows of it.
RESPONSE_MODELS = {
    "CustomerResponse": shapes.CUSTOMER,
    "AddressResponse": shapes.ADDRESS,
    "AddressDetails": shapes.ADDRESS_FIELDS,
    "PaymentMethodResponse": shapes.PAYMENT_METHOD,
    "PlanResponse": shapes.PLAN,
    "DiscountResponse": shapes.DISCOUNT,
    "CustomerSubscriptionResponse": shapes.SUBSCRIPTION,
    "SubscriptionStatusChange": shapes.STATUS_CHANGE,
    "TransactionResponse": shapes.TRANSACTION,
    "TransactionStatusChange": shapes.STATUS_CHANGE,
    "TransactionCustomerDetails": shapes.TRANSACTION_CUSTOMER,
    "TransactionDiscountResponse": shapes.TRANSACTION_DISCOUNT,
    "ProcessorStatus": shapes.PROCESSOR,
    "CouponResponse": shapes.COUPON,
    "CouponCheckResponse": shapes.COUPON_CHECK,
    "SubscriptionsResponse": {"subscriptions"},
    "CurrentSubscriptionResponse": {"subscription"},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from customers.handler import app

    return dict(json.loads(app.get_openapi_json_schema()))


@pytest.mark.parametrize(("name", "keys"), RESPONSE_MODELS.items())
def test_response_model_schema_has_exactly_the_contract_keys(
    document: dict[str, Any], name: str, keys: set[str]
) -> None:
    schema = document["components"]["schemas"][name]
    assert set(schema["properties"]) == keys
    assert schema["additionalProperties"] is False


def test_every_success_answer_is_a_response_model(document: dict[str, Any]) -> None:
    answers = {
        (method, path): response["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status.startswith("2")
    }
    assert len(answers) == 21  # every route of the function
    assert set(answers.values()) <= set(RESPONSE_MODELS)


def test_no_schema_mentions_sync_bookkeeping(document: dict[str, Any]) -> None:
    for name, schema in document["components"]["schemas"].items():
        assert not set(schema.get("properties", {})) & shapes.BOOKKEEPING, name
