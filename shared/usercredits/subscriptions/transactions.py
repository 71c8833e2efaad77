"""The transaction list: refunds, voids and loading, and the checks an admin refund or void must pass
(docs/rules.md#transaction-refunds).

The list is kept newest first. A refund is a new transaction put at the front; a void replaces the voided
transaction where it stands; loading merges by processor id so loading twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from usercredits.errors import ConflictError, InvalidRequestError, NotFoundError
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import (
    Customer,
    DisputeState,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.tracking import local_id_for

#: A sale in these states has been captured and can be refunded (fully or in part).
REFUNDABLE = frozenset(
    {
        TransactionStatus.SETTLED,
        TransactionStatus.SETTLING,
        TransactionStatus.SETTLEMENT_CONFIRMED,
        TransactionStatus.SETTLEMENT_PENDING,
    }
)
#: A sale in these states has not been settled yet and can be voided instead.
VOIDABLE = frozenset(
    {TransactionStatus.AUTHORIZED, TransactionStatus.AUTHORIZING, TransactionStatus.SUBMITTED_FOR_SETTLEMENT}
)
# Refunds in these states gave nothing back, so they do not count against what is left to refund.
_FAILED = frozenset(
    {
        TransactionStatus.FAILED,
        TransactionStatus.GATEWAY_REJECTED,
        TransactionStatus.PROCESSOR_DECLINED,
        TransactionStatus.SETTLEMENT_DECLINED,
        TransactionStatus.VOIDED,
    }
)


@dataclass(frozen=True)
class PaidPeriods:
    """The billing periods a subscription's sales paid for (docs/rules.md#subscription-refunds-and-disputes):
    ``revoked`` ones were given back in full (refunded, voided) or lost in a dispute; ``kept`` ones were not."""

    revoked: tuple[tuple[datetime, datetime], ...] = ()
    kept: tuple[tuple[datetime, datetime], ...] = ()


def paid_periods(customer: Customer, subscription_id: str) -> PaidPeriods:
    """The periods of the subscription's captured or given-back sales that know their period.

    A sale is revoked when its money went back in full: refunds that did not fail reach its amount, it was voided, or
    a dispute on it was lost. A partial refund, an open or a won dispute keep the period.
    """
    revoked: list[tuple[datetime, datetime]] = []
    kept: list[tuple[datetime, datetime]] = []
    for sale in customer.transactions:
        if (
            sale.kind is not TransactionKind.SALE
            or sale.subscription_id != subscription_id
            or sale.period_start is None
            or sale.period_end is None
        ):
            continue
        period = (sale.period_start, sale.period_end)
        if _given_back(customer, sale):
            revoked.append(period)
        elif sale.status in REFUNDABLE:
            kept.append(period)
    return PaidPeriods(revoked=tuple(revoked), kept=tuple(kept))


def _given_back(customer: Customer, sale: Transaction) -> bool:
    if sale.dispute is DisputeState.LOST or sale.status is TransactionStatus.VOIDED:
        return True
    return sale.amount.amount > 0 and refunded_so_far(customer, sale.transaction_id) >= sale.amount.amount


def find_transaction(customer: Customer, transaction_id: str) -> Transaction:
    """The customer's transaction ``transaction_id``; NotFoundError otherwise."""
    found = next((txn for txn in customer.transactions if txn.transaction_id == transaction_id), None)
    if found is None:
        raise NotFoundError(f"transaction {transaction_id} not found")
    return found


def refunded_so_far(customer: Customer, transaction_id: str) -> int:
    """Minor units already given back on a sale (refunds that did not fail)."""
    return sum(
        txn.amount.amount
        for txn in customer.transactions
        if txn.kind is TransactionKind.REFUND
        and txn.refunded_transaction_id == transaction_id
        and txn.status not in _FAILED
    )


def refund_amount(customer: Customer, transaction_id: str, amount: Money | None = None) -> Money:
    """What to refund on a sale: ``amount``, or (None) all that is left; checked before calling the processor.

    NotFoundError for an unknown transaction; ConflictError when it is not a captured sale or nothing is left;
    InvalidRequestError for a zero amount, another currency, or more than what is left.
    """
    sale = find_transaction(customer, transaction_id)
    if sale.kind is not TransactionKind.SALE or sale.status not in REFUNDABLE:
        raise ConflictError(f"transaction {transaction_id} cannot be refunded (status {sale.status})")
    left = sale.amount.amount - refunded_so_far(customer, transaction_id)
    if left <= 0:
        raise ConflictError(f"transaction {transaction_id} is already fully refunded")
    if amount is None:
        return Money(amount=left, currency=sale.amount.currency)
    if amount.currency != sale.amount.currency:
        raise InvalidRequestError(f"the refund must be in {sale.amount.currency}")
    if amount.amount <= 0:
        raise InvalidRequestError("a refund amount must be positive")
    if amount.amount > left:
        raise InvalidRequestError(f"at most {left} can still be refunded on transaction {transaction_id}")
    return amount


def ensure_voidable(customer: Customer, transaction_id: str) -> Transaction:
    """The sale if it can still be voided (not settled yet); ConflictError otherwise."""
    sale = find_transaction(customer, transaction_id)
    if sale.kind is not TransactionKind.SALE or sale.status not in VOIDABLE:
        raise ConflictError(f"transaction {transaction_id} cannot be voided (status {sale.status})")
    return sale


def record_refund(customer: Customer, refund: Transaction, now: datetime) -> Customer:
    """The customer with ``refund`` first in the transaction list (as the seed puts it); recording the same
    processor refund again replaces it instead of adding a second one."""
    others = [txn for txn in customer.transactions if not _same_processor_object(txn, refund)]
    return customer.model_copy(update={"transactions": [refund, *others], "updated_at": now})


def record_void(customer: Customer, voided: Transaction, now: datetime) -> Customer:
    """The customer with the voided transaction replacing the original where it stands (same local id)."""
    find_transaction(customer, voided.transaction_id)
    transactions = [voided if txn.transaction_id == voided.transaction_id else txn for txn in customer.transactions]
    return customer.model_copy(update={"transactions": transactions, "updated_at": now})


def newest_first(transactions: Iterable[Transaction]) -> list[Transaction]:
    """Transactions by creation time, newest first (ties keep their order)."""
    return sorted(transactions, key=lambda txn: txn.created_at, reverse=True)


def merge_transactions(customer: Customer, loaded: Iterable[Transaction], now: datetime) -> Customer:
    """Merge transactions read from the processor into the customer's list, newest first.

    A loaded transaction matching a stored one by processor id replaces it and keeps its local id; others are
    added. Loaded refunds name the refunded sale by its *processor* id in ``refunded_transaction_id``; it is turned
    into the local id here. Stored transactions the processor no longer lists are kept (money history is never
    dropped). Merging the same list twice gives the same customer.
    """
    merged = list(customer.transactions)
    for incoming in loaded:
        index = next((i for i, txn in enumerate(merged) if _same_processor_object(txn, incoming)), None)
        if index is None:
            merged.append(incoming)
        else:
            merged[index] = _kept_local_facts(merged[index], incoming)
    linked = [_link_refund(txn, merged) for txn in merged]
    return customer.model_copy(update={"transactions": newest_first(linked), "updated_at": now})


def record_dispute(customer: Customer, charge_processor_id: str, state: DisputeState, now: datetime) -> Customer:
    """The customer with the dispute on the sale ``charge_processor_id`` in ``state``; unchanged (the same object)
    when the sale is not mirrored, or already in that state, or already decided (won or lost is final: a late
    ``created`` never reopens it)."""
    sale = next((txn for txn in customer.transactions if txn.processor.id == charge_processor_id), None)
    if sale is None or sale.dispute is state or sale.dispute in (DisputeState.WON, DisputeState.LOST):
        return customer
    disputed = sale.model_copy(update={"dispute": state, "updated_at": now})
    transactions = [disputed if txn is sale else txn for txn in customer.transactions]
    return customer.model_copy(update={"transactions": transactions, "updated_at": now})


def _kept_local_facts(stored: Transaction, incoming: Transaction) -> Transaction:
    """``incoming`` under ``stored``'s local id, keeping what only events told us (the processor's listing does not
    carry a dispute's state) and a period the listing could not read."""
    return incoming.model_copy(
        update={
            "transaction_id": stored.transaction_id,
            "dispute": incoming.dispute or stored.dispute,
            "period_start": incoming.period_start or stored.period_start,
            "period_end": incoming.period_end or stored.period_end,
        }
    )


def _link_refund(txn: Transaction, transactions: list[Transaction]) -> Transaction:
    target = txn.refunded_transaction_id
    if target is None or any(other.transaction_id == target for other in transactions):
        return txn
    local = local_id_for(target, transactions)
    return txn if local is None else txn.model_copy(update={"refunded_transaction_id": local})


def _same_processor_object(left: Transaction, right: Transaction) -> bool:
    if left.processor.id is None or right.processor.id is None:
        return left.transaction_id == right.transaction_id
    return left.processor.id == right.processor.id
