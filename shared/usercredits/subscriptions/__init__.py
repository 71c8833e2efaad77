"""The subscriptions half (issue 6): customers, plans, subscriptions, discounts and coupons kept in step with a payment
processor, rebuilt from the mongoose-subscriptions library; the rules are in docs/rules.md#subscriptions-half.

Pure domain code: no I/O, times passed in, immutable values returned. Adapters implement ``ports``.
"""
