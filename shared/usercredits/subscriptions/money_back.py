"""Money back on a subscription payment: refunds (all or part of a sale) and voids (a sale not settled yet), each
checked on the customer as it stands under the payment lock, then asked of the processor and recorded.
"""

from __future__ import annotations

from usercredits.errors import ConflictError
from usercredits.kernel.models import Money
from usercredits.subscriptions.changes import (
    RequestKey,
    keyed_request,
    load_customer,
    payment_lock,
    persist,
    recorded_result,
    run_once,
)
from usercredits.subscriptions.models import Customer, Transaction, TransactionKind
from usercredits.subscriptions.ports import SyncPorts
from usercredits.subscriptions.sync_rules import idempotency_key
from usercredits.subscriptions.tracking import validate_is_saved
from usercredits.subscriptions.transactions import (
    ensure_voidable,
    find_transaction,
    record_refund,
    record_void,
    refund_amount,
    refunded_so_far,
)


def refund_transaction(
    user_id: str,
    transaction_id: str,
    amount: Money | None,
    ports: SyncPorts,
    request_key: str | None = None,
) -> Transaction:
    """Refund all (``amount`` None) or part of a sale; the refund goes first in the transaction list.

    Checked before any call: ``NotFoundError`` for an unknown transaction, ``ConflictError`` when the sale or the
    customer is not at the processor, is not captured or is fully refunded, ``InvalidRequestError`` for a zero
    amount, another currency or more than what is left to refund. With an ``Idempotency-Key`` a repeat answers the
    refund the key recorded, and the processor's key comes from the request's, so a retry after a crash between
    the processor's refund and the save gets that refund back instead of a second one.
    """
    request = {"transactionId": transaction_id, "amount": amount.model_dump() if amount else None}
    key = keyed_request("refund", request_key, request)
    return run_once(
        key, ports.customers, user_id, lambda: _refund(user_id, transaction_id, amount, key, ports), find_transaction
    )


def _refund(
    user_id: str, transaction_id: str, amount: Money | None, key: RequestKey | None, ports: SyncPorts
) -> Transaction:
    load_customer(user_id, ports)  # NotFoundError before trying the lock
    with payment_lock(user_id, ports):
        # Checked on the customer as it stands under the lock: two refunds cannot both pass on the same state.
        customer = load_customer(user_id, ports)
        if (done := recorded_result(ports.customers, user_id, key)) is not None:  # a twin finished meanwhile
            return find_transaction(customer, done)
        sale = find_transaction(customer, transaction_id)
        validate_is_saved(customer, "Customer")
        refund_amount(customer, transaction_id, amount)
        processor_id = _processor_id(sale)
        content = {
            "amount": amount.model_dump() if amount else None,
            "refunded": refunded_so_far(customer, transaction_id),
        }
        # The refunds recorded on the sale (failed ones included) only grow, and do not move before a refund whose
        # answer was lost is recorded: its retry replays it, a later refund never does. (Not the version: any save
        # meanwhile, a webhook's, would make a retry a second refund.)
        processor_key = (
            key.processor_key("refund")
            if key is not None
            else idempotency_key("refund", transaction_id, content, after=_refunds_recorded(customer, transaction_id))
        )
        refund = ports.processor.refund(processor_id, amount, idempotency_key=processor_key)
        refund = refund.model_copy(update={"refunded_transaction_id": transaction_id})
        now = ports.clock.now()
        record = None if key is None else key.record(refund.transaction_id)
        persist(customer, ports, lambda c: record_refund(c, refund, now), record)
    return refund


def void_transaction(
    user_id: str, transaction_id: str, ports: SyncPorts, request_key: str | None = None
) -> Transaction:
    """Void a sale not settled yet (an uncaptured payment is released); it is replaced in place, status voided.

    ``NotFoundError`` for an unknown transaction, ``ConflictError`` when it cannot be voided (settled already: refund
    it instead) or is not at the processor. With an ``Idempotency-Key`` a repeat answers the voided transaction.
    """
    key = keyed_request("void", request_key, {"transactionId": transaction_id})
    return run_once(key, ports.customers, user_id, lambda: _void(user_id, transaction_id, key, ports), find_transaction)


def _void(user_id: str, transaction_id: str, key: RequestKey | None, ports: SyncPorts) -> Transaction:
    load_customer(user_id, ports)
    with payment_lock(user_id, ports):
        customer = load_customer(user_id, ports)  # checked under the lock, as refunds are
        if (done := recorded_result(ports.customers, user_id, key)) is not None:  # a twin finished meanwhile
            return find_transaction(customer, done)
        sale = ensure_voidable(customer, transaction_id)
        validate_is_saved(customer, "Customer")
        processor_id = _processor_id(sale)
        voided = ports.processor.void(processor_id, idempotency_key=idempotency_key("void", transaction_id))
        voided = voided.model_copy(
            update={
                "transaction_id": sale.transaction_id,
                "subscription_id": voided.subscription_id or sale.subscription_id,
                "discounts": voided.discounts or sale.discounts,
            }
        )
        now = ports.clock.now()
        record = None if key is None else key.record(voided.transaction_id)
        persist(customer, ports, lambda c: record_void(c, voided, now), record)
    return voided


def _refunds_recorded(customer: Customer, transaction_id: str) -> int:
    return sum(
        1
        for txn in customer.transactions
        if txn.kind is TransactionKind.REFUND and txn.refunded_transaction_id == transaction_id
    )


def _processor_id(transaction: Transaction) -> str:
    processor_id = transaction.processor.id
    if processor_id is None:
        raise ConflictError("Transaction not saved to processor")
    return processor_id
