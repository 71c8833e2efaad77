"""Discount builders and the single-largest-discount rule (docs/rules.md#discounts), and the upgrade credit
(docs/rules.md#upgrade-credit).

Builders return None instead of a zero discount, as the seed's do. Amounts are integer minor units in the
subscription's currency; percents are exact decimals rounded half up to the minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import Discount, DiscountKind, Subscription, SubscriptionStatus
from usercredits.subscriptions.tracking import track

#: The name of the upgrade credit (the seed's was "Refunded Previous Transaction": it credited the full price).
PREVIOUS_SUBSCRIPTION_CREDIT_NAME = "Unused time of the previous subscription"

_MICROSECOND = timedelta(microseconds=1)


def percent_of(price: Money, percent: Decimal) -> Money:
    """``percent`` of ``price``, rounded half up to the minor unit and capped at the price."""
    share = (Decimal(price.amount) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return Money(amount=min(price.amount, int(share)), currency=price.currency)


def previous_subscription_credit(
    subscription: Subscription, previous: Subscription | None, now: datetime
) -> Discount | None:
    """Credit for the unused part of ``previous`` when ``subscription`` replaces it (an upgrade), or None.

    docs/rules.md#upgrade-credit: never the previous full price, never more than the new price, nothing for a trial
    never charged. The credit is the previous price times the share of its current period that ``subscription``'s
    start leaves unused (rounded half up), capped at the new price; nothing for a trial not yet converted, a past-due
    (unpaid) period, a free or foreign-currency subscription, or a new start outside the previous period.
    The credit is preserved by ``add_discounts`` and lasts one cycle.
    """
    if previous is None or _unpaid(previous, subscription.created_at):
        return None
    if previous.price.amount == 0 or previous.price.currency != subscription.price.currency:
        return None
    share = _unused_share(previous, subscription.created_at)
    if share is None:
        return None
    unused, period = share
    credit = (2 * previous.price.amount * unused + period) // (2 * period)  # half up, in integers
    credit = min(credit, subscription.price.amount)
    if credit == 0:
        return None
    return new_discount(
        DiscountKind.PREVIOUS_SUBSCRIPTION,
        subscription,
        credit,
        now,
        name=PREVIOUS_SUBSCRIPTION_CREDIT_NAME,
        preserve=True,
        subscription_id=previous.subscription_id,
    )


def add_discounts(subscription: Subscription, new: Iterable[Discount | None]) -> Subscription:
    """The subscription with ``new`` discounts merged in by the seed's rule (no stacking).

    Preserved discounts (upgrade credits) all stay. Of the others, old and new, exactly one is kept: the largest
    amount, then the most remaining cycles, then the one already there. Result: [that one] + the preserved ones.
    """
    combined = [*subscription.discounts, *(discount for discount in new if discount is not None)]
    preserved = [discount for discount in combined if discount.preserve]
    others = [discount for discount in combined if not discount.preserve]
    kept = [max(others, key=lambda discount: (discount.amount.amount, discount.cycles_left))] if others else []
    return track(subscription.model_copy(update={"discounts": kept + preserved}))


def _unpaid(previous: Subscription, at: datetime) -> bool:
    in_trial = previous.is_trial and (previous.first_billing_date is None or at < previous.first_billing_date)
    return in_trial or previous.status is SubscriptionStatus.PAST_DUE


def _unused_share(previous: Subscription, at: datetime) -> tuple[int, int] | None:
    """(unused, whole) microseconds of ``previous``'s current period seen from ``at``; None when ``at`` is outside."""
    start = previous.billing_period_start_date or previous.first_billing_date or previous.created_at
    end = previous.billing_period_end_date or previous.paid_through_date
    if end is None or end <= start or not start <= at <= end:
        return None
    return (end - at) // _MICROSECOND, (end - start) // _MICROSECOND


def new_discount(
    kind: DiscountKind,
    subscription: Subscription,
    amount: int,
    now: datetime,
    *,
    name: str,
    number_of_billing_cycles: int = 1,
    preserve: bool = False,
    percent: Decimal | None = None,
    coupon_code: str | None = None,
    customer_id: str | None = None,
    subscription_id: str | None = None,
) -> Discount:
    """A discount of ``amount`` minor units in the subscription's currency, with a fresh id."""
    return Discount(
        discount_id=new_ulid(now),
        kind=kind,
        amount=Money(amount=amount, currency=subscription.price.currency),
        name=name,
        number_of_billing_cycles=number_of_billing_cycles,
        preserve=preserve,
        percent=percent,
        coupon_code=coupon_code,
        customer_id=customer_id,
        subscription_id=subscription_id,
        created_at=now,
    )
