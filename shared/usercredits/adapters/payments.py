"""Choose the payment gateway for the deployment (the PaymentGateway port's composition)."""

from __future__ import annotations

from collections.abc import Callable

from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain.models import IntentState, Order, PaymentIntent
from usercredits.domain.ports import PaymentGateway
from usercredits.settings import PaymentSettings


def build_payment_gateway(settings: PaymentSettings) -> PaymentGateway:
    """The local simulator when ``PAYMENT_PROVIDER=local``; Stripe, with its key from Secrets Manager, otherwise."""
    if settings.PAYMENT_PROVIDER == "local":
        return LocalPaymentGateway(settings.LOCAL_WEBHOOK_SECRET)
    return StripeGateway.from_secret(settings.STRIPE_SECRET_NAME)


class LazyPaymentGateway:
    """A gateway built on its first use: for functions where only some events need the provider (the webhook calls
    Stripe only to refund a payment that paid nothing), so the others neither read the Stripe secret nor fail
    without it."""

    def __init__(self, build: Callable[[], PaymentGateway], provider: str) -> None:
        self._build = build
        self._gateway: PaymentGateway | None = None
        self.provider = provider

    def _get(self) -> PaymentGateway:
        if self._gateway is None:
            self._gateway = self._build()
        return self._gateway

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        return self._get().create_intent(order, attempt)

    def retrieve_intent(self, intent_id: str) -> IntentState:
        return self._get().retrieve_intent(intent_id)

    def cancel_intent(self, intent_id: str) -> None:
        self._get().cancel_intent(intent_id)

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        return self._get().refund_payment(intent_id, idempotency_key=idempotency_key, metadata=metadata)
