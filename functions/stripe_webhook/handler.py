"""Stripe webhook function (Lambda Function URL): verify the signature on the raw body, then apply the event.

Payment intent outcomes go to ``usercredits.domain.payments``; refunds and disputes to ``usercredits.domain.refunds``;
billing events (subscriptions, invoices) to ``usercredits.subscriptions.processor_sync``, which updates the customers
table (a Stripe endpoint may send all of them to this one URL).

Every correctly signed event is answered ``200 {"received": true}`` (handled, ignored or a redelivery); a bad
signature is ``400 invalid_signature`` with nothing written. A storage failure answers 503, so Stripe retries.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.adapters.clock import build_clock
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository
from usercredits.adapters.payments import LazyPaymentGateway, build_payment_gateway
from usercredits.adapters.stripe_gateway import charge_report, intent_state, load_webhook_secret, verify_webhook
from usercredits.domain import payments, refunds
from usercredits.domain.ports import PaymentGateway
from usercredits.http import register_error_handlers
from usercredits.observability import logger, metrics
from usercredits.settings import StripeWebhookSettings, get_stripe_webhook_settings

if TYPE_CHECKING:
    from usercredits.subscriptions.processor_sync import SyncPorts

app = LambdaFunctionUrlResolver()
register_error_handlers(app)  # type: ignore[arg-type]


#: Events about money going back on a charge (refunds, chargebacks).
CHARGE_EVENTS = frozenset({"charge.refunded", "charge.dispute.created", "charge.dispute.closed"})
#: Events about subscriptions and their invoices (the subscriptions half, customers table).
BILLING_EVENTS = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)


@dataclass(frozen=True)
class Dependencies:
    settings: StripeWebhookSettings
    ports: refunds.RefundPorts
    # Built on first use: only a payment that pays nothing (refunded at once) needs Stripe's API here.
    payments: PaymentGateway


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built on first use (none at import time)."""
    settings = get_stripe_webhook_settings()
    ports = refunds.RefundPorts(
        orders=DynamoOrderRepository(),
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(cache_seconds=settings.CATALOG_CACHE_SECONDS),
        reversals=DynamoReversalRepository(),
        clock=build_clock(settings),
    )
    payments = LazyPaymentGateway(lambda: build_payment_gateway(settings), settings.PAYMENT_PROVIDER)
    return Dependencies(settings=settings, ports=ports, payments=payments)


@lru_cache
def billing_ports() -> SyncPorts | None:
    """The subscriptions half's ports, built on the first billing event: the payment events' cold start does not
    load it (only some invocations need it). None with the local provider, which sends no billing events."""
    settings = dependencies().settings
    if settings.PAYMENT_PROVIDER == "local":
        return None
    from usercredits.adapters.dynamodb.customers import DynamoCouponRepository, DynamoCustomerRepository
    from usercredits.adapters.stripe_billing import StripeSubscriptionProcessor
    from usercredits.subscriptions.processor_sync import SyncPorts

    return SyncPorts(
        customers=DynamoCustomerRepository(),
        coupons=DynamoCouponRepository(),
        processor=StripeSubscriptionProcessor.from_secret(settings.STRIPE_SECRET_NAME),
        clock=build_clock(settings),
    )


def _apply_billing_event(event: dict[str, Any], kind: str, payload: dict[str, Any]) -> str:
    ports = billing_ports()
    if ports is None:
        return "ignored"
    from usercredits.subscriptions.processor_sync import apply_billing_event

    return apply_billing_event(str(event["id"]), kind, payload, int(event.get("created") or 0), ports)


def _webhook_secret(settings: StripeWebhookSettings) -> str:
    if settings.PAYMENT_PROVIDER == "local":
        return settings.LOCAL_WEBHOOK_SECRET
    return load_webhook_secret(settings.STRIPE_SECRET_NAME)


def _raw_body() -> bytes:
    # Verify exactly the bytes Stripe signed: never a re-serialised body.
    event = app.current_event
    body = event.body or ""
    return base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8")


@app.post("/")
def handle_stripe_event() -> dict[str, Any]:
    deps = dependencies()
    signature = app.current_event.headers.get("stripe-signature")
    event = verify_webhook(_raw_body(), signature, _webhook_secret(deps.settings))
    kind, payload = str(event["type"]), (event.get("data") or {}).get("object") or {}
    ports, outcome = deps.ports, "ignored"
    if kind in payments.HANDLED and payload.get("id"):
        outcome = payments.apply_payment_event(
            str(event["id"]),
            kind,
            intent_state(payload),
            orders=ports.orders,
            payments=deps.payments,
            clock=ports.clock,
            refunds=ports,
        )
    elif kind in CHARGE_EVENTS and (report := charge_report(kind, payload)) is not None:
        outcome = refunds.apply_charge_report(str(event["id"]), kind, report, ports=ports)
    elif kind in BILLING_EVENTS and payload.get("id"):
        outcome = _apply_billing_event(event, kind, payload)
    logger.info("stripe event applied", extra={"event_id": event["id"], "type": kind, "outcome": outcome})
    metrics.add_metric(name="StripeEventsApplied", unit=MetricUnit.Count, value=1)
    return {"received": True}


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Function URL entry point (payload 2.0): 200 for every verified event, 400 for a bad signature."""
    return app.resolve(event, context)
