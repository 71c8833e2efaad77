"""A fake Stripe Billing API for the subscriptions half, built on the payment-intent fake (tests/stripe_fake.py).

On top of ``/v1/payment_intents`` it serves, in the current API's shapes (form-encoded in, JSON out, ``expand``):

- customers: create, retrieve, update (``metadata`` merged, ``""`` unsets a key; ``invoice_settings``), delete, list
  (``email``, ``created[gte]``; deleted ones left out) and search (``metadata['k']:'v'`` and ``email:'v'`` clauses
  joined by ``AND``; ``search_lag`` seconds hide new customers, as Stripe's index lags behind by up to a minute);
- payment methods: retrieve, update (``billing_details``, attached ones only), attach (400 when attached to another
  customer), detach, list per customer. Stripe makes them from card details in the browser, so tests seed them with
  ``add_payment_method(...)`` (``pm_card_visa`` and friends exist from the start, unattached);
- prices (seeded with ``add_price``), coupons (create with an id: 400 ``resource_already_exists`` on a second one);
- subscriptions: create (``items[0][price]``, ``discounts[i][coupon|discount]``, ``trial_end``, metadata), retrieve,
  update, cancel (``DELETE``; 404 ``No such subscription`` once canceled, as Stripe answers), list by customer
  (``status=all``). Creating one that is not trialing bills it at once: a paid invoice and a succeeded charge for the
  price less its discounts;
- invoices and charges (list by customer, retrieve; an expanded ``refunds`` holds the first 10 with ``has_more``, as
  Stripe's sub-lists do), refunds (create full or partial, list by charge), and cancelling a payment intent releases
  its uncaptured charge.

A repeated ``Idempotency-Key`` on a POST replays the first answer, or answers 400 ``idempotency_error`` when the
parameters differ, as the parent does; Stripe ignores the header on GET and DELETE. ``fail_next`` also takes
``method``/``path`` (a regex), ``after`` (let that many matching requests through first) and ``hang`` (do the work,
then answer only after ``hang`` seconds: a client timeout after Stripe acted, the crash-halfway case).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

from tests.stripe_fake import CANCEL_PATH, INTENT_PATH, FakeStripe, _Answer, _error, _Failure, _Handler, _Server

Json = dict[str, Any]

_ID = r"(?P<id>[A-Za-z0-9_.:\-]+)"
_PATHS: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), name)
    for method, pattern, name in [
        ("POST", "/v1/customers", "create_customer"),
        ("GET", "/v1/customers", "list_customers"),
        ("GET", "/v1/customers/search", "search_customers"),
        ("GET", f"/v1/customers/{_ID}", "get_customer"),
        ("POST", f"/v1/customers/{_ID}", "update_customer"),
        ("DELETE", f"/v1/customers/{_ID}", "delete_customer"),
        ("GET", f"/v1/customers/{_ID}/payment_methods", "list_payment_methods"),
        ("GET", f"/v1/payment_methods/{_ID}", "get_payment_method"),
        ("POST", f"/v1/payment_methods/{_ID}", "update_payment_method"),
        ("POST", f"/v1/payment_methods/{_ID}/attach", "attach_payment_method"),
        ("POST", f"/v1/payment_methods/{_ID}/detach", "detach_payment_method"),
        ("GET", f"/v1/prices/{_ID}", "get_price"),
        ("POST", "/v1/coupons", "create_coupon"),
        ("GET", f"/v1/coupons/{_ID}", "get_coupon"),
        ("POST", "/v1/subscriptions", "create_subscription"),
        ("GET", "/v1/subscriptions", "list_subscriptions"),
        ("GET", f"/v1/subscriptions/{_ID}", "get_subscription"),
        ("POST", f"/v1/subscriptions/{_ID}", "update_subscription"),
        ("DELETE", f"/v1/subscriptions/{_ID}", "cancel_subscription"),
        ("GET", "/v1/invoices", "list_invoices"),
        ("GET", "/v1/charges", "list_charges"),
        ("GET", f"/v1/charges/{_ID}", "get_charge"),
        ("POST", "/v1/refunds", "create_refund"),
        ("GET", "/v1/refunds", "list_refunds"),
    ]
]
_MONTH = 30 * 86400


@dataclass
class _Rule:
    """A failure waiting for its request: ``after`` matching requests still pass first."""

    failure: _Failure | None
    method: str | None
    path: re.Pattern[str] | None
    after: int
    hang: float | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(self.path.search(path)))


class FakeStripeBilling(FakeStripe):
    """The fake API server with Billing objects; a context manager like ``FakeStripe``."""

    def __init__(self, *, api_key: str | None = None) -> None:
        super().__init__(api_key=api_key)
        self.customers: dict[str, Json] = {}
        self.payment_methods: dict[str, Json] = {}
        self.prices: dict[str, Json] = {}
        self.coupons: dict[str, Json] = {}
        self.subscriptions: dict[str, Json] = {}
        self.invoices: dict[str, Json] = {}
        self.charges: dict[str, Json] = {}
        self.charge_refunds: dict[str, Json] = {}
        self._rules: list[_Rule] = []
        #: Customers made less than this many seconds ago are not found by search yet (Stripe's index lags).
        self.search_lag = 0.0
        #: When set, top-level lists answer pages of this many objects (``starting_after`` moves on, ``has_more``
        #: says there is another), as Stripe pages lists longer than its limit.
        self.list_page_size: int | None = None
        self._state = threading.RLock()
        for pm_id, brand, last4 in [
            ("pm_card_visa", "visa", "4242"),
            ("pm_card_mastercard", "mastercard", "4444"),
            ("pm_card_amex", "amex", "8431"),
        ]:
            self.add_payment_method(pm_id, brand=brand, last4=last4)

    def start(self) -> Self:
        self._server = _Server(("127.0.0.1", 0), _BillingHandler)
        self._server.fake = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe-billing", daemon=True
        )
        self._thread.start()
        return self

    # ---- test controls ---------------------------------------------------------------------------------------------

    def add_payment_method(
        self,
        pm_id: str | None = None,
        *,
        kind: str = "card",
        brand: str = "visa",
        last4: str = "4242",
        wallet: str | None = None,
        customer: str | None = None,
        email: str | None = None,
    ) -> str:
        """A payment method as the browser would have made it (optionally attached to ``customer`` already)."""
        pm_id = pm_id or f"pm_{secrets.token_hex(12)}"
        method: Json = {
            "id": pm_id,
            "object": "payment_method",
            "type": kind,
            "customer": customer,
            "billing_details": {"name": None, "email": None, "phone": None, "address": _empty_address()},
            "created": int(time.time()),
            "livemode": False,
            "metadata": {},
        }
        if kind == "card":
            method["card"] = {
                "brand": brand,
                "last4": last4,
                "exp_month": 12,
                "exp_year": 2034,
                "country": "US",
                "funding": "credit",
                "wallet": {"type": wallet, "dynamic_last4": "0000"} if wallet else None,
            }
        elif kind == "paypal":
            method["paypal"] = {"payer_email": email or "buyer@example.com", "payer_id": "PAYER1", "country": "BG"}
        self.payment_methods[pm_id] = method
        return pm_id

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

    def add_charge(
        self, customer: str, amount: int, *, captured: bool = True, currency: str = "usd", created: int | None = None
    ) -> str:
        """A one-off charge (and its payment intent); ``captured=False`` leaves it authorized (voidable)."""
        intent_id = f"pi_{secrets.token_hex(12)}"
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "currency": currency,
            "customer": customer,
            "status": "succeeded" if captured else "requires_capture",
            "metadata": {},
        }
        return str(self._charge(customer, amount, currency, intent_id, captured=captured, created=created)["id"])

    def fail_next(
        self,
        status: int = 500,
        *,
        method: str | None = None,
        path: str | None = None,
        after: int = 0,
        hang: float | None = None,
        times: int = 1,
        **kwargs: Any,
    ) -> None:
        """The next ``times`` requests (matching ``method``/``path`` when given, after ``after`` of them passed)
        answer ``status`` with a Stripe error; with ``hang`` they are carried out and answered ``hang`` seconds late
        (the client has given up by then)."""
        if method is None and path is None and not after and hang is None:
            super().fail_next(status, times=times, **kwargs)
            return
        failure = None
        if hang is None:
            before = len(self._failures)
            super().fail_next(status, times=1, **kwargs)
            failure = self._failures.pop() if len(self._failures) > before else None
        with self._lock:
            self._rules.extend(
                _Rule(failure, method, re.compile(path) if path else None, after, hang) for _ in range(times)
            )

    def posts(self, path: str = "/v1/payment_intents") -> list[Any]:
        return [request for request in self.requests if request.method == "POST" and request.path == path]

    def calls(self, method: str, path: str) -> list[Any]:
        """Recorded requests with that method whose path matches the regex ``path``."""
        return [r for r in self.requests if r.method == method and re.fullmatch(path, r.path)]

    def delete_customer(self, customer_id: str) -> None:
        with self._state:
            self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}

    def set_subscription(self, subscription_id: str, **fields: Any) -> Json:
        with self._state:
            self.subscriptions[subscription_id].update(fields)
            return self._render_subscription(self.subscriptions[subscription_id], ["discounts.source.coupon"])

    def render_subscription(self, subscription_id: str) -> Json:
        """The subscription as a webhook's ``data.object`` carries it (discounts expanded)."""
        with self._state:
            return self._render_subscription(self.subscriptions[subscription_id], ["discounts.source.coupon"])

    def renew(self, subscription_id: str) -> str:
        """Bill a subscription's next period now, as Stripe does at each renewal: its item moves one period on and a
        paid invoice (its line's ``period`` that period) and a succeeded charge are made. Returns the charge's id."""
        with self._state:
            subscription = self.subscriptions[subscription_id]
            item = subscription["items"]["data"][0]
            length = _MONTH * int(item["price"]["recurring"]["interval_count"])
            start = item["current_period_end"]
            item.update(current_period_start=start, current_period_end=start + length)
            if subscription["status"] == "trialing":  # the trial (or queued start) converts
                subscription["status"] = "active"
            return self._bill(subscription)

    def invoice_charge(self, subscription_id: str) -> str:
        """The charge that paid the subscription's latest invoice."""
        with self._state:
            invoice = self.invoices[self.subscriptions[subscription_id]["latest_invoice"]]
            return str(invoice["payments"]["data"][0]["payment"]["charge"])

    def render_charge(self, charge_id: str) -> Json:
        """The charge as a ``charge.refunded`` event's ``data.object`` carries it."""
        with self._state:
            return self._render_charge(self.charges[charge_id], [])

    def dispute(self, charge_id: str, status: str = "needs_response") -> Json:
        """A Dispute on the charge, as a ``charge.dispute.*`` event's ``data.object`` carries it (Stripe makes them
        when a cardholder disputes; tests only need the object)."""
        with self._state:
            charge = self.charges[charge_id]
            charge["disputed"] = True
            return {
                "id": f"dp_{charge_id.removeprefix('ch_')}",
                "object": "dispute",
                "amount": charge["amount"],
                "currency": charge["currency"],
                "charge": charge_id,
                "payment_intent": charge["payment_intent"],
                "status": status,
                "reason": "fraudulent",
                "metadata": {},
                "created": int(time.time()),
            }

    # ---- dispatch --------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> _Answer:
        from tests.stripe_fake import RecordedRequest

        rule = self._take_rule(method, path)
        if rule is None or rule.hang is not None:
            answer = self._handle_idempotent(method, path, form, headers)
            if rule is not None and rule.hang is not None:
                time.sleep(rule.hang)
            return answer
        with self._lock:
            self.requests.append(RecordedRequest(method, path, form, headers))
        assert rule.failure is not None
        return _Answer(rule.failure.status, {"error": rule.failure.error}, rule.failure.headers)

    def _take_rule(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.matches(method, path):
                    if rule.after > 0:
                        rule.after -= 1
                        return None
                    return self._rules.pop(index)
        return None

    def _handle_idempotent(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> _Answer:
        # The parent replays POSTs only: Stripe ignores Idempotency-Key on GET and DELETE ("idempotent by definition").
        return super().handle(method, path, form, headers)

    def _route(self, method: str, path: str, form: dict[str, Any]) -> _Answer:
        answer = self._dispatch(method, path, form)
        if method == "GET" and self.list_page_size is not None and answer.body.get("object") == "list":
            return _page(answer, form.get("starting_after"), self.list_page_size)
        return answer

    def _dispatch(self, method: str, path: str, form: dict[str, Any]) -> _Answer:
        if (method == "GET" and INTENT_PATH.match(path)) or (method == "POST" and path == "/v1/payment_intents"):
            return super()._route(method, path, form)
        if method == "POST" and (match := CANCEL_PATH.match(path)):
            return self._cancel_intent(match["id"], form)
        for wanted, pattern, name in _PATHS:
            if wanted == method and (match := pattern.match(path)):
                with self._state:
                    answer: _Answer = getattr(self, f"_{name}")(form, *match.groups())
                    return answer
        return _error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).", None)

    # ---- customers -------------------------------------------------------------------------------------------------

    def _create_customer(self, form: Json) -> _Answer:
        customer_id = f"cus_{secrets.token_hex(7)}"
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "created": int(time.time()),
            "name": form.get("name") or None,
            "email": form.get("email") or None,
            "phone": form.get("phone") or None,
            "metadata": {key: value for key, value in (form.get("metadata") or {}).items() if value},
            "invoice_settings": {"default_payment_method": None},
            "livemode": False,
        }
        return _ok(self.customers[customer_id])

    def _list_customers(self, form: Json) -> _Answer:
        since = int((form.get("created") or {}).get("gte") or 0)
        found = [
            customer
            for customer in sorted(self.customers.values(), key=lambda c: c.get("created", 0), reverse=True)
            if not customer.get("deleted")
            and form.get("email") in (None, customer.get("email"))
            and customer.get("created", 0) >= since
        ]
        return _list("/v1/customers", found)

    def _search_customers(self, form: Json) -> _Answer:
        clauses = [clause.strip() for clause in str(form.get("query") or "").split(" AND ")]
        wanted: list[tuple[str | None, str]] = []
        for clause in clauses:
            match = re.fullmatch(
                r"(?:metadata\['(?P<key>[^']+)'\]|(?P<field>email)):'(?P<value>(?:[^'\\]|\\.)*)'", clause
            )
            if match is None:
                return _error(
                    400, "invalid_request_error", f"Invalid search query: {clause}", "parameter_invalid_string"
                )
            wanted.append((match["key"], re.sub(r"\\(.)", r"\1", match["value"])))
        indexed_before = time.time() - self.search_lag
        found = [
            customer
            for customer in self.customers.values()
            if not customer.get("deleted")
            and customer.get("created", 0) <= indexed_before
            and all((customer["metadata"].get(key) if key else customer.get("email")) == value for key, value in wanted)
        ]
        return _Answer(
            200,
            {
                "object": "search_result",
                "url": "/v1/customers/search",
                "has_more": False,
                "next_page": None,
                "data": found,
            },
        )

    def _get_customer(self, form: Json, customer_id: str) -> _Answer:
        customer = self.customers.get(customer_id)
        return _ok(customer) if customer is not None else _missing("customer", customer_id)

    def _update_customer(self, form: Json, customer_id: str) -> _Answer:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return _missing("customer", customer_id)
        for field in ("name", "email", "phone"):
            if field in form:
                customer[field] = form[field] or None
        for key, value in (form.get("metadata") or {}).items():
            if value:
                customer["metadata"][key] = value
            else:
                customer["metadata"].pop(key, None)
        default = (form.get("invoice_settings") or {}).get("default_payment_method")
        if default is not None:
            method = self.payment_methods.get(default)
            if default and (method is None or method.get("customer") != customer_id):
                return _error(
                    400,
                    "invalid_request_error",
                    f"No such PaymentMethod: '{default}' attached to this customer",
                    "resource_missing",
                    "invoice_settings[default_payment_method]",
                )
            customer["invoice_settings"]["default_payment_method"] = default or None
        return _ok(customer)

    def _delete_customer(self, form: Json, customer_id: str) -> _Answer:
        if customer_id not in self.customers:
            return _missing("customer", customer_id)
        self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}
        return _ok(self.customers[customer_id])

    # ---- payment methods -------------------------------------------------------------------------------------------

    def _list_payment_methods(self, form: Json, customer_id: str) -> _Answer:
        found = [pm for pm in self.payment_methods.values() if pm.get("customer") == customer_id]
        return _list(f"/v1/customers/{customer_id}/payment_methods", found)

    def _get_payment_method(self, form: Json, pm_id: str) -> _Answer:
        method = self.payment_methods.get(pm_id)
        return _ok(method) if method is not None else _missing("payment_method", pm_id)

    def _update_payment_method(self, form: Json, pm_id: str) -> _Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return _missing("payment_method", pm_id)
        if not method.get("customer"):
            return _error(
                400,
                "invalid_request_error",
                "You must save this PaymentMethod to a customer before you can update it.",
                None,
            )
        details = form.get("billing_details") or {}
        billing = method["billing_details"]
        for field in ("name", "email", "phone"):
            if field in details:
                billing[field] = details[field] or None
        for field, value in (details.get("address") or {}).items():
            billing["address"][field] = value or None
        return _ok(method)

    def _attach_payment_method(self, form: Json, pm_id: str) -> _Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return _missing("payment_method", pm_id)
        customer_id = form.get("customer") or ""
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return _missing("customer", customer_id)
        if method.get("customer") not in (None, customer_id):
            return _error(
                400,
                "invalid_request_error",
                "The payment method you provided has already been attached to a customer.",
                None,
            )
        method["customer"] = customer_id
        return _ok(method)

    def _detach_payment_method(self, form: Json, pm_id: str) -> _Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return _missing("payment_method", pm_id)
        if not method.get("customer"):
            return _error(400, "invalid_request_error", "The payment method is not attached to a customer.", None)
        owner = self.customers.get(method["customer"]) or {}
        if (owner.get("invoice_settings") or {}).get("default_payment_method") == pm_id:
            owner["invoice_settings"]["default_payment_method"] = None
        method["customer"] = None
        return _ok(method)

    # ---- prices and coupons ----------------------------------------------------------------------------------------

    def _get_price(self, form: Json, price_id: str) -> _Answer:
        price = self.prices.get(price_id)
        return _ok(price) if price is not None else _missing("price", price_id)

    def _create_coupon(self, form: Json) -> _Answer:
        coupon_id = form.get("id") or secrets.token_hex(4)
        if coupon_id in self.coupons:
            return _error(400, "invalid_request_error", "Coupon already exists.", "resource_already_exists", "id")
        duration = form.get("duration") or "once"
        if duration not in {"once", "repeating", "forever"} or (
            duration == "repeating" and not str(form.get("duration_in_months") or "").isdigit()
        ):
            return _error(400, "invalid_request_error", "Invalid duration", "parameter_invalid_string", "duration")
        amount_off = form.get("amount_off")
        if amount_off is not None and not form.get("currency"):
            return _error(400, "invalid_request_error", "Missing currency", "parameter_missing", "currency")
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
            "created": int(time.time()),
        }
        return _ok(self.coupons[coupon_id])

    def _get_coupon(self, form: Json, coupon_id: str) -> _Answer:
        coupon = self.coupons.get(coupon_id)
        return _ok(coupon) if coupon is not None else _missing("coupon", coupon_id)

    # ---- subscriptions ---------------------------------------------------------------------------------------------

    def _create_subscription(self, form: Json) -> _Answer:
        customer_id = form.get("customer") or ""
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return _missing("customer", customer_id)
        items = form.get("items") or []
        price = self.prices.get((items[0] if items else {}).get("price") or "")
        if price is None:
            return _error(400, "invalid_request_error", "No such price", "resource_missing", "items[0][price]")
        method_id = form.get("default_payment_method")
        if method_id and (self.payment_methods.get(method_id) or {}).get("customer") != customer_id:
            return _missing("payment_method", method_id)
        now = int(time.time())
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
        period_end = trial_end or now + _MONTH * int(price["recurring"]["interval_count"])
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
        if not trial_end:
            self._bill(subscription)
        return _ok(self._render_subscription(subscription, form.get("expand") or []))

    def _get_subscription(self, form: Json, subscription_id: str) -> _Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return _missing("subscription", subscription_id)
        return _ok(self._render_subscription(subscription, form.get("expand") or []))

    def _update_subscription(self, form: Json, subscription_id: str) -> _Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return _missing("subscription", subscription_id)
        if subscription["status"] == "canceled":
            return _error(
                400,
                "invalid_request_error",
                "A canceled subscription can only update its cancellation_details and metadata.",
                None,
            )
        self._update_fields(subscription, form)
        for item in form.get("items") or []:
            price = self.prices.get(item.get("price") or "")
            if price is None:
                return _error(400, "invalid_request_error", "No such price", "resource_missing", "items")
            subscription["items"]["data"][0]["price"] = price
        if "discounts" in form:
            answer = self._set_discounts(subscription, form["discounts"] or [])
            if answer is not None:
                return answer
        return _ok(self._render_subscription(subscription, form.get("expand") or []))

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

    def _cancel_subscription(self, form: Json, subscription_id: str) -> _Answer:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return _missing("subscription", subscription_id)
        if subscription["status"] == "canceled":  # Stripe: a canceled subscription is as good as deleted here
            return _missing("subscription", subscription_id)
        now = int(time.time())
        subscription.update(status="canceled", canceled_at=now, ended_at=now)
        return _ok(self._render_subscription(subscription, form.get("expand") or []))

    def _list_subscriptions(self, form: Json) -> _Answer:
        customer_id = form.get("customer")
        wanted = form.get("status") or "active"
        found = [
            self._render_subscription(sub, _strip_data(form.get("expand") or []))
            for sub in self.subscriptions.values()
            if (customer_id is None or sub["customer"] == customer_id)
            and (wanted == "all" or sub["status"] == wanted or (wanted == "active" and sub["status"] != "canceled"))
        ]
        return _list("/v1/subscriptions", found)

    def _set_discounts(self, subscription: Json, wanted: Any) -> _Answer | None:
        current = {discount["id"]: discount for discount in subscription["discounts"]}
        discounts: list[Json] = []
        for entry in wanted or []:
            if entry.get("discount"):
                if entry["discount"] not in current:
                    return _missing("discount", entry["discount"])
                discounts.append(current[entry["discount"]])
                continue
            coupon = self.coupons.get(entry.get("coupon") or "")
            if coupon is None:
                return _missing("coupon", entry.get("coupon") or "")
            start = int(time.time())
            months = coupon.get("duration_in_months")
            discounts.append(
                {
                    "id": f"di_{secrets.token_hex(7)}",
                    "object": "discount",
                    "customer": subscription["customer"],
                    "subscription": subscription["id"],
                    "start": start,
                    "end": start + months * _MONTH if months else None,
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

    def _bill(self, subscription: Json) -> str:
        """An invoice of the subscription's current period, paid at once by a charge on its default payment method
        (its first at creation; ``renew`` makes the next ones). Returns the charge's id."""
        item = subscription["items"]["data"][0]
        price = item["price"]
        discounts = [
            (d["id"], min(self.coupons[d["source"]["coupon"]]["amount_off"] or 0, price["unit_amount"]))
            for d in subscription["discounts"]
        ]
        total = max(0, price["unit_amount"] - sum(amount for _, amount in discounts))
        invoice_id = f"in_{secrets.token_hex(7)}"
        intent_id = f"pi_{secrets.token_hex(12)}"
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": total,
            "currency": price["currency"],
            "customer": subscription["customer"],
            "status": "succeeded",
            "metadata": {},
        }
        charge = self._charge(subscription["customer"], total, price["currency"], intent_id, captured=True)
        self.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "customer": subscription["customer"],
            "created": int(time.time()),
            "status": "paid",
            "currency": price["currency"],
            "amount_due": total,
            "amount_paid": total,
            "subtotal": price["unit_amount"],
            "total": total,
            "attempt_count": 1,
            "discounts": [d_id for d_id, _ in discounts],
            "total_discount_amounts": [{"amount": amount, "discount": d_id} for d_id, amount in discounts],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": subscription["id"],
                    "metadata": dict(subscription["metadata"]),
                },
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": f"il_{secrets.token_hex(7)}",
                        "amount": price["unit_amount"],
                        "pricing": {"type": "price_details", "price_details": {"price": price["id"]}},
                        "period": {"start": item["current_period_start"], "end": item["current_period_end"]},
                    }
                ],
                "has_more": False,
            },
            "payments": {
                "object": "list",
                "data": [{"payment": {"type": "payment_intent", "payment_intent": intent_id, "charge": charge["id"]}}],
                "has_more": False,
            },
        }
        subscription["latest_invoice"] = invoice_id
        return str(charge["id"])

    # ---- invoices, charges, refunds --------------------------------------------------------------------------------

    def _charge(
        self, customer: str, amount: int, currency: str, intent_id: str, *, captured: bool, created: int | None = None
    ) -> Json:
        customer_record = self.customers.get(customer) or {}
        method_id = (customer_record.get("invoice_settings") or {}).get("default_payment_method")
        method = self.payment_methods.get(method_id or "") or self.payment_methods["pm_card_visa"]
        charge_id = f"ch_{secrets.token_hex(12)}"
        self.charges[charge_id] = {
            "id": charge_id,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount if captured else 0,
            "amount_refunded": 0,
            "captured": captured,
            "refunded": False,
            "currency": currency,
            "customer": customer,
            "created": created or int(time.time()),
            "status": "succeeded",
            "paid": True,
            "payment_intent": intent_id,
            "payment_method": method["id"],
            "payment_method_details": {"type": method["type"], method["type"]: method.get(method["type"]) or {}},
            "billing_details": method["billing_details"],
            "metadata": {},
        }
        self.intents[intent_id]["latest_charge"] = charge_id
        return self.charges[charge_id]

    def _render_charge(self, charge: Json, expand: list[str]) -> Json:
        rendered = {**charge}
        if any("refunds" in path for path in expand):
            refunds = [refund for refund in self.charge_refunds.values() if refund["charge"] == charge["id"]]
            rendered["refunds"] = {
                "object": "list",
                "url": f"/v1/charges/{charge['id']}/refunds",
                "data": refunds[:10],
                "has_more": len(refunds) > 10,
            }
        return rendered

    def _list_invoices(self, form: Json) -> _Answer:
        expand = _strip_data(form.get("expand") or [])
        found = []
        for invoice in self.invoices.values():
            if form.get("customer") not in (None, invoice["customer"]):
                continue
            rendered = {**invoice}
            if "payments" not in expand:
                rendered.pop("payments")
            if "discounts" in expand:
                rendered["discounts"] = [self._discount(d_id) for d_id in invoice["discounts"]]
            found.append(rendered)
        return _list("/v1/invoices", found)

    def _discount(self, discount_id: str) -> Json:
        for subscription in self.subscriptions.values():
            for discount in subscription["discounts"]:
                if discount["id"] == discount_id:
                    return dict(discount)
        return {"id": discount_id, "object": "discount", "deleted": True}

    def _list_charges(self, form: Json) -> _Answer:
        expand = _strip_data(form.get("expand") or [])
        found = [
            self._render_charge(charge, expand)
            for charge in sorted(self.charges.values(), key=lambda c: c["created"], reverse=True)
            if form.get("customer") in (None, charge["customer"])
        ]
        return _list("/v1/charges", found)

    def _get_charge(self, form: Json, charge_id: str) -> _Answer:
        charge = self.charges.get(charge_id)
        if charge is None:
            return _missing("charge", charge_id)
        return _ok(self._render_charge(charge, form.get("expand") or []))

    def _create_refund(self, form: Json) -> _Answer:
        charge = self.charges.get(form.get("charge") or "")
        if charge is None:
            return _missing("charge", form.get("charge") or "")
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(form["amount"]) if form.get("amount") else left
        if charge["refunded"] or left <= 0:
            return _error(
                400,
                "invalid_request_error",
                f"Charge {charge['id']} has already been refunded.",
                "charge_already_refunded",
            )
        if amount < 1 or amount > left:
            return _error(
                400,
                "invalid_request_error",
                f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                "amount_too_large" if amount > left else "parameter_invalid_integer",
                "amount",
            )
        refund_id = f"re_{secrets.token_hex(12)}"
        self.charge_refunds[refund_id] = {
            "id": refund_id,
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "currency": charge["currency"],
            "created": int(time.time()),
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
            "metadata": dict(form.get("metadata") or {}),
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return _ok(self.charge_refunds[refund_id])

    def _list_refunds(self, form: Json) -> _Answer:
        found = [r for r in self.charge_refunds.values() if form.get("charge") in (None, r["charge"])]
        return _list("/v1/refunds", found)

    def _cancel_intent(self, intent_id: str, form: Json) -> _Answer:
        answer = self._cancel(intent_id, form)
        if answer.status == 200:
            with self._state:
                for charge in self.charges.values():
                    if charge["payment_intent"] == intent_id and not charge["captured"]:
                        charge.update(refunded=True, amount_refunded=charge["amount"])
        return answer


class _BillingHandler(_Handler):
    def do_DELETE(self) -> None:
        self._serve("DELETE")


def _ok(body: Json) -> _Answer:
    return _Answer(200, dict(body))


def _list(url: str, data: list[Json]) -> _Answer:
    return _Answer(200, {"object": "list", "url": url, "has_more": False, "data": data})


def _page(answer: _Answer, starting_after: str | None, size: int) -> _Answer:
    """One page of a list answer: the ``size`` objects after ``starting_after`` (from the first without it)."""
    data = answer.body["data"]
    start = next((i + 1 for i, item in enumerate(data) if item["id"] == starting_after), 0) if starting_after else 0
    return _Answer(200, {**answer.body, "data": data[start : start + size], "has_more": start + size < len(data)})


def _missing(kind: str, object_id: str) -> _Answer:
    return _error(404, "invalid_request_error", f"No such {kind}: '{object_id}'", "resource_missing", "id")


def _strip_data(expand: list[str]) -> list[str]:
    return [path.removeprefix("data.") for path in expand]


def _empty_address() -> Json:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
