"""A payment gateway that remembers what it was asked."""

from __future__ import annotations

from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.domain.models import Order, PaymentIntent


class RecordingPaymentGateway(LocalPaymentGateway):
    """The local gateway, remembering every intent it was asked for."""

    def __init__(self) -> None:
        super().__init__("whsec_test")
        self.requests: list[tuple[str, int, int, str]] = []
        self.canceled: list[str] = []
        self.refunds: dict[str, str] = {}  # idempotency key -> intent refunded (a key refunds once)

    def cancel_intent(self, intent_id: str) -> None:
        self.canceled.append(intent_id)

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        self.refunds.setdefault(idempotency_key, intent_id)
        return super().refund_payment(intent_id, idempotency_key=idempotency_key, metadata=metadata)

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        self.requests.append((order.order_id, attempt, order.total.amount, order.total.currency))
        return super().create_intent(order, attempt)
