"""Recording what the processor answered (seed 5.12 "mapped back"): after a create, update or cancel, on a webhook,
and when loading. The processor is authoritative for what it returns; every value is written back, falsy ones
included (the seed dropped ``isTrial=false`` and ``failureCount=0``: 7.2-8).
"""

from __future__ import annotations

from datetime import datetime

from usercredits.domain.ids import new_ulid
from usercredits.subscriptions.customers import find_payment_method
from usercredits.subscriptions.models import (
    Customer,
    Discount,
    DiscountKind,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SubscriptionStatusEvent,
)
from usercredits.subscriptions.ports import ProcessorDiscount, ProcessorPaymentMethod, ProcessorSubscription
from usercredits.subscriptions.subscribing import find_subscription
from usercredits.subscriptions.tracking import local_id_for, mark_saved


def record_payment_method_result(
    customer: Customer, payment_method_id: str, result: ProcessorPaymentMethod, now: datetime
) -> Customer:
    """The payment method as attached or updated at the processor: its kind and display fields from the processor,
    the token consumed (the seed cleared the nonce), state saved."""
    method = find_payment_method(customer, payment_method_id)
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
    subscription = find_subscription(customer, subscription_id)
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
