"""Stripe customers and their payment methods, for ``billing.StripeSubscriptionProcessor`` (see its module for the
choices made).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from usercredits.adapters.stripe.billing_mapping import (
    Json,
    billing_details,
    customer_metadata,
    id_of,
    processor_customer,
    processor_payment_method,
)
from usercredits.adapters.stripe.client import (
    LIST_LIMIT,
    StripeResource,
    call,
    call_or_missing,
    create_or_find,
    every_item,
    first_wanted,
    raise_translated,
    step_key,
)
from usercredits.subscriptions.models import AddressFields, Customer
from usercredits.subscriptions.ports import ProcessorCustomer, ProcessorPaymentMethod
from usercredits.subscriptions.tracking import processor_id_for, synced_value

if TYPE_CHECKING:
    pass

#: How far back a lost create is looked for by creation time (Customer search may lag behind by about a minute).
_RECENT_CUSTOMERS = timedelta(hours=1)


class StripeCustomers(StripeResource):
    """The customers and payment methods half of the ``SubscriptionProcessor`` port."""

    # ---- customers -------------------------------------------------------------------------------------------------

    def create_customer(self, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        """Create the Stripe customer, with ``metadata.userId``/``customerId`` so webhooks find the local one.

        A retry whose key was first used with other parameters (the profile was edited after a lost answer) gets
        ``idempotency_error``: the customer the first call made is then found by its ``metadata.customerId`` and
        brought up to date, or, when that call made none, created under a key that covers the parameters.
        """

        params: Any = {
            "name": customer.name,
            "email": customer.email or "",
            "phone": customer.phone or "",
            "metadata": customer_metadata(customer),
        }
        created, found = create_or_find(
            "create the customer",
            lambda key: self._client.v1.customers.create(params=params, options={"idempotency_key": key}),
            key=idempotency_key,
            params=params,
            find=lambda: self._find_customer(customer),
        )
        if created is not None:
            return processor_customer(created)
        assert found is not None  # one of the two, always
        updated = call(
            "update the customer",
            lambda: self._client.v1.customers.update(
                found, params=params, options={"idempotency_key": step_key(idempotency_key, "adopt", params)}
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
                lambda: self._client.v1.customers.list(params={"email": email, "limit": LIST_LIMIT}),
                made_here,
            )
            if match is not None:
                return str(match["id"])
        query = f"metadata['customerId']:'{_search_literal(customer.customer_id)}'"
        try:
            match = first_wanted(
                "search the customers",
                lambda: self._client.v1.customers.search(params={"query": query, "limit": LIST_LIMIT}),
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
            lambda: self._client.v1.customers.list(params={"created": {"gte": since}, "limit": LIST_LIMIT}),
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
            lambda: self._client.v1.customers.payment_methods.list(customer_processor_id, params={"limit": LIST_LIMIT}),
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
                    options={"idempotency_key": step_key(key, "billing", details)},
                ),
            ).to_dict()
        customer_id = id_of(values.get("customer"))
        if make_default and customer_id is not None:
            call(
                "set the default payment method",
                lambda: self._client.v1.customers.update(
                    customer_id,
                    params={"invoice_settings": {"default_payment_method": str(values["id"])}},
                    options={"idempotency_key": step_key(key, "default", {"default": str(values["id"])})},
                ),
            )
        return processor_payment_method(values)


def _search_literal(value: str) -> str:
    """``value`` quoted for a Stripe search query string."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
