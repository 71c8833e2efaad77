"""Stripe Subscriptions, their discounts and coupons <-> the subscriptions half's values, for
``billing_subscriptions`` (answers of the Billing API) and ``webhooks`` (``customer.subscription.*`` and ``invoice.*``
events): pure functions reading Stripe's shape (``to_dict()``), current API first and the pre-2025 field names as a
fallback.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from usercredits.adapters.stripe.billing_mapping import Json, id_of, list_data, time_of
from usercredits.adapters.stripe.json_fields import minor_units
from usercredits.errors import PaymentGatewayError
from usercredits.kernel.models import Money
from usercredits.subscriptions.discounts import percent_of
from usercredits.subscriptions.models import DisputeState, SubscriptionStatus, SubscriptionStatusEvent
from usercredits.subscriptions.ports import (
    ChargeBackReport,
    DiscountTerms,
    InvoiceReport,
    ProcessorDiscount,
    ProcessorSubscription,
    SubscriptionReport,
    SubscriptionTerms,
)

#: Stripe subscription statuses → local ones (docs/rules.md#status-mapping); ``trialing`` is Active with ``is_trial``.
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


_STARTED = frozenset({"active", "past_due", "unpaid", "paused", "canceled"})


#: A discount starting this long after its period began came after that period's invoice (made with the
#: subscription, it starts within the same request).
_BILLED_WITH_PERIOD = timedelta(seconds=60)


def coupon_id_for(discount: DiscountTerms, months_per_cycle: int) -> str:
    """The Stripe coupon id of a local discount: its id plus a digest of its original terms (new terms, new coupon).

    The whole number of cycles is hashed, not the cycles left, so the id stays the same as the discount runs.
    """
    terms = f"{discount.amount.amount}:{discount.amount.currency}:{total_cycles(discount)}"
    terms += f":{months_per_cycle}:{discount.never_expires}"
    return f"uc-{discount.discount_id}-{hashlib.sha256(terms.encode()).hexdigest()[:10]}"


def total_cycles(discount: DiscountTerms) -> int:
    """The discount's whole number of cycles: ``total_billing_cycles`` when known, else ``number_of_billing_cycles``
    (the cycles left, which is the whole number until the discount is first billed)."""
    return discount.total_billing_cycles or discount.number_of_billing_cycles


def kept_discount(candidates: Iterable[Json], discount: DiscountTerms, months_per_cycle: int) -> Json | None:
    """The Stripe discount (of ``candidates``) already applying ``discount``'s terms, if any.

    Its coupon is the one ``coupon_id_for`` names (or one made from it for the cycles left). Without
    ``total_billing_cycles`` the cycles cannot be compared (``number_of_billing_cycles`` shrinks each cycle), so a
    coupon made for this discount with the same amount, currency and duration kind matches.
    """
    expected = coupon_id_for(discount, months_per_cycle)
    pairs = [(coupon_of(candidate), candidate) for candidate in candidates]
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


def processor_subscription(data: Mapping[str, Any]) -> ProcessorSubscription:
    """A Stripe Subscription (as returned, listed or sent in a ``customer.subscription.*`` event) in local terms.

    Periods are read from the first item (current API) or the subscription (older versions). A trial is Active with
    ``is_trial``; a queued start (``metadata.queued``) is Pending with no paid-through date until it starts.
    """
    status = str(data.get("status") or "")
    metadata = data.get("metadata") or {}
    item = first_item(data)
    price = item.get("price") or {}
    months = int(((price.get("recurring") or {}).get("interval_count")) or 1)
    period_start = time_of(item.get("current_period_start") or data.get("current_period_start"))
    period_end = time_of(item.get("current_period_end") or data.get("current_period_end"))
    trial_end = time_of(data.get("trial_end"))
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
        price_id=id_of(price) or "",
        is_trial=is_trial,
        subscription_id=metadata.get("subscriptionId"),
        payment_method_id=id_of(data.get("default_payment_method")),
        first_billing_date=trial_end or time_of(data.get("start_date")),
        paid_through_date=paid_through,
        billing_period_start_date=period_start if started else None,
        billing_period_end_date=period_end if started else None,
        next_billing_date=trial_end if not started else period_end,
        cancel_at_period_end=bool(data.get("cancel_at_period_end")),
        current_billing_cycle=_cycles_since(time_of(data.get("start_date")), period_start, months) if started else 0,
        discounts=tuple(
            _processor_discount(discount, price, months, period_start if started else None)
            for discount in discount_objects(data)
        ),
        status_history=(SubscriptionStatusEvent(status=local_status, timestamp=since),) if since else (),
        created_at=time_of(data.get("created")),
    )


def _processor_discount(
    discount: Mapping[str, Any], price: Mapping[str, Any], months: int, period_start: datetime | None
) -> ProcessorDiscount:
    coupon = coupon_of(discount)
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
    billed = _discount_cycles(time_of(discount.get("start")), period_start, months) if period_start else 0
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


def discount_objects(data: Mapping[str, Any]) -> list[Json]:
    """The subscription's discounts that were expanded (bare ids carry nothing to map)."""
    return [item for item in data.get("discounts") or [] if isinstance(item, dict)]


def coupon_of(discount: Mapping[str, Any]) -> Json:
    coupon = (discount.get("source") or {}).get("coupon") or discount.get("coupon")
    return coupon if isinstance(coupon, dict) else {"id": coupon} if coupon else {}


def first_item(data: Mapping[str, Any]) -> Json:
    items = list_data(data.get("items"))
    return items[0] if items else {}


def subscription_metadata(terms: SubscriptionTerms) -> Json:
    metadata: Json = {"subscriptionId": terms.subscription_id}
    if terms.user_id:
        metadata["userId"] = terms.user_id
    # Stripe has no per-subscription statement descriptor (docs/rules.md#statement-descriptor): kept in metadata.
    if terms.descriptor is not None:
        for key, value in (
            ("descriptor", terms.descriptor.name),
            ("descriptorPhone", terms.descriptor.phone),
            ("descriptorUrl", terms.descriptor.url),
        ):
            if value:
                metadata[key] = value
    return metadata


def _status_since(data: Mapping[str, Any], status: str, period_start: datetime | None) -> datetime | None:
    if status == "canceled":
        return time_of(data.get("canceled_at") or data.get("ended_at"))
    if status in {"past_due", "unpaid"}:
        return period_start or time_of(data.get("start_date"))
    return time_of(data.get("start_date") or data.get("created"))


def _cycles_since(start: datetime | None, period_start: datetime | None, months_per_cycle: int) -> int:
    """Billing cycles begun from ``start`` up to the period starting at ``period_start`` (the first counts)."""
    if start is None or period_start is None:
        return 0
    months = (period_start.year - start.year) * 12 + period_start.month - start.month
    if period_start.day < start.day:
        months -= 1
    return max(0, months) // max(1, months_per_cycle) + 1


def subscription_report(payload: Mapping[str, Any], created: int) -> SubscriptionReport:
    """A ``customer.subscription.*`` event's Subscription (``created``: the event's time, epoch seconds)."""
    return SubscriptionReport(
        subscription=processor_subscription(payload),
        customer_processor_id=id_of(payload.get("customer")),
        user_id=_text((payload.get("metadata") or {}).get("userId")),
        created=created,
    )


def invoice_report(kind: str, payload: Mapping[str, Any], created: int) -> InvoiceReport:
    """An ``invoice.paid`` or ``invoice.payment_failed`` event's Invoice: whose subscription, and how many payment
    attempts failed (0 once paid)."""
    details = ((payload.get("parent") or {}).get("subscription_details")) or {}
    metadata = details.get("metadata") or {}
    return InvoiceReport(
        customer_processor_id=id_of(payload.get("customer")),
        user_id=_text(metadata.get("userId")),
        subscription_processor_id=id_of(details.get("subscription")) or id_of(payload.get("subscription")),
        subscription_id=_text(metadata.get("subscriptionId")),
        failure_count=(minor_units(payload, "attempt_count") or 1) if kind == "invoice.payment_failed" else 0,
        created=created,
    )


def charge_back_report(kind: str, payload: Mapping[str, Any], dispute: str | None) -> ChargeBackReport | None:
    """A ``charge.refunded`` event's Charge (it names its customer) or a ``charge.dispute.*`` event's Dispute (it names
    only its charge) for the subscriptions half; ``dispute``: the state the credits half read (open, won, lost)."""
    if kind == "charge.refunded":
        charge_id, customer_id = id_of(payload.get("id")), id_of(payload.get("customer"))
    else:
        charge_id, customer_id = id_of(payload.get("charge")), None
    if charge_id is None:
        return None
    return ChargeBackReport(
        charge_processor_id=charge_id,
        customer_processor_id=customer_id,
        dispute=None if dispute is None else DisputeState(dispute),
    )


def _text(value: Any) -> str | None:
    return str(value) if value else None
