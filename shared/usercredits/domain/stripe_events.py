"""One entry point for a verified Stripe event: the webhook parses it into one of the values below (the domain never
reads Stripe's JSON) and ``apply_stripe_event`` sends it to its use case: payment outcomes to ``payments``, refunds
and disputes to ``refunds`` (or, for a charge no order paid with, to the subscriptions half), billing events
(subscriptions, invoices) to the subscriptions half's billing sync.

The subscriptions half is imported only when a billing event arrives, and its ports are built then: the payment
events' cold start loads neither.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from usercredits.domain import payments, refunds
from usercredits.domain.models import IntentState
from usercredits.domain.ports import PaymentGateway, RefundPorts
from usercredits.domain.reversal import ChargeReport

if TYPE_CHECKING:
    from usercredits.subscriptions.ports import ChargeBackReport, InvoiceReport, SubscriptionReport, SyncPorts


@dataclass(frozen=True)
class PaymentIntentEvent:
    """A payment intent's outcome (``kind``: the event type, recorded with what it changes)."""

    event_id: str
    kind: str
    intent: IntentState


@dataclass(frozen=True)
class ChargeEvent:
    """Money going back on a charge: a refund or a dispute. ``report`` is what the credits half reads; ``billing``
    what the subscriptions half reads, used only when no credits order paid with the charge."""

    event_id: str
    kind: str
    report: ChargeReport
    billing: ChargeBackReport | None = None


@dataclass(frozen=True)
class BillingEvent:
    """A subscription's new state, or an invoice paid or not."""

    event_id: str
    kind: str
    report: SubscriptionReport | InvoiceReport


type StripeEvent = PaymentIntentEvent | ChargeEvent | BillingEvent


@dataclass(frozen=True)
class StripeEventPorts:
    """What applying an event needs. ``billing`` builds the subscriptions half's ports on the first billing event;
    None when the deployment has no billing (the local provider sends no billing events: they are ignored)."""

    refunds: RefundPorts
    payments: PaymentGateway
    billing: Callable[[], SyncPorts | None]


def apply_stripe_event(event: StripeEvent, ports: StripeEventPorts) -> str:
    """Apply one verified event; returns what happened (for logs and metrics). Each use case is idempotent on what
    the event changes, so a redelivery changes nothing."""
    if isinstance(event, PaymentIntentEvent):
        return payments.apply_payment_event(
            event.event_id,
            event.kind,
            event.intent,
            orders=ports.refunds.orders,
            payments=ports.payments,
            clock=ports.refunds.clock,
            refunds=ports.refunds,
        )
    if isinstance(event, ChargeEvent):
        outcome = refunds.apply_charge_report(event.event_id, event.kind, event.report, ports=ports.refunds)
        if outcome != "unknown-order" or event.billing is None:
            return outcome
        # Not a credits order's payment (nothing was written there): a subscription's charge, if its customer is ours.
        return _apply_charge_back(event.billing, ports)
    billing = ports.billing()
    if billing is None:
        return "ignored"
    from usercredits.subscriptions.billing_events import apply_billing_event

    return apply_billing_event(event.report, billing)


def _apply_charge_back(report: ChargeBackReport, ports: StripeEventPorts) -> str:
    billing = ports.billing()
    if billing is None:
        return "unknown-order"
    from usercredits.subscriptions.billing_events import apply_charge_back

    return apply_charge_back(report, billing)
