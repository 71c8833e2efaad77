"""Calling a function's real handler the way API Gateway and a Stripe Function URL delivery do, and reading its
answer: shared by the two lifecycle harnesses' drivers."""

from __future__ import annotations

import base64
import dataclasses
import json
from types import ModuleType
from typing import Any

from devtools.lambda_context import LambdaContext
from devtools.lambda_events import function_url_event, sign_webhook_event

from tests.conftest import http_event, load_event


@dataclasses.dataclass
class Answer:
    status: int
    body: Any

    def __str__(self) -> str:
        return f"{self.status} {json.dumps(self.body)[:600]}"


def call_api(
    module: ModuleType,
    context: LambdaContext,
    base: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    user: str = "admin",
    admin: bool = False,
    query: dict[str, str] | None = None,
    idempotency_key: str | None = None,
) -> Answer:
    """One HTTP API request (built from the sample event ``base``) through ``module.lambda_handler``."""
    event = http_event(
        base,
        method=method,
        path=path,
        route=f"{method} {path}",
        body=body,
        raw_body=None if body is not None else "",
        user=user,
        admin=admin,
        query=query if query is not None else {},
    )
    event["headers"].pop("idempotency-key", None)
    if idempotency_key is not None:
        event["headers"]["idempotency-key"] = idempotency_key
    if body is None:
        event.pop("body", None)
        event["headers"].pop("content-type", None)
    response = module.lambda_handler(event, context)
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return Answer(int(response["statusCode"]), json.loads(raw) if raw else None)


def deliver_stripe_event(module: ModuleType, context: LambdaContext, event: dict[str, Any], secret: str) -> Answer:
    """One Stripe event delivered to the webhook function's Function URL, signed with ``secret``."""
    payload = json.dumps(event).encode()
    sample = load_event("stripe_webhook/payment_intent_succeeded.json")
    request = sign_webhook_event(function_url_event(base=sample, body=payload), secret)
    response = module.lambda_handler(request, context)
    return Answer(int(response["statusCode"]), json.loads(response.get("body") or "null"))
