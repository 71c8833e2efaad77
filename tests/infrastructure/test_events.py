"""events/ <-> template.yaml: the sample events are shaped like what AWS sends each function, for routes that exist.

`make invoke` and the integration tests replay these files, so a sample for a route the template does not have (or an
event in the wrong shape) would test something that can never happen.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2, LambdaFunctionUrlEvent
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from devtools.cfn import http_routes

from tests.infrastructure.conftest import ROOT, FunctionConfig

EVENTS = ROOT / "events"
ALL_EVENTS = sorted(EVENTS.rglob("*.json"))
HTTP_FOLDERS = sorted({route.function for route in http_routes()})
HTTP_EVENTS = [path for path in ALL_EVENTS if path.parent.name in HTTP_FOLDERS]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _name(path: Path) -> str:
    return path.relative_to(EVENTS).as_posix()


def test_every_function_has_sample_events(functions: dict[str, FunctionConfig]) -> None:
    folders_with_events = {path.parent.name for path in ALL_EVENTS}
    assert set(functions) <= folders_with_events
    assert folders_with_events <= set(functions), "events/<folder> must be a function folder"


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=_name)
def test_http_event_is_a_payload_2_request_for_a_template_route(path: Path) -> None:
    # Given a sample HTTP API event of a function
    raw = _load(path)
    event = APIGatewayProxyEventV2(raw)
    routes = {f"{r.method} {r.path}": r for r in http_routes() if r.function == path.parent.name}
    # Then it is a payload 2.0 request for one of that function's routes
    assert event.version == "2.0"
    assert event.route_key in routes, f"{event.route_key} is not a route of {path.parent.name}"
    assert event.request_context.route_key == event.route_key
    method, template_path = event.route_key.split(" ", 1)
    assert event.request_context.http.method == method
    # with its path parameters filled into rawPath
    pattern = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template_path)) + "$"
    match = re.match(pattern, event.raw_path)
    assert match, f"rawPath {event.raw_path} does not match {template_path}"
    assert match.groupdict() == (event.path_parameters or {})
    assert event.request_context.http.path == event.raw_path
    # from a caller the JWT authorizer let through
    claims = event.request_context.authorizer.jwt_claim
    assert claims["sub"] and "scope" in claims
    if "/admin/" in template_path:
        assert "credits/admin" in claims["scope"].split()
    # with lower-case headers, as HTTP APIs deliver them, and a JSON body when there is one
    assert all(name == name.lower() for name in raw["headers"])
    if raw.get("body") is not None:
        assert not event.is_base64_encoded and event.body is not None
        json.loads(event.body)
        assert raw["headers"]["content-type"].startswith("application/json")


def test_every_http_route_has_a_sample_event() -> None:
    covered = {_load(path)["routeKey"] for path in HTTP_EVENTS}
    missing = {f"{route.method} {route.path}" for route in http_routes()} - covered
    assert missing == set()


def test_named_samples_exist() -> None:
    # The file names other tools and docs use (devtools, the Makefile's default EVENT, the README)
    expected = [
        "ordering/list_offers.json",
        "ordering/get_offer.json",
        "ordering/create_order.json",
        "ordering/create_free_order.json",
        "ordering/list_orders.json",
        "ordering/get_order.json",
        "ordering/request_payment.json",
        "ordering/get_subscription.json",
        "ordering/put_offer_admin.json",
        "ordering/delete_offer_admin.json",
        "consumption/consume.json",
        "consumption/get_credits.json",
        "stripe_webhook/payment_intent_succeeded.json",
        "expiry_scan/scheduled.json",
    ]
    assert [name for name in expected if not (EVENTS / name).is_file()] == []


def test_order_samples_use_the_demo_catalog() -> None:
    create = json.loads(_load(EVENTS / "ordering" / "create_order.json")["body"])
    free = json.loads(_load(EVENTS / "ordering" / "create_free_order.json")["body"])
    assert create == {"offerId": "_100tokens", "quantity": 2}
    assert free == {"offerId": "Free"}


def test_stripe_webhook_sample_is_a_function_url_event_with_a_stripe_event_body() -> None:
    # Given the webhook sample
    raw = _load(EVENTS / "stripe_webhook" / "payment_intent_succeeded.json")
    event = LambdaFunctionUrlEvent(raw)
    # Then it is a Function URL POST (payload 2.0, no authorizer) carrying a signature header to re-sign
    assert event.version == "2.0" and event.route_key == "$default"
    assert event.request_context.http.method == "POST"
    assert "authorizer" not in raw["requestContext"]
    assert event.headers["stripe-signature"].startswith("t=")
    # and the raw body is a Stripe payment_intent.succeeded event for the sample order
    assert event.decoded_body is not None
    body = json.loads(event.decoded_body)
    assert body["object"] == "event" and body["type"] == "payment_intent.succeeded"
    intent = body["data"]["object"]
    assert intent["object"] == "payment_intent" and intent["status"] == "succeeded"
    assert intent["id"].startswith("pi_") and intent["amount_received"] == intent["amount"] == 4000
    order_id = _load(EVENTS / "ordering" / "get_order.json")["pathParameters"]["orderId"]
    assert intent["metadata"]["orderId"] == order_id
    assert raw["headers"]["content-length"] == str(len(raw["body"].encode()))


def test_scheduled_sample_parses_as_the_schedules_eventbridge_event(functions: dict[str, FunctionConfig]) -> None:
    # Given the expiry scan sample and the Input template.yaml gives the schedule
    raw = _load(EVENTS / "expiry_scan" / "scheduled.json")
    schedule = next(iter(functions["expiry_scan"].events.values()))["Properties"]
    template_input = json.loads(
        schedule["Input"]["Fn::Sub"].replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "us-east-1")
    )
    # Then the sample has the same fields and parses with Powertools' EventBridgeModel
    assert set(raw) == set(template_input)
    assert set(raw["detail"]) == set(template_input["detail"])
    parsed = EventBridgeModel.model_validate(raw)
    assert parsed.detail_type == template_input["detail-type"] == "Scheduled Event"
    assert parsed.source == template_input["source"]
