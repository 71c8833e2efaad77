"""Choose the payment gateway for the deployment (the PaymentGateway port's composition)."""

from __future__ import annotations

from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain.ports import PaymentGateway
from usercredits.settings import PaymentSettings


def build_payment_gateway(settings: PaymentSettings) -> PaymentGateway:
    """The local simulator when ``PAYMENT_PROVIDER=local``; Stripe otherwise, its key read from Secrets Manager on the
    first call to Stripe and every 5 minutes after (routes that never pay never read it)."""
    if settings.PAYMENT_PROVIDER == "local":
        return LocalPaymentGateway(settings.LOCAL_WEBHOOK_SECRET)
    return StripeGateway.from_secret(settings.STRIPE_SECRET_NAME)
