"""Stripe ``Event`` objects (the webhook's payload) for what the simulation changed."""

from __future__ import annotations

import contextlib
import json
import secrets
from typing import Any

Json = dict[str, Any]


def stripe_event(kind: str, data: Json, created: int) -> Json:
    """The ``Event`` Stripe sends for ``kind`` (``customer.subscription.updated``...) carrying ``data`` as it is now
    (a copy: later changes to the object do not reach an event already made)."""
    return {
        "id": f"evt_local_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": stripe_api_version(),
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "type": kind,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": json.loads(json.dumps(data))},
    }


def stripe_api_version() -> str:
    """The API version the installed ``stripe`` SDK speaks (what a webhook endpoint made by it would receive)."""
    with contextlib.suppress(Exception):
        import stripe

        return str(stripe.api_version)
    return "2025-01-01"
