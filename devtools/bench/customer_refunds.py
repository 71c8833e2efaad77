"""The admin refund with an ``Idempotency-Key`` and its replay (``dynamodb_requests`` rows of the customers function).

The processor is a stand-in answering one refund per idempotency key, as Stripe does: the rows count DynamoDB
requests, and a replay must answer the first refund without asking the processor at all.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from devtools.bench.rows import BenchError

if TYPE_CHECKING:
    from devtools.bench.handlers import HandlerBench
    from usercredits.kernel.models import Money
    from usercredits.subscriptions.models import Transaction

ROUTE = "POST /admin/customers/{userId}/transactions/{transactionId}/refund"
USER = "bench-refunded"
SALE = "bench-sale"


class _Processor:
    """Refunds as Stripe makes them: one per idempotency key (a repeated key answers the same refund)."""

    def __init__(self) -> None:
        self.refunds: dict[str, Transaction] = {}

    def refund(self, transaction_processor_id: str, amount: Money | None, *, idempotency_key: str) -> Transaction:
        from usercredits.subscriptions.models import (
            ProcessorItem,
            ProcessorState,
            Transaction,
            TransactionKind,
            TransactionStatus,
        )

        if idempotency_key not in self.refunds:
            assert amount is not None
            refund_id = "re_" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
            self.refunds[idempotency_key] = Transaction(
                transaction_id=refund_id,
                processor=ProcessorItem(id=refund_id, state=ProcessorState.SAVED),
                kind=TransactionKind.REFUND,
                amount=amount,
                status=TransactionStatus.SETTLED,
                created_at=datetime.now(UTC),
            )
        return self.refunds[idempotency_key]


def _store_customer_with_a_sale() -> None:
    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
    from usercredits.kernel.models import Money
    from usercredits.subscriptions.changes import customer_changes
    from usercredits.subscriptions.customers import new_customer
    from usercredits.subscriptions.models import ProcessorItem, ProcessorState, Transaction, TransactionStatus

    now = datetime.now(UTC)
    saved = ProcessorItem(id="cus_bench", state=ProcessorState.SAVED)
    sale = Transaction(
        transaction_id=SALE,
        processor=ProcessorItem(id="ch_bench", state=ProcessorState.SAVED),
        amount=Money(amount=1490, currency="usd"),
        status=TransactionStatus.SETTLED,
        created_at=now,
    )
    customer = new_customer(USER, now).model_copy(update={"processor": saved, "transactions": [sale]})
    DynamoCustomerRepository().save(customer_changes(None, customer))


def keyed_refunds(bench: HandlerBench) -> None:
    """A keyed partial refund of a settled sale, then the same request again (a retry after a lost answer)."""
    _store_customer_with_a_sale()
    handler: Any = bench.handler
    processor = _Processor()
    original = handler.processor
    handler.processor = lambda: processor
    try:
        request: dict[str, Any] = {
            "user": "bench-admin",
            "admin": True,
            "path_parameters": {"userId": USER, "transactionId": SALE},
            "body": {"amount": {"amount": 490, "currency": "usd"}},
            "headers": {"Idempotency-Key": "bench-refund-1"},
        }
        first = bench.measure(ROUTE, "keyed partial refund", budget=7, **request)
        refund_id = (first.body or {}).get("transactionId")

        def same_refund(body: Any) -> str | None:
            found = (body or {}).get("transactionId")
            return None if refund_id and found == refund_id else f"replayed refund {found}, not {refund_id}"

        bench.measure(ROUTE, "its replay: the same refund", budget=2, check=same_refund, **request)
        if len(processor.refunds) != 1:
            raise BenchError(f"the keyed refund reached the processor {len(processor.refunds)} times")
    finally:
        handler.processor = original
