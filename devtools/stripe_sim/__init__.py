"""A simulation of the parts of Stripe's API the adapters call (``usercredits.adapters.stripe``), for the real
``stripe`` SDK: the tests' Stripe fake, and the local provider's subscription processor under ``make run``.

- ``wire``: the form-encoded requests, JSON answers and error bodies, and the HTTP server;
- ``payment_intents``: ``FakeStripe``, payment intents and their refunds, with idempotency keys and armed failures;
- ``billing`` (with ``billing_customers``, ``billing_subscriptions``, ``billing_charges``, ``billing_shapes``):
  ``FakeStripeBilling``, customers, payment methods, prices, coupons, subscriptions, invoices, charges and refunds,
  each change recorded as the Stripe ``Event`` it sends (``events``);
- ``billing_cycle``: what Stripe does on its own (renewals, declined invoices, dashboard refunds, disputes);
- ``simulator``: ``StripeSimulator``, the Billing simulation on the dev server's clock, with the local payment method
  tokens and the plans' prices (served by ``devtools.devserver.local_stripe``).
"""
