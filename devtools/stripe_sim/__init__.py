"""A simulation of the parts of Stripe's API the adapters call (``usercredits.adapters.stripe``), for the real
``stripe`` SDK: the tests' Stripe fake, and the dev server's subscription processor (``make run``).

- ``wire``: the form-encoded requests, JSON answers and error bodies, and the HTTP server;
- ``payment_intents``: ``FakeStripe``, payment intents and their refunds, with idempotency keys and armed failures;
- ``billing`` (with ``billing_customers``, ``billing_subscriptions``, ``billing_charges``, ``billing_shapes``):
  ``FakeStripeBilling``, customers, payment methods, prices, coupons, subscriptions, invoices, charges and refunds.
"""
