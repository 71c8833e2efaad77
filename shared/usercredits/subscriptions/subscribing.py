"""Subscribing, coupons on subscriptions, and cancelling, all local until the next sync.

Rules: docs/rules.md#plan-levels, #coupons, #cancelling.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from usercredits.errors import InvalidRequestError
from usercredits.kernel.ids import new_ulid
from usercredits.subscriptions.coupons import INVALID, LIMIT_REACHED, coupon_discount, ensure_valid_coupon
from usercredits.subscriptions.discounts import add_discounts, previous_subscription_credit
from usercredits.subscriptions.entitlement import GRACE_PERIOD, after_trial, initialize_local_dates, valid_subscriptions
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import (
    Coupon,
    Customer,
    Descriptor,
    Discount,
    Plan,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
)
from usercredits.subscriptions.tracking import track


def add_subscription(
    customer: Customer,
    plan: Plan,
    now: datetime,
    *,
    payment_method_id: str | None = None,
    descriptor: Descriptor | None = None,
    trial: bool = False,
    grace: timedelta = GRACE_PERIOD,
) -> tuple[Customer, Subscription]:
    """Subscribe to ``plan`` at ``now``: queue behind an equal or better plan, or upgrade with a credit
    (docs/rules.md#plan-levels).

    When a valid subscription of the same or a higher level (and not past due) exists, the new one starts when the
    latest-ending of them ends (a trial: at its first billing date), with no credit. Otherwise it starts now, with a
    credit for the unused part of each valid lower-level processor-side one (``upgrade_credits``). Either way it
    ``replaces`` every subscription at the processor that still bills, entitled or not (one whose period was refunded
    still renews at the processor): lower levels end now, the others at their period end; and it withdraws the
    customer's subscriptions never sent (the newest choice wins; their coupon uses are given back). The new one is
    ``initial``:
    nothing is sent, and nothing replaced ends, before the next sync (docs/rules.md#replaced-subscriptions). With
    ``trial``, a plan with trial terms gives a trial (docs/rules.md#trials): only to a subscription that starts
    now, and once per customer and plan.
    """
    if payment_method_id is not None and customer.payment_method(payment_method_id).deleted:
        raise InvalidRequestError(f"payment method {payment_method_id} was removed at the payment processor")
    customer = _withdraw_unsent(customer, now)
    valid = valid_subscriptions(customer, now, grace)
    wait_for = sorted(
        (sub for sub in valid if sub.plan.level >= plan.level and sub.status is not SubscriptionStatus.PAST_DUE),
        key=lambda sub: (_period_end(sub) is not None, _period_end(sub) or now),
        reverse=True,
    )
    subscription = Subscription(
        subscription_id=new_ulid(now),
        plan=plan,
        price=plan.price,
        payment_method_id=payment_method_id,
        descriptor=descriptor,
        first_billing_date=_start_after(wait_for[0]) if wait_for else None,
        replaces=[sub.subscription_id for sub in customer.subscriptions if _at_processor(sub) and still_bills(sub)],
        created_at=now,
    )
    if not wait_for:
        refundable = [
            sub for sub in valid if sub.processor.state is not ProcessorState.LOCAL and sub.plan.level < plan.level
        ]
        subscription = add_discounts(subscription, upgrade_credits(subscription, refundable, now))
        if trial and plan.trial_duration is not None and not _had_plan(customer, plan):
            subscription = _with_trial(subscription, plan)
    updated = customer.model_copy(update={"subscriptions": [*customer.subscriptions, subscription], "updated_at": now})
    return updated, subscription


def _at_processor(subscription: Subscription) -> bool:
    return subscription.processor.state in (ProcessorState.SAVED, ProcessorState.CHANGED)


def _withdraw_unsent(customer: Customer, now: datetime) -> Customer:
    """The customer with its never-sent subscriptions withdrawn (``cancel_subscription`` of each)."""
    for sub in customer.subscriptions:
        if sub.processor.state is ProcessorState.INITIAL and not sub.deleted:
            customer, _ = cancel_subscription(customer, sub.subscription_id, now)
    return customer


def still_bills(subscription: Subscription) -> bool:
    """True for a processor-side subscription that will bill again: not local, not canceled or expired, not set to
    cancel at its period end (what a new subscription must end so the customer is never billed twice)."""
    return (
        subscription.processor.state is not ProcessorState.LOCAL
        and subscription.status not in (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED)
        and not subscription.cancel_at_period_end
        and not subscription.deleted
    )


def upgrade_credits(subscription: Subscription, previous: list[Subscription], now: datetime) -> list[Discount]:
    """An upgrade's credit for the unused part of each lower subscription it follows
    (``discounts.previous_subscription_credit``), their total capped at the new price (the first ones, by
    precedence, credited first)."""
    credits: list[Discount] = []
    left = subscription.price.amount
    for sub in previous:
        credit = previous_subscription_credit(subscription, sub, now)
        if credit is None or left == 0:
            continue
        amount = min(credit.amount.amount, left)
        left -= amount
        credits.append(credit.model_copy(update={"amount": credit.amount.model_copy(update={"amount": amount})}))
    return credits


def add_local_subscription(
    customer: Customer, plan: Plan, now: datetime, *, trial: bool = False
) -> tuple[Customer, Subscription]:
    """An app-managed subscription, never sent to the processor (the seed's ``local`` state: a comp, or a trial the
    app gives), active from ``now`` with its billing dates filled locally (``entitlement.initialize_local_dates``):
    it entitles by the same rules as any other, is never billed, earns no upgrade credit and is never ended by a
    replacement. A trial takes the plan's trial terms (422 for a plan without them)."""
    if trial and plan.trial_duration is None:
        raise InvalidRequestError(f"plan {plan.plan_id} has no trial terms (trialDuration, trialDurationUnit)")
    subscription = Subscription(
        subscription_id=new_ulid(now),
        plan=plan,
        price=plan.price,
        status=SubscriptionStatus.ACTIVE,
        processor=ProcessorItem(state=ProcessorState.LOCAL),
        is_trial=trial,
        trial_duration=plan.trial_duration if trial else None,
        trial_duration_unit=plan.trial_duration_unit if trial else None,
        created_at=now,
    )
    subscription = initialize_local_dates(subscription)
    updated = customer.model_copy(update={"subscriptions": [*customer.subscriptions, subscription], "updated_at": now})
    return updated, subscription


def apply_coupon(
    customer: Customer,
    subscription_id: str,
    coupon: Coupon | None,
    now: datetime,
    *,
    used_by_customer: bool = False,
) -> tuple[Customer, Subscription]:
    """Add the coupon's discount to a subscription (it replaces a smaller discount: one discount at a time).

    Raises ``CouponError`` with the seed's message when the coupon cannot be used (a restricted coupon the customer
    already used is "Promocode limit reached"; one that takes nothing off this subscription is "Invalid promocode").
    The use is counted by the save of this change (``changes.coupon_uses``), in its own transaction.
    """
    subscription = customer.subscription(subscription_id)
    valid = ensure_valid_coupon(coupon, now)
    if valid.restricted and used_by_customer:
        raise CouponError(LIMIT_REACHED)
    discount = coupon_discount(subscription, valid, now, customer_id=customer.customer_id)
    if discount is None:
        raise CouponError(INVALID)
    return _replace_subscription(customer, add_discounts(subscription, [discount]), now)


def cancel_subscription(
    customer: Customer,
    subscription_id: str,
    now: datetime,
    *,
    at_period_end: bool = False,
    restore_replaced: bool = True,
) -> tuple[Customer, Subscription]:
    """Cancel one subscription now, or at the end of its paid period (``cancel_at_period_end``).

    A subscription never sent to the processor is simply withdrawn (canceled and deleted: nothing to cancel there).
    Cancelling a canceled or expired subscription changes nothing. Cancelling a replacement that has not started
    (never synced, or queued before its first billing date) gives the subscriptions it replaces their renewal back
    when they were set to end at their period end for it (``restore_replaced``; docs/rules.md#replaced-subscriptions).
    """
    subscription = customer.subscription(subscription_id)
    if subscription.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED):
        return customer, subscription
    if restore_replaced and _not_started(subscription, now):
        customer = _renew_replaced(customer, subscription, now)
    if subscription.processor.state is ProcessorState.INITIAL:
        update: dict[str, object] = {"status": SubscriptionStatus.CANCELED, "deleted": True}
    elif at_period_end and subscription.processor.state is not ProcessorState.LOCAL:
        update = {"cancel_at_period_end": True}
    else:
        update = {"status": SubscriptionStatus.CANCELED}
    canceled = track(subscription.model_copy(update={**update, "updated_at": now}))
    return _replace_subscription(customer, canceled, now)


def cancel_all(customer: Customer, now: datetime, *, at_period_end: bool = False) -> Customer:
    """``cancel_subscription`` of every subscription still running or queued (the cancelSubscriptions route): synced
    ones canceled (now or at period end), never-synced ones withdrawn; canceled, expired and deleted ones stay."""
    for subscription in customer.subscriptions:
        if not subscription.deleted:
            customer, _ = cancel_subscription(
                customer, subscription.subscription_id, now, at_period_end=at_period_end, restore_replaced=False
            )
    return customer


def set_subscription_payment_method(
    customer: Customer, subscription_id: str, payment_method_id: str, now: datetime
) -> tuple[Customer, Subscription]:
    """Pay a subscription with another of the customer's payment methods (a synced subscription becomes changed)."""
    if customer.payment_method(payment_method_id).deleted:
        raise InvalidRequestError(f"payment method {payment_method_id} was removed at the payment processor")
    subscription = customer.subscription(subscription_id)
    updated = track(subscription.model_copy(update={"payment_method_id": payment_method_id, "updated_at": now}))
    return _replace_subscription(customer, updated, now)


def _had_plan(customer: Customer, plan: Plan) -> bool:
    """Has the customer subscribed to ``plan`` before (a withdrawn subscription that never left does not count)?"""
    return any(
        sub.plan.plan_id == plan.plan_id and not (sub.deleted and sub.processor.state is ProcessorState.INITIAL)
        for sub in customer.subscriptions
    )


def _with_trial(subscription: Subscription, plan: Plan) -> Subscription:
    trial = subscription.model_copy(
        update={
            "is_trial": True,
            "trial_duration": plan.trial_duration,
            "trial_duration_unit": plan.trial_duration_unit,
        }
    )
    return trial.model_copy(update={"first_billing_date": after_trial(trial)})


def _not_started(subscription: Subscription, now: datetime) -> bool:
    """Never sent to the processor, or queued there with its first billing date still ahead."""
    if subscription.processor.state is ProcessorState.INITIAL:
        return True
    start = subscription.first_billing_date
    return start is not None and start > now and subscription.current_billing_cycle == 0


def _renew_replaced(customer: Customer, replacement: Subscription, now: datetime) -> Customer:
    """The subscriptions ``replacement`` replaces that were set to end at their period end and have not ended,
    renewing again (a pending change the cancel routes and the sync send)."""
    subscriptions = [
        track(sub.model_copy(update={"cancel_at_period_end": False, "updated_at": now}))
        if sub.subscription_id in replacement.replaces
        and sub.cancel_at_period_end
        and not sub.deleted
        and sub.status not in (SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED)
        else sub
        for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions})


def _period_end(subscription: Subscription) -> datetime | None:
    return subscription.billing_period_end_date or subscription.paid_through_date


def _start_after(subscription: Subscription) -> datetime | None:
    """When a subscription queued behind ``subscription`` starts: after its trial, or when its period ends."""
    return subscription.first_billing_date if subscription.is_trial else _period_end(subscription)


def _replace_subscription(
    customer: Customer, subscription: Subscription, now: datetime
) -> tuple[Customer, Subscription]:
    subscriptions = [
        subscription if sub.subscription_id == subscription.subscription_id else sub for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions, "updated_at": now}), subscription
