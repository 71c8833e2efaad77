"""The contract's rule, route by route: every POST that creates or moves something takes the ``Idempotency-Key``
header, and says so in its function's OpenAPI document (docs/api.md lists the same routes)."""

from __future__ import annotations

import importlib
import json
from typing import Any

import pytest

#: POSTs that are idempotent by themselves, without a key (docs/api.md says why for each).
IDEMPOTENT_BY_THEMSELVES = {
    "/orders/{orderId}/confirm",  # recorded under the intent's id and status: a repeat applies nothing twice
    "/reservations/{reservationId}/capture",  # a settled hold answers the same reservation
    "/reservations/{reservationId}/release",
    "/credits/expiry-check",  # expires what is due: a repeat finds nothing more to expire
}

#: Every keyed POST of the API, by function.
KEYED = {
    "ordering": {"/orders", "/orders/{orderId}/payment"},
    "consumption": {
        "/credits/{offerGroup}/consume",
        "/admin/users/{userId}/credits/{offerGroup}/consume",
        "/credits/{offerGroup}/reservations",
        "/admin/users/{userId}/grants",
    },
    "customers": {
        "/customer/addresses",
        "/customer/payment-methods",
        "/customer/subscriptions",
        "/customer/subscriptions/{subscriptionId}/cancel",
        "/customer/subscriptions/cancel-all",
        "/customer/sync",
        "/customer/reload",
        "/admin/customers/{userId}/transactions/{transactionId}/refund",
        "/admin/customers/{userId}/transactions/{transactionId}/void",
        "/admin/customers/{userId}/reset-processor",
        "/admin/customers/{userId}/subscriptions",
    },
}


def _posts(function: str) -> dict[str, Any]:
    app = importlib.import_module(f"{function}.handler").app
    document = json.loads(app.get_openapi_json_schema())
    return {path: operations["post"] for path, operations in document["paths"].items() if "post" in operations}


@pytest.mark.parametrize("function", KEYED)
def test_every_post_that_creates_or_moves_something_takes_the_idempotency_key(function: str) -> None:
    posts = _posts(function)
    keyed = {
        path
        for path, operation in posts.items()
        if any(p["in"] == "header" and p["name"] == "idempotency-key" for p in operation.get("parameters", []))
    }
    assert keyed == KEYED[function]
    assert set(posts) - keyed <= IDEMPOTENT_BY_THEMSELVES
