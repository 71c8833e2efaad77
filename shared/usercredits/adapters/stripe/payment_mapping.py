"""A PaymentIntent in Stripe's API shape (a retrieved intent, or the ``data.object`` of a ``payment_intent.*`` event)
mapped to the domain's ``IntentState``: the gateway and the webhook parser read intents the same way."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from usercredits.adapters.stripe.json_fields import metadata_of, minor_units
from usercredits.domain.models import IntentState


def intent_state(intent: Mapping[str, Any]) -> IntentState:
    """The essentials of a PaymentIntent in Stripe's API shape (also the ``data.object`` of ``payment_intent.*``)."""
    error = intent.get("last_payment_error") or None
    next_action = intent.get("next_action") or None
    return IntentState(
        payment_intent_id=str(intent["id"]),
        status=str(intent.get("status") or ""),
        amount=minor_units(intent, "amount"),
        amount_received=minor_units(intent, "amount_received"),
        currency=str(intent.get("currency") or ""),
        metadata=metadata_of(intent),
        last_error=_format_payment_error(error) if isinstance(error, dict) else None,
        next_action=str(next_action.get("type") or "unknown") if isinstance(next_action, dict) else None,
    )


def _format_payment_error(error: Mapping[str, Any]) -> str:
    # The seed's history message: "<last_payment_error.message> - <type>: <code>" (no payment method details).
    text = f"{error.get('message') or 'Payment failed'} - {error.get('type') or 'unknown'}"
    return f"{text}: {error['code']}" if error.get("code") else text
