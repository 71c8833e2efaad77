"""The local payment provider (docs/api.md#local-simulation-dev-server-only): Stripe-shaped intents, no network.

Intent ids are derived from (order, attempt) exactly like the Stripe adapter's idempotency keys, so asking twice for
the same attempt returns the same intent, as Stripe does for a repeated idempotency key.
"""

from __future__ import annotations

import hashlib
import hmac

from usercredits.domain.models import IntentState, Order, PaymentIntent


class LocalPaymentGateway:
    """Payment intents for ``make run`` and the tests when no Stripe key is configured."""

    provider = "local"

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        digest = hashlib.sha256(f"{order.order_id}:{attempt}".encode()).hexdigest()[:24]
        intent_id = f"pi_local_{digest}"
        signature = hmac.new(self._secret, intent_id.encode(), hashlib.sha256).hexdigest()[:24]
        return PaymentIntent(
            provider=self.provider, payment_intent_id=intent_id, client_secret=f"{intent_id}_secret_{signature}"
        )

    def retrieve_intent(self, intent_id: str) -> IntentState:
        # The local provider keeps no state: outcomes arrive as signed events (POST /_local/payments/...), so a
        # confirm sees "processing" and leaves the order as it is.
        return IntentState(
            payment_intent_id=intent_id, status="processing", amount=0, amount_received=0, currency="", metadata={}
        )

    def cancel_intent(self, intent_id: str) -> None:
        """Nothing to cancel: a local intent only moves when the simulation sends an event."""

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        """No money moved locally: the refund's id is derived from the key, so a retry gets the same one."""
        digest = hashlib.sha256(f"{intent_id}:{idempotency_key}".encode()).hexdigest()[:24]
        return f"re_local_{digest}"
