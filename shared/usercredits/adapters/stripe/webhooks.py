"""Stripe webhooks: the signature check, the one registry of the event types we handle, and the parsing of a
verified event into the typed value the domain applies (``usercredits.domain.stripe_events``).

Billing events (subscriptions, invoices) are parsed by ``subscription_mapping``, imported only when one arrives: the
payment events' cold start does not load the subscriptions half.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from usercredits.adapters.stripe.json_fields import metadata_of, minor_units
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain.models import DisputeStatus
from usercredits.domain.reversal import ChargeReport
from usercredits.domain.stripe_events import BillingEvent, ChargeEvent, PaymentIntentEvent, StripeEvent
from usercredits.errors import InvalidSignatureError, PaymentGatewayError

#: Oldest webhook timestamp accepted, in seconds (Stripe's own default; guards against replayed deliveries), and how
#: far ahead of our clock one may be (a timestamp from the future is refused like a stale one).
WEBHOOK_TOLERANCE_SECONDS = 300

#: What reading a signed event of a shape we do not expect raises (a list where an object was expected, a text or a
#: fraction where an amount in minor units was expected, a subscription status we do not know...).
_SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, ArithmeticError, PaymentGatewayError)


class UnreadableEventError(Exception):
    """A correctly signed event of a handled type whose payload is not in the shape we read: acknowledged (Stripe
    would redeliver it for days, unchanged) and logged as an error; the order or customer it concerns can be
    reconciled from Stripe's API (``POST /orders/{orderId}/confirm``, ``POST /customer/sync``)."""


class EventFamily(StrEnum):
    """What a handled event is about, so how its ``data.object`` is read."""

    PAYMENT_INTENT = "payment_intent"  # a PaymentIntent's outcome (orders)
    CHARGE = "charge"  # money going back on a charge: a refund or a dispute (orders)
    SUBSCRIPTION = "subscription"  # a Subscription's new state (billing, customers table)
    INVOICE = "invoice"  # an invoice paid or not (billing, customers table)


#: The event types we handle, each with its family; every other type is acknowledged and ignored.
HANDLED_EVENTS: Mapping[str, EventFamily] = MappingProxyType(
    {
        "payment_intent.succeeded": EventFamily.PAYMENT_INTENT,
        "payment_intent.payment_failed": EventFamily.PAYMENT_INTENT,
        "payment_intent.requires_action": EventFamily.PAYMENT_INTENT,
        "payment_intent.canceled": EventFamily.PAYMENT_INTENT,
        "charge.refunded": EventFamily.CHARGE,
        "charge.dispute.created": EventFamily.CHARGE,
        "charge.dispute.closed": EventFamily.CHARGE,
        "customer.subscription.created": EventFamily.SUBSCRIPTION,
        "customer.subscription.updated": EventFamily.SUBSCRIPTION,
        "customer.subscription.deleted": EventFamily.SUBSCRIPTION,
        "invoice.paid": EventFamily.INVOICE,
        "invoice.payment_failed": EventFamily.INVOICE,
    }
)


def parse_event(event: Mapping[str, Any]) -> StripeEvent | None:
    """The verified ``event`` (as ``verify_webhook`` returns it) as the typed value the domain applies; None when
    there is nothing to apply (a type we do not handle, an object without an id, a charge of no payment intent).
    Raises ``UnreadableEventError`` when a handled event's payload is not in Stripe's shape."""
    event_id, kind = str(event["id"]), str(event["type"])
    family = HANDLED_EVENTS.get(kind)
    if family is None:
        return None
    try:
        return _parse(event_id, kind, family, event)
    except _SHAPE_ERRORS as exc:
        raise UnreadableEventError(f"{kind} {event_id}: {type(exc).__name__}: {exc}") from exc


def _parse(event_id: str, kind: str, family: EventFamily, event: Mapping[str, Any]) -> StripeEvent | None:
    data = event.get("data") or {}
    payload = data.get("object") or {}
    if not isinstance(payload, Mapping):
        raise TypeError("data.object is not an object")
    if family is EventFamily.CHARGE:
        report = charge_report(kind, payload)
        if report is None:
            return None
        from usercredits.adapters.stripe import subscription_mapping  # only when money goes back: rare

        dispute = None if report.dispute_status is None else str(report.dispute_status)
        billing = subscription_mapping.charge_back_report(kind, payload, dispute)
        return ChargeEvent(event_id, kind, report, billing)
    if not payload.get("id"):
        return None
    if family is EventFamily.PAYMENT_INTENT:
        return PaymentIntentEvent(event_id, kind, intent_state(payload))
    from usercredits.adapters.stripe import subscription_mapping  # the subscriptions half, on billing events only

    created = minor_units(event, "created")  # epoch seconds: an integer like an amount
    if family is EventFamily.SUBSCRIPTION:
        return BillingEvent(event_id, kind, subscription_mapping.subscription_report(payload, created))
    return BillingEvent(event_id, kind, subscription_mapping.invoice_report(kind, payload, created))


#: Stripe dispute statuses that end a dispute in the merchant's favour (funds back, or never withdrawn).
_DISPUTE_WON = frozenset({"won", "warning_closed"})


def charge_report(kind: str, payload: Mapping[str, Any]) -> ChargeReport | None:
    """What a ``charge.refunded`` (a Charge) or ``charge.dispute.created|closed`` (a Dispute) event says about money
    going back; None when it names no payment intent (nothing of ours to find)."""
    intent = payload.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    if not intent_id:
        return None
    common: dict[str, Any] = {
        "payment_intent_id": str(intent_id),
        "currency": str(payload.get("currency") or "").lower(),
        "metadata": metadata_of(payload),
    }
    if kind == "charge.refunded":
        return ChargeReport(**common, refunded_amount=minor_units(payload, "amount_refunded"))
    status = str(payload.get("status") or "")
    if kind == "charge.dispute.closed":
        outcome = DisputeStatus.WON if status in _DISPUTE_WON else DisputeStatus.LOST
    elif status.startswith("warning_"):
        return None  # an inquiry: no funds were withdrawn, nothing to take back
    else:  # created: open, unless Stripe already decided it (a late delivery)
        outcome = (
            DisputeStatus.WON if status == "won" else DisputeStatus.LOST if status == "lost" else DisputeStatus.OPEN
        )
    return ChargeReport(**common, dispute_amount=minor_units(payload, "amount"), dispute_status=outcome)


def verify_webhook(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """The Stripe event in ``payload`` (the RAW request body) as a plain dict, once its signature is verified.

    Uses ``stripe.Webhook.construct_event``: the ``Stripe-Signature`` header must carry a ``v1`` HMAC-SHA256 of
    ``"<t>.<payload>"`` under ``secret`` and a timestamp at most ``WEBHOOK_TOLERANCE_SECONDS`` old. Any failure (no or
    garbled header, wrong secret, altered body, stale timestamp, not a JSON event) raises ``InvalidSignatureError``
    with a message that repeats neither the payload nor the secret.
    """
    import stripe

    if not signature_header:
        raise InvalidSignatureError("missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignatureError("Stripe signature verification failed") from exc
    except (ValueError, TypeError, AttributeError) as exc:  # not UTF-8, not JSON, not a JSON object, a thin event
        raise InvalidSignatureError("webhook payload is not a Stripe event") from exc
    if _timestamp(signature_header) > time.time() + WEBHOOK_TOLERANCE_SECONDS:
        raise InvalidSignatureError("Stripe signature timestamp is in the future")
    values: dict[str, Any] = event.to_dict()  # construct_event is untyped
    if not isinstance(values.get("id"), str) or not isinstance(values.get("type"), str):
        raise InvalidSignatureError("webhook payload is not a Stripe event")
    return values


def _timestamp(signature_header: str) -> int:
    """The ``t=`` of a header ``construct_event`` accepted (so it has one, and it is an integer)."""
    stamps = [item.partition("=")[2] for item in signature_header.split(",") if item.strip().startswith("t=")]
    return int(stamps[0])


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid ``Stripe-Signature`` header for ``payload``: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">``.

    For the tests and the local payment provider, which sign their events the way Stripe does.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
