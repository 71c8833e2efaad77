"""Coupon validation and coupon discounts (docs/rules.md#coupons, #discounts).

Validation returns the seed's messages, first failure first: "Invalid promocode", "Promocode expired", "Promocode not
yet active", "Promocode limit reached". Counting uses is the save's job: ``changes.coupon_uses`` says which uses a
change counts or gives back, and the repository writes them in the change's own transaction (never past
``maxUses``, once per customer for a restricted coupon); here ``used_count`` is only read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from usercredits.kernel.models import Money
from usercredits.subscriptions.discounts import new_discount, percent_of
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import Coupon, CouponKind, Discount, DiscountKind, Subscription

INVALID = "Invalid promocode"
EXPIRED = "Promocode expired"
NOT_YET_ACTIVE = "Promocode not yet active"
LIMIT_REACHED = "Promocode limit reached"


def is_expired(coupon: Coupon, at: datetime) -> bool:
    """True once ``at`` is past the coupon's ``expire_at`` (never, without one)."""
    return coupon.expire_at is not None and at > coupon.expire_at


def is_pending(coupon: Coupon, at: datetime) -> bool:
    """True while ``at`` is before the coupon's ``start_at``."""
    return coupon.start_at is not None and at < coupon.start_at


def is_use_limit_reached(coupon: Coupon) -> bool:
    """True when ``used_count`` has reached ``max_uses`` (reached at equality: docs/rules.md#coupons)."""
    return coupon.max_uses is not None and coupon.used_count >= coupon.max_uses


def coupon_error(coupon: Coupon | None, at: datetime) -> str | None:
    """The first reason the coupon cannot be used at ``at``, or None (the seed's validateState, which returns)."""
    if coupon is None:
        return INVALID
    if is_expired(coupon, at):
        return EXPIRED
    if is_pending(coupon, at):
        return NOT_YET_ACTIVE
    if is_use_limit_reached(coupon):
        return LIMIT_REACHED
    return None


def ensure_valid_coupon(coupon: Coupon | None, at: datetime) -> Coupon:
    """The coupon when it can be used at ``at``; ``CouponError`` with the seed's message otherwise (the seed's
    findOneAndValidate, after the lookup)."""
    error = coupon_error(coupon, at)
    if error is not None or coupon is None:
        raise CouponError(error or INVALID)
    return coupon


def coupon_amount(coupon: Coupon, price: Money) -> Money:
    """What the coupon takes off ``price``: its amount or percent, at most the price (zero in another currency)."""
    if coupon.kind is CouponKind.PERCENT and coupon.percent is not None:
        return percent_of(price, coupon.percent)
    if coupon.amount is None or coupon.amount.currency != price.currency:
        return Money(amount=0, currency=price.currency)
    return Money(amount=min(coupon.amount.amount, price.amount), currency=price.currency)


@dataclass(frozen=True)
class CouponCheck:
    """The answer of ``GET /coupons/{code}?planId=``: usable or not, why not, and what it takes off."""

    valid: bool
    error: str | None = None
    amount: Money | None = None


def check_coupon(coupon: Coupon | None, price: Money, at: datetime, *, used_by_customer: bool = False) -> CouponCheck:
    """Can the coupon be used at ``at`` on ``price``, and for how much.

    On top of the seed's checks: a restricted coupon this customer already used is "Promocode limit reached" (its
    per-customer limit), and a coupon that takes nothing off this price (a free plan, another currency) is
    "Invalid promocode".
    """
    error = coupon_error(coupon, at)
    if error is not None or coupon is None:
        return CouponCheck(valid=False, error=error or INVALID)
    if coupon.restricted and used_by_customer:
        return CouponCheck(valid=False, error=LIMIT_REACHED)
    amount = coupon_amount(coupon, price)
    if amount.amount == 0:
        return CouponCheck(valid=False, error=INVALID)
    return CouponCheck(valid=True, amount=amount)


def coupon_discount(
    subscription: Subscription,
    coupon: Coupon | None,
    at: datetime,
    *,
    customer_id: str | None = None,
    used_by_customer: bool = False,
) -> Discount | None:
    """The discount ``coupon`` gives ``subscription`` at ``at``, or None (the seed's DiscountCoupon and
    DiscountCouponRestricted builders).

    None when the coupon fails validation, gives nothing off the subscription's price, or is restricted and already
    used by this customer. A restricted coupon needs ``customer_id``. The discount lasts the coupon's
    ``number_of_billing_cycles``; its amount is taken off the subscription's price, not the plan's
    (docs/rules.md#coupons).
    """
    check = check_coupon(coupon, subscription.price, at, used_by_customer=used_by_customer)
    if not check.valid or coupon is None or check.amount is None:
        return None
    if coupon.restricted and customer_id is None:
        raise ValueError("a restricted coupon needs the customer id")
    return new_discount(
        DiscountKind.COUPON_RESTRICTED if coupon.restricted else DiscountKind.COUPON,
        subscription,
        check.amount.amount,
        at,
        name=coupon.name or coupon.code,
        number_of_billing_cycles=coupon.number_of_billing_cycles,
        coupon_code=coupon.code,
        customer_id=customer_id if coupon.restricted else None,
    )
