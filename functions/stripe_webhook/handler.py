"""Stripe webhook function (Lambda Function URL): verify the signature on the raw body, parse the event, apply it.

``usercredits.adapters.stripe.webhooks`` verifies and parses (its registry says which event types are handled);
``usercredits.domain.stripe_events.apply_stripe_event`` applies: payment outcomes and refunds to the orders, billing
events (subscriptions, invoices) to the customers table, and refunds or disputes of a charge no order paid with (a
subscription's) to the customers table too (a Stripe endpoint may send all of them to this one URL).

Every correctly signed event is answered ``200 {"received": true}`` (handled, ignored, a redelivery, or unreadable:
a handled type whose payload is not in Stripe's shape, logged as an error with the ``StripeEventsUnreadable`` metric);
a bad signature, or a timestamp more than 5 minutes old or ahead, is ``400 invalid_signature`` with nothing written.
A storage failure answers 503, so Stripe retries.
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
from usercredits.adapters.dynamodb.credits_table import CreditsItem
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository
from usercredits.adapters.payments import build_payment_gateway
from usercredits.adapters.stripe.client import load_webhook_secret
from usercredits.adapters.stripe.webhooks import UnreadableEventError, parse_event, verify_webhook
from usercredits.domain.ports import PaymentGateway, RefundPorts
from usercredits.domain.stripe_events import StripeEventPorts, apply_stripe_event
from usercredits.http import register_error_handlers
from usercredits.observability import logger, metrics
from usercredits.settings import StripeWebhookSettings, get_stripe_webhook_settings
from usercredits.snapstart import prime_before_snapshot

if TYPE_CHECKING:
    from usercredits.subscriptions.ports import SyncPorts

app = LambdaFunctionUrlResolver()
register_error_handlers(app)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Dependencies:
    settings: StripeWebhookSettings
    ports: RefundPorts
    # Its key is read on the first call to Stripe: only a payment that pays nothing (refunded at once) makes one here.
    payments: PaymentGateway


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built on first use (none at import time)."""
    settings = get_stripe_webhook_settings()
    ports = RefundPorts(
        orders=DynamoOrderRepository(),
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(cache_seconds=settings.CATALOG_CACHE_SECONDS),
        reversals=DynamoReversalRepository(),
        clock=build_clock(settings),
    )
    payments = build_payment_gateway(settings)
    return Dependencies(settings=settings, ports=ports, payments=payments)


@lru_cache
def billing_ports() -> SyncPorts | None:
    """The subscriptions half's ports, built on the first billing event: the payment events' cold start does not
    load it (only some invocations need it). With the local provider, the dev server's Stripe simulation
    (``LOCAL_STRIPE_API_BASE``); None without one (no billing events come then)."""
    settings = dependencies().settings
    if settings.PAYMENT_PROVIDER == "local" and not settings.LOCAL_STRIPE_API_BASE:
        return None
    from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
    from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
    from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
    from usercredits.subscriptions.ports import SyncPorts

    return SyncPorts(
        customers=DynamoCustomerRepository(),
        coupons=DynamoCouponRepository(),
        processor=(
            StripeSubscriptionProcessor("sk_test_local", api_base=settings.LOCAL_STRIPE_API_BASE)
            if settings.PAYMENT_PROVIDER == "local"
            else StripeSubscriptionProcessor.from_secret(settings.STRIPE_SECRET_NAME)
        ),
        clock=build_clock(settings),
    )


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
    kind = str(event["type"])
    try:
        parsed = parse_event(event)
    except UnreadableEventError as exc:
        # Acknowledged (Stripe would redeliver the same bytes for days), logged as an error and counted for the
        # alarm; the order or customer is reconciled from Stripe's API (confirm / sync).
        logger.error("stripe event unreadable", extra={"event_id": event["id"], "type": kind, "reason": str(exc)})
        metrics.add_metric(name="StripeEventsUnreadable", unit=MetricUnit.Count, value=1)
        return {"received": True}
    ports = StripeEventPorts(refunds=deps.ports, payments=deps.payments, billing=billing_ports)
    outcome = "ignored" if parsed is None else apply_stripe_event(parsed, ports)
    logger.info("stripe event applied", extra={"event_id": event["id"], "type": kind, "outcome": outcome})
    metrics.add_metric(name="StripeEventsApplied", unit=MetricUnit.Count, value=1)
    return {"received": True}


# SnapStart: built before the snapshot, not on a restored environment's first request (usercredits.snapstart).
prime_before_snapshot(dependencies, tables=[CreditsItem], modules=["stripe"])


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Function URL entry point (payload 2.0): 200 for every verified event, 400 for a bad signature."""
    return app.resolve(event, context)
