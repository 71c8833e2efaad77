"""Calling the customers function's ``lambda_handler`` the way API Gateway does, for the integration tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from devtools.lambda_context import LambdaContext

from tests.conftest import http_event

Call = Callable[..., tuple[int, Any]]


def customers_caller(lambda_context: LambdaContext) -> Call:
    """``call(event_file, **overrides) -> (status, body)`` through customers' lambda_handler: the sample event
    ``events/customers/<event_file>.json`` with ``http_event``'s overrides; the body decoded, ``None`` if empty."""
    from customers import handler

    def call(base: str, **overrides: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(http_event(f"customers/{base}.json", **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None

    return call
