"""Cancels that reach the processor, cancel-all and the admin's reset-processor (``dynamodb_requests`` rows of the
customers function).

The processor is a stand-in answering a cancel as Stripe does (the subscription canceled): the rows count DynamoDB
requests, the local save first, then the payment lock, the customer read again under it, the answer saved, the lock
released.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from devtools.bench.rows import BenchError

if TYPE_CHECKING:
    from devtools.bench.handlers import HandlerBench
    from usercredits.subscriptions.ports import ProcessorSubscription

CANCEL = "POST /customer/subscriptions/{subscriptionId}/cancel"
CANCEL_ALL = "POST /customer/subscriptions/cancel-all"
RESET = "POST /admin/customers/{userId}/reset-processor"


class _Processor:
    """Cancels as Stripe answers them (the subscription canceled now); counts the calls."""

    def __init__(self) -> None:
        self.cancels = 0

    def cancel_subscription(
        self, processor_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProcessorSubscription:
        from usercredits.kernel.models import Money
        from usercredits.subscriptions.models import SubscriptionStatus
        from usercredits.subscriptions.ports import ProcessorSubscription

        self.cancels += 1
        return ProcessorSubscription(
            id=processor_id,
            status=SubscriptionStatus.CANCELED,
            price=Money(amount=1490, currency="usd"),
            price_id="price_bench",
        )


def _store_synced_subscriber(user: str) -> str:
    """A customer at the processor with one synced, active subscription; its local id."""
    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
    from usercredits.kernel.models import Money
    from usercredits.subscriptions.changes import customer_changes
    from usercredits.subscriptions.customers import new_customer
    from usercredits.subscriptions.models import Plan, ProcessorItem, ProcessorState, Subscription, SubscriptionStatus
    from usercredits.subscriptions.tracking import mark_saved

    now = datetime.now(UTC)
    plan = Plan(plan_id="bench-pro", name="Pro", price=Money(amount=1490, currency="usd"), level=2)
    subscription = Subscription(
        subscription_id=f"{user}-sub",
        plan=plan,
        price=plan.price,
        status=SubscriptionStatus.ACTIVE,
        first_billing_date=now,
        paid_through_date=now + timedelta(days=30),
        billing_period_start_date=now,
        billing_period_end_date=now + timedelta(days=30),
        created_at=now,
    )
    customer = new_customer(user, now).model_copy(
        update={
            "processor": ProcessorItem(id=f"cus_{user}", state=ProcessorState.SAVED),
            "subscriptions": [mark_saved(subscription, f"sub_{user}")],
        }
    )
    DynamoCustomerRepository().save(customer_changes(None, customer))
    return subscription.subscription_id


def cancels(bench: HandlerBench) -> None:
    """A synced subscription canceled now, a never-synced one withdrawn, a cancel-all, and an admin reset."""
    handler: Any = bench.handler
    processor = _Processor()
    original = handler.processor
    handler.processor = lambda: processor
    try:
        user = "bench-canceler"
        subscription_id = _store_synced_subscriber(user)
        path = {"subscriptionId": subscription_id}
        bench.measure(CANCEL, "synced, at the processor", budget=6, user=user, path_parameters=path, body={})
        body = {"planId": "bench-pro"}  # the plan CustomersBench defined
        created = bench.setup_call("POST /customer/subscriptions", status=201, user=user, body=body)
        path = {"subscriptionId": (created.body or {}).get("subscriptionId")}
        bench.measure(CANCEL, "never synced: withdrawn, no call", budget=2, user=user, path_parameters=path, body={})
        everyone = "bench-cancel-all"
        _store_synced_subscriber(everyone)
        bench.measure(CANCEL_ALL, "one synced subscription", budget=6, user=everyone, body={})
        reset = {"userId": user}
        bench.measure(
            RESET, "drops a withdrawn subscription", budget=4, user="bench-admin", admin=True, path_parameters=reset
        )
        if processor.cancels != 2:
            raise BenchError(f"the cancels reached the processor {processor.cancels} times, not 2")
    finally:
        handler.processor = original
