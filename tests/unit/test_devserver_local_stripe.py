"""The dev server's Stripe simulation side (devtools/devserver/local_stripe.py), in process: the ``/_local/stripe``
controls, and the delivery of the simulation's events to the webhook function (oldest first, signed as Stripe signs,
until none is left, including those the webhook's own calls made)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from devtools.devserver.events import IncomingRequest
from devtools.devserver.local_stripe import LocalStripe
from devtools.devserver.replies import Reply, json_reply

from usercredits.adapters.stripe.webhooks import verify_webhook

SECRET = "whsec_local"


class Webhook:
    """Stands for the webhook function: verifies each delivery like it, keeps the events, may act on the simulation."""

    def __init__(self, stripe: LocalStripe) -> None:
        self.stripe = stripe
        self.events: list[dict[str, Any]] = []
        self.on_first_event: Any = None

    def __call__(self, folder: str, event: dict[str, Any]) -> Reply:
        assert folder == "stripe_webhook"
        raw = base64.b64decode(event["body"]) if event.get("isBase64Encoded") else event["body"].encode()
        verified = verify_webhook(raw, event["headers"]["stripe-signature"], SECRET)
        self.events.append(verified)
        if self.on_first_event is not None and len(self.events) == 1:
            self.on_first_event()
        return json_reply(200, {"received": True})

    @property
    def kinds(self) -> list[str]:
        return [event["type"] for event in self.events]


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> LocalStripe:
    monkeypatch.setenv("LOCAL_WEBHOOK_SECRET", SECRET)
    local = LocalStripe(clock_file=None)  # not started: the tests call it in process
    local.simulator.add_price("price_pro", 1490)
    return local


def post(path: str, body: Any = None) -> IncomingRequest:
    raw = json.dumps(body).encode() if body is not None else b""
    return IncomingRequest("POST", path, "", [("Content-Type", "application/json")], raw)


def api(stripe: LocalStripe, method: str, path: str, **form: Any) -> dict[str, Any]:
    answer = stripe.simulator.handle(method, path, form, {})
    assert answer.status == 200, answer.body
    return answer.body


def a_subscription(stripe: LocalStripe) -> str:
    """A customer with a card and a paid Pro subscription (its creation events already taken)."""
    customer = api(stripe, "POST", "/v1/customers", email="a@example.com")["id"]
    card = api(stripe, "POST", "/v1/payment_methods/pm_card_visa/attach", customer=customer)["id"]
    subscription = api(
        stripe,
        "POST",
        "/v1/subscriptions",
        customer=customer,
        default_payment_method=card,
        items=[{"price": "price_pro"}],
        metadata={"userId": "alice"},
    )["id"]
    stripe.simulator.take_events()
    return str(subscription)


def body_of(reply: Reply) -> Any:
    return json.loads(reply.body)


def test_renew_delivers_the_update_then_the_paid_invoice_signed(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    webhook = Webhook(stripe)
    # When the subscription is renewed through its control
    reply = stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/renew"), webhook)
    # Then the webhook verified both events, in Stripe's order, and the reply lists the deliveries
    assert reply is not None and reply.status == 200, reply
    assert webhook.kinds == ["customer.subscription.updated", "invoice.paid"]
    body = body_of(reply)
    assert [d["event"]["type"] for d in body["deliveries"]] == webhook.kinds
    assert {d["webhook"]["status"] for d in body["deliveries"]} == {200}
    assert body["object"]["id"] == subscription
    # And the invoice is for the new period, paid by a new charge
    invoice = webhook.events[1]["data"]["object"]
    assert (invoice["status"], invoice["amount_paid"], invoice["billing_reason"]) == (
        "paid",
        1490,
        "subscription_cycle",
    )
    # And the deliveries are listed for inspection
    listed = stripe.reply(IncomingRequest("GET", "/_local/stripe/deliveries", "", [], b""), webhook)
    assert listed is not None and len(body_of(listed)["deliveries"]) == 2


def test_events_the_webhook_causes_are_delivered_in_the_same_request(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    webhook = Webhook(stripe)
    # Given a webhook that changes the subscription at Stripe while handling the first event (as a sync would)
    webhook.on_first_event = lambda: api(
        stripe, "POST", f"/v1/subscriptions/{subscription}", metadata={"touched": "yes"}
    )
    # When the subscription is renewed
    stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/renew"), webhook)
    # Then the update the webhook made was delivered too, after what was queued before it
    assert webhook.kinds == ["customer.subscription.updated", "invoice.paid", "customer.subscription.updated"]
    assert stripe.simulator.take_events() == []


def test_a_declined_renewal_is_past_due_with_a_failed_invoice(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    webhook = Webhook(stripe)
    fail = stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/fail-next-invoice"), webhook)
    assert fail is not None and fail.status == 200 and webhook.kinds == []
    stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/renew"), webhook)
    assert webhook.kinds == ["customer.subscription.updated", "invoice.payment_failed"]
    assert webhook.events[0]["data"]["object"]["status"] == "past_due"
    assert webhook.events[1]["data"]["object"]["status"] == "open"
    # And the invoice after it is paid again (one declined invoice per arming)
    stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/renew"), webhook)
    assert webhook.kinds[-1] == "invoice.paid"
    assert stripe.simulator.subscriptions[subscription]["status"] == "active"


def test_refund_and_dispute_controls(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    charge = stripe.simulator.invoices[stripe.simulator.subscriptions[subscription]["latest_invoice"]]["payments"]
    charge_id = charge["data"][0]["payment"]["charge"]
    webhook = Webhook(stripe)
    refunded = stripe.reply(post(f"/_local/stripe/charges/{charge_id}/refund", {"amount": 490}), webhook)
    assert refunded is not None and refunded.status == 200, refunded
    opened = stripe.reply(post(f"/_local/stripe/charges/{charge_id}/dispute", {"reason": "fraudulent"}), webhook)
    assert opened is not None and opened.status == 200, opened
    dispute_id = body_of(opened)["object"]["id"]
    won = stripe.reply(post(f"/_local/stripe/disputes/{dispute_id}/win"), webhook)
    assert won is not None and won.status == 200
    assert webhook.kinds == ["charge.refunded", "charge.dispute.created", "charge.dispute.closed"]
    assert webhook.events[0]["data"]["object"]["amount_refunded"] == 490
    assert (webhook.events[2]["data"]["object"]["status"], webhook.events[2]["data"]["object"]["amount"]) == (
        "won",
        1000,
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/_local/stripe/subscriptions/sub_missing/renew", None, 404, "not_found"),
        ("/_local/stripe/charges/ch_missing/refund", None, 404, "not_found"),
        ("/_local/stripe/disputes/dp_missing/lose", None, 404, "not_found"),
        ("/_local/stripe/charges/{charge}/refund", {"amount": 0}, 422, "validation_error"),
        ("/_local/stripe/charges/{charge}/refund", {"amount": 999999}, 409, "conflict"),
        ("/_local/stripe/charges/{charge}/dispute", {"reason": 7}, 422, "validation_error"),
        ("/_local/stripe/subscriptions/{charge}/refund", None, 404, "not_found"),  # an action of another kind
        ("/_local/stripe/subscriptions/{subscription}/explode", None, 404, "not_found"),
    ],
)
def test_bad_control_requests_are_clear_4xx(stripe: LocalStripe, path: str, body: Any, status: int, code: str) -> None:
    subscription = a_subscription(stripe)
    invoice = stripe.simulator.invoices[stripe.simulator.subscriptions[subscription]["latest_invoice"]]
    charge = invoice["payments"]["data"][0]["payment"]["charge"]
    reply = stripe.reply(post(path.format(subscription=subscription, charge=charge), body), Webhook(stripe))
    assert reply is not None
    assert (reply.status, body_of(reply)["error"]) == (status, code), reply.body
    assert stripe.simulator.take_events() == []


def test_a_canceled_subscription_does_not_renew(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    stripe.simulator.handle("DELETE", f"/v1/subscriptions/{subscription}", {}, {})
    stripe.simulator.take_events()
    reply = stripe.reply(post(f"/_local/stripe/subscriptions/{subscription}/renew"), Webhook(stripe))
    assert reply is not None and (reply.status, body_of(reply)["error"]) == (409, "conflict")


def test_get_reads_the_simulations_objects_as_stripe_answers_them(stripe: LocalStripe) -> None:
    subscription = a_subscription(stripe)
    request = IncomingRequest("GET", f"/_local/stripe/v1/subscriptions/{subscription}", "", [], b"")
    reply = stripe.reply(request, Webhook(stripe))
    assert reply is not None and reply.status == 200
    assert body_of(reply)["object"] == "subscription"
    other = stripe.reply(IncomingRequest("GET", "/_local/clockwork", "", [], b""), Webhook(stripe))
    assert other is None  # not a /_local/stripe path: the server routes it elsewhere


@pytest.mark.parametrize("url", ["http://127.0.0.1:41234", "http://localhost:8080", ""])
def test_the_simulations_url_setting_takes_a_loopback_url(url: str) -> None:
    from usercredits.settings import PaymentSettings

    settings = PaymentSettings.model_validate({"LOCAL_STRIPE_API_BASE": url})
    assert url == settings.LOCAL_STRIPE_API_BASE


@pytest.mark.parametrize("url", ["https://api.stripe.com", "http://10.0.0.5:3000", "http://127.0.0.1:1/v1", "x"])
def test_the_simulations_url_setting_refuses_anything_else(url: str) -> None:
    # A deployed function must never be pointed at another "Stripe" with a test key.
    from pydantic import ValidationError

    from usercredits.settings import PaymentSettings

    with pytest.raises(ValidationError, match="LOCAL_STRIPE_API_BASE"):
        PaymentSettings.model_validate({"LOCAL_STRIPE_API_BASE": url})
