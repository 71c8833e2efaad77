"""Stripe subscriptions and the coupons their discounts become, for ``billing.StripeSubscriptionProcessor`` (see its
module for the choices made).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from usercredits.adapters.stripe.billing_mapping import Json, id_of
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
from usercredits.adapters.stripe.subscription_mapping import (
    coupon_id_for,
    discount_objects,
    first_item,
    kept_discount,
    processor_subscription,
    subscription_metadata,
    total_cycles,
)
from usercredits.subscriptions.ports import DiscountTerms, ProcessorSubscription, SubscriptionTerms

if TYPE_CHECKING:
    pass

_SUBSCRIPTION_EXPAND = ["discounts.source.coupon", "items.data.price"]


class StripeSubscriptions(StripeResource):
    """The subscriptions half of the ``SubscriptionProcessor`` port (discounts sent as coupons)."""

    def create_subscription(self, terms: SubscriptionTerms, *, idempotency_key: str) -> ProcessorSubscription:
        """Create the subscription on the plan's price; discounts become coupons first; a future first billing date
        is sent as ``trial_end``: a trial's end, or a queued start (``metadata.queued``).

        On ``idempotency_error`` (the key's first use had other terms) the subscription that first call made is
        updated to these terms (never its start date); when it made none, one is created under a key covering
        the parameters.
        """

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
        if _starts_later(terms):
            assert terms.first_billing_date is not None
            params["trial_end"] = int(terms.first_billing_date.timestamp())
            if not terms.is_trial:  # a queued start, read back as pending; a trial is read back as a trial
                params["metadata"]["queued"] = "true"
        # A key first used with other parameters (terms edited after a lost answer): adopt what that call made.
        created, found = create_or_find(
            "create the subscription",
            lambda key: self._client.v1.subscriptions.create(params=params, options={"idempotency_key": key}).to_dict(),
            key=idempotency_key,
            params=params,
            find=lambda: self._find_subscription(terms),
        )
        if created is not None:
            return processor_subscription(created)
        assert found is not None  # one of the two, always
        if found.get("status") in {"canceled", "incomplete_expired"}:
            return processor_subscription(found)
        adopt_key = step_key(idempotency_key, "adopt", dataclasses.asdict(terms))
        return self.update_subscription(str(found["id"]), terms, idempotency_key=adopt_key)

    def _find_subscription(self, terms: SubscriptionTerms) -> Json | None:
        """The customer's Stripe subscription made for the local one (``metadata.subscriptionId``), if any."""
        return first_wanted(
            "list the subscriptions",
            lambda: self._client.v1.subscriptions.list(
                params={
                    "customer": terms.customer_processor_id,
                    "status": "all",
                    "limit": LIST_LIMIT,
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
            updated = call("update the subscription", lambda: update(step_key(idempotency_key, "resend", params)))
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
                    "limit": LIST_LIMIT,
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


def _starts_later(terms: SubscriptionTerms) -> bool:
    return terms.first_billing_date is not None and terms.first_billing_date > datetime.now(UTC)
