"""The Stripe adapters: one client factory and error translation (``client``), the PaymentGateway (``payments``),
webhook verification and parsing (``webhooks``), the SubscriptionProcessor (``billing``, made of ``billing_customers``,
``billing_subscriptions`` and ``billing_charges``) and its JSON mapping (``billing_mapping``, ``subscription_mapping``).

Nothing is imported here: the payment webhook imports ``webhooks`` and ``payments`` without loading the billing
modules (nor the subscriptions half they map to), and ``stripe`` itself is imported inside the functions that use it.
"""
