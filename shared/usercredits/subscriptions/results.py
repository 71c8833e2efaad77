"""Recording what the processor answered (docs/rules.md#processor-sync): after a create, update or cancel, on a webhook,
and when loading. The processor is authoritative for what it returns; every value is written back, falsy ones
included (``isTrial=false`` and ``failureCount=0`` too).
"""

from __future__ import annotations

from datetime import datetime

from usercredits.kernel.ids import new_ulid
from usercredits.subscriptions.models import (
    Customer,
    Discount,
    DiscountKind,
    PaymentMethod,
    Plan,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SubscriptionStatusEvent,
)
from usercredits.subscriptions.ports import ProcessorDiscount, ProcessorPaymentMethod, ProcessorSubscription
from usercredits.subscriptions.tracking import local_id_for, mark_saved


def record_payment_method_result(
    customer: Customer, payment_method_id: str, result: ProcessorPaymentMethod, now: datetime
) -> Customer:
    """The payment method as attached or updated at the processor: its kind and display fields from the processor,
    the token consumed (the seed cleared the nonce), state saved."""
    method = customer.payment_method(payment_method_id)
    updated = mark_saved(
        method.model_copy(update={"kind": result.kind, "details": result.details, "token": None, "updated_at": now}),
        result.id,
    )
    methods = [updated if item.payment_method_id == payment_method_id else item for item in customer.payment_methods]
    return customer.model_copy(update={"payment_methods": methods, "updated_at": now})


def record_subscription_result(
    customer: Customer, subscription_id: str, result: ProcessorSubscription, now: datetime
) -> Customer:
    """The subscription as the processor returned it: status, price, dates, cycles and discounts, state saved.

    Processor discounts are matched to local ones by local id, then by processor id; an unknown one (added at the
    processor) becomes a local amount discount; local discounts the processor no longer applies are dropped.
    The payment method is mapped back to its local id (kept when the processor names none known locally).
    """
    subscription = customer.subscription(subscription_id)
    payment_method_id = local_id_for(result.payment_method_id, customer.payment_methods)
    updated = subscription.model_copy(
        update={
            "status": result.status,
            "price": result.price,
            "is_trial": result.is_trial,
            "first_billing_date": result.first_billing_date or subscription.first_billing_date,
            "paid_through_date": result.paid_through_date,
            "billing_period_start_date": result.billing_period_start_date,
            "billing_period_end_date": result.billing_period_end_date,
            "next_billing_date": result.next_billing_date,
            "billing_day_of_month": result.next_billing_date.day if result.next_billing_date else None,
            "cancel_at_period_end": result.cancel_at_period_end,
            "current_billing_cycle": result.current_billing_cycle,
            "failure_count": result.failure_count,
            "days_past_due": result.days_past_due,
            "payment_method_id": payment_method_id or subscription.payment_method_id,
            "discounts": [_local_discount(subscription, remote, now) for remote in result.discounts],
            "status_history": _history(result.status_history, subscription.status_history),
            "updated_at": now,
        }
    )
    saved = mark_saved(updated, result.id)
    subscriptions = [saved if sub.subscription_id == subscription_id else sub for sub in customer.subscriptions]
    return customer.model_copy(update={"subscriptions": subscriptions, "updated_at": now})


def _local_discount(subscription: Subscription, remote: ProcessorDiscount, now: datetime) -> Discount:
    local = next(
        (
            discount
            for discount in subscription.discounts
            if discount.discount_id == remote.discount_id or discount.processor.id == remote.processor_id
        ),
        None,
    )
    processor = ProcessorItem(id=remote.processor_id, state=ProcessorState.SAVED)
    if local is not None:
        return local.model_copy(
            update={
                "amount": remote.amount,
                "number_of_billing_cycles": remote.number_of_billing_cycles,
                "current_billing_cycle": remote.current_billing_cycle,
                "processor": processor,
            }
        )
    return Discount(
        discount_id=new_ulid(now),
        kind=DiscountKind.AMOUNT,
        name=remote.name,
        amount=remote.amount,
        number_of_billing_cycles=remote.number_of_billing_cycles,
        current_billing_cycle=remote.current_billing_cycle,
        processor=processor,
        created_at=now,
    )


def _history(
    remote: tuple[SubscriptionStatusEvent, ...], local: list[SubscriptionStatusEvent]
) -> list[SubscriptionStatusEvent]:
    """Newest first, each (status, timestamp) once; the processor's entries first, then older local ones."""
    merged = list(dict.fromkeys([*remote, *local]))
    return sorted(merged, key=lambda event: event.timestamp, reverse=True)


def upsert_subscription(customer: Customer, remote: ProcessorSubscription, now: datetime) -> Customer:
    """Record a processor subscription on its local one (by processor id, then by the local id in its metadata),
    adding it when it was made at the processor directly."""
    local = local_subscription(customer, remote.id, remote.subscription_id)
    updated = customer
    if local is None:
        plan = next(
            (sub.plan for sub in customer.subscriptions if sub.plan.processor_plan_id == remote.price_id),
            # A price no local subscription uses (made at Stripe directly): its terms at level 0, so it never
            # outranks a plan an admin defined.
            Plan(
                plan_id=remote.price_id,
                name=remote.price_id,
                price=remote.price,
                level=0,
                processor_plan_id=remote.price_id,
            ),
        )
        local = Subscription(
            subscription_id=new_ulid(now), plan=plan, price=remote.price, created_at=remote.created_at or now
        )
        updated = customer.model_copy(update={"subscriptions": [*customer.subscriptions, local]})
    return record_subscription_result(updated, local.subscription_id, remote, now)


def local_subscription(customer: Customer, processor_id: str | None, local_id: str | None) -> Subscription | None:
    """The customer's subscription with ``processor_id``, else the one with local id ``local_id``, else None."""
    by_processor = next((s for s in customer.subscriptions if processor_id and s.processor.id == processor_id), None)
    return by_processor or next((s for s in customer.subscriptions if local_id and s.subscription_id == local_id), None)


def replace_subscription(customer: Customer, subscription: Subscription) -> Customer:
    """The customer with ``subscription`` in place of the one with its local id."""
    subscriptions = [
        subscription if s.subscription_id == subscription.subscription_id else s for s in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions})


def replace_payment_method(customer: Customer, method: PaymentMethod) -> Customer:
    """The customer with ``method`` in place of the one with its local id."""
    methods = [method if m.payment_method_id == method.payment_method_id else m for m in customer.payment_methods]
    return customer.model_copy(update={"payment_methods": methods})


def stamped(subscription: Subscription, as_of: int) -> Subscription:
    """The subscription with a processor state recorded ``as_of`` (epoch seconds): subscription events created
    before it are stale. Invoice events keep their own stamp (a result says nothing about payment attempts)."""
    last = subscription.last_event_created
    return subscription.model_copy(update={"last_event_created": as_of if last is None else max(last, as_of)})


def transactions_mirrored(customer: Customer) -> Customer:
    """The customer with no subscription waiting for its charges to be mirrored (they just were)."""
    subscriptions = [
        sub.model_copy(update={"transactions_pending": False}) if sub.transactions_pending else sub
        for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions})
