"""The Stripe adapter of the subscriptions half's ``SubscriptionProcessor`` port (customers, payment methods,
subscriptions with coupons, invoices, charges, refunds).

It follows ``stripe_gateway``: one ``stripe.StripeClient`` (``api_base`` points it at the tests' fake server),
``stripe`` imported inside the methods (no cost at cold start), every mutating call sent with the idempotency key it
is given (calls made on behalf of one port call get that key plus a suffix), and failures translated at the boundary by
``stripe_gateway._raise_translated`` (connection failures, 409, 429, 5xx → ``UnavailableError``; other refusals →
``PaymentGatewayError``). The mapping functions below are pure and read Stripe's JSON shape (``to_dict()``), current
API first and the pre-2025 field names as a fallback.

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
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from usercredits.adapters.stripe_gateway import _raise_translated, load_stripe_keys
from usercredits.domain.models import Money
from usercredits.errors import ConflictError, InvalidRequestError, PaymentGatewayError
from usercredits.subscriptions.discounts import percent_of
from usercredits.subscriptions.instruments import (
    AndroidPayDetails,
    ApplePayDetails,
    CardDetails,
    InstrumentDetails,
    OtherDetails,
    PaymentMethodKind,
    PayPalDetails,
)
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    ProcessorItem,
    ProcessorState,
    SubscriptionStatus,
    SubscriptionStatusEvent,
    Transaction,
    TransactionCustomer,
    TransactionDiscount,
    TransactionKind,
    TransactionStatus,
    TransactionStatusEvent,
)
from usercredits.subscriptions.ports import (
    DiscountTerms,
    ProcessorCustomer,
    ProcessorDiscount,
    ProcessorPaymentMethod,
    ProcessorSubscription,
    SubscriptionTerms,
)
from usercredits.subscriptions.tracking import processor_id_for, synced_value

if TYPE_CHECKING:
    import stripe

Json = dict[str, Any]

#: Stripe subscription statuses → local ones (seeds-spec 5.13); ``trialing`` is Active with ``is_trial``.
SUBSCRIPTION_STATUSES: Mapping[str, SubscriptionStatus] = {
    "active": SubscriptionStatus.ACTIVE,
    "trialing": SubscriptionStatus.ACTIVE,
    "past_due": SubscriptionStatus.PAST_DUE,
    "unpaid": SubscriptionStatus.PAST_DUE,
    "paused": SubscriptionStatus.PAST_DUE,
    "canceled": SubscriptionStatus.CANCELED,
    "incomplete": SubscriptionStatus.PENDING,
    "incomplete_expired": SubscriptionStatus.EXPIRED,
}
#: Stripe refund statuses → local transaction statuses.
REFUND_STATUSES: Mapping[str, TransactionStatus] = {
    "succeeded": TransactionStatus.SETTLED,
    "pending": TransactionStatus.SETTLING,
    "requires_action": TransactionStatus.SETTLEMENT_PENDING,
    "failed": TransactionStatus.FAILED,
    "canceled": TransactionStatus.VOIDED,
}
_STARTED = frozenset({"active", "past_due", "unpaid", "paused", "canceled"})
_SUBSCRIPTION_EXPAND = ["discounts.source.coupon", "items.data.price"]
_LIST_LIMIT = 100
#: A discount starting this long after its period began came after that period's invoice (made with the
#: subscription, it starts within the same request).
_BILLED_WITH_PERIOD = timedelta(seconds=60)
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
        import stripe

        if not api_key:
            raise PaymentGatewayError("Stripe is not configured: empty secret key")
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
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
            "metadata": _customer_metadata(customer),
        }
        try:
            return processor_customer(
                self._client.v1.customers.create(params=params, options={"idempotency_key": idempotency_key})
            )
        except stripe.IdempotencyError:
            pass
        except stripe.StripeError as exc:
            _raise_translated(exc, "create the customer")
        found = self._find_customer(customer)
        if found is None:
            retry_key = _sub_key(idempotency_key, "retry", params)
            created = self._call(
                "create the customer",
                lambda: self._client.v1.customers.create(params=params, options={"idempotency_key": retry_key}),
            )
            return processor_customer(created)
        updated = self._call(
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
            match = self._first(
                "list the customers",
                lambda: self._client.v1.customers.list(params={"email": email, "limit": _LIST_LIMIT}),
                made_here,
            )
            if match is not None:
                return str(match["id"])
        query = f"metadata['customerId']:'{_search_literal(customer.customer_id)}'"
        try:
            match = self._first(
                "search the customers",
                lambda: self._client.v1.customers.search(params={"query": query, "limit": _LIST_LIMIT}),
                made_here,
                translate=False,
            )
        except stripe.InvalidRequestError:
            match = None  # search is not offered everywhere: the listing below still covers a lost answer's customer
        except stripe.StripeError as exc:
            _raise_translated(exc, "search the customers")
        if match is not None:
            return str(match["id"])
        since = int((datetime.now(UTC) - _RECENT_CUSTOMERS).timestamp())
        match = self._first(
            "list the customers",
            lambda: self._client.v1.customers.list(params={"created": {"gte": since}, "limit": _LIST_LIMIT}),
            made_here,
        )
        return None if match is None else str(match["id"])

    def update_customer(self, processor_id: str, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        """Send name, email, phone, metadata (keys removed locally are unset at Stripe) and the default payment
        method when it is attached already (a new one is made default when it is attached)."""
        metadata: Json = dict(_customer_metadata(customer))
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
        updated = self._call(
            "update the customer",
            lambda: self._client.v1.customers.update(
                processor_id, params=params, options={"idempotency_key": idempotency_key}
            ),
        )
        return processor_customer(updated)

    def retrieve_customer(self, processor_id: str) -> ProcessorCustomer | None:
        """The Stripe customer, or None when it is deleted or unknown there."""
        found = self._call_or_missing("read the customer", lambda: self._client.v1.customers.retrieve(processor_id))
        if found is None or found.get("deleted"):
            return None
        return processor_customer(found)

    # ---- payment methods -------------------------------------------------------------------------------------------

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        """A ``pm_...`` payment method, or None when Stripe does not know it; ``customer_id`` names its owner."""
        found = self._call_or_missing(
            "read the payment method", lambda: self._client.v1.payment_methods.retrieve(token)
        )
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
        attached = self._call(
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
        current = self._call("read the payment method", lambda: self._client.v1.payment_methods.retrieve(processor_id))
        return self._finish_payment_method(current, billing, make_default, idempotency_key)

    def detach_payment_method(self, processor_id: str, *, idempotency_key: str) -> None:
        self._call(
            "detach the payment method",
            lambda: self._client.v1.payment_methods.detach(processor_id, options={"idempotency_key": idempotency_key}),
        )

    def list_payment_methods(self, customer_processor_id: str) -> list[ProcessorPaymentMethod]:
        page = self._call(
            "list the payment methods",
            lambda: self._client.v1.customers.payment_methods.list(
                customer_processor_id, params={"limit": _LIST_LIMIT}
            ),
        )
        return [processor_payment_method(item) for item in self._all(page, "list the payment methods")]

    def _finish_payment_method(
        self, method: Any, billing: AddressFields | None, make_default: bool, key: str
    ) -> ProcessorPaymentMethod:
        values: Json = method.to_dict()
        if billing is not None:
            details: Any = billing_details(billing)
            values = self._call(
                "update the payment method",
                lambda: self._client.v1.payment_methods.update(
                    str(values["id"]),
                    params={"billing_details": details},
                    options={"idempotency_key": _sub_key(key, "billing", details)},
                ),
            ).to_dict()
        customer_id = _id_of(values.get("customer"))
        if make_default and customer_id is not None:
            self._call(
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
            "metadata": _subscription_metadata(terms),
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
            _raise_translated(exc, "create the subscription")
        # The key was first used with other parameters (terms edited after a lost answer): adopt what that call made.
        found = self._find_subscription(terms)
        if found is None:
            retry_key = _sub_key(idempotency_key, "retry", params)
            created = self._call(
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
        return self._first(
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

        current: Json = self._call(
            "read the subscription",
            lambda: self._client.v1.subscriptions.retrieve(processor_id, params={"expand": _SUBSCRIPTION_EXPAND}),
        ).to_dict()
        item = _first_item(current)
        available = _discount_objects(current)
        discounts: list[Json] = []
        for terms_discount in terms.discounts:
            kept = _kept_discount(available, terms_discount, terms.billing_frequency_months)
            if kept is not None:
                available.remove(kept)
                discounts.append({"discount": str(kept["id"])})
            else:
                discounts.append({"coupon": self._coupon_for(terms_discount, terms.billing_frequency_months)})
        metadata = _subscription_metadata(terms)
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
        if _id_of(item.get("price")) != terms.price_id:
            params["items"] = [{"id": str(item.get("id")), "price": terms.price_id}]

        def update(key: str) -> Any:
            return self._client.v1.subscriptions.update(processor_id, params=params, options={"idempotency_key": key})

        try:
            updated = update(idempotency_key)
        except stripe.IdempotencyError:
            updated = self._call("update the subscription", lambda: update(_sub_key(idempotency_key, "resend", params)))
        except stripe.StripeError as exc:
            _raise_translated(exc, "update the subscription")
        return processor_subscription(updated.to_dict())

    def cancel_subscription(
        self, processor_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProcessorSubscription:
        """Cancel now (``DELETE /v1/subscriptions/{id}``) or at the end of the paid period."""
        options: Any = {"idempotency_key": idempotency_key}
        if at_period_end:
            result = self._call(
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
            found = self._call_or_missing(
                "read the subscription",
                lambda: self._client.v1.subscriptions.retrieve(processor_id, params={"expand": _SUBSCRIPTION_EXPAND}),
            )
            if found is None or found.get("status") != "canceled":
                _raise_translated(exc, "cancel the subscription")
            return processor_subscription(found)
        except stripe.StripeError as exc:
            _raise_translated(exc, "cancel the subscription")
        return processor_subscription(result.to_dict())

    def list_subscriptions(self, customer_processor_id: str) -> list[ProcessorSubscription]:
        page = self._call(
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
        return [processor_subscription(item) for item in self._all(page, "list the subscriptions")]

    def subscription_from_event(self, payload: Mapping[str, Any]) -> ProcessorSubscription:
        return processor_subscription(payload)

    def _coupon_for(self, discount: DiscountTerms, months_per_cycle: int) -> str:
        """The id of the Stripe coupon for ``discount``, made now unless it exists (a retried sync).

        Its ``metadata.cycles`` is the discount's whole number of cycles; a discount that already ran some (it is
        applied anew) gets a coupon of its own for the cycles left, with ``metadata.cyclesUsed``.
        """
        import stripe

        total = _total_cycles(discount)
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
                _raise_translated(exc, "create the coupon")
        except stripe.StripeError as exc:
            _raise_translated(exc, "create the coupon")
        return coupon_id

    # ---- transactions ----------------------------------------------------------------------------------------------

    def list_transactions(self, customer_processor_id: str) -> list[Transaction]:
        """The customer's charges (one-off or from invoices) and their refunds, newest first; invoices give the
        subscription (local id, from its metadata), the plan's price and the discounts of each charge."""
        customer = self.retrieve_customer(customer_processor_id)
        invoices = self._all(
            self._call(
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
        charges = self._all(
            self._call(
                "list the charges",
                lambda: self._client.v1.charges.list(
                    params={"customer": customer_processor_id, "limit": _LIST_LIMIT, "expand": ["data.refunds"]}
                ),
            ),
            "list the charges",
        )
        by_charge = _invoices_by_charge(invoices)
        coupon_names = self._coupon_names(invoices)
        transactions: list[Transaction] = []
        for listed in charges:
            charge = self._with_all_refunds(listed)
            invoice = by_charge.get(str(charge["id"])) or by_charge.get(_id_of(charge.get("payment_intent")) or "")
            sale = charge_transaction(charge, invoice=invoice, customer=customer, coupon_names=coupon_names)
            transactions.append(sale)
            transactions.extend(
                refund_transaction(refund)
                for refund in _list_data(charge.get("refunds"))
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
        page = self._call(
            "list the refunds",
            lambda: self._client.v1.refunds.list(params={"charge": charge_id, "limit": _LIST_LIMIT}),
        )
        every = self._all(page, "list the refunds")
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
            _raise_translated(exc, "refund the charge")
        except stripe.StripeError as exc:
            _raise_translated(exc, "refund the charge")
        return refund_transaction(created.to_dict())

    def void(self, transaction_processor_id: str, *, idempotency_key: str) -> Transaction:
        """Cancel the payment intent of an uncaptured charge; refund a captured one in full (``metadata.void``).
        Returns the charge as a ``voided`` transaction."""
        charge: Json = self._call(
            "read the charge", lambda: self._client.v1.charges.retrieve(transaction_processor_id)
        ).to_dict()
        intent_id = _id_of(charge.get("payment_intent"))
        if not charge.get("captured") and intent_id is not None:
            self._call(
                "cancel the payment",
                lambda: self._client.v1.payment_intents.cancel(
                    intent_id, options={"idempotency_key": f"{idempotency_key}:cancel"}
                ),
            )
        elif not charge.get("refunded"):
            self._call(
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
            for discount in _list_data(invoice.get("discounts")):
                coupon = _coupon_of(discount)
                coupon_id = coupon.get("id") or _id_of((discount.get("source") or {}).get("coupon"))
                if coupon_id and coupon_id not in names:
                    found = coupon if coupon.get("name") else self._read_coupon(str(coupon_id))
                    names[str(coupon_id)] = str(found.get("name") or "")
                names[str(discount.get("id"))] = names.get(str(coupon_id), "")
        return names

    def _read_coupon(self, coupon_id: str) -> Json:
        found = self._call_or_missing("read the coupon", lambda: self._client.v1.coupons.retrieve(coupon_id))
        return found or {}

    # ---- plumbing --------------------------------------------------------------------------------------------------

    def _call[T](self, doing: str, call: Callable[[], T]) -> T:
        import stripe

        try:
            return call()
        except stripe.StripeError as exc:
            _raise_translated(exc, doing)

    def _call_or_missing(self, doing: str, call: Callable[[], Any]) -> Json | None:
        """The object as a dict, or None when Stripe answers 404 ``resource_missing``."""
        import stripe

        try:
            found: Json = call().to_dict()
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404 or exc.code == "resource_missing":
                return None
            _raise_translated(exc, doing)
        except stripe.StripeError as exc:
            _raise_translated(exc, doing)
        return found

    def _first(
        self, doing: str, call: Callable[[], Any], wanted: Callable[[Json], bool], *, translate: bool = True
    ) -> Json | None:
        """The first listed (or searched) object that is ``wanted``, reading further pages only as needed."""
        import stripe

        try:
            for item in call().auto_paging_iter():
                found: Json = item.to_dict()
                if wanted(found):
                    return found
            return None
        except stripe.StripeError as exc:
            if not translate:
                raise
            _raise_translated(exc, doing)

    def _all(self, page: stripe.ListObject[Any], doing: str) -> list[Json]:
        import stripe

        try:
            return [item.to_dict() for item in page.auto_paging_iter()]
        except stripe.StripeError as exc:
            _raise_translated(exc, doing)


# ---- mapping (pure) ------------------------------------------------------------------------------------------------


def coupon_id_for(discount: DiscountTerms, months_per_cycle: int) -> str:
    """The Stripe coupon id of a local discount: its id plus a digest of its original terms (new terms, new coupon).

    The whole number of cycles is hashed, not the cycles left, so the id stays the same as the discount runs.
    """
    terms = f"{discount.amount.amount}:{discount.amount.currency}:{_total_cycles(discount)}"
    terms += f":{months_per_cycle}:{discount.never_expires}"
    return f"uc-{discount.discount_id}-{hashlib.sha256(terms.encode()).hexdigest()[:10]}"


def _total_cycles(discount: DiscountTerms) -> int:
    """The discount's whole number of cycles: ``total_billing_cycles`` when known, else ``number_of_billing_cycles``
    (the cycles left, which is the whole number until the discount is first billed)."""
    return discount.total_billing_cycles or discount.number_of_billing_cycles


def _kept_discount(candidates: Iterable[Json], discount: DiscountTerms, months_per_cycle: int) -> Json | None:
    """The Stripe discount (of ``candidates``) already applying ``discount``'s terms, if any.

    Its coupon is the one ``coupon_id_for`` names (or one made from it for the cycles left). Without
    ``total_billing_cycles`` the cycles cannot be compared (``number_of_billing_cycles`` shrinks each cycle), so a
    coupon made for this discount with the same amount, currency and duration kind matches.
    """
    expected = coupon_id_for(discount, months_per_cycle)
    pairs = [(_coupon_of(candidate), candidate) for candidate in candidates]
    for coupon, candidate in pairs:
        coupon_id = str(coupon.get("id") or "")
        if coupon_id == expected or coupon_id.startswith(f"{expected}-"):
            return candidate
    if discount.total_billing_cycles:
        return None
    for coupon, candidate in pairs:
        if (
            (coupon.get("metadata") or {}).get("discountId") == discount.discount_id
            and coupon.get("amount_off") == discount.amount.amount
            and str(coupon.get("currency") or "").lower() == discount.amount.currency.lower()
            and (coupon.get("duration") == "forever") == discount.never_expires
        ):
            return candidate
    return None


def processor_customer(values: Any) -> ProcessorCustomer:
    data: Json = values if isinstance(values, dict) else values.to_dict()
    settings = data.get("invoice_settings") or {}
    return ProcessorCustomer(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        email=data.get("email") or None,
        phone=data.get("phone") or None,
        metadata={str(key): str(value) for key, value in (data.get("metadata") or {}).items()},
        default_payment_method_id=_id_of(settings.get("default_payment_method")),
        deleted=bool(data.get("deleted")),
    )


def processor_payment_method(data: Mapping[str, Any]) -> ProcessorPaymentMethod:
    """A Stripe PaymentMethod: its kind (cards in an Apple Pay or Google Pay wallet are those wallets), display
    fields, owner and billing details."""
    kind, details = instrument(data)
    return ProcessorPaymentMethod(
        id=str(data["id"]),
        kind=kind,
        details=details,
        customer_id=_id_of(data.get("customer")),
        billing=billing_fields(data.get("billing_details")),
    )


def instrument(data: Mapping[str, Any]) -> tuple[PaymentMethodKind, InstrumentDetails]:
    """The kind and display fields of a PaymentMethod, or of a charge's ``payment_method_details``."""
    kind = str(data.get("type") or "")
    name = (data.get("billing_details") or {}).get("name")
    if kind in {"card", "card_present"}:
        card = data.get(kind) or {}
        wallet = str((card.get("wallet") or {}).get("type") or "")
        months = {"expiration_month": card.get("exp_month"), "expiration_year": card.get("exp_year")}
        if wallet == "apple_pay":
            return PaymentMethodKind.APPLE_PAY, ApplePayDetails(
                payment_instrument_name=f"{card.get('brand') or 'card'} {card.get('last4') or ''}".strip(),
                card_type=card.get("brand"),
                last4=card.get("last4"),
                **months,
            )
        if wallet in {"google_pay", "android_pay"}:
            return PaymentMethodKind.ANDROID_PAY, AndroidPayDetails(
                source_card_type=card.get("brand"),
                source_card_last4=card.get("last4"),
                virtual_card_last4=(card.get("wallet") or {}).get("dynamic_last4"),
                **months,
            )
        iin, last4 = card.get("iin"), card.get("last4")
        return PaymentMethodKind.CARD, CardDetails(
            brand=card.get("brand"),
            last4=last4,
            masked_number=f"{iin}******{last4}" if iin and last4 else None,
            cardholder_name=name,
            country_of_issuance=card.get("country"),
            issuing_bank=card.get("issuer"),
            **months,
        )
    if kind == "paypal":
        paypal = data.get("paypal") or {}
        return PaymentMethodKind.PAYPAL, PayPalDetails(
            email=paypal.get("payer_email"),
            name=paypal.get("payer_name") or name,
            payer_id=paypal.get("payer_id"),
            country_code=paypal.get("country"),
        )
    return PaymentMethodKind.OTHER, OtherDetails(processor_type=kind or "unknown", label=name)


def billing_fields(details: Mapping[str, Any] | None) -> AddressFields | None:
    """Stripe ``billing_details`` as an address, or None when it says nothing."""
    if not details:
        return None
    address = details.get("address") or {}
    fields = AddressFields(
        name=details.get("name") or None,
        phone=details.get("phone") or None,
        country=address.get("country") or None,
        locality=address.get("city") or None,
        street_address=address.get("line1") or None,
        extended_address=address.get("line2") or None,
        postal_code=address.get("postal_code") or None,
    )
    return None if fields == AddressFields() else fields


def billing_details(address: AddressFields) -> Json:
    """An address as Stripe ``billing_details`` (empty strings unset fields; company has no place there)."""
    return {
        "name": address.name or "",
        "phone": address.phone or "",
        "address": {
            "country": address.country or "",
            "city": address.locality or "",
            "line1": address.street_address or "",
            "line2": address.extended_address or "",
            "postal_code": address.postal_code or "",
        },
    }


def processor_subscription(data: Mapping[str, Any]) -> ProcessorSubscription:
    """A Stripe Subscription (as returned, listed or sent in a ``customer.subscription.*`` event) in local terms.

    Periods are read from the first item (current API) or the subscription (older versions). A trial is Active with
    ``is_trial``; a queued start (``metadata.queued``) is Pending with no paid-through date until it starts.
    """
    status = str(data.get("status") or "")
    metadata = data.get("metadata") or {}
    item = _first_item(data)
    price = item.get("price") or {}
    months = int(((price.get("recurring") or {}).get("interval_count")) or 1)
    period_start = _time(item.get("current_period_start") or data.get("current_period_start"))
    period_end = _time(item.get("current_period_end") or data.get("current_period_end"))
    trial_end = _time(data.get("trial_end"))
    queued = status == "trialing" and bool(metadata.get("queued"))
    is_trial = status == "trialing" and not queued
    local_status = SubscriptionStatus.PENDING if queued else SUBSCRIPTION_STATUSES.get(status)
    if local_status is None:
        raise PaymentGatewayError(f"Stripe answered a subscription with an unknown status ({status or 'none'})")
    never_billed = bool(metadata.get("queued")) and trial_end is not None and (period_end or trial_end) <= trial_end
    started = status in _STARTED and not never_billed
    paid_through = period_end if started else None
    since = _status_since(data, status, period_start)
    return ProcessorSubscription(
        id=str(data["id"]),
        status=local_status,
        price=Money(amount=int(price.get("unit_amount") or 0), currency=str(price.get("currency") or "usd")),
        price_id=_id_of(price) or "",
        is_trial=is_trial,
        subscription_id=metadata.get("subscriptionId"),
        payment_method_id=_id_of(data.get("default_payment_method")),
        first_billing_date=trial_end or _time(data.get("start_date")),
        paid_through_date=paid_through,
        billing_period_start_date=period_start if started else None,
        billing_period_end_date=period_end if started else None,
        next_billing_date=trial_end if not started else period_end,
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        current_billing_cycle=_cycles_since(_time(data.get("start_date")), period_start, months) if started else 0,
        discounts=tuple(
            _processor_discount(discount, price, months, period_start if started else None)
            for discount in _discount_objects(data)
        ),
        status_history=(SubscriptionStatusEvent(status=local_status, timestamp=since),) if since else (),
        created_at=_time(data.get("created")),
    )


def charge_transaction(
    charge: Mapping[str, Any],
    *,
    invoice: Mapping[str, Any] | None = None,
    customer: ProcessorCustomer | None = None,
    coupon_names: Mapping[str, str] | None = None,
) -> Transaction:
    """A Stripe Charge as a sale transaction (its processor id is also its local id until merged)."""
    status = charge_status(charge)
    created = _time(charge.get("created")) or datetime.now(UTC)
    currency = str(charge.get("currency") or "usd")
    details = charge.get("payment_method_details") or {}
    instrument_details = instrument(details)[1] if details.get("type") else None
    parent = (invoice or {}).get("parent") or {}
    subscription_details = parent.get("subscription_details") or {}
    names = coupon_names or {}
    return Transaction(
        transaction_id=str(charge["id"]),
        processor=ProcessorItem(id=str(charge["id"]), state=ProcessorState.SAVED),
        kind=TransactionKind.SALE,
        amount=Money(amount=int(charge.get("amount") or 0), currency=currency),
        status=status,
        status_history=[TransactionStatusEvent(status=status, timestamp=created)],
        subscription_id=(subscription_details.get("metadata") or {}).get("subscriptionId"),
        plan_processor_id=_invoice_price(invoice) if invoice else None,
        billing=billing_fields(charge.get("billing_details")),
        customer=TransactionCustomer(name=customer.name or None, email=customer.email, phone=customer.phone)
        if customer
        else None,
        discounts=[
            TransactionDiscount(
                amount=Money(amount=int(entry.get("amount") or 0), currency=currency),
                name=names.get(str(_id_of(entry.get("discount"))), ""),
            )
            for entry in (invoice or {}).get("total_discount_amounts") or []
        ],
        instrument=instrument_details,
        created_at=created,
    )


def charge_status(charge: Mapping[str, Any]) -> TransactionStatus:
    """succeeded and captured → settled; uncaptured → authorized (voided once released); pending → settling;
    failed → processor_declined; a charge voided by a full ``metadata.void`` refund → voided."""
    status = str(charge.get("status") or "")
    if status == "failed":
        return TransactionStatus.PROCESSOR_DECLINED
    if status == "pending":
        return TransactionStatus.SETTLING
    if not charge.get("captured"):
        return TransactionStatus.VOIDED if charge.get("refunded") else TransactionStatus.AUTHORIZED
    voids = [r for r in _list_data(charge.get("refunds")) if (r.get("metadata") or {}).get("void")]
    return TransactionStatus.VOIDED if voids else TransactionStatus.SETTLED


def refund_transaction(refund: Mapping[str, Any]) -> Transaction:
    """A Stripe Refund as a refund transaction; ``refunded_transaction_id`` is the charge's processor id."""
    status = REFUND_STATUSES.get(str(refund.get("status") or ""), TransactionStatus.SETTLING)
    created = _time(refund.get("created")) or datetime.now(UTC)
    return Transaction(
        transaction_id=str(refund["id"]),
        processor=ProcessorItem(id=str(refund["id"]), state=ProcessorState.SAVED),
        kind=TransactionKind.REFUND,
        amount=Money(amount=int(refund.get("amount") or 0), currency=str(refund.get("currency") or "usd")),
        status=status,
        status_history=[TransactionStatusEvent(status=status, timestamp=created)],
        refunded_transaction_id=_id_of(refund.get("charge")),
        created_at=created,
    )


def _processor_discount(
    discount: Mapping[str, Any], price: Mapping[str, Any], months: int, period_start: datetime | None
) -> ProcessorDiscount:
    coupon = _coupon_of(discount)
    metadata = coupon.get("metadata") or {}
    currency = str(coupon.get("currency") or price.get("currency") or "usd")
    if coupon.get("amount_off") is not None:
        amount = int(coupon["amount_off"])
    else:  # a percent coupon made at Stripe directly: exact, rounded as local percent discounts are
        percent = Decimal(str(coupon.get("percent_off") or 0))
        amount = percent_of(Money(amount=int(price.get("unit_amount") or 0), currency=currency), percent).amount
    cycles = metadata.get("cycles")
    if cycles is None:
        duration = coupon.get("duration_in_months")
        cycles = -(-int(duration) // months) if duration else 1
    used = int(metadata.get("cyclesUsed") or 0)  # ran before this coupon was made for the cycles left
    billed = _discount_cycles(_time(discount.get("start")), period_start, months) if period_start else 0
    return ProcessorDiscount(
        processor_id=str(discount.get("id")),
        amount=Money(amount=amount, currency=currency),
        number_of_billing_cycles=max(1, int(cycles)),
        current_billing_cycle=used + billed,
        discount_id=metadata.get("discountId"),
        name=str(coupon.get("name") or ""),
    )


def _discount_cycles(start: datetime | None, period_start: datetime, months_per_cycle: int) -> int:
    """The invoices a discount starting at ``start`` was applied to, up to the period starting at ``period_start``.

    One added after that period's invoice (more than a minute after the period began: a discount made with the
    subscription starts in the same request) has not been billed yet: 0.
    """
    if start is None:
        return 0
    if start > period_start + _BILLED_WITH_PERIOD:
        return 0
    return _cycles_since(start, period_start, months_per_cycle)


def _discount_objects(data: Mapping[str, Any]) -> list[Json]:
    """The subscription's discounts that were expanded (bare ids carry nothing to map)."""
    return [item for item in data.get("discounts") or [] if isinstance(item, dict)]


def _coupon_of(discount: Mapping[str, Any]) -> Json:
    coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
    return coupon if isinstance(coupon, dict) else {"id": coupon} if coupon else {}


def _first_item(data: Mapping[str, Any]) -> Json:
    items = _list_data(data.get("items"))
    return items[0] if items else {}


def _list_data(value: Any) -> list[Json]:
    if isinstance(value, dict):
        return [item for item in value.get("data") or [] if isinstance(item, dict)]
    return [item for item in value or [] if isinstance(item, dict)]


def _invoices_by_charge(invoices: Iterable[Json]) -> dict[str, Json]:
    """Invoices by the charge (and the payment intent) that paid them."""
    found: dict[str, Json] = {}
    for invoice in invoices:
        for entry in _list_data(invoice.get("payments")):
            payment = entry.get("payment") or {}
            for key in ("charge", "payment_intent"):
                if (value := _id_of(payment.get(key))) is not None:
                    found[value] = invoice
        for key in ("charge", "payment_intent"):  # API versions before 2025-03-31
            if (value := _id_of(invoice.get(key))) is not None:
                found[value] = invoice
    return found


def _invoice_price(invoice: Mapping[str, Any]) -> str | None:
    for line in _list_data(invoice.get("lines")):
        details = (line.get("pricing") or {}).get("price_details") or {}
        price = _id_of(details.get("price")) or _id_of(line.get("price"))
        if price:
            return price
    return None


def _customer_metadata(customer: Customer) -> dict[str, str]:
    metadata = {**customer.metadata, "userId": customer.user_id, "customerId": customer.customer_id}
    if customer.ip_address:
        metadata["ipAddress"] = customer.ip_address
    return metadata


def _subscription_metadata(terms: SubscriptionTerms) -> Json:
    metadata: Json = {"subscriptionId": terms.subscription_id}
    if terms.user_id:
        metadata["userId"] = terms.user_id
    if terms.descriptor is not None and terms.descriptor.name:
        metadata["descriptor"] = terms.descriptor.name  # Stripe has no per-subscription statement descriptor
    return metadata


def _queued(terms: SubscriptionTerms) -> bool:
    return terms.first_billing_date is not None and terms.first_billing_date > datetime.now(UTC)


def _status_since(data: Mapping[str, Any], status: str, period_start: datetime | None) -> datetime | None:
    if status == "canceled":
        return _time(data.get("canceled_at") or data.get("ended_at"))
    if status in {"past_due", "unpaid"}:
        return period_start or _time(data.get("start_date"))
    return _time(data.get("start_date") or data.get("created"))


def _cycles_since(start: datetime | None, period_start: datetime | None, months_per_cycle: int) -> int:
    """Billing cycles begun from ``start`` up to the period starting at ``period_start`` (the first counts)."""
    if start is None or period_start is None:
        return 0
    months = (period_start.year - start.year) * 12 + period_start.month - start.month
    if period_start.day < start.day:
        months -= 1
    return max(0, months) // max(1, months_per_cycle) + 1


def _search_literal(value: str) -> str:
    """``value`` quoted for a Stripe search query string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _sub_key(key: str, step: str, params: Mapping[str, Any]) -> str:
    """The key of one call made for a port call: the port's key, the step, and a digest of what it sends."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{key}:{step}:{digest}"


def _id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    return str(value) if value else None


def _time(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None
