"""Which subscriptions entitle the customer at a given time, free cycles and local dates (docs/rules.md#entitlement,
#local-dates).

All day arithmetic is UTC. The rules are the seed's, made deterministic: ties in the precedence order keep the
customer's order instead of an unstable sort (docs/rules.md#entitlement), and the grace period is a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from usercredits.kernel.cycles import add_months
from usercredits.subscriptions.models import (
    ACTIVE_STATES,
    Customer,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
    TrialUnit,
)
from usercredits.subscriptions.transactions import PaidPeriods, paid_periods

#: How long after its paid-through date a subscription still entitles when its plan says nothing (the seed's one
#: day); the customers function's ``SUBSCRIPTION_GRACE_DAYS`` setting replaces it, a plan's ``gracePeriodDays`` wins.
GRACE_PERIOD = timedelta(days=1)


def grace_of(subscription: Subscription, default: timedelta = GRACE_PERIOD) -> timedelta:
    """The subscription's grace: its plan's ``grace_period_days``, else ``default``."""
    days = subscription.plan.grace_period_days
    return default if days is None else timedelta(days=days)


def start_of_day(at: datetime) -> datetime:
    """Midnight UTC of ``at``'s day."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def free_billing_cycles(subscription: Subscription) -> int:
    """How many coming cycles the discounts pay in full (the seed's numberOfFreeBillingCycles, kept as is).

    For each discount D, add up the discounts lasting at least as many cycles as D; when they cover the price, D's
    remaining cycles are a candidate. The result is the *last* candidate in the list's order, not the largest.
    """
    free = 0
    for candidate in subscription.discounts:
        covered = sum(
            discount.amount.amount
            for discount in subscription.discounts
            if discount.cycles_left >= candidate.cycles_left
        )
        if covered >= subscription.price.amount:
            free = max(candidate.cycles_left, 0)
    return free


def free_months(subscription: Subscription) -> int:
    """Free cycles times the plan's billing frequency."""
    return free_billing_cycles(subscription) * subscription.plan.billing_frequency_months


def with_free_months(subscription: Subscription, date: datetime | None) -> datetime | None:
    """``date`` pushed back by the free months (None stays None): the seed's ``*WithFreeDate`` virtuals."""
    return None if date is None else add_months(date, free_months(subscription))


def in_billing_period(
    subscription: Subscription, at: datetime, grace: timedelta = GRACE_PERIOD, periods: PaidPeriods = PaidPeriods()
) -> bool:
    """True when the subscription entitles on ``at``'s (UTC) day.

    A trial entitles until its first billing day. Otherwise the subscription must have started by the end of the
    day and be paid through (plus free cycles) no earlier than its grace (the plan's, else ``grace``) before the day
    began, and the day must not fall in a revoked period (its sale given back in full or lost in a dispute: the period
    and its grace) that no kept period covers.
    """
    day = start_of_day(at)
    if subscription.is_trial and subscription.first_billing_date is not None and day <= subscription.first_billing_date:
        return True
    paid_through = with_free_months(subscription, subscription.paid_through_date)
    if paid_through is None:
        return False
    own_grace = grace_of(subscription, grace)
    if _revoked(day, own_grace, periods):
        return False
    return subscription.created_at <= day + timedelta(days=1) and day <= paid_through + own_grace


def _revoked(day: datetime, grace: timedelta, periods: PaidPeriods) -> bool:
    def within(period: tuple[datetime, datetime], extra: timedelta) -> bool:
        return start_of_day(period[0]) <= day <= period[1] + extra

    return any(within(period, grace) for period in periods.revoked) and not any(
        within(period, timedelta(0)) for period in periods.kept
    )


def by_precedence(subscriptions: Iterable[Subscription]) -> list[Subscription]:
    """Highest plan level first, then the latest billing period end (missing ends last); ties keep their order."""
    by_end = sorted(
        subscriptions,
        key=lambda sub: (sub.billing_period_end_date is not None, sub.billing_period_end_date or _EPOCH),
        reverse=True,
    )
    return sorted(by_end, key=lambda sub: sub.plan.level, reverse=True)


def valid_subscriptions(customer: Customer, at: datetime, grace: timedelta = GRACE_PERIOD) -> list[Subscription]:
    """The subscriptions that entitle at ``at``, by precedence (docs/rules.md#entitlement).

    Not deleted, in their billing period (less the periods given back: ``transactions.paid_periods``), and known to
    the processor or local (never ``initial``). Status is ignored on purpose: canceled and past-due subscriptions stay
    valid until their paid period (plus grace) ends. ``grace``: the default for plans that set none.
    """
    return by_precedence(
        sub
        for sub in customer.subscriptions
        if not sub.deleted
        and sub.processor.state in ACTIVE_STATES
        and in_billing_period(sub, at, grace, paid_periods(customer, sub.subscription_id))
    )


def active_subscriptions(customer: Customer, at: datetime, grace: timedelta = GRACE_PERIOD) -> list[Subscription]:
    """The valid subscriptions whose status is active."""
    return [sub for sub in valid_subscriptions(customer, at, grace) if sub.status is SubscriptionStatus.ACTIVE]


def current_subscription(customer: Customer, at: datetime, grace: timedelta = GRACE_PERIOD) -> Subscription | None:
    """The customer's entitlement at ``at``: the first valid subscription (highest level), or None."""
    valid = valid_subscriptions(customer, at, grace)
    return valid[0] if valid else None


def initialize_local_dates(subscription: Subscription) -> Subscription:
    """Fill the unset billing dates of a ``local`` subscription (docs/rules.md#local-dates); others are returned as
    they are.

    A trial bills first after its trial (from ``created_at``); otherwise the first cycle starts at the first billing
    date (default ``created_at``) and is paid through one billing frequency later, the next billing a day after.
    """
    if subscription.processor.state is not ProcessorState.LOCAL:
        return subscription
    sub = subscription
    if sub.is_trial:
        first = sub.first_billing_date or after_trial(sub)
        next_billing = sub.next_billing_date or first
        return sub.model_copy(
            update={
                "first_billing_date": first,
                "next_billing_date": next_billing,
                "billing_day_of_month": sub.billing_day_of_month or next_billing.day,
            }
        )
    first = sub.first_billing_date or sub.created_at
    paid_through = sub.paid_through_date or add_months(first, sub.plan.billing_frequency_months)
    next_billing = sub.next_billing_date or paid_through + timedelta(days=1)
    return sub.model_copy(
        update={
            "first_billing_date": first,
            "paid_through_date": paid_through,
            "billing_period_start_date": sub.billing_period_start_date or first,
            "billing_period_end_date": sub.billing_period_end_date or paid_through,
            "next_billing_date": next_billing,
            "billing_day_of_month": sub.billing_day_of_month or next_billing.day,
        }
    )


def after_trial(subscription: Subscription) -> datetime:
    """When a trial made at ``created_at`` ends: its first billing date."""
    duration = subscription.trial_duration or 0
    if subscription.trial_duration_unit is TrialUnit.DAY:
        return subscription.created_at + timedelta(days=duration)
    if subscription.trial_duration_unit is TrialUnit.MONTH:
        return add_months(subscription.created_at, duration)
    return subscription.created_at  # the seed: an unknown unit gives no trial at all


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
