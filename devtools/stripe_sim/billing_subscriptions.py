"""The Billing simulation's prices, coupons and subscriptions (``/v1/prices``, ``/v1/coupons``,
``/v1/subscriptions``)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from devtools.stripe_sim.billing_shapes import Json, listing, missing, ok, strip_data
from devtools.stripe_sim.wire import Answer, stripe_error

#: Stripe bills by calendar month; the simulation by 30 days (enough for the periods the tests check).
MONTH = 30 * 86400


class SubscriptionsApi:
    """Prices (seeded), coupons and subscriptions; mixed into ``FakeStripeBilling``, which holds the state. A
    subscription that is not trialing is billed at once (``_bill``, in ``ChargesApi``)."""

    customers: dict[str, Json]
    payment_methods: dict[str, Json]
    prices: dict[str, Json]
    coupons: dict[str, Json]
    subscriptions: dict[str, Json]

    now: Callable[[], int]

    _bill: Callable[..., Json]
    _emit: Callable[[str, Json], None]
    _emit_subscription: Callable[[str, Json], None]

    def add_price(self, price_id: str, amount: int, currency: str = "usd", months: int = 1) -> None:
        self.prices[price_id] = {
            "id": price_id,
            "object": "price",
            "active": True,
            "currency": currency,
            "unit_amount": amount,
            "type": "recurring",
            "recurring": {"interval": "month", "interval_count": months},
            "product": f"prod_{price_id}",
        }

    # ---- prices and coupons ----------------------------------------------------------------------------------------

    def price(self, price_id: str) -> Json | None:
        """The price ``price_id``, or None (the simulator may find prices it was not given: ``StripeSimulator``)."""
        return self.prices.get(price_id)

    def _get_price(self, form: Json, price_id: str) -> Answer:
        price = self.price(price_id)
        return ok(price) if price is not None else missing("price", price_id)

    def _create_coupon(self, form: Json) -> Answer:
        coupon_id = form.get("id") or secrets.token_hex(4)
        if coupon_id in self.coupons:
            return stripe_error(400, "invalid_request_error", "Coupon already exists.", "resource_already_exists", "id")
        duration = form.get("duration") or "once"
        if duration not in {"once", "repeating", "forever"} or (
            duration == "repeating" and not str(form.get("duration_in_months") or "").isdigit()
        ):
            return stripe_error(
                400, "invalid_request_error", "Invalid duration", "parameter_invalid_string", "duration"
            )
        amount_off = form.get("amount_off")
        if amount_off is not None and not form.get("currency"):
            return stripe_error(400, "invalid_request_error", "Missing currency", "parameter_missing", "currency")
        self.coupons[coupon_id] = {
            "id": coupon_id,
            "object": "coupon",
            "amount_off": int(amount_off) if amount_off is not None else None,
            "percent_off": float(form["percent_off"]) if form.get("percent_off") else None,
            "currency": form.get("currency"),
            "duration": duration,
            "duration_in_months": int(form["duration_in_months"]) if duration == "repeating" else None,
            "name": form.get("name"),
            "metadata": dict(form.get("metadata") or {}),
            "valid": True,
            "created": self.now(),
        }
        return ok(self.coupons[coupon_id])

    def _get_coupon(self, form: Json, coupon_id: str) -> Answer:
        coupon = self.coupons.get(coupon_id)
        return ok(coupon) if coupon is not None else missing("coupon", coupon_id)

    # ---- subscriptions ---------------------------------------------------------------------------------------------

    def _create_subscription(self, form: Json) -> Answer:
        customer_id = form.get("customer") or ""
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return missing("customer", customer_id)
        items = form.get("items") or []
        price = self.price((items[0] if items else {}).get("price") or "")
        if price is None:
            return stripe_error(400, "invalid_request_error", "No such price", "resource_missing", "items[0][price]")
        method_id = form.get("default_payment_method")
        if method_id and (self.payment_methods.get(method_id) or {}).get("customer") != customer_id:
            return missing("payment_method", method_id)
        now = self.now()
        trial_end = int(form["trial_end"]) if form.get("trial_end") else None
        subscription_id = f"sub_{secrets.token_hex(7)}"
        subscription: Json = {
            "id": subscription_id,
            "object": "subscription",
            "customer": customer_id,
            "created": now,
            "start_date": now,
            "status": "trialing" if trial_end else "active",
            "trial_start": now if trial_end else None,
            "trial_end": trial_end,
            "billing_cycle_anchor": trial_end or now,
            "cancel_at_period_end": form.get("cancel_at_period_end") == "true",
            "canceled_at": None,
            "ended_at": None,
            "default_payment_method": method_id,
            "metadata": dict(form.get("metadata") or {}),
            "discounts": [],
            "items": {"object": "list", "data": [], "has_more": False},
            "latest_invoice": None,
        }
        period_end = trial_end or now + MONTH * int(price["recurring"]["interval_count"])
        subscription["items"]["data"] = [
            {
                "id": f"si_{secrets.token_hex(7)}",
                "object": "subscription_item",
                "price": price,
                "quantity": 1,
                "current_period_start": now,
                "current_period_end": period_end,
            }
        ]
        answer = self._set_discounts(subscription, form.get("discounts"))
        if answer is not None:
            return answer
        self.subscriptions[subscription_id] = subscription
        invoice = None if trial_end else self._bill(subscription)
        self._emit_subscription("customer.subscription.created", subscription)
        if invoice is not None:
            self._emit("invoice.paid", invoice)
        return ok(self._render_subscription(subscription, form.get("expand") or []))

    def _get_subscription(self, form: Json, subscription_id: str) -> Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return missing("subscription", subscription_id)
        return ok(self._render_subscription(subscription, form.get("expand") or []))

    def _update_subscription(self, form: Json, subscription_id: str) -> Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return missing("subscription", subscription_id)
        if subscription["status"] == "canceled":
            return stripe_error(
                400,
                "invalid_request_error",
                "A canceled subscription can only update its cancellation_details and metadata.",
                None,
            )
        self._update_fields(subscription, form)
        for item in form.get("items") or []:
            price = self.price(item.get("price") or "")
            if price is None:
                return stripe_error(400, "invalid_request_error", "No such price", "resource_missing", "items")
            subscription["items"]["data"][0]["price"] = price
        if "discounts" in form:
            answer = self._set_discounts(subscription, form["discounts"] or [])
            if answer is not None:
                return answer
        self._emit_subscription("customer.subscription.updated", subscription)
        return ok(self._render_subscription(subscription, form.get("expand") or []))

    @staticmethod
    def _update_fields(subscription: Json, form: Json) -> None:
        if "cancel_at_period_end" in form:
            subscription["cancel_at_period_end"] = form["cancel_at_period_end"] == "true"
        if form.get("default_payment_method"):
            subscription["default_payment_method"] = form["default_payment_method"]
        for key, value in (form.get("metadata") or {}).items():
            if value:
                subscription["metadata"][key] = value
            else:
                subscription["metadata"].pop(key, None)

    def _cancel_subscription(self, form: Json, subscription_id: str) -> Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return missing("subscription", subscription_id)
        if subscription["status"] == "canceled":  # Stripe: a canceled subscription is as good as deleted here
            return missing("subscription", subscription_id)
        now = self.now()
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        self._emit_subscription("customer.subscription.deleted", subscription)
        return ok(self._render_subscription(subscription, form.get("expand") or []))

    def _list_subscriptions(self, form: Json) -> Answer:
        customer_id = form.get("customer")
        wanted = form.get("status") or "active"
        found = [
            self._render_subscription(sub, strip_data(form.get("expand") or []))
            for sub in self.subscriptions.values()
            if (customer_id is None or sub["customer"] == customer_id)
            and (wanted == "all" or sub["status"] == wanted or (wanted == "active" and sub["status"] != "canceled"))
        ]
        return listing("/v1/subscriptions", found)

    def _set_discounts(self, subscription: Json, wanted: Any) -> Answer | None:
        current = {discount["id"]: discount for discount in subscription["discounts"]}
        discounts: list[Json] = []
        for entry in wanted or []:
            if entry.get("discount"):
                if entry["discount"] not in current:
                    return missing("discount", entry["discount"])
                discounts.append(current[entry["discount"]])
                continue
            coupon = self.coupons.get(entry.get("coupon") or "")
            if coupon is None:
                return missing("coupon", entry.get("coupon") or "")
            start = self.now()
            months = coupon.get("duration_in_months")
            discounts.append(
                {
                    "id": f"di_{secrets.token_hex(7)}",
                    "object": "discount",
                    "customer": subscription["customer"],
                    "subscription": subscription["id"],
                    "start": start,
                    "end": start + months * MONTH if months else None,
                    "source": {"type": "coupon", "coupon": coupon["id"]},
                }
            )
        subscription["discounts"] = discounts
        return None

    def _render_subscription(self, subscription: Json, expand: list[str]) -> Json:
        rendered = {**subscription}
        if any(path.startswith("discounts") for path in expand):
            with_coupons = any(path.startswith("discounts.source.coupon") for path in expand)
            rendered["discounts"] = [
                {**d, "source": {"type": "coupon", "coupon": self.coupons[d["source"]["coupon"]]}}
                if with_coupons
                else d
                for d in subscription["discounts"]
            ]
        else:
            rendered["discounts"] = [d["id"] for d in subscription["discounts"]]
        return rendered
