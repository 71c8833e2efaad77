"""The Stripe adapter of the subscriptions half's ``SubscriptionProcessor`` port (customers, payment methods,
subscriptions with coupons, invoices, charges, refunds).

It uses the one ``client.new_client`` (``api_base`` points it at the tests' fake server), ``stripe`` imported inside
the methods (no cost at cold start), every mutating call sent with the idempotency key it is given (calls made on
behalf of one port call get that key plus a suffix), and failures translated at the boundary by
``client.raise_translated`` (connection failures, 409, 429, 5xx → ``UnavailableError``; other refusals →
``PaymentGatewayError``). Stripe's JSON is read and written by the pure functions of ``billing_mapping``.

Choices worth knowing:

- A local discount is a Stripe coupon (``amount_off`` in the subscription's currency, ``duration=repeating`` for its
  cycles × the plan's months, or ``forever``) whose id derives from the discount id and its original terms (the whole
  number of cycles, not the cycles left), so a retried sync finds the coupon it made (``resource_already_exists``)
  instead of making another; ``metadata.discountId`` links it back. An update keeps a Stripe discount whose coupon
  still matches (its cycles keep counting) and replaces the rest. A discount counts the invoices that applied it: one
  added after its period's invoice is at cycle 0.
- Retries after a lost answer: a create whose key Stripe refuses with ``idempotency_error`` (the first call had other
  parameters) adopts the object that call made (found by its local id in metadata) and updates it; an update resends
  under a key covering its parameters; a cancel (DELETE, never replayed by Stripe) reads back a canceled subscription.
- A queued start (``first_billing_date`` in the future) is sent as ``trial_end`` with ``metadata.queued``; such a
  subscription maps back to ``pending`` with no paid-through date (Braintree's pending), not to a trial.
- Stripe keeps no status history: each mapped subscription carries one event (its status, since when).
- A void of a captured charge is a full refund marked ``metadata.void``: the charge then maps to ``voided`` and that
  refund is not listed as a transaction of its own, so the list shows the void in place as the seed does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from usercredits.adapters.stripe.billing_mapping import (
    Json,
    billing_details,
    charge_transaction,
    coupon_id_for,
    coupon_of,
    customer_metadata,
    discount_objects,
    first_item,
    id_of,
    invoices_by_charge,
    kept_discount,
    list_data,
    processor_customer,
    processor_payment_method,
    processor_subscription,
    refund_transaction,
    subscription_metadata,
    total_cycles,
)
from usercredits.adapters.stripe.client import (
    call,
    call_or_missing,
    every_item,
    first_wanted,
    load_stripe_keys,
    new_client,
    raise_translated,
)
from usercredits.domain.models import Money
from usercredits.errors import ConflictError, InvalidRequestError
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    Transaction,
    TransactionStatus,
    TransactionStatusEvent,
)
from usercredits.subscriptions.ports import (
    DiscountTerms,
    ProcessorCustomer,
    ProcessorPaymentMethod,
    ProcessorSubscription,
    SubscriptionTerms,
)
from usercredits.subscriptions.tracking import processor_id_for, synced_value

if TYPE_CHECKING:
    pass

_SUBSCRIPTION_EXPAND = ["discounts.source.coupon", "items.data.price"]
_LIST_LIMIT = 100
#: How far back a lost create is looked for by creation time (Customer search may lag behind by about a minute).
_RECENT_CUSTOMERS = timedelta(hours=1)


class StripeSubscriptionProcessor:
    """``SubscriptionProcessor`` over ``stripe.StripeClient``.

    ``api_base`` points the client at another API host (the tests' fake server); ``timeout_seconds`` bounds each HTTP
    attempt, retried ``max_network_retries`` times by the SDK with the same idempotency key.
    """

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
    ) -> None:
        self._client = new_client(
            api_key,
            api_base=api_base,
            max_network_retries=max_network_retries,
            timeout_seconds=timeout_seconds,
        )

    @classmethod
    def from_secret(cls, secret_name: str, *, api_base: str | None = None) -> StripeSubscriptionProcessor:
        """A processor using the ``secretKey`` of the Secrets Manager JSON secret ``secret_name``."""
        return cls(load_stripe_keys(secret_name).require_secret_key(), api_base=api_base)

    def __repr__(self) -> str:
        return "StripeSubscriptionProcessor()"

    # ---- customers -------------------------------------------------------------------------------------------------

    def create_customer(self, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        """Create the Stripe customer, with ``metadata.userId``/``customerId`` so webhooks find the local one.

        A retry whose key was first used with other parameters (the profile was edited after a lost answer) gets
        ``idempotency_error``: the customer the first call made is then found by its ``metadata.customerId`` and
        brought up to date, or, when that call made none, created under a key that covers the parameters.
        """
        import stripe

        params: Any = {
            "name": customer.name,
            "email": customer.email or "",
            "phone": customer.phone or "",
            "metadata": customer_metadata(customer),
        }
        try:
            return processor_customer(
                self._client.v1.customers.create(params=params, options={"idempotency_key": idempotency_key})
            )
        except stripe.IdempotencyError:
            pass
        except stripe.StripeError as exc:
            raise_translated(exc, "create the customer")
        found = self._find_customer(customer)
        if found is None:
            retry_key = _sub_key(idempotency_key, "retry", params)
            created = call(
                "create the customer",
                lambda: self._client.v1.customers.create(params=params, options={"idempotency_key": retry_key}),
            )
            return processor_customer(created)
        updated = call(
            "update the customer",
            lambda: self._client.v1.customers.update(
                found, params=params, options={"idempotency_key": _sub_key(idempotency_key, "adopt", params)}
            ),
        )
        return processor_customer(updated)

    def _find_customer(self, customer: Customer) -> str | None:
        """The id of the live Stripe customer made for ``customer`` (``metadata.customerId``), or None.

        Listing by email is exact and immediate; search finds any older customer but may miss one made in the last
        minute, so the customers made in the last hour are listed too.
        """
        import stripe

        def made_here(found: Json) -> bool:
            return not found.get("deleted") and (found.get("metadata") or {}).get("customerId") == customer.customer_id

        if customer.email:
            email = customer.email
            match = first_wanted(
                "list the customers",
                lambda: self._client.v1.customers.list(params={"email": email, "limit": _LIST_LIMIT}),
                made_here,
            )
            if match is not None:
                return str(match["id"])
        query = f"metadata['customerId']:'{_search_literal(customer.customer_id)}'"
        try:
            match = first_wanted(
                "search the customers",
                lambda: self._client.v1.customers.search(params={"query": query, "limit": _LIST_LIMIT}),
                made_here,
                translate=False,
            )
        except stripe.InvalidRequestError:
            match = None  # search is not offered everywhere: the listing below still covers a lost answer's customer
        except stripe.StripeError as exc:
            raise_translated(exc, "search the customers")
        if match is not None:
            return str(match["id"])
        since = int((datetime.now(UTC) - _RECENT_CUSTOMERS).timestamp())
        match = first_wanted(
            "list the customers",
            lambda: self._client.v1.customers.list(params={"created": {"gte": since}, "limit": _LIST_LIMIT}),
            made_here,
        )
        return None if match is None else str(match["id"])

    def update_customer(self, processor_id: str, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        """Send name, email, phone, metadata (keys removed locally are unset at Stripe) and the default payment
        method when it is attached already (a new one is made default when it is attached)."""
        metadata: Json = dict(customer_metadata(customer))
        synced = synced_value(customer, "metadata")
        if isinstance(synced, dict):
            metadata |= {key: "" for key in synced if key not in metadata}
        params: Any = {
            "name": customer.name,
            "email": customer.email or "",
            "phone": customer.phone or "",
            "metadata": metadata,
        }
        default_id = processor_id_for(customer.default_payment_method_id, customer.payment_methods)
        if default_id is not None:
            params["invoice_settings"] = {"default_payment_method": default_id}
        updated = call(
            "update the customer",
            lambda: self._client.v1.customers.update(
                processor_id, params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        return processor_customer(updated)

    def retrieve_customer(self, processor_id: str) -> ProcessorCustomer | None:
        """The Stripe customer, or None when it is deleted or unknown there."""
        found = call_or_missing("read the customer", lambda: self._client.v1.customers.retrieve(processor_id))
        if found is None or found.get("deleted"):
            return None
        return processor_customer(found)

    # ---- payment methods -------------------------------------------------------------------------------------------

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        """A ``pm_...`` payment method, or None when Stripe does not know it; ``customer_id`` names its owner."""
        found = call_or_missing("read the payment method", lambda: self._client.v1.payment_methods.retrieve(token))
        return None if found is None else processor_payment_method(found)

    def attach_payment_method(
        self,
        customer_processor_id: str,
        token: str,
        *,
        billing: AddressFields | None,
        make_default: bool,
        idempotency_key: str,
    ) -> ProcessorPaymentMethod:
        """Attach ``token`` to the customer, then set its billing details and make it the default as asked."""
        attached = call(
            "attach the payment method",
            lambda: self._client.v1.payment_methods.attach(
                token,
                params={"customer": customer_processor_id},
                options={"idempotency_key": f"{idempotency_key}:attach"},
            ),
        )
        return self._finish_payment_method(attached, billing, make_default, idempotency_key)

    def update_payment_method(
        self, processor_id: str, *, billing: AddressFields | None, make_default: bool, idempotency_key: str
    ) -> ProcessorPaymentMethod:
        """Set an attached payment method's billing details and (``make_default``) make it the customer's default."""
        current = call("read the payment method", lambda: self._client.v1.payment_methods.retrieve(processor_id))
        return self._finish_payment_method(current, billing, make_default, idempotency_key)

    def detach_payment_method(self, processor_id: str, *, idempotency_key: str) -> None:
        call(
            "detach the payment method",
            lambda: self._client.v1.payment_methods.detach(processor_id, options={"idempotency_key": idempotency_key}),
        )

    def list_payment_methods(self, customer_processor_id: str) -> list[ProcessorPaymentMethod]:
        page = call(
            "list the payment methods",
            lambda: self._client.v1.customers.payment_methods.list(
                customer_processor_id, params={"limit": _LIST_LIMIT}
            ),
        )
        return [processor_payment_method(item) for item in every_item(page, "list the payment methods")]

    def _finish_payment_method(
        self, method: Any, billing: AddressFields | None, make_default: bool, key: str
    ) -> ProcessorPaymentMethod:
        values: Json = method.to_dict()
        if billing is not None:
            details: Any = billing_details(billing)
            values = call(
                "update the payment method",
                lambda: self._client.v1.payment_methods.update(
                    str(values["id"]),
                    params={"billing_details": details},
                    options={"idempotency_key": _sub_key(key, "billing", details)},
                ),
            ).to_dict()
        customer_id = id_of(values.get("customer"))
        if make_default and customer_id is not None:
            call(
                "set the default payment method",
                lambda: self._client.v1.customers.update(
                    customer_id,
                    params={"invoice_settings": {"default_payment_method": str(values["id"])}},
                    options={"idempotency_key": _sub_key(key, "default", {"default": str(values["id"])})},
                ),
            )
        return processor_payment_method(values)

    # ---- subscriptions ---------------------------------------------------------------------------------------------

    def create_subscription(self, terms: SubscriptionTerms, *, idempotency_key: str) -> ProcessorSubscription:
        """Create the subscription on the plan's price; discounts become coupons first; a future first billing date
        is a queued start (``trial_end``).

        On ``idempotency_error`` (the key's first use had other terms) the subscription that first call made is
        updated to these terms (never its start date); when it made none, one is created under a key covering
        the parameters.
        """
        import stripe

        coupons = [self._coupon_for(discount, terms.billing_frequency_months) for discount in terms.discounts]
        params: Any = {
            "customer": terms.customer_processor_id,
            "items": [{"price": terms.price_id}],
            "metadata": subscription_metadata(terms),
            "cancel_at_period_end": terms.cancel_at_period_end,
            "expand": _SUBSCRIPTION_EXPAND,
        }
        if terms.payment_method_processor_id is not None:
            params["default_payment_method"] = terms.payment_method_processor_id
        if coupons:
            params["discounts"] = [{"coupon": coupon} for coupon in coupons]
        if _queued(terms):
            assert terms.first_billing_date is not None
            params["trial_end"] = int(terms.first_billing_date.timestamp())
            params["metadata"]["queued"] = "true"
        try:
            created = self._client.v1.subscriptions.create(params=params, options={"idempotency_key": idempotency_key})
            return processor_subscription(created.to_dict())
        except stripe.IdempotencyError:
            pass
        except stripe.StripeError as exc:
            raise_translated(exc, "create the subscription")
        # The key was first used with other parameters (terms edited after a lost answer): adopt what that call made.
        found = self._find_subscription(terms)
        if found is None:
            retry_key = _sub_key(idempotency_key, "retry", params)
            created = call(
                "create the subscription",
                lambda: self._client.v1.subscriptions.create(params=params, options={"idempotency_key": retry_key}),
            )
            return processor_subscription(created.to_dict())
        if found.get("status") in {"canceled", "incomplete_expired"}:
            return processor_subscription(found)
        adopt_key = _sub_key(idempotency_key, "adopt", dataclasses.asdict(terms))
        return self.update_subscription(str(found["id"]), terms, idempotency_key=adopt_key)

    def _find_subscription(self, terms: SubscriptionTerms) -> Json | None:
        """The customer's Stripe subscription made for the local one (``metadata.subscriptionId``), if any."""
        return first_wanted(
            "list the subscriptions",
            lambda: self._client.v1.subscriptions.list(
                params={
                    "customer": terms.customer_processor_id,
                    "status": "all",
                    "limit": _LIST_LIMIT,
                    "expand": [f"data.{path}" for path in _SUBSCRIPTION_EXPAND],
                }
            ),
            lambda found: (found.get("metadata") or {}).get("subscriptionId") == terms.subscription_id,
        )

    def update_subscription(
        self, processor_id: str, terms: SubscriptionTerms, *, idempotency_key: str
    ) -> ProcessorSubscription:
        """Update price, payment method, discounts, cancel-at-period-end and metadata (never the start date).

        Stripe replaces the whole discount list: a Stripe discount whose coupon still matches a local discount is
        kept by id (so its cycles keep counting); the others are dropped, and new or changed terms get a coupon.

        The parameters depend on what is read first, so a retry after a lost answer may send other ones under the
        same key; on Stripe's ``idempotency_error`` they are sent again under a key that covers them (they set the
        same end state, so sending them twice is harmless).
        """
        import stripe

        current: Json = call(
            "read the subscription",
            lambda: self._client.v1.subscriptions.retrieve(processor_id, params={"expand": _SUBSCRIPTION_EXPAND}),
        ).to_dict()
        item = first_item(current)
        available = discount_objects(current)
        discounts: list[Json] = []
        for terms_discount in terms.discounts:
            kept = kept_discount(available, terms_discount, terms.billing_frequency_months)
            if kept is not None:
                available.remove(kept)
                discounts.append({"discount": str(kept["id"])})
            else:
                discounts.append({"coupon": self._coupon_for(terms_discount, terms.billing_frequency_months)})
        metadata = subscription_metadata(terms)
        if (current.get("metadata") or {}).get("queued"):
            metadata["queued"] = "true"
        params: Any = {
            "metadata": metadata,
            "cancel_at_period_end": terms.cancel_at_period_end,
            "discounts": discounts or "",
            "expand": _SUBSCRIPTION_EXPAND,
        }
        if terms.payment_method_processor_id is not None:
            params["default_payment_method"] = terms.payment_method_processor_id
        if id_of(item.get("price")) != terms.price_id:
            params["items"] = [{"id": str(item.get("id")), "price": terms.price_id}]

        def update(key: str) -> Any:
            return self._client.v1.subscriptions.update(processor_id, params=params, options={"idempotency_key": key})

        try:
            updated = update(idempotency_key)
        except stripe.IdempotencyError:
            updated = call("update the subscription", lambda: update(_sub_key(idempotency_key, "resend", params)))
        except stripe.StripeError as exc:
            raise_translated(exc, "update the subscription")
        return processor_subscription(updated.to_dict())

    def cancel_subscription(
        self, processor_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProcessorSubscription:
        """Cancel now (``DELETE /v1/subscriptions/{id}``) or at the end of the paid period."""
        options: Any = {"idempotency_key": idempotency_key}
        if at_period_end:
            result = call(
                "cancel the subscription",
                lambda: self._client.v1.subscriptions.update(
                    processor_id,
                    params={"cancel_at_period_end": True, "expand": _SUBSCRIPTION_EXPAND},
                    options=options,
                ),
            )
        else:
            return self._cancel_now(processor_id, options)
        return processor_subscription(result.to_dict())

    def _cancel_now(self, processor_id: str, options: Any) -> ProcessorSubscription:
        """``DELETE`` the subscription. Stripe ignores idempotency keys on DELETE and refuses to cancel a canceled
        subscription (404 ``No such subscription``), so a retry after a lost answer reads it back instead."""
        import stripe

        try:
            result = self._client.v1.subscriptions.cancel(
                processor_id, params={"expand": _SUBSCRIPTION_EXPAND}, options=options
            )
        except stripe.InvalidRequestError as exc:
            found = call_or_missing(
                "read the subscription",
                lambda: self._client.v1.subscriptions.retrieve(processor_id, params={"expand": _SUBSCRIPTION_EXPAND}),
            )
            if found is None or found.get("status") != "canceled":
                raise_translated(exc, "cancel the subscription")
            return processor_subscription(found)
        except stripe.StripeError as exc:
            raise_translated(exc, "cancel the subscription")
        return processor_subscription(result.to_dict())

    def list_subscriptions(self, customer_processor_id: str) -> list[ProcessorSubscription]:
        page = call(
            "list the subscriptions",
            lambda: self._client.v1.subscriptions.list(
                params={
                    "customer": customer_processor_id,
                    "status": "all",
                    "limit": _LIST_LIMIT,
                    "expand": [f"data.{path}" for path in _SUBSCRIPTION_EXPAND],
                }
            ),
        )
        return [processor_subscription(item) for item in every_item(page, "list the subscriptions")]

    def _coupon_for(self, discount: DiscountTerms, months_per_cycle: int) -> str:
        """The id of the Stripe coupon for ``discount``, made now unless it exists (a retried sync).

        Its ``metadata.cycles`` is the discount's whole number of cycles; a discount that already ran some (it is
        applied anew) gets a coupon of its own for the cycles left, with ``metadata.cyclesUsed``.
        """
        import stripe

        total = total_cycles(discount)
        left = min(discount.number_of_billing_cycles, total)
        used = 0 if discount.never_expires else total - left
        coupon_id = coupon_id_for(discount, months_per_cycle) + (f"-{left}" if used else "")
        metadata = {"discountId": discount.discount_id, "cycles": str(total)}
        if used:
            metadata["cyclesUsed"] = str(used)
        params: Any = {
            "id": coupon_id,
            "amount_off": discount.amount.amount,
            "currency": discount.amount.currency,
            "name": (discount.name or "Discount")[:40],
            "metadata": metadata,
        }
        if discount.never_expires:
            params["duration"] = "forever"
        else:
            params["duration"] = "repeating"
            params["duration_in_months"] = left * months_per_cycle
        try:
            # No idempotency key: the id is what makes a retry safe (``resource_already_exists``), and a key reused
            # after a rename would be refused with ``idempotency_error``.
            self._client.v1.coupons.create(params=params)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_already_exists":
                raise_translated(exc, "create the coupon")
        except stripe.StripeError as exc:
            raise_translated(exc, "create the coupon")
        return coupon_id

    # ---- transactions ----------------------------------------------------------------------------------------------

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
                        "limit": _LIST_LIMIT,
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
                    params={"customer": customer_processor_id, "limit": _LIST_LIMIT, "expand": ["data.refunds"]}
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
            lambda: self._client.v1.refunds.list(params={"charge": charge_id, "limit": _LIST_LIMIT}),
        )
        every = every_item(page, "list the refunds")
        return {**charge, "refunds": {**refunds, "data": every, "has_more": False}}

    def refund(self, transaction_processor_id: str, amount: Money | None, *, idempotency_key: str) -> Transaction:
        """Refund all (None) or ``amount`` of a charge; the refund comes back as a transaction naming the charge.

        Asking more than Stripe has left to refund (refunds made elsewhere meanwhile) is the caller's mistake, not a
        gateway failure: ``InvalidRequestError``; a charge refunded in full already is a ``ConflictError``.
        """
        import stripe

        params: Any = {"charge": transaction_processor_id}
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


def _queued(terms: SubscriptionTerms) -> bool:
    return terms.first_billing_date is not None and terms.first_billing_date > datetime.now(UTC)


def _search_literal(value: str) -> str:
    """``value`` quoted for a Stripe search query string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _sub_key(key: str, step: str, params: Mapping[str, Any]) -> str:
    """The key of one call made for a port call: the port's key, the step, and a digest of what it sends."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{key}:{step}:{digest}"
