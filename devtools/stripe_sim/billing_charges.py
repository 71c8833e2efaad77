"""The Billing simulation's money: invoices, charges and refunds (``/v1/invoices``, ``/v1/charges``,
``/v1/refunds``), and the invoice that bills a subscription."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from devtools.stripe_sim.billing_shapes import Json, listing, missing, ok, strip_data
from devtools.stripe_sim.wire import Answer, stripe_error


class ChargesApi:
    """Invoices, charges and refunds; mixed into ``FakeStripeBilling``, which holds the state."""

    customers: dict[str, Json]
    payment_methods: dict[str, Json]
    coupons: dict[str, Json]
    subscriptions: dict[str, Json]
    invoices: dict[str, Json]
    charges: dict[str, Json]
    charge_refunds: dict[str, Json]
    intents: dict[str, Json]

    now: Callable[[], int]
    _emit: Callable[[str, Json], None]

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

    def _bill(self, subscription: Json, *, paid: bool = True, reason: str = "subscription_create") -> Json:
        """An invoice for the subscription's current period (its price less its discounts), paid at once by a charge
        on the default payment method, or (``paid=False``) left open after a declined attempt; returns it."""
        price = subscription["items"]["data"][0]["price"]
        period_start = subscription["items"]["data"][0]["current_period_start"]
        discounts = [
            (d["id"], min(self.coupons[d["source"]["coupon"]]["amount_off"] or 0, price["unit_amount"]))
            for d in subscription["discounts"]
            if d.get("end") is None or d["end"] > period_start
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
            "status": "succeeded" if paid else "requires_payment_method",
            "metadata": {},
        }
        payments = []
        if paid:
            charge = self._charge(subscription["customer"], total, price["currency"], intent_id, captured=True)
            payments = [{"payment": {"type": "payment_intent", "payment_intent": intent_id, "charge": charge["id"]}}]
        self.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "customer": subscription["customer"],
            "created": self.now(),
            "billing_reason": reason,
            "status": "paid" if paid else "open",
            "currency": price["currency"],
            "amount_due": total,
            "amount_paid": total if paid else 0,
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
                        "period": {
                            "start": period_start,
                            "end": subscription["items"]["data"][0]["current_period_end"],
                        },
                    }
                ],
                "has_more": False,
            },
            "payments": {"object": "list", "data": payments, "has_more": False},
        }
        subscription["latest_invoice"] = invoice_id
        return self.invoices[invoice_id]

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
            "created": created or self.now(),
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

    def _list_invoices(self, form: Json) -> Answer:
        expand = strip_data(form.get("expand") or [])
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
        return listing("/v1/invoices", found)

    def _discount(self, discount_id: str) -> Json:
        for subscription in self.subscriptions.values():
            for discount in subscription["discounts"]:
                if discount["id"] == discount_id:
                    return dict(discount)
        return {"id": discount_id, "object": "discount", "deleted": True}

    def _list_charges(self, form: Json) -> Answer:
        expand = strip_data(form.get("expand") or [])
        found = [
            self._render_charge(charge, expand)
            for charge in sorted(self.charges.values(), key=lambda c: c["created"], reverse=True)
            if form.get("customer") in (None, charge["customer"])
        ]
        return listing("/v1/charges", found)

    def _get_charge(self, form: Json, charge_id: str) -> Answer:
        charge = self.charges.get(charge_id)
        if charge is None:
            return missing("charge", charge_id)
        return ok(self._render_charge(charge, form.get("expand") or []))

    def _create_refund(self, form: Json) -> Answer:
        charge = self.charges.get(form.get("charge") or "")
        if charge is None:
            return missing("charge", form.get("charge") or "")
        left = charge["amount"] - charge["amount_refunded"]
        amount = int(form["amount"]) if form.get("amount") else left
        if charge["refunded"] or left <= 0:
            return stripe_error(
                400,
                "invalid_request_error",
                f"Charge {charge['id']} has already been refunded.",
                "charge_already_refunded",
            )
        if amount < 1 or amount > left:
            return stripe_error(
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
            "created": self.now(),
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
            "metadata": dict(form.get("metadata") or {}),
        }
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit("charge.refunded", charge)
        return ok(self.charge_refunds[refund_id])

    def _list_refunds(self, form: Json) -> Answer:
        found = [r for r in self.charge_refunds.values() if form.get("charge") in (None, r["charge"])]
        return listing("/v1/refunds", found)

    def _cancel_intent(self, intent_id: str, form: Json) -> Answer:
        answer = self._cancel(intent_id, form)
        if answer.status == 200:
            with self._state:
                for charge in self.charges.values():
                    if charge["payment_intent"] == intent_id and not charge["captured"]:
                        charge.update(refunded=True, amount_refunded=charge["amount"])
        return answer
