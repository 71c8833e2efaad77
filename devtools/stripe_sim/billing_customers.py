"""The Billing simulation's customers and payment methods (``/v1/customers``, ``/v1/payment_methods``)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

from devtools.stripe_sim.billing_shapes import Json, empty_address, listing, missing, ok
from devtools.stripe_sim.wire import Answer, stripe_error


class CustomersApi:
    """Customers (create, retrieve, update, delete, list, search) and payment methods (retrieve, update, attach,
    detach, list per customer); mixed into ``FakeStripeBilling``, which holds the state."""

    customers: dict[str, Json]
    payment_methods: dict[str, Json]
    search_lag: float

    now: Callable[[], int]

    clock: Callable[[], float]

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
            "billing_details": {"name": None, "email": None, "phone": None, "address": empty_address()},
            "created": self.now(),
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

    # ---- customers -------------------------------------------------------------------------------------------------

    def _create_customer(self, form: Json) -> Answer:
        customer_id = f"cus_{secrets.token_hex(7)}"
        self.customers[customer_id] = {
            "id": customer_id,
            "object": "customer",
            "created": self.now(),
            "name": form.get("name") or None,
            "email": form.get("email") or None,
            "phone": form.get("phone") or None,
            "metadata": {key: value for key, value in (form.get("metadata") or {}).items() if value},
            "invoice_settings": {"default_payment_method": None},
            "livemode": False,
        }
        return ok(self.customers[customer_id])

    def _list_customers(self, form: Json) -> Answer:
        since = int((form.get("created") or {}).get("gte") or 0)
        found = [
            customer
            for customer in sorted(self.customers.values(), key=lambda c: c.get("created", 0), reverse=True)
            if not customer.get("deleted")
            and form.get("email") in (None, customer.get("email"))
            and customer.get("created", 0) >= since
        ]
        return listing("/v1/customers", found)

    def _search_customers(self, form: Json) -> Answer:
        clauses = [clause.strip() for clause in str(form.get("query") or "").split(" AND ")]
        wanted: list[tuple[str | None, str]] = []
        for clause in clauses:
            match = re.fullmatch(
                r"(?:metadata\['(?P<key>[^']+)'\]|(?P<field>email)):'(?P<value>(?:[^'\\]|\\.)*)'", clause
            )
            if match is None:
                return stripe_error(
                    400, "invalid_request_error", f"Invalid search query: {clause}", "parameter_invalid_string"
                )
            wanted.append((match["key"], re.sub(r"\\(.)", r"\1", match["value"])))
        indexed_before = self.clock() - self.search_lag
        found = [
            customer
            for customer in self.customers.values()
            if not customer.get("deleted")
            and customer.get("created", 0) <= indexed_before
            and all((customer["metadata"].get(key) if key else customer.get("email")) == value for key, value in wanted)
        ]
        return Answer(
            200,
            {
                "object": "search_result",
                "url": "/v1/customers/search",
                "has_more": False,
                "next_page": None,
                "data": found,
            },
        )

    def _get_customer(self, form: Json, customer_id: str) -> Answer:
        customer = self.customers.get(customer_id)
        return ok(customer) if customer is not None else missing("customer", customer_id)

    def _update_customer(self, form: Json, customer_id: str) -> Answer:
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return missing("customer", customer_id)
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
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"No such PaymentMethod: '{default}' attached to this customer",
                    "resource_missing",
                    "invoice_settings[default_payment_method]",
                )
            customer["invoice_settings"]["default_payment_method"] = default or None
        return ok(customer)

    def _delete_customer(self, form: Json, customer_id: str) -> Answer:
        if customer_id not in self.customers:
            return missing("customer", customer_id)
        self.customers[customer_id] = {"id": customer_id, "object": "customer", "deleted": True}
        return ok(self.customers[customer_id])

    # ---- payment methods -------------------------------------------------------------------------------------------

    def _list_payment_methods(self, form: Json, customer_id: str) -> Answer:
        found = [pm for pm in self.payment_methods.values() if pm.get("customer") == customer_id]
        return listing(f"/v1/customers/{customer_id}/payment_methods", found)

    def _get_payment_method(self, form: Json, pm_id: str) -> Answer:
        method = self.payment_methods.get(pm_id)
        return ok(method) if method is not None else missing("payment_method", pm_id)

    def _update_payment_method(self, form: Json, pm_id: str) -> Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return missing("payment_method", pm_id)
        if not method.get("customer"):
            return stripe_error(
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
        return ok(method)

    def _attach_payment_method(self, form: Json, pm_id: str) -> Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return missing("payment_method", pm_id)
        customer_id = form.get("customer") or ""
        customer = self.customers.get(customer_id)
        if customer is None or customer.get("deleted"):
            return missing("customer", customer_id)
        if method.get("customer") not in (None, customer_id):
            return stripe_error(
                400,
                "invalid_request_error",
                "The payment method you provided has already been attached to a customer.",
                None,
            )
        method["customer"] = customer_id
        return ok(method)

    def _detach_payment_method(self, form: Json, pm_id: str) -> Answer:
        method = self.payment_methods.get(pm_id)
        if method is None:
            return missing("payment_method", pm_id)
        if not method.get("customer"):
            return stripe_error(400, "invalid_request_error", "The payment method is not attached to a customer.", None)
        owner = self.customers.get(method["customer"]) or {}
        if (owner.get("invoice_settings") or {}).get("default_payment_method") == pm_id:
            owner["invoice_settings"]["default_payment_method"] = None
        method["customer"] = None
        return ok(method)
