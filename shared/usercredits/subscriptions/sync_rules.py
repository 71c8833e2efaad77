"""Pure rules of saveProcessor (docs/rules.md#processor-sync, #payment-lock): what to send, under which idempotency
key, and how to forget what never reached the processor.

The ``saving`` use case walks the customer in the seed's order (customer, payment methods, subscriptions), asks these
functions what each item needs, calls the processor with ``idempotency_key``, and records each result
(``results``). Nothing is rolled back on failure: the next sync completes it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

from usercredits.errors import ConflictError
from usercredits.subscriptions.models import (
    Customer,
    DiscountKind,
    PaymentMethod,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
)
from usercredits.subscriptions.ports import DiscountTerms, Redemption, SubscriptionTerms
from usercredits.subscriptions.tracking import processor_id_for, revert, synced_value, track

_COUPON_KINDS = frozenset({DiscountKind.COUPON, DiscountKind.COUPON_RESTRICTED})
_ENDED = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED})


class SyncAction(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CANCEL = "cancel"
    NONE = "none"


def subscription_sync_action(subscription: Subscription) -> SyncAction:
    """What a sync does with a subscription (the seed driver's rules, in order).

    Changed and newly canceled: cancel. Local: nothing. Changed otherwise: update. Initial: create (unless it was
    withdrawn before ever being sent). Saved: nothing.
    """
    state = subscription.processor.state
    if state is ProcessorState.CHANGED:
        newly_canceled = (
            subscription.status is SubscriptionStatus.CANCELED
            and synced_value(subscription, "status") != SubscriptionStatus.CANCELED.value
        )
        return SyncAction.CANCEL if newly_canceled else SyncAction.UPDATE
    if state is ProcessorState.INITIAL and not subscription.deleted:
        return SyncAction.CREATE
    return SyncAction.NONE


def cancel_pending(subscription: Subscription) -> bool:
    """True when a cancel (now or at period end), or its undoing (a replaced subscription renewing again when its
    replacement is canceled before it starts), is saved locally but not at the processor yet: what the cancel routes
    complete in the request, and a sync otherwise."""
    action = subscription_sync_action(subscription)
    if subscription.processor.state is not ProcessorState.CHANGED or action is SyncAction.NONE:
        return False
    synced_end = synced_value(subscription, "cancel_at_period_end") is True
    return action is SyncAction.CANCEL or subscription.cancel_at_period_end is not synced_end


def replaced_to_hold(customer: Customer, subscription_id: str) -> list[str]:
    """The subscriptions ``subscription_id`` replaces that would still renew, while it is about to be created at the
    processor: the sync first sets them to end at their period end, so that from the first call on no failure can
    leave two subscriptions that both charge again (docs/rules.md#replaced-subscriptions)."""
    new = next(sub for sub in customer.subscriptions if sub.subscription_id == subscription_id)
    if subscription_sync_action(new) is not SyncAction.CREATE:
        return []
    return [sub.subscription_id for sub in _replaced(customer, new) if not sub.cancel_at_period_end]


def hold_replaced(customer: Customer, subscription_id: str, now: datetime) -> Customer:
    """The subscriptions of ``replaced_to_hold`` set to end at their period end (pending: the sync sends them)."""
    holding = set(replaced_to_hold(customer, subscription_id))
    subscriptions = [
        track(sub.model_copy(update={"cancel_at_period_end": True, "updated_at": now}))
        if sub.subscription_id in holding
        else sub
        for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions, "updated_at": now})


def replaced_to_end(customer: Customer, subscription_id: str) -> list[str]:
    """The subscriptions ``subscription_id`` replaces that are not ended yet, once it is at the processor (not
    withdrawn, not canceled): what the sync ends right after sending it. A lower level (an upgrade) is canceled now
    even when it was held to its period end first; one set to end at its period end already needs nothing more."""
    new = next(sub for sub in customer.subscriptions if sub.subscription_id == subscription_id)
    if new.processor.id is None or new.deleted or new.status in _ENDED:
        return []
    return [
        sub.subscription_id
        for sub in _replaced(customer, new)
        if not sub.cancel_at_period_end or sub.plan.level < new.plan.level
    ]


def _replaced(customer: Customer, new: Subscription) -> list[Subscription]:
    """The subscriptions ``new`` replaces that are at the processor and not ended."""
    return [
        sub
        for sub in customer.subscriptions
        if sub.subscription_id in new.replaces
        and sub.processor.id is not None
        and not sub.deleted
        and sub.status not in _ENDED
    ]


def end_replaced(customer: Customer, subscription_id: str, now: datetime) -> Customer:
    """The subscriptions ``subscription_id`` replaces (``replaced_to_end``) marked ended locally, for the sync to send:
    a lower level is canceled now (an upgrade, which started now: our upgrade credit is its discount, no processor
    proration); an equal or higher one at its period end (the new one is queued behind it and starts at the
    processor when it ends: never a renewal of both)."""
    ending = set(replaced_to_end(customer, subscription_id))
    new = next(sub for sub in customer.subscriptions if sub.subscription_id == subscription_id)

    def ended(sub: Subscription) -> Subscription:
        upgrade = sub.plan.level < new.plan.level
        update = {"status": SubscriptionStatus.CANCELED} if upgrade else {"cancel_at_period_end": True}
        return track(sub.model_copy(update={**update, "updated_at": now}))

    subscriptions = [ended(sub) if sub.subscription_id in ending else sub for sub in customer.subscriptions]
    return customer.model_copy(update={"subscriptions": subscriptions, "updated_at": now})


def payment_method_needs_update(customer: Customer, method: PaymentMethod) -> bool:
    """True when a synced payment method must be sent again (the seed's isPaymentMethodChanged).

    That is: a new token was given (not cleared to null), its billing address moved, or it just became the
    customer's default. A payment method never synced is created instead, so this is False for it.
    """
    if method.processor.id is None:
        return False
    new_token = method.token is not None and method.token != synced_value(method, "token")
    moved = method.billing_address_id != synced_value(method, "billing_address_id")
    is_default = customer.default_payment_method_id == method.payment_method_id
    became_default = is_default and synced_value(customer, "default_payment_method_id") != method.payment_method_id
    return new_token or moved or became_default


def subscription_terms(customer: Customer, subscription: Subscription) -> SubscriptionTerms:
    """What to send to the processor for ``subscription`` (its customer and payment method must be synced first).

    Raises ConflictError when the customer or the payment method is not at the processor yet, or the plan has no
    processor price.
    """
    if customer.processor.id is None:
        raise ConflictError("Customer not saved to processor")
    price_id = subscription.plan.processor_plan_id
    if price_id is None:
        raise ConflictError(f"plan {subscription.plan.plan_id} has no processor price")
    method_id = processor_id_for(subscription.payment_method_id, customer.payment_methods)
    if subscription.payment_method_id is not None and method_id is None:
        raise ConflictError("Payment method not saved to processor")
    return SubscriptionTerms(
        subscription_id=subscription.subscription_id,
        customer_processor_id=customer.processor.id,
        price_id=price_id,
        payment_method_processor_id=method_id,
        first_billing_date=subscription.first_billing_date,
        discounts=tuple(
            DiscountTerms(
                discount_id=discount.discount_id,
                amount=discount.amount,
                number_of_billing_cycles=discount.cycles_left,
                total_billing_cycles=discount.number_of_billing_cycles,
                never_expires=discount.never_expires,
                name=discount.name,
            )
            for discount in subscription.discounts
            if discount.never_expires or discount.cycles_left > 0
        ),
        descriptor=subscription.descriptor,
        cancel_at_period_end=subscription.cancel_at_period_end,
        user_id=customer.user_id,
        billing_frequency_months=subscription.plan.billing_frequency_months,
        is_trial=subscription.is_trial,
    )


def idempotency_key(
    action: str, item_id: str, content: Mapping[str, object] | None = None, *, after: int | str | None = None
) -> str:
    """The processor idempotency key of one sync call.

    A create depends on the local id only, so a retry after a failure halfway returns the object the first attempt
    made whatever was edited since. An update or refund also depends on what is sent (so a retry with other
    parameters is not a replay) and on ``after``, something that only moves forward (the customer's version as
    loaded, a refund count): content alone repeats (X -> Y -> X -> Y) and Stripe would replay the first Y's answer
    without doing anything. A create that must not reuse an earlier one (a customer deleted at the processor made
    again) passes the previous processor id as ``after``.
    """
    base = f"{action}:{item_id}" if after is None else f"{action}:{item_id}:{after}"
    if content is None:
        return base
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f"{base}:{digest}"


def coupon_redemptions_due(customer: Customer) -> list[Redemption]:
    """Coupon discounts about to reach the processor: each use must be counted (``CouponRepository.redeem``, which
    finds the ones counted at subscribe already) before the discount is sent."""
    return [
        Redemption(
            coupon_code=discount.coupon_code,
            customer_id=customer.customer_id,
            subscription_id=sub.subscription_id,
            discount_id=discount.discount_id,
            restricted=discount.kind is DiscountKind.COUPON_RESTRICTED,
        )
        for sub in customer.subscriptions
        if not sub.deleted and sub.processor.state is not ProcessorState.LOCAL
        for discount in sub.discounts
        if discount.kind in _COUPON_KINDS and discount.coupon_code is not None and discount.processor.id is None
    ]


def reset_processor(customer: Customer) -> Customer:
    """Forget what never reached the processor (docs/rules.md#processor-states).

    Addresses, payment methods and subscriptions never synced are dropped, and edits of synced items (the customer
    included) are reverted to their synced values, state ``saved``; local subscriptions and transactions stay.
    Links to dropped items (the default payment method of a never-synced customer) are cleared.
    """
    addresses = [revert(item) for item in customer.addresses if item.processor.state is not ProcessorState.INITIAL]
    methods = [revert(item) for item in customer.payment_methods if item.processor.state is not ProcessorState.INITIAL]
    subscriptions = [
        revert(item) for item in customer.subscriptions if item.processor.state is not ProcessorState.INITIAL
    ]
    reset = revert(customer).model_copy(
        update={"addresses": addresses, "payment_methods": methods, "subscriptions": subscriptions}
    )
    if reset.default_payment_method_id not in {method.payment_method_id for method in methods}:
        reset = reset.model_copy(update={"default_payment_method_id": None})
    return reset
