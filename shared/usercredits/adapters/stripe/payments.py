"""The Stripe adapter of the PaymentGateway port: one PaymentIntent per order attempt, cancels and refunds.

Only the ordering and webhook functions import this module; ``stripe`` is imported inside the methods (see
``client`` for the client, the keys and how failures are translated).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from usercredits.adapters.stripe.client import StripeResource, client_source, load_stripe_keys, raise_translated
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain.models import IntentState, Order, PaymentIntent
from usercredits.errors import PaymentGatewayError

if TYPE_CHECKING:
    import stripe

#: Statuses an intent may have when a cancel is refused as a no-op (nothing left to cancel).
_FINAL_STATUSES = frozenset({"canceled", "succeeded"})


class StripeGateway(StripeResource):
    """PaymentGateway over ``stripe.StripeClient``.

    ``api_base`` points the client at another API host (the tests' fake server). ``timeout_seconds`` bounds each HTTP
    attempt; with the default two retries the worst case stays under the functions' 15 s timeout.
    """

    provider = "stripe"

    def __init__(
        self,
        secret_key: str | Callable[[], str],
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clients = client_source(
            secret_key,
            api_base=api_base,
            max_network_retries=max_network_retries,
            timeout_seconds=timeout_seconds,
            monotonic=monotonic,
        )

    def __repr__(self) -> str:
        return "StripeGateway()"

    @classmethod
    def from_secret(
        cls,
        secret_name: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> StripeGateway:
        """A gateway using the ``secretKey`` of the Secrets Manager JSON secret ``secret_name``, read on the first call
        to Stripe (``client_source``)."""
        return cls(
            lambda: load_stripe_keys(secret_name).require_secret_key(),
            api_base=api_base,
            max_network_retries=max_network_retries,
            timeout_seconds=timeout_seconds,
            monotonic=monotonic,
        )

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        """The intent collecting ``order.total`` (integer minor units, so right for jpy too) in the order's currency.

        The Stripe idempotency key is ``order-<orderId>-attempt-<attempt>``: a retried Lambda (or the SDK's own
        retries) gets the same intent back instead of a second one. Stripe keeps keys for 24 hours.
        """
        import stripe

        try:
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": order.total.amount,
                    "currency": order.total.currency,
                    "metadata": {"orderId": order.order_id, "userId": order.user_id},
                    "automatic_payment_methods": {"enabled": True},
                    "description": f"Payment for order {order.order_id}",
                },
                options={"idempotency_key": f"order-{order.order_id}-attempt-{attempt}"},
            )
        except stripe.StripeError as exc:
            raise_translated(exc, "create the payment intent")
        if not intent.id or not intent.client_secret:
            raise PaymentGatewayError("Stripe answered a payment intent without an id or client secret")
        return PaymentIntent(provider=self.provider, payment_intent_id=intent.id, client_secret=intent.client_secret)

    def retrieve_intent(self, intent_id: str) -> IntentState:
        """The intent as Stripe has it now (status, amounts, currency, metadata, last error, next action)."""
        import stripe

        try:
            intent = self._client.v1.payment_intents.retrieve(intent_id)
        except stripe.StripeError as exc:
            raise_translated(exc, "read the payment intent")
        return intent_state(intent.to_dict())

    def cancel_intent(self, intent_id: str) -> None:
        """Cancel an abandoned intent so it can no longer be paid.

        An intent that is already ``canceled`` or ``succeeded`` cannot be canceled; Stripe refuses with
        ``payment_intent_unexpected_state`` and that refusal is a no-op here (nothing left to cancel). NB: a
        ``succeeded`` intent means the customer paid: read it with ``retrieve_intent`` first when that matters.
        Any other refusal (e.g. a ``processing`` intent) raises ``PaymentGatewayError``.
        """
        import stripe

        try:
            self._client.v1.payment_intents.cancel(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "payment_intent_unexpected_state" and _refused_intent_status(exc) in _FINAL_STATUSES:
                return
            raise_translated(exc, "cancel the payment intent")
        except stripe.StripeError as exc:
            raise_translated(exc, "cancel the payment intent")

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        """Refund what is left of the intent's charge (``reason=duplicate``); None when Stripe says it was refunded
        in full already. The idempotency key makes a retry return the same refund."""
        import stripe

        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": intent_id, "reason": "duplicate", "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as exc:
            if exc.code == "charge_already_refunded":
                return None
            raise_translated(exc, "refund the payment")
        except stripe.StripeError as exc:
            raise_translated(exc, "refund the payment")
        return str(refund.id)


def _refused_intent_status(exc: stripe.InvalidRequestError) -> str | None:
    # Stripe attaches the intent to a payment_intent_unexpected_state error.
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent") or {}
    status = intent.get("status") if isinstance(intent, dict) else None
    return status if isinstance(status, str) else None
