"""Billing webhooks: what a verified ``customer.subscription.*`` or ``invoice.*`` event reports (parsed by the Stripe
adapter into a ``SubscriptionReport`` or an ``InvoiceReport``) recorded on the local customer, and the money going
back on a subscription's charge (``charge.refunded``, ``charge.dispute.*``: a ``ChargeBackReport``).
"""

from __future__ import annotations

from collections.abc import Callable

from usercredits.subscriptions.changes import persist
from usercredits.subscriptions.models import Customer, ProcessorState, Subscription, SubscriptionStatus
from usercredits.subscriptions.ports import (
    ChargeBackReport,
    InvoiceReport,
    ProcessorSubscription,
    SubscriptionReport,
    SyncPorts,
)
from usercredits.subscriptions.results import local_subscription, replace_subscription, upsert_subscription
from usercredits.subscriptions.tracking import keep_edits
from usercredits.subscriptions.transactions import merge_transactions, record_dispute

#: Statuses a subscription never leaves at the processor.
_ENDED = frozenset({SubscriptionStatus.CANCELED, SubscriptionStatus.EXPIRED})


def apply_billing_event(report: SubscriptionReport | InvoiceReport, ports: SyncPorts) -> str:
    """Apply what a verified billing event reports; returns the outcome for logs.

    A subscription report records the subscription as the event carries it; an invoice report mirrors the
    customer's transactions again and sets the subscription's failure count. A subscription event created before the
    newest subscription state recorded (an event's ``created``, or the time of a sync or load result) is ``"stale"``;
    invoice events are ordered among themselves. A redelivered event changes nothing (``"unchanged"``); one about a
    customer or subscription we do not know is ``"ignored"``; a local edit not synced yet stays pending. Dedup on
    the event id is the webhook path's job; this is safe without it too.
    """
    if isinstance(report, SubscriptionReport):
        return _apply_subscription_event(report, ports)
    return _apply_invoice_event(report, ports)


def _apply_subscription_event(report: SubscriptionReport, ports: SyncPorts) -> str:
    remote, created = report.subscription, report.created
    customer = _event_customer(report.customer_processor_id, report.user_id, ports)
    if customer is None:
        return "ignored"
    local = local_subscription(customer, remote.id, remote.subscription_id)
    if local is not None and _outdated(local, remote, created):
        return "stale"

    def apply(current: Customer) -> Customer:
        now = ports.clock.now()
        found = local_subscription(current, remote.id, remote.subscription_id)
        if found is not None and _outdated(found, remote, created):
            return current
        updated = upsert_subscription(current, remote, now)
        recorded = local_subscription(updated, remote.id, remote.subscription_id)
        assert recorded is not None
        if found is not None and found.processor.state is ProcessorState.CHANGED:
            # The user's edit not synced yet stays pending over the processor's values (it would be lost).
            recorded = keep_edits(recorded, found, found.processor.synced_fields)
        stamped = recorded.model_copy(update={"last_event_created": created})
        return replace_subscription(updated, stamped)

    return _apply(customer, apply, ports)


def _outdated(local: Subscription, remote: ProcessorSubscription, created: int) -> bool:
    """True when the event says less than what is recorded: it was created before the newest state recorded; or it
    would take back what the processor never takes back: a subscription ended there (Stripe never reactivates a
    canceled one), or, for an event of the same second as the state recorded (``created`` has a one-second grain, so
    a hold and a cancel in one sync, or several renewals at once, cannot be ordered by it), a paid period."""
    last = local.last_event_created
    if last is not None and created < last:
        return True
    if local.status in _ENDED and local.processor.state is ProcessorState.SAVED and remote.status not in _ENDED:
        return True
    tied = last is not None and created == last
    recorded, told = local.paid_through_date, remote.paid_through_date
    return tied and recorded is not None and told is not None and told < recorded


def _apply_invoice_event(report: InvoiceReport, ports: SyncPorts) -> str:
    customer = _event_customer(report.customer_processor_id, report.user_id, ports)
    if customer is None or customer.processor.id is None:
        return "ignored"
    loaded = ports.processor.list_transactions(customer.processor.id)
    created = report.created

    def apply(current: Customer) -> Customer:
        now = ports.clock.now()
        updated = merge_transactions(current, loaded, now)
        local = local_subscription(updated, report.subscription_processor_id, report.subscription_id)
        # Invoice events have their own stamp: one must not make an older subscription event stale, nor the reverse.
        last = local.last_invoice_event_created if local is not None else None
        if local is None or (last is not None and created < last):
            return updated
        stamped = local.model_copy(
            update={"failure_count": report.failure_count, "last_invoice_event_created": created}
        )
        return replace_subscription(updated, stamped)

    return _apply(customer, apply, ports)


def apply_charge_back(report: ChargeBackReport, ports: SyncPorts) -> str:
    """Mirror a refund or a dispute of one of a customer's charges (docs/rules.md#subscription-refunds-and-disputes).

    The customer's transactions are read from the processor again (the refund, and the sale itself when no sync has
    mirrored it yet), then a dispute's state is set on the sale (a decided dispute stays decided). A fully refunded
    or lost-disputed period then stops entitling. ``"ignored"`` for a charge of no customer we know; a redelivered
    or older event changes nothing (``"unchanged"``).
    """
    customer_processor_id = report.customer_processor_id or ports.processor.charge_customer(report.charge_processor_id)
    customer = _event_customer(customer_processor_id, None, ports)
    if customer is None or customer.processor.id is None:
        return "ignored"
    loaded = ports.processor.list_transactions(customer.processor.id)

    def apply(current: Customer) -> Customer:
        now = ports.clock.now()
        updated = merge_transactions(current, loaded, now)
        if report.dispute is None:
            return updated
        return record_dispute(updated, report.charge_processor_id, report.dispute, now)

    return _apply(customer, apply, ports)


def _apply(customer: Customer, change: Callable[[Customer], Customer], ports: SyncPorts) -> str:
    saved = persist(customer, ports, change)
    return "unchanged" if saved is customer else "applied"


def _event_customer(customer_processor_id: str | None, user_id: str | None, ports: SyncPorts) -> Customer | None:
    """The local customer an event is about: by the ``userId`` it carries, else by the processor customer's
    metadata."""
    if customer_processor_id is None:
        return None
    if not user_id:
        remote = ports.processor.retrieve_customer(customer_processor_id)
        user_id = remote.metadata.get("userId") if remote is not None else None
    customer = ports.customers.load(str(user_id)) if user_id else None
    if customer is None or customer.processor.id != customer_processor_id:
        return None
    return customer
