"""Cancels that reach the processor in the request (the seed's cancelProcessor and cancelSubscriptions), and the
admin's reset of a customer's processor state (docs/rules.md#cancelling, #processor-states).

A cancel saves the local change first: the API then shows the subscription ``processor.state: "changed"``, pending
at the processor. Then, under the payment lock, the processor is called and its answer saved, by the sync's own step
(``saving.sync_subscription``, under the sync's idempotency keys: a cancel and a sync never cancel twice). A failed
call leaves that pending state and answers the error; the same cancel again (with any key or none) or a sync
completes it. A subscription never synced is withdrawn locally, with no call and no processor needed.

An ``Idempotency-Key`` is recorded with the request's last save (the local one when nothing is sent, the processor's
answer otherwise), so a retry after a failure does the rest and a retry after success replays.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from usercredits.errors import NotFoundError
from usercredits.kernel.writes import IdempotencyRecord
from usercredits.subscriptions import subscribing, sync_rules
from usercredits.subscriptions.changes import (
    RequestKey,
    answer_customer,
    keyed_request,
    load_customer,
    payment_lock,
    persist,
    run_once,
    save_change,
    unlocked,
)
from usercredits.subscriptions.models import Customer, Subscription
from usercredits.subscriptions.ports import CustomerPorts, SyncPorts
from usercredits.subscriptions.saving import sync_subscription

#: What a cancel-all's key records as its result (the answer is the customer's subscriptions as they stand).
_ALL = "all"

#: The processor's ports, built only when a call is needed (a withdraw works without a processor).
ProcessorPorts = Callable[[], SyncPorts]


def cancel_subscription(
    user_id: str,
    subscription_id: str,
    *,
    at_period_end: bool,
    ports: CustomerPorts,
    processor: ProcessorPorts,
    request_key: str | None = None,
) -> Subscription:
    """Cancel now or at the end of the paid period, at the processor too; 404 when unknown.

    A never-synced subscription is withdrawn (no call); a local one is canceled locally. A canceled subscription
    whose cancel did not reach the processor yet is sent again.
    """
    key = keyed_request("cancel", request_key, {"subscriptionId": subscription_id, "atPeriodEnd": at_period_end})

    def cancel(customer: Customer, now: datetime) -> Customer:
        return subscribing.cancel_subscription(customer, subscription_id, now, at_period_end=at_period_end)[0]

    def run() -> Subscription:
        customer = _cancel_locally(user_id, cancel, key, subscription_id, ports)
        customer = _complete_at_processor(customer, key, subscription_id, processor)
        return customer.subscription(subscription_id)

    return run_once(key, ports.customers, user_id, run, Customer.subscription)


def cancel_all_subscriptions(
    user_id: str,
    *,
    at_period_end: bool,
    ports: CustomerPorts,
    processor: ProcessorPorts,
    request_key: str | None = None,
) -> list[Subscription]:
    """Cancel every running or queued subscription (``subscribing.cancel_all``), each at the processor as
    ``cancel_subscription`` does; the customer's subscriptions as they stand after it. A user without a customer
    has none: nothing is written."""
    key = keyed_request("cancel-all", request_key, {"atPeriodEnd": at_period_end})

    def cancel(customer: Customer, now: datetime) -> Customer:
        return subscribing.cancel_all(customer, now, at_period_end=at_period_end)

    def run() -> list[Subscription]:
        try:
            customer = _cancel_locally(user_id, cancel, key, _ALL, ports)
        except NotFoundError:  # no customer: nothing to cancel
            return []
        return list(_complete_at_processor(customer, key, _ALL, processor).subscriptions)

    return run_once(key, ports.customers, user_id, run, lambda customer, _: list(customer.subscriptions))


def reset_processor(user_id: str, *, ports: CustomerPorts, request_key: str | None = None) -> Customer:
    """Admin: forget what never reached the processor (``sync_rules.reset_processor``) under the payment lock (a
    sync in progress is not undercut: 409 while it runs). 404 without a customer; a repeat changes nothing."""
    key = keyed_request("reset-processor", request_key, {})

    def run() -> Customer:
        with payment_lock(user_id, ports):  # NotFoundError for a customer never saved
            customer = load_customer(user_id, ports)
            record = None if key is None else key.record(customer.customer_id)
            customer = persist(customer, ports, sync_rules.reset_processor, record)
        return unlocked(customer)

    return run_once(key, ports.customers, user_id, run, answer_customer)


def _pending(customer: Customer) -> list[str]:
    return [sub.subscription_id for sub in customer.subscriptions if sync_rules.cancel_pending(sub)]


def _cancel_locally(
    user_id: str,
    cancel: Callable[[Customer, datetime], Customer],
    key: RequestKey | None,
    result_id: str,
    ports: CustomerPorts,
) -> Customer:
    """Save the local cancel; the key is recorded with it when nothing is left for the processor to do."""

    def step(before: Customer | None) -> tuple[Customer, bool]:
        if before is None:
            raise NotFoundError("customer not found")
        after = cancel(before, ports.clock.now())
        return after, bool(_pending(after))

    def record(pending: bool) -> IdempotencyRecord | None:
        return None if key is None or pending else key.record(result_id)

    customer, _ = save_change(ports.customers, user_id, step, idempotency=record)
    return customer


def _complete_at_processor(
    customer: Customer, key: RequestKey | None, result_id: str, processor: ProcessorPorts
) -> Customer:
    """Send each pending cancel under the payment lock (re-read under it: a sync may have sent them meanwhile);
    the key is recorded with the last answer."""
    if not _pending(customer):
        return customer
    ports = processor()
    with payment_lock(customer.user_id, ports):
        customer = load_customer(customer.user_id, ports)
        pending = _pending(customer)
        for index, subscription_id in enumerate(pending):
            last = index == len(pending) - 1
            record = key.record(result_id) if key is not None and last else None
            customer = sync_subscription(customer, subscription_id, ports, record)
        if not pending and key is not None:
            customer = persist(customer, ports, lambda c: c, key.record(result_id))
    return unlocked(customer)
