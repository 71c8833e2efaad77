"""A simulated Stripe Billing API for the subscriptions half, built on the payment-intent fake (``payment_intents``).

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
import threading
import time
from dataclasses import dataclass
from typing import Any, Self

from devtools.stripe_sim.billing_charges import ChargesApi
from devtools.stripe_sim.billing_customers import CustomersApi
from devtools.stripe_sim.billing_cycle import BillingCycle
from devtools.stripe_sim.billing_shapes import Json, page
from devtools.stripe_sim.billing_subscriptions import SubscriptionsApi
from devtools.stripe_sim.events import stripe_event
from devtools.stripe_sim.payment_intents import CANCEL_PATH, INTENT_PATH, FakeStripe
from devtools.stripe_sim.wire import Answer, ApiRequestHandler, ApiServer, Failure, RecordedRequest, stripe_error

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


@dataclass
class _Rule:
    """A failure waiting for its request: ``after`` matching requests still pass first."""

    failure: Failure | None
    method: str | None
    path: re.Pattern[str] | None
    after: int
    hang: float | None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (self.path is None or bool(self.path.search(path)))


class FakeStripeBilling(BillingCycle, ChargesApi, SubscriptionsApi, CustomersApi, FakeStripe):
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
        self.disputes: dict[str, Json] = {}
        #: Subscriptions whose next invoice is declined (``fail_next_invoice``).
        self.failing_invoices: set[str] = set()
        self._rules: list[_Rule] = []
        #: Customers made less than this many seconds ago are not found by search yet (Stripe's index lags).
        self.search_lag = 0.0
        #: When set, top-level lists answer pages of this many objects (``starting_after`` moves on, ``has_more``
        #: says there is another), as Stripe pages lists longer than its limit.
        self.list_page_size: int | None = None
        #: Every Stripe ``Event`` the changes made so far would have sent, oldest first (``take_events`` drains it).
        self.events: list[Json] = []
        self._state = threading.RLock()
        for pm_id, brand, last4 in [
            ("pm_card_visa", "visa", "4242"),
            ("pm_card_mastercard", "mastercard", "4444"),
            ("pm_card_amex", "amex", "8431"),
        ]:
            self.add_payment_method(pm_id, brand=brand, last4=last4)

    def start(self) -> Self:
        self._server = ApiServer(("127.0.0.1", 0), ApiRequestHandler)
        self._server.api = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe-billing", daemon=True
        )
        self._thread.start()
        return self

    # ---- test controls ---------------------------------------------------------------------------------------------

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
        """A Dispute on the charge, as a ``charge.dispute.*`` event's ``data.object`` carries it, for tests that
        build their own events (``open_dispute``/``close_dispute`` play a whole dispute with its events)."""
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
                "created": self.now(),
            }

    @property
    def lock(self) -> threading.RLock:
        """The state's lock: hold it to change several objects as one step (the controls of ``billing_cycle``)."""
        return self._state

    def take_events(self) -> list[Json]:
        """The events made since the last call, oldest first (what a webhook endpoint would receive now)."""
        with self._state:
            taken, self.events = self.events, []
            return taken

    def _emit(self, kind: str, data: Json) -> None:
        self.events.append(stripe_event(kind, data, self.now()))

    def _emit_subscription(self, kind: str, subscription: Json) -> None:
        self._emit(kind, self._render_subscription(subscription, ["discounts.source.coupon"]))

    # ---- dispatch --------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> Answer:
        rule = self._take_rule(method, path)
        if rule is None or rule.hang is not None:
            answer = self._handle_idempotent(method, path, form, headers)
            if rule is not None and rule.hang is not None:
                time.sleep(rule.hang)
            return answer
        with self._lock:
            self.requests.append(RecordedRequest(method, path, form, headers))
        assert rule.failure is not None
        return Answer(rule.failure.status, {"error": rule.failure.error}, rule.failure.headers)

    def _take_rule(self, method: str, path: str) -> _Rule | None:
        with self._lock:
            for index, rule in enumerate(self._rules):
                if rule.matches(method, path):
                    if rule.after > 0:
                        rule.after -= 1
                        return None
                    return self._rules.pop(index)
        return None

    def _handle_idempotent(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> Answer:
        # The parent replays POSTs only: Stripe ignores Idempotency-Key on GET and DELETE ("idempotent by definition").
        return super().handle(method, path, form, headers)

    def _route(self, method: str, path: str, form: dict[str, Any]) -> Answer:
        answer = self._dispatch(method, path, form)
        if method == "GET" and self.list_page_size is not None and answer.body.get("object") == "list":
            return page(answer, form.get("starting_after"), self.list_page_size)
        return answer

    def _dispatch(self, method: str, path: str, form: dict[str, Any]) -> Answer:
        if (method == "GET" and INTENT_PATH.match(path)) or (method == "POST" and path == "/v1/payment_intents"):
            return super()._route(method, path, form)
        if method == "POST" and (match := CANCEL_PATH.match(path)):
            return self._cancel_intent(match["id"], form)
        for wanted, pattern, name in _PATHS:
            if wanted == method and (match := pattern.match(path)):
                with self._state:
                    answer: Answer = getattr(self, f"_{name}")(form, *match.groups())
                    return answer
        return stripe_error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).", None)
