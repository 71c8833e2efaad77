"""The local provider's payment method tokens (``PAYMENT_PROVIDER=local``: ``make run`` and the tests).

Stripe-shaped ids, no network: ``pm_card_<brand>`` (Stripe's own test ids, e.g. ``pm_card_visa``) and
``pm_local_<anything>`` are cards, ``pm_paypal_<anything>`` is a PayPal account, and ``pm_foreign_<anything>`` is a
card attached to another processor customer (to try the "foreign payment method" refusal). Anything else is unknown.
"""

from __future__ import annotations

import re

from usercredits.subscriptions.instruments import CardDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.ports import ProcessorPaymentMethod

_TOKEN = re.compile(r"^pm_(card|local|paypal|foreign)_([A-Za-z0-9_]{1,100})$")
_LAST4 = {"visa": "4242", "mastercard": "4444", "amex": "8431", "discover": "1117"}
#: The processor customer every ``pm_foreign_...`` token is attached to.
FOREIGN_CUSTOMER = "cus_local_foreign"


class LocalPaymentMethodLookup:
    """``PaymentMethodLookup`` of the local provider (see the module docstring for the tokens it knows)."""

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        match = _TOKEN.match(token)
        if match is None:
            return None
        family, rest = match.groups()
        if family == "paypal":
            details = PayPalDetails(email=f"{rest.lower()}@paypal.local", payer_id=rest.upper()[:13])
            return ProcessorPaymentMethod(id=token, kind=PaymentMethodKind.PAYPAL, details=details)
        brand = rest.lower() if family == "card" else "visa"
        card = CardDetails(brand=brand, last4=_LAST4.get(brand, "0000"), expiration_month=12, expiration_year=2034)
        owner = FOREIGN_CUSTOMER if family == "foreign" else None
        return ProcessorPaymentMethod(id=token, kind=PaymentMethodKind.CARD, details=card, customer_id=owner)
