"""What happens at Stripe without a call from us: a subscription's period ends (renewal, or the end of a cancel at
period end), an invoice payment is declined, a refund is made in the dashboard, a dispute is opened and decided.

Each change makes the Stripe events it would send (``FakeStripeBilling.events``), in the order Stripe's docs list
them: the subscription's ``customer.subscription.updated|deleted`` first, then its invoice's ``invoice.paid`` or
``invoice.payment_failed``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from devtools.stripe_sim.billing_shapes import Json
from devtools.stripe_sim.billing_subscriptions import MONTH

#: Statuses whose period ends in a renewal (a canceled or incomplete subscription never renews).
RENEWING = frozenset({"active", "trialing", "past_due"})
#: The most periods one clock move renews per subscription (a guard against a clock moved by centuries).
MAX_RENEWALS = 240


class SimulationError(Exception):
    """A control asked for something Stripe could not do (an unknown object, a canceled subscription...)."""


class BillingCycle:
    """Renewals, declined invoices, dashboard refunds and disputes; mixed into ``FakeStripeBilling``."""

    subscriptions: dict[str, Json]
    charges: dict[str, Json]
    disputes: dict[str, Json]
    failing_invoices: set[str]
    now: Callable[[], int]
    _bill: Callable[..., Json]
    _emit: Callable[[str, Json], None]
    _emit_subscription: Callable[[str, Json], None]
    _create_refund: Callable[[Json], Any]

    def fail_next_invoice(self, subscription_id: str) -> Json:
        """The subscription's next invoice is declined (it turns ``past_due``; ``invoice.payment_failed``)."""
        subscription = self._renewing(subscription_id)
        self.failing_invoices.add(subscription_id)
        return subscription

    def renew(self, subscription_id: str, start: int | None = None) -> Json:
        """End the subscription's current period: the next period and its invoice (paid, or declined when armed by
        ``fail_next_invoice``), or the end of a subscription canceled at period end. The next period starts at
        ``start`` (as Stripe's ``billing_cycle_anchor=now`` resets a cycle), by default where the current one ends."""
        subscription = self._renewing(subscription_id)
        item = subscription["items"]["data"][0]
        ended = int(item["current_period_end"]) if start is None else start
        if subscription["cancel_at_period_end"]:
            subscription.update(status="canceled", canceled_at=ended, ended_at=ended)
            self._emit_subscription("customer.subscription.deleted", subscription)
            return subscription
        months = int(item["price"]["recurring"]["interval_count"])
        item.update(current_period_start=ended, current_period_end=ended + MONTH * months)
        paid = subscription_id not in self.failing_invoices
        self.failing_invoices.discard(subscription_id)
        invoice = self._bill(subscription, paid=paid, reason="subscription_cycle")
        subscription["status"] = "active" if paid else "past_due"
        self._emit_subscription("customer.subscription.updated", subscription)
        self._emit("invoice.paid" if paid else "invoice.payment_failed", invoice)
        return subscription

    def renew_due(self) -> list[str]:
        """Renew every subscription whose period has ended by now (as Stripe's test clocks do when advanced), as
        many periods as have passed; the ids renewed, once per period."""
        renewed: list[str] = []
        for subscription_id, subscription in list(self.subscriptions.items()):
            for _ in range(MAX_RENEWALS):
                item = subscription["items"]["data"][0]
                if subscription["status"] not in RENEWING or int(item["current_period_end"]) > self.now():
                    break
                self.renew(subscription_id)
                renewed.append(subscription_id)
        return renewed

    def refund_charge(self, charge_id: str, amount: int | None = None) -> Json:
        """A refund made in Stripe's dashboard (``amount``: the rest of the charge by default)."""
        form: Json = {"charge": charge_id, **({"amount": str(amount)} if amount is not None else {})}
        answer = self._create_refund(form)
        if answer.status != 200:
            raise SimulationError(answer.body["error"]["message"])
        refund: Json = answer.body
        return refund

    def open_dispute(self, charge_id: str, reason: str = "fraudulent") -> Json:
        """The cardholder disputes the charge: its amount is withdrawn (``charge.dispute.created``)."""
        charge = self.charges.get(charge_id)
        if charge is None:
            raise SimulationError(f"No such charge: '{charge_id}'")
        if any(d["charge"] == charge_id for d in self.disputes.values()):
            raise SimulationError(f"the charge {charge_id} is already disputed")
        dispute_id = f"dp_{secrets.token_hex(12)}"
        self.disputes[dispute_id] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": charge["amount"] - charge["amount_refunded"],
            "charge": charge_id,
            "payment_intent": charge["payment_intent"],
            "currency": charge["currency"],
            "reason": reason,
            "status": "needs_response",
            "created": self.now(),
            "livemode": False,
            "metadata": {},
        }
        charge["disputed"] = True
        self._emit("charge.dispute.created", self.disputes[dispute_id])
        return self.disputes[dispute_id]

    def close_dispute(self, dispute_id: str, *, won: bool) -> Json:
        """The card network decides the dispute (``charge.dispute.closed``, ``won`` or ``lost``)."""
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise SimulationError(f"No such dispute: '{dispute_id}'")
        if dispute["status"] in ("won", "lost"):
            raise SimulationError(f"the dispute {dispute_id} is already {dispute['status']}")
        dispute["status"] = "won" if won else "lost"
        self._emit("charge.dispute.closed", dispute)
        return dispute

    def _renewing(self, subscription_id: str) -> Json:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            raise SimulationError(f"No such subscription: '{subscription_id}'")
        if subscription["status"] not in RENEWING:
            raise SimulationError(f"the subscription {subscription_id} is {subscription['status']}: it never renews")
        return subscription
