"""The subscription processor of ``make run`` (``PAYMENT_PROVIDER=local``): the Billing simulation on the dev server's
test clock, knowing the local payment method tokens and the plans' prices.

The customers and webhook functions reach it through the real adapter (``StripeSubscriptionProcessor`` with
``api_base`` = ``LOCAL_STRIPE_API_BASE``); the dev server delivers the events it makes to the webhook function
(``devtools.devserver.local_stripe``).
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable
from typing import Any

from devtools.stripe_sim.billing import FakeStripeBilling
from devtools.stripe_sim.billing_shapes import Json
from devtools.stripe_sim.wire import Answer

_TEST_TOKEN_PREFIXES = ("pm_card_", "pm_local_", "pm_paypal_")


class StripeSimulator(FakeStripeBilling):
    """``FakeStripeBilling`` with a clock (epoch seconds), a ``price_source`` for prices it was not given (the
    plans' ``processorPlanId``: any plan an admin puts can be subscribed to), and the local payment method tokens
    (``usercredits.adapters.local_payment_methods``) made on first use."""

    def __init__(
        self, clock: Callable[[], float], price_source: Callable[[str], tuple[int, str, int] | None] | None = None
    ) -> None:
        super().__init__()
        self.clock = clock
        self._price_source = price_source

    def price(self, price_id: str) -> Json | None:
        known = super().price(price_id)
        if known is not None or self._price_source is None or not price_id:
            return known
        found = self._price_source(price_id)
        if found is None:
            return None
        amount, currency, months = found
        self.add_price(price_id, amount, currency, months)
        return self.prices[price_id]

    def _get_payment_method(self, form: Json, pm_id: str) -> Answer:
        self._local_payment_method(pm_id)
        return super()._get_payment_method(form, pm_id)

    def _attach_payment_method(self, form: Json, pm_id: str) -> Answer:
        """A test token (``pm_card_visa``, ``pm_local_...``, ``pm_paypal_...``) attaches a new copy of itself, as
        Stripe's test tokens do: every user of the dev server may attach the same token."""
        self._local_payment_method(pm_id)
        template = self.payment_methods.get(pm_id)
        if template is not None and template.get("customer") is None and pm_id.startswith(_TEST_TOKEN_PREFIXES):
            copy_id = f"pm_{secrets.token_hex(12)}"
            self.payment_methods[copy_id] = {**copy.deepcopy(template), "id": copy_id, "created": self.now()}
            pm_id = copy_id
        return super()._attach_payment_method(form, pm_id)

    def _local_payment_method(self, pm_id: str) -> None:
        """Make ``pm_id`` as the local provider describes it, the first time it is used."""
        if pm_id in self.payment_methods:
            return
        from usercredits.adapters.local_payment_methods import LocalPaymentMethodLookup
        from usercredits.subscriptions.instruments import CardDetails, PayPalDetails

        found = LocalPaymentMethodLookup().retrieve_payment_method(pm_id)
        if found is None:
            return
        details: Any = found.details
        if isinstance(details, PayPalDetails):
            self.add_payment_method(pm_id, kind="paypal", email=details.email)
        elif isinstance(details, CardDetails):
            self.add_payment_method(pm_id, brand=details.brand or "visa", last4=details.last4 or "0000")
        if found.customer_id:  # pm_foreign_...: attached to another customer already (attaching it is refused)
            self.payment_methods[pm_id]["customer"] = found.customer_id
