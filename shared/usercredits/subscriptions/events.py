"""The events of the subscriptions half: which facts a customer save records, derived from the customer before and
after it (pure; docs/api.md#events-published).

Every change of a customer, whatever started it (a subscribe, a sync result, a webhook, a reload, a refund, a void),
is saved through ``CustomerRepository.save(customer_changes(before, after))``, so comparing the two states finds each
fact exactly once: a retried save runs on a fresh load that already holds the fact, a redelivered or stale webhook
changes nothing, and a save that changes nothing records nothing. Each fact has an id made of what it is about (the
subscription or transaction, and for facts that can happen again, the status change's time or the new paid-through
date): the repository writes it as an outbox item with that key, put only if absent, in the save's own transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from usercredits.kernel.models import DomainEvent
from usercredits.subscriptions.models import (
    Customer,
    Subscription,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)

#: A sale or refund the processor took (the money moves or is about to).
SUCCEEDED_STATUSES = frozenset(
    {
        TransactionStatus.SUBMITTED_FOR_SETTLEMENT,
        TransactionStatus.SETTLING,
        TransactionStatus.SETTLEMENT_PENDING,
        TransactionStatus.SETTLEMENT_CONFIRMED,
        TransactionStatus.SETTLED,
    }
)
#: A sale the processor refused or could not take.
FAILED_STATUSES = frozenset(
    {
        TransactionStatus.FAILED,
        TransactionStatus.GATEWAY_REJECTED,
        TransactionStatus.PROCESSOR_DECLINED,
        TransactionStatus.SETTLEMENT_DECLINED,
        TransactionStatus.AUTHORIZATION_EXPIRED,
    }
)

#: The detail-types, one per fact (docs/api.md#events-published).
SUBSCRIPTION_CREATED = "SubscriptionCreated"
SUBSCRIPTION_ACTIVATED = "SubscriptionActivated"
SUBSCRIPTION_PAST_DUE = "SubscriptionPastDue"
SUBSCRIPTION_CANCELED = "SubscriptionCanceled"
SUBSCRIPTION_RENEWED = "SubscriptionRenewed"
TRANSACTION_SUCCEEDED = "TransactionSucceeded"
TRANSACTION_FAILED = "TransactionFailed"
TRANSACTION_REFUNDED = "TransactionRefunded"
TRANSACTION_VOIDED = "TransactionVoided"


@dataclass(frozen=True)
class CustomerFact:
    """One fact a save records: ``fact_id`` (unique per fact, the outbox item's key), its event, and the transaction
    whose mirror it is about (its outbox item goes in the same write as that mirror; None: a subscription's fact)."""

    fact_id: str
    event: DomainEvent
    transaction_id: str | None = None


def customer_facts(before: Customer | None, after: Customer) -> tuple[CustomerFact, ...]:
    """The facts that saving ``after`` over ``before`` (None: a new customer) records, subscriptions' first."""
    old_subscriptions = {s.subscription_id: s for s in before.subscriptions} if before is not None else {}
    old_transactions = {t.transaction_id: t for t in before.transactions} if before is not None else {}
    plans = {s.subscription_id: s.plan.plan_id for s in after.subscriptions}
    facts: list[CustomerFact] = []
    for subscription in after.subscriptions:
        facts += _subscription_facts(after, old_subscriptions.get(subscription.subscription_id), subscription)
    for transaction in reversed(after.transactions):  # oldest first (the customer keeps them newest first)
        old = old_transactions.get(transaction.transaction_id)
        facts += _transaction_facts(after, old, transaction, plans.get(transaction.subscription_id or ""))
    return tuple(facts)


# --- subscriptions --------------------------------------------------------------------------------------------------


def _subscription_facts(customer: Customer, old: Subscription | None, new: Subscription) -> Iterable[CustomerFact]:
    sub_id = new.subscription_id
    if old is None:
        yield _subscription_fact(SUBSCRIPTION_CREATED, f"SUB#{sub_id}#created", customer, new, new.created_at)
    old_status = old.status if old is not None else None
    if new.status != old_status:
        changed_at = _status_changed_at(new)
        if new.status is SubscriptionStatus.ACTIVE:
            fact_id = f"SUB#{sub_id}#activated#{_stamp(changed_at)}"
            yield _subscription_fact(SUBSCRIPTION_ACTIVATED, fact_id, customer, new, changed_at)
        elif new.status is SubscriptionStatus.PAST_DUE:
            fact_id = f"SUB#{sub_id}#pastDue#{_stamp(changed_at)}"
            yield _subscription_fact(SUBSCRIPTION_PAST_DUE, fact_id, customer, new, changed_at)
        elif new.status is SubscriptionStatus.CANCELED:  # final: once per subscription
            yield _subscription_fact(SUBSCRIPTION_CANCELED, f"SUB#{sub_id}#canceled", customer, new, changed_at)
    if _renewed(old, new):
        assert new.paid_through_date is not None
        fact_id = f"SUB#{sub_id}#renewed#{_stamp(new.paid_through_date)}"
        yield _subscription_fact(SUBSCRIPTION_RENEWED, fact_id, customer, new, new.updated_at or new.created_at)


def _renewed(old: Subscription | None, new: Subscription) -> bool:
    """The paid-through date moved forward on a subscription active before and after (the first paid-through date
    comes with the activation, which is not a renewal)."""
    if old is None or old.paid_through_date is None or new.paid_through_date is None:
        return False
    active = old.status is SubscriptionStatus.ACTIVE and new.status is SubscriptionStatus.ACTIVE
    return active and new.paid_through_date > old.paid_through_date


def _status_changed_at(subscription: Subscription) -> datetime:
    """When the subscription entered its status: its newest history entry for it, else its last update."""
    for event in subscription.status_history:  # newest first
        if event.status == subscription.status:
            return event.timestamp
    return subscription.updated_at or subscription.created_at


def _subscription_fact(
    kind: str, fact_id: str, customer: Customer, subscription: Subscription, occurred_at: datetime
) -> CustomerFact:
    detail: dict[str, object] = {
        "userId": customer.user_id,
        "customerId": customer.customer_id,
        "subscriptionId": subscription.subscription_id,
        "plan": subscription.plan.plan_id,
        "amount": subscription.price.amount,
        "currency": subscription.price.currency,
        "status": subscription.status,
        "paidThroughDate": _iso(subscription.paid_through_date),
        "occurredAt": _iso(occurred_at),
    }
    return CustomerFact(fact_id, DomainEvent(kind, detail))


# --- transactions ---------------------------------------------------------------------------------------------------


def _transaction_facts(
    customer: Customer, old: Transaction | None, new: Transaction, plan: str | None
) -> Iterable[CustomerFact]:
    was = old.status if old is not None else None
    if new.status == was:
        return
    txn_id = new.transaction_id
    if new.kind is TransactionKind.REFUND:
        if new.status in SUCCEEDED_STATUSES and was not in SUCCEEDED_STATUSES:
            yield _transaction_fact(TRANSACTION_REFUNDED, f"TXN#{txn_id}#refunded", customer, new, plan)
        return
    if new.status in SUCCEEDED_STATUSES and was not in SUCCEEDED_STATUSES:
        yield _transaction_fact(TRANSACTION_SUCCEEDED, f"TXN#{txn_id}#succeeded", customer, new, plan)
    elif new.status in FAILED_STATUSES and was not in FAILED_STATUSES:
        yield _transaction_fact(TRANSACTION_FAILED, f"TXN#{txn_id}#failed", customer, new, plan)
    elif new.status is TransactionStatus.VOIDED:
        yield _transaction_fact(TRANSACTION_VOIDED, f"TXN#{txn_id}#voided", customer, new, plan)


def _transaction_fact(
    kind: str, fact_id: str, customer: Customer, transaction: Transaction, plan: str | None
) -> CustomerFact:
    occurred_at = next(
        (event.timestamp for event in reversed(transaction.status_history) if event.status == transaction.status),
        transaction.updated_at or transaction.created_at,
    )
    detail: dict[str, object] = {
        "userId": customer.user_id,
        "customerId": customer.customer_id,
        "transactionId": transaction.transaction_id,
        "processorId": transaction.processor.id,
        "subscriptionId": transaction.subscription_id,
        "plan": plan,
        "amount": transaction.amount.amount,
        "currency": transaction.amount.currency,
        "status": transaction.status,
        "occurredAt": _iso(occurred_at),
    }
    if transaction.kind is TransactionKind.REFUND:
        detail["refundedTransactionId"] = transaction.refunded_transaction_id
    return CustomerFact(fact_id, DomainEvent(kind, detail), transaction_id=transaction.transaction_id)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _stamp(moment: datetime) -> str:
    """A moment as a key part (UTC, to the microsecond): the same status change always gives the same id."""
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")
