"""Integration fixtures: the real ordering composition root against moto tables made from template.yaml."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from devtools.catalog import load_catalog
from devtools.lambda_context import LambdaContext
from devtools.lambda_events import function_url_event, sign_webhook_event

from tests.conftest import DEMO_CATALOG, http_event, load_event
from usercredits.settings import get_customers_settings, get_ordering_settings

Call = Callable[..., tuple[int, Any, dict[str, str]]]
SECRET = os.environ["LOCAL_WEBHOOK_SECRET"]


@pytest.fixture
def ordering_api(moto_tables: None, lambda_context: LambdaContext) -> Iterator[Call]:
    """``call(base_event, **overrides) -> (status, json body, headers)`` through ordering's lambda_handler."""
    from ordering import handler

    handler.dependencies.cache_clear()
    get_ordering_settings.cache_clear()
    load_catalog(DEMO_CATALOG)

    def call(base: str, **overrides: Any) -> tuple[int, Any, dict[str, str]]:
        response = handler.lambda_handler(http_event(base, **overrides), lambda_context)
        raw = response.get("body") or ""
        if response.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode()
        return response["statusCode"], json.loads(raw) if raw else None, response.get("headers", {})

    yield call
    handler.dependencies.cache_clear()


@pytest.fixture
def customers_api(moto_tables: None, lambda_context: LambdaContext) -> Iterator[Callable[..., tuple[int, Any]]]:
    """``call(event_name, **overrides) -> (status, json body)`` through customers' lambda_handler (local provider)."""
    from customers import handler

    handler.dependencies.cache_clear()
    get_customers_settings.cache_clear()

    def call(base: str, **overrides: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(http_event(f"customers/{base}.json", **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None

    yield call
    handler.dependencies.cache_clear()


@pytest.fixture
def credits_items(moto_tables: None) -> Callable[[], list[dict[str, Any]]]:
    """Every item of the credits table (to assert on what was, or was not, written)."""
    import os

    def scan() -> list[dict[str, Any]]:
        client = boto3.client("dynamodb")
        return client.scan(TableName=os.environ["CREDITS_TABLE_NAME"])["Items"]

    return scan


def item_kinds(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["itemType"]["S"] for item in items if item["pk"]["S"] != "CATALOG")


@pytest.fixture
def webhook(moto_tables: None, lambda_context: Any):
    from stripe_webhook import handler

    handler.dependencies.cache_clear()

    def deliver(
        event: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
        signature: str | None = "sign",
        base64_body: bool = False,
    ) -> tuple[int, Any]:
        payload = raw if raw is not None else json.dumps(event).encode()
        request = function_url_event(base=load_event("stripe_webhook/payment_intent_succeeded.json"), body=payload)
        if base64_body:  # the same bytes, base64 in the event (as a Function URL sends a binary body)
            request["body"], request["isBase64Encoded"] = base64.b64encode(payload).decode(), True
        request["headers"].pop("stripe-signature", None)
        if signature == "sign":
            request = sign_webhook_event(request, SECRET)
        elif signature is not None:
            request["headers"]["stripe-signature"] = signature
        response = handler.lambda_handler(request, lambda_context)
        return response["statusCode"], json.loads(response["body"])

    yield deliver
    handler.dependencies.cache_clear()


def intent_event(event_id: str, kind: str, order: dict[str, Any], **intent: Any) -> dict[str, Any]:
    body = {
        "id": order["paymentIntentId"],
        "object": "payment_intent",
        "amount": order["total"]["amount"],
        "amount_received": 0,
        "currency": order["total"]["currency"],
        "metadata": {"orderId": order["orderId"], "userId": order["userId"]},
    } | intent
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": body}}


def succeeded(order: dict[str, Any], event_id: str = "evt_ok") -> dict[str, Any]:
    return intent_event(
        event_id, "payment_intent.succeeded", order, status="succeeded", amount_received=order["total"]["amount"]
    )


@pytest.fixture
def pending_order(ordering_api: Call) -> dict[str, Any]:
    return ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"})[1]["order"]


def outbox_events(items: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(detail-type, detail) of every event written to the outbox, in commit order."""
    import json as _json

    outbox = sorted((item for item in items if item["itemType"]["S"] == "outbox"), key=lambda item: item["sk"]["S"])
    return [
        (event["M"]["kind"]["S"], _json.loads(event["M"]["detail"]["S"]))
        for item in outbox
        for event in item["events"]["L"]
    ]


__all__ = ["SECRET", "Call", "intent_event", "item_kinds", "json", "outbox_events", "succeeded"]


@pytest.fixture
def consumption_api(ordering_api: Call, lambda_context: Any) -> Iterator[Call]:
    """``call(base_event, **overrides)`` through consumption's lambda_handler (the demo catalog is loaded)."""
    from consumption import handler

    handler.dependencies.cache_clear()

    def call(base: str, **overrides: Any) -> tuple[int, Any, dict[str, str]]:
        response = handler.lambda_handler(http_event(base, **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None, response.get("headers", {})

    yield call
    handler.dependencies.cache_clear()
