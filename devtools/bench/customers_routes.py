"""The customers routes (``dynamodb_requests`` rows)."""

from __future__ import annotations

from devtools.bench import checks
from devtools.bench.customer_cancels import cancels
from devtools.bench.customer_refunds import keyed_refunds
from devtools.bench.handlers import HandlerBench


class CustomersBench(HandlerBench):
    """The customers routes: reading the caller's customer (created on first use), subscribing to a plan, an
    admin's keyed refund and its replay, and the cancels (one, all) and the admin's reset-processor."""

    MODULE = "customers.handler"
    FUNCTION = "CustomersFunction"
    BASE_EVENT = "customers/get_customer.json"
    ADMIN = "bench-admin"
    PLAN = "bench-pro"
    #: A percent coupon for any plan (not restricted): 10% of 14.90 is 1.49, for 2 billing cycles; and a restricted
    #: one (once per customer: the subscribe also reads the customer's use of it).
    COUPON = "BENCH10"
    RESTRICTED_COUPON = "BENCHONCE"
    SUBSCRIBE = "POST /customer/subscriptions"

    def run(self) -> None:
        self._define_plan_and_coupon()
        self._customer()
        self._subscriptions()
        self._default_payment_method()
        keyed_refunds(self)
        cancels(self)

    def _define_plan_and_coupon(self) -> None:
        plan = {"name": "Pro", "price": {"amount": 1490, "currency": "usd"}, "billingFrequencyMonths": 1, "level": 2}
        self.setup_call(
            "PUT /admin/plans/{planId}",
            status=200,
            user=self.ADMIN,
            admin=True,
            path_parameters={"planId": self.PLAN},
            body=plan,
        )
        for code, restricted in ((self.COUPON, False), (self.RESTRICTED_COUPON, True)):
            coupon = {"kind": "percent", "percent": "10", "numberOfBillingCycles": 2, "maxUses": 100}
            self.setup_call(
                "PUT /admin/coupons/{code}",
                status=200,
                user=self.ADMIN,
                admin=True,
                path_parameters={"code": code},
                body=coupon | {"restricted": restricted},
            )

    def _customer(self) -> None:
        user = "bench-customer"
        created = self.measure("GET /customer", "new user, creates it", user=user, check=checks.new_customer(user))
        customer_id = (created.body or {}).get("customerId")
        self.measure("GET /customer", "existing customer", budget=1, user=user, check=checks.same_customer(customer_id))

    def _subscriptions(self) -> None:
        for user, label, coupon in (
            ("bench-subscriber", "plan, no coupon", None),
            ("bench-subscriber-coupon", "plan and coupon", self.COUPON),
            ("bench-subscriber-restricted", "plan and customer-restricted coupon", self.RESTRICTED_COUPON),
        ):
            self.setup_call("GET /customer", status=200, user=user)  # an existing customer, as after the first read
            body = {"planId": self.PLAN} | ({"couponCode": coupon} if coupon else {})
            self.measure(
                self.SUBSCRIBE,
                label,
                budget=3,
                status=201,
                user=user,
                body=body,
                check=checks.subscribed(self.PLAN, coupon),
            )

    def _default_payment_method(self) -> None:
        """The seed's setDefaultPaymentMethod with its address: the token is read at the processor (no table request),
        then one save."""
        user = "bench-default-method"
        self.setup_call("GET /customer", status=200, user=user)
        address = {"name": "Bench", "country": "BG", "postalCode": "1000"}
        self.measure(
            "PUT /customer/default-payment-method",
            "a card token and its address",
            budget=2,
            user=user,
            body={"token": "pm_card_visa", "address": address},
            check=checks.default_method("pm_card_visa"),
        )
