"""The payment provider of ``PAYMENT_PROVIDER=local`` (docs/api.md#local-simulation-dev-server-only): the Stripe event a
payment intent's outcome would send, signed and delivered to the webhook function."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

from devtools.devserver.events import IncomingRequest, function_url_request_event
from devtools.devserver.log import log
from devtools.devserver.paths import WEBHOOK_PATH
from devtools.devserver.replies import Reply, error_reply, json_reply
from devtools.lambda_events import sign_webhook_event
from devtools.stripe_sim.events import stripe_event

STRIPE_EVENT_TYPES = {
    "succeed": "payment_intent.succeeded",
    "fail": "payment_intent.payment_failed",
    "require-action": "payment_intent.requires_action",
    "refund": "charge.refunded",
}


def find_order_by_intent(payment_intent_id: str) -> dict[str, Any] | None:
    """The order item (plain attribute values) an intent was made for, via the ``ByPaymentIntent`` GSI: the order
    itself while it is the order's intent, or the ``INTENT#<orderId>#<intentId>`` link of an abandoned one."""
    import boto3
    from boto3.dynamodb.conditions import Key

    table = boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(
        os.environ["CREDITS_TABLE_NAME"]
    )
    keys = table.query(
        IndexName="ByPaymentIntent", KeyConditionExpression=Key("paymentIntentId").eq(payment_intent_id)
    )["Items"]
    for key in keys:
        sk = str(key["sk"])
        order_sk = sk if sk.startswith("ORDER#") else f"ORDER#{sk.split('#')[1]}" if sk.startswith("INTENT#") else None
        if order_sk is not None:
            item: dict[str, Any] | None = table.get_item(Key={"pk": key["pk"], "sk": order_sk}).get("Item")
            return item
    return None


def payment_event(
    action: str, payment_intent_id: str, order: dict[str, Any], refund_amount: int | None = None
) -> dict[str, Any]:
    """The Stripe ``Event`` (API shape) the provider would send for ``action`` on the order's payment intent."""
    total = order.get("total") or {}
    amount, currency = int(total.get("amount", 0)), str(total.get("currency", "usd"))
    metadata = {"orderId": str(order.get("orderId", "")), "userId": str(order.get("userId", ""))}
    now = int(time.time())
    intent: dict[str, Any] = {
        "id": payment_intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "status": "requires_payment_method",
        "metadata": metadata,
        "livemode": False,
        "created": now,
        "client_secret": f"{payment_intent_id}_secret_local",
        "last_payment_error": None,
        "next_action": None,
        "latest_charge": None,
    }
    if action == "succeed":
        intent |= {"status": "succeeded", "amount_received": amount, "latest_charge": f"ch_{payment_intent_id}"}
    elif action == "fail":
        intent["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        }
    elif action == "require-action":
        intent |= {"status": "requires_action", "next_action": {"type": "use_stripe_sdk"}}
    data = intent
    if action == "refund":
        # Stripe's amount_refunded is cumulative: this refund comes on top of the earlier ones.
        before = int(order.get("refundedAmount") or 0)
        if order.get("paymentIntentId") != payment_intent_id:  # an abandoned or duplicate intent of the order
            others = json.loads(str(order.get("otherIntents") or "{}"))
            before = int((others.get(payment_intent_id) or {}).get("refundedAmount") or 0)
        refunded = amount if refund_amount is None else min(amount, before + refund_amount)
        data = {
            "id": f"ch_{payment_intent_id}",
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": refunded,
            "refunded": refunded >= amount,
            "currency": currency,
            "payment_intent": payment_intent_id,
            "metadata": metadata,
            "status": "succeeded",
            "paid": True,
            "captured": True,
            "livemode": False,
            "created": now,
        }
    return stripe_event(STRIPE_EVENT_TYPES[action], data, now)


def refund_amount(body: bytes) -> int | None:
    """The ``{"amount": n}`` of a refund request (minor units); ``None`` (refund the rest) without a body."""
    if not body.strip():
        return None
    payload = json.loads(body)
    amount = payload.get("amount") if isinstance(payload, dict) else None
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
        raise ValueError("amount must be a positive integer (minor units)")
    return amount


def deliver_event(
    event: dict[str, Any], request: IncomingRequest, invoke: Callable[[str, dict[str, Any]], Reply]
) -> Reply:
    """Deliver a Stripe ``Event`` to the webhook function (through ``invoke``) as Stripe would: a POST to its Function
    URL signed with ``LOCAL_WEBHOOK_SECRET``; answer what the webhook answered. ``request`` is the one that caused it
    (its host and source address)."""
    delivery = IncomingRequest(
        "POST",
        WEBHOOK_PATH,
        "",
        [
            ("Host", request.host),
            ("Content-Type", "application/json; charset=utf-8"),
            ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
        ],
        json.dumps(event, separators=(",", ":")).encode(),
        request.source_ip,
        request.host,
    )
    secret = os.environ.get("LOCAL_WEBHOOK_SECRET") or "whsec_local"
    return invoke("stripe_webhook", sign_webhook_event(function_url_request_event(delivery), secret))


def simulate_payment(
    payment_intent_id: str,
    action: str,
    request: IncomingRequest,
    invoke: Callable[[str, dict[str, Any]], Reply],
) -> Reply:
    """Deliver the Stripe event of ``action`` for the intent to the webhook function (through ``invoke``), signed
    like Stripe; answer what the webhook answered."""
    try:
        refund = refund_amount(request.body) if action == "refund" else None
    except ValueError as exc:
        return error_reply(422, "validation_error", f"invalid body: {exc}")
    order = find_order_by_intent(payment_intent_id)
    if order is None:
        return error_reply(404, "not_found", f"no order has the payment intent {payment_intent_id}")
    event = payment_event(action, payment_intent_id, order, refund)
    reply = deliver_event(event, request, invoke)
    log(f"local payment: {event['type']} {event['id']} for order {order.get('orderId')} -> webhook {reply.status}")
    status = 200 if 200 <= reply.status < 300 else 502
    return json_reply(
        status, {"paymentIntentId": payment_intent_id, "orderId": order.get("orderId"), **delivery_report(event, reply)}
    )


def delivery_report(event: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """``{"event": {"id", "type"}, "webhook": {"status", "body"}}``: what was delivered and what the webhook said."""
    try:
        webhook_body: Any = json.loads(reply.body) if reply.body else None
    except ValueError:
        webhook_body = reply.body.decode("utf-8", "replace")
    return {
        "event": {"id": event["id"], "type": event["type"]},
        "webhook": {"status": reply.status, "body": webhook_body},
    }
