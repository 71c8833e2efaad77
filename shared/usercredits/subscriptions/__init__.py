"""The subscriptions half (issue 6): customers, plans, subscriptions, discounts and coupons kept in step with a payment
processor, rebuilt from the mongoose-subscriptions seed (seeds-spec sections 4-6) with the fixes of section 7.2.

Pure domain code: no I/O, times passed in, immutable values returned. Adapters implement ``ports``.
"""
