"""Stripe charges and refunds as transactions (listing, refund, void), for ``billing.StripeSubscriptionProcessor``
(see its module for the choices made).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from usercredits.adapters.stripe.billing_customers import StripeCustomers
from usercredits.adapters.stripe.billing_mapping import (
    Json,
    charge_transaction,
    id_of,
    invoices_by_charge,
    list_data,
    refund_transaction,
)
from usercredits.adapters.stripe.client import LIST_LIMIT, call, call_or_missing, every_item, raise_translated
from usercredits.adapters.stripe.subscription_mapping import coupon_of
from usercredits.errors import ConflictError, InvalidRequestError
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import Transaction, TransactionStatus, TransactionStatusEvent

#: The refund metadata that names the idempotency key a refund was made under (found again after Stripe forgets it).
REFUND_KEY = "refundKey"


class StripeCharges(StripeCustomers):
    """The transactions half of the ``SubscriptionProcessor`` port (it reads the customer a charge names)."""

    def list_transactions(self, customer_processor_id: str) -> list[Transaction]:
        """The customer's charges (one-off or from invoices) and their refunds, newest first; invoices give the
        subscription (local id, from its metadata), the plan's price and the discounts of each charge."""
        customer = self.retrieve_customer(customer_processor_id)
        invoices = every_item(
            call(
                "list the invoices",
                lambda: self._client.v1.invoices.list(
                    params={
                        "customer": customer_processor_id,
                        "limit": LIST_LIMIT,
                        "expand": ["data.payments", "data.discounts"],
                    }
                ),
            ),
            "list the invoices",
        )
        charges = every_item(
            call(
                "list the charges",
                lambda: self._client.v1.charges.list(
                    params={"customer": customer_processor_id, "limit": LIST_LIMIT, "expand": ["data.refunds"]}
                ),
            ),
            "list the charges",
        )
        by_charge = invoices_by_charge(invoices)
        coupon_names = self._coupon_names(invoices)
        transactions: list[Transaction] = []
        for listed in charges:
            charge = self._with_all_refunds(listed)
            invoice = by_charge.get(str(charge["id"])) or by_charge.get(id_of(charge.get("payment_intent")) or "")
            sale = charge_transaction(charge, invoice=invoice, customer=customer, coupon_names=coupon_names)
            transactions.append(sale)
            transactions.extend(
                refund_transaction(refund)
                for refund in list_data(charge.get("refunds"))
                if not (refund.get("metadata") or {}).get("void")
            )
        return sorted(transactions, key=lambda txn: txn.created_at, reverse=True)

    def _with_all_refunds(self, charge: Json) -> Json:
        """The charge with every refund: an expanded ``refunds`` holds at most 10 (``has_more``), the rest are
        listed."""
        refunds = charge.get("refunds")
        if not (isinstance(refunds, dict) and refunds.get("has_more")):
            return charge
        charge_id = str(charge["id"])
        page = call(
            "list the refunds",
            lambda: self._client.v1.refunds.list(params={"charge": charge_id, "limit": LIST_LIMIT}),
        )
        every = every_item(page, "list the refunds")
        return {**charge, "refunds": {**refunds, "data": every, "has_more": False}}

    def refund(self, transaction_processor_id: str, amount: Money | None, *, idempotency_key: str) -> Transaction:
        """Refund all (None) or ``amount`` of a charge; the refund comes back as a transaction naming the charge.

        Asking more than Stripe has left to refund (refunds made elsewhere meanwhile) is the caller's mistake, not a
        gateway failure: ``InvalidRequestError``; a charge refunded in full already is a ``ConflictError``.

        Stripe answers a repeated ``idempotency_key`` with the first refund for 24 hours only; the key is also written
        in the refund's metadata and looked for among the charge's refunds first, so a retry days after a crash
        between Stripe and our save still finds the refund instead of making a second one.
        """
        import stripe

        made = self._refund_made_with(transaction_processor_id, idempotency_key)
        if made is not None:
            return refund_transaction(made)
        params: Any = {"charge": transaction_processor_id, "metadata": {REFUND_KEY: idempotency_key}}
        if amount is not None:
            params["amount"] = amount.amount
        try:
            created = self._client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})
        except stripe.InvalidRequestError as exc:
            if exc.code == "amount_too_large":
                raise InvalidRequestError(
                    "The refund amount is more than what is left to refund on the charge at Stripe (amount_too_large)"
                ) from exc
            if exc.code == "charge_already_refunded":
                raise ConflictError("The charge has already been refunded in full (charge_already_refunded)") from exc
            raise_translated(exc, "refund the charge")
        except stripe.StripeError as exc:
            raise_translated(exc, "refund the charge")
        return refund_transaction(created.to_dict())

    def _refund_made_with(self, charge_id: str, idempotency_key: str) -> Json | None:
        """The charge's refund made under ``idempotency_key`` (its metadata says so), if there is one."""
        page = call(
            "list the refunds",
            lambda: self._client.v1.refunds.list(params={"charge": charge_id, "limit": LIST_LIMIT}),
        )
        for refund in every_item(page, "list the refunds"):
            if (refund.get("metadata") or {}).get(REFUND_KEY) == idempotency_key:
                return refund
        return None

    def void(self, transaction_processor_id: str, *, idempotency_key: str) -> Transaction:
        """Cancel the payment intent of an uncaptured charge; refund a captured one in full (``metadata.void``).
        Returns the charge as a ``voided`` transaction."""
        charge: Json = call(
            "read the charge", lambda: self._client.v1.charges.retrieve(transaction_processor_id)
        ).to_dict()
        intent_id = id_of(charge.get("payment_intent"))
        if not charge.get("captured") and intent_id is not None:
            call(
                "cancel the payment",
                lambda: self._client.v1.payment_intents.cancel(
                    intent_id, options={"idempotency_key": f"{idempotency_key}:cancel"}
                ),
            )
        elif not charge.get("refunded"):
            call(
                "void the charge",
                lambda: self._client.v1.refunds.create(
                    params={"charge": transaction_processor_id, "metadata": {"void": "true"}},
                    options={"idempotency_key": f"{idempotency_key}:refund"},
                ),
            )
        voided = charge_transaction(charge)
        history = [TransactionStatusEvent(status=TransactionStatus.VOIDED, timestamp=datetime.now(UTC))]
        return voided.model_copy(
            update={"status": TransactionStatus.VOIDED, "status_history": [*history, *voided.status_history]}
        )

    def charge_customer(self, transaction_processor_id: str) -> str | None:
        """The customer of a charge (None when Stripe knows no such charge, or it has no customer)."""
        found = call_or_missing("read the charge", lambda: self._client.v1.charges.retrieve(transaction_processor_id))
        return id_of(found.get("customer")) if found else None

    def _coupon_names(self, invoices: Iterable[Json]) -> dict[str, str]:
        names: dict[str, str] = {}
        for invoice in invoices:
            for discount in list_data(invoice.get("discounts")):
                coupon = coupon_of(discount)
                coupon_id = coupon.get("id") or id_of((discount.get("source") or {}).get("coupon"))
                if coupon_id and coupon_id not in names:
                    found = coupon if coupon.get("name") else self._read_coupon(str(coupon_id))
                    names[str(coupon_id)] = str(found.get("name") or "")
                names[str(discount.get("id"))] = names.get(str(coupon_id), "")
        return names

    def _read_coupon(self, coupon_id: str) -> Json:
        found = call_or_missing("read the coupon", lambda: self._client.v1.coupons.retrieve(coupon_id))
        return found or {}
