"""The Stripe adapter of the subscriptions half's ``SubscriptionProcessor`` port (customers, payment methods,
subscriptions with coupons, invoices, charges, refunds).

It uses the one ``client.new_client`` (``api_base`` points it at the tests' fake server), ``stripe`` imported inside
the methods (no cost at cold start), every mutating call sent with the idempotency key it is given (calls made on
behalf of one port call get that key plus a suffix), and failures translated at the boundary by
``client.raise_translated`` (connection failures, 409, 429, 5xx → ``UnavailableError``; other refusals →
``PaymentGatewayError``). Stripe's JSON is read and written by the pure functions of ``billing_mapping`` and
``subscription_mapping``.

Choices worth knowing:

- A local discount is a Stripe coupon (``amount_off`` in the subscription's currency, ``duration=repeating`` for its
  cycles × the plan's months, or ``forever``) whose id derives from the discount id and its original terms (the whole
  number of cycles, not the cycles left), so a retried sync finds the coupon it made (``resource_already_exists``)
  instead of making another; ``metadata.discountId`` links it back. An update keeps a Stripe discount whose coupon
  still matches (its cycles keep counting) and replaces the rest. A discount counts the invoices that applied it: one
  added after its period's invoice is at cycle 0.
- Retries after a lost answer: a create whose key Stripe refuses with ``idempotency_error`` (the first call had other
  parameters) adopts the object that call made (found by its local id in metadata) and updates it; an update resends
  under a key covering its parameters; a cancel (DELETE, never replayed by Stripe) reads back a canceled subscription.
- A queued start (``first_billing_date`` in the future) is sent as ``trial_end`` with ``metadata.queued``; such a
  subscription maps back to ``pending`` with no paid-through date (Braintree's pending), not to a trial.
- Stripe keeps no status history: each mapped subscription carries one event (its status, since when).
- A void of a captured charge is a full refund marked ``metadata.void``: the charge then maps to ``voided`` and that
  refund is not listed as a transaction of its own, so the list shows the void in place as the seed does.
"""

from __future__ import annotations

from collections.abc import Callable

from usercredits.adapters.stripe.billing_charges import StripeCharges
from usercredits.adapters.stripe.billing_subscriptions import StripeSubscriptions
from usercredits.adapters.stripe.client import client_source, load_stripe_keys


class StripeSubscriptionProcessor(StripeCharges, StripeSubscriptions):
    """``SubscriptionProcessor`` over ``stripe.StripeClient``: customers and payment methods (``billing_customers``),
    subscriptions and coupons (``billing_subscriptions``), charges and refunds (``billing_charges``).

    ``api_base`` points the client at another API host (the tests' fake server); ``timeout_seconds`` bounds each HTTP
    attempt, retried ``max_network_retries`` times by the SDK with the same idempotency key.
    """

    def __init__(
        self,
        api_key: str | Callable[[], str],
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
    ) -> None:
        self._clients = client_source(
            api_key,
            api_base=api_base,
            max_network_retries=max_network_retries,
            timeout_seconds=timeout_seconds,
        )

    @classmethod
    def from_secret(cls, secret_name: str, *, api_base: str | None = None) -> StripeSubscriptionProcessor:
        """A processor using the ``secretKey`` of the Secrets Manager JSON secret ``secret_name``, read on the first
        call to Stripe (``client_source``)."""
        return cls(lambda: load_stripe_keys(secret_name).require_secret_key(), api_base=api_base)

    def __repr__(self) -> str:
        return "StripeSubscriptionProcessor()"
