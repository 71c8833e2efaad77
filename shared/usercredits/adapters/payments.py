"""Choose the payment gateway for the deployment (the PaymentGateway port's composition)."""

from __future__ import annotations

from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.domain.models import Order, PaymentIntent
from usercredits.domain.ports import PaymentGateway
from usercredits.errors import NotImplementedYetError
from usercredits.settings import PaymentSettings


class StripeNotBuiltGateway:
    """Placeholder until the Stripe adapter lands (issue 4): priced orders answer 501 instead of pretending."""

    provider = "stripe"

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        raise NotImplementedYetError("Stripe payments are not built yet; deploy with PaymentProvider=local for now")


def build_payment_gateway(settings: PaymentSettings) -> PaymentGateway:
    """The local simulator when ``PAYMENT_PROVIDER=local``, Stripe otherwise."""
    if settings.PAYMENT_PROVIDER == "local":
        return LocalPaymentGateway(settings.LOCAL_WEBHOOK_SECRET)
    return StripeNotBuiltGateway()
