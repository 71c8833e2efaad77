"""The Stripe objects the bench's webhook rows send (Stripe's shapes, reduced to what the webhook reads), and the
balances a refund or dispute should leave, computed independently of the domain's code."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from devtools.lambda_events import function_url_event, sign_webhook_event


def stripe_event_payload(event_id: str, kind: str, obj: Mapping[str, Any]) -> bytes:
    """The raw body Stripe signs and posts: an ``event`` of type ``kind`` about ``obj``."""
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": dict(obj)}}).encode()


def webhook_request(payload: bytes, secret: str) -> dict[str, Any]:
    """The Function URL request Stripe would post with ``payload``, signed with ``secret``."""
    return sign_webhook_event(function_url_event(body=payload, headers={"content-type": "application/json"}), secret)


def intent_object(
    intent_id: str, total: Mapping[str, Any], metadata: Mapping[str, str], status: str = "succeeded"
) -> dict[str, Any]:
    """A PaymentIntent as ``payment_intent.*`` events carry it; ``total`` is an order's ``{"amount", "currency"}``,
    received in full when ``status`` is succeeded."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": total["amount"],
        "amount_received": total["amount"] if status == "succeeded" else 0,
        "currency": total["currency"],
        "metadata": dict(metadata),
    }


def refunded_charge(
    intent_id: str, total: Mapping[str, Any], amount_refunded: int, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The Charge of a ``charge.refunded`` event: ``amount_refunded`` is cumulative, and Stripe copies the intent's
    metadata onto its charge."""
    return {
        "id": f"ch_{intent_id.removeprefix('pi_')}",
        "object": "charge",
        "amount": total["amount"],
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= total["amount"],
        "currency": total["currency"],
        "payment_intent": intent_id,
        "metadata": dict(metadata),
    }


def dispute_object(intent_id: str, amount: int, currency: str, status: str) -> dict[str, Any]:
    """The Dispute of a ``charge.dispute.*`` event: no metadata of ours (its order is found through the intent id)."""
    return {
        "id": f"dp_{intent_id.removeprefix('pi_')}",
        "object": "dispute",
        "amount": amount,
        "currency": currency,
        "status": status,
        "charge": f"ch_{intent_id.removeprefix('pi_')}",
        "payment_intent": intent_id,
        "metadata": {},
    }


def balances_after_return(granted: Mapping[str, int], returned: int, total: int) -> dict[str, int]:
    """Each group's balance once ``returned`` of ``total`` went back, for a user whose only lots are one order's, one
    per group, nothing spent: each lot gives ``ceil(tokens × returned / total)`` (README "Money going back"),
    computed here independently of the domain's code."""
    return {group: tokens - -(-tokens * returned // total) for group, tokens in granted.items()}
