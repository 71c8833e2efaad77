"""The contract over HTTP against the real `make run` stack: authorizer, offers, orders, admin, idempotency, errors."""

from __future__ import annotations

import json
import time
import uuid
from http import HTTPStatus
from typing import Any

import jwt
import pytest
import yaml
from devtools.jwt_tokens import AUDIENCE, ISSUER

from tests.e2e.conftest import JWT_SECRET, ROOT, Api, HttpResult, token_for

pytestmark = pytest.mark.e2e

DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"
PRICED_OFFER = "_100tokens"
FREE_OFFER = "Free"


def expect(result: HttpResult, status: HTTPStatus) -> Any:
    """Assert the status (showing the whole exchange when it differs) and return the JSON body."""
    assert result.status == status, f"expected {int(status)}{result}"
    return result.json()


def expect_error(result: HttpResult, status: HTTPStatus, code: str) -> dict[str, Any]:
    """Assert the contract's error shape: ``{"error": code, "message": text, "details"?: [...]}``."""
    body = expect(result, status)
    assert isinstance(body, dict), f"error body is not an object{result}"
    assert body.get("error") == code, f"expected error {code!r}{result}"
    assert isinstance(body.get("message"), str) and body["message"], f"error without a message{result}"
    assert isinstance(body.get("details", []), list), f"details must be a list{result}"
    assert result.headers.get("content-type", "").startswith("application/json"), f"not JSON{result}"
    return body


def demo_offers() -> list[dict[str, Any]]:
    return yaml.safe_load(DEMO_CATALOG.read_text(encoding="utf-8"))["offers"]


def demo_price(offer_id: str, currency: str = "usd") -> int:
    offer = next(o for o in demo_offers() if o["offerId"] == offer_id)
    return next(p["amount"] for p in offer["prices"] if p["currency"] == currency)


def place_order(api: Api, token: str, offer_id: str, **extra: Any) -> HttpResult:
    headers = extra.pop("headers", None)
    return api.post("/orders", token=token, json_body={"offerId": offer_id, **extra}, headers=headers)


# ---------------------------------------------------------------------------------------------------------- authorizer
def test_authorizer_without_token_answers_401(api: Api) -> None:
    # Given no Authorization header / When listing offers
    result = api.get("/offers")
    # Then the authorizer refuses, in the contract's shape
    expect_error(result, HTTPStatus.UNAUTHORIZED, "unauthorized")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Bearer not-a-jwt", id="garbage"),
        pytest.param("Basic dXNlcjpwYXNz", id="not-bearer"),
        pytest.param(f"Bearer {token_for('mallory', secret='another-secret-0123456789abcdef')}", id="wrong-secret"),
        pytest.param(f"Bearer {token_for('alice', ttl=-60)}", id="expired"),
        pytest.param(f"Bearer {token_for('alice', extra_claims={'aud': 'someone-else'})}", id="wrong-audience"),
    ],
)
def test_authorizer_with_bad_token_answers_401(api: Api, authorization: str) -> None:
    result = api.get("/offers", headers={"Authorization": authorization})
    expect_error(result, HTTPStatus.UNAUTHORIZED, "unauthorized")


def test_authorizer_accepts_a_plain_pyjwt_token(api: Api) -> None:
    # Given a token made with PyJWT directly (sub only + standard claims), signed with the stack's secret
    now = int(time.time())
    claims = {"sub": "plain-user", "iat": now, "exp": now + 60, "iss": ISSUER, "aud": AUDIENCE}
    token = jwt.encode(claims, JWT_SECRET, algorithm="HS256")
    # When / Then
    expect(api.get("/offers", token=token), HTTPStatus.OK)


# ------------------------------------------------------------------------------------------------------------- offers
def test_list_offers_returns_the_demo_catalog_public_offers(api: Api, user_token: str) -> None:
    # Given the demo catalog loaded by `make run`, and a user who bought nothing
    expected = {
        o["offerId"]
        for o in demo_offers()
        if not o.get("unlockedBy") and not o.get("retired") and any(p["currency"] == "usd" for p in o["prices"])
    }
    # When
    body = expect(api.get("/offers?currency=usd", token=user_token), HTTPStatus.OK)
    # Then exactly the public offers are listed (locked ones are not)
    listed = {offer["offerId"] for offer in body["offers"]}
    assert listed == expected, f"missing {expected - listed}, unexpected {listed - expected}"
    for offer in body["offers"]:
        assert {"offerId", "name", "kind", "offerGroup", "prices", "tokens", "cycle"} <= offer.keys()


def test_list_offers_filters_by_tag(api: Api, user_token: str) -> None:
    body = expect(api.get("/offers?tags=ai", token=user_token), HTTPStatus.OK)
    assert body["offers"], "the demo catalog has offers tagged 'ai'"
    assert all("ai" in offer["tags"] for offer in body["offers"])


def test_get_offer_returns_it(api: Api, user_token: str) -> None:
    body = expect(api.get(f"/offers/{PRICED_OFFER}", token=user_token), HTTPStatus.OK)
    assert body["offerId"] == PRICED_OFFER
    assert {"amount": demo_price(PRICED_OFFER), "currency": "usd"} in body["prices"]


def test_get_unknown_offer_is_404(api: Api, user_token: str) -> None:
    expect_error(api.get("/offers/no-such-offer", token=user_token), HTTPStatus.NOT_FOUND, "not_found")


# ------------------------------------------------------------------------------------------------------------- orders
def test_order_of_a_priced_offer_is_pending_with_a_local_payment(api: Api, user_token: str, user: str) -> None:
    # When ordering 2 units of a priced offer
    body = expect(place_order(api, user_token, PRICED_OFFER, quantity=2), HTTPStatus.CREATED)
    # Then the order waits for its payment, priced in minor units, with a local payment intent
    order, payment = body["order"], body["payment"]
    assert order["status"] == "pending"
    assert order["userId"] == user
    assert order["offerId"] == PRICED_OFFER
    assert order["quantity"] == 2
    assert order["total"] == {"amount": 2 * demo_price(PRICED_OFFER), "currency": "usd"}
    assert payment["provider"] == "local"
    assert payment["paymentIntentId"] and payment["clientSecret"]
    assert order["paymentIntentId"] == payment["paymentIntentId"]


def test_order_of_the_free_offer_is_paid_at_once(api: Api, user_token: str) -> None:
    body = expect(place_order(api, user_token, FREE_OFFER), HTTPStatus.CREATED)
    assert body["order"]["status"] == "paid"
    assert body["order"]["total"]["amount"] == 0
    assert body["payment"] is None


def test_list_orders_is_newest_first(api: Api, user_token: str) -> None:
    # Given three orders placed one after the other (offers without bundled items: a bundle adds child orders)
    placed = []
    for offer_id in (PRICED_OFFER, "_20tokens", "_300tokens"):
        placed.append(expect(place_order(api, user_token, offer_id), HTTPStatus.CREATED)["order"]["orderId"])
    # When
    body = expect(api.get("/orders", token=user_token), HTTPStatus.OK)
    # Then newest first, and nothing else
    assert [order["orderId"] for order in body["orders"]] == placed[::-1]
    assert "nextCursor" in body


def test_get_order_returns_it_with_history(api: Api, user_token: str) -> None:
    order_id = expect(place_order(api, user_token, PRICED_OFFER), HTTPStatus.CREATED)["order"]["orderId"]
    body = expect(api.get(f"/orders/{order_id}", token=user_token), HTTPStatus.OK)
    assert body["orderId"] == order_id
    assert body["history"] and body["history"][0]["status"] == "pending"


def test_another_users_order_is_404(api: Api, user_token: str) -> None:
    # Given alice's order
    order_id = expect(place_order(api, user_token, PRICED_OFFER), HTTPStatus.CREATED)["order"]["orderId"]
    # When bob asks for it
    bob = token_for(f"e2e-bob-{uuid.uuid4().hex[:8]}")
    # Then it does not exist for him
    expect_error(api.get(f"/orders/{order_id}", token=bob), HTTPStatus.NOT_FOUND, "not_found")


def test_idempotency_key_replay_returns_the_same_order(api: Api, user_token: str) -> None:
    # Given an order placed with an Idempotency-Key
    headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    first = expect(place_order(api, user_token, PRICED_OFFER, headers=headers), HTTPStatus.CREATED)
    # When the same request is repeated
    replay = place_order(api, user_token, PRICED_OFFER, headers=headers)
    # Then the first result comes back and nothing new was created
    assert replay.status in (HTTPStatus.OK, HTTPStatus.CREATED), f"replay failed{replay}"
    assert replay.json()["order"]["orderId"] == first["order"]["orderId"], f"replay made a new order{replay}"
    orders = expect(api.get("/orders", token=user_token), HTTPStatus.OK)["orders"]
    assert [order["orderId"] for order in orders] == [first["order"]["orderId"]]


def test_idempotency_key_with_another_body_is_409(api: Api, user_token: str) -> None:
    headers = {"Idempotency-Key": f"e2e-{uuid.uuid4()}"}
    expect(place_order(api, user_token, PRICED_OFFER, headers=headers), HTTPStatus.CREATED)
    conflict = place_order(api, user_token, PRICED_OFFER, quantity=3, headers=headers)
    expect_error(conflict, HTTPStatus.CONFLICT, "conflict")


# -------------------------------------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="bad-json"),
        pytest.param(b'{"quantity": 1}', id="missing-offerId"),
        pytest.param(json.dumps({"offerId": PRICED_OFFER, "quantity": 0}).encode(), id="zero-quantity"),
        pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
    ],
)
def test_invalid_order_body_is_422(api: Api, user_token: str, body: bytes) -> None:
    result = api.post("/orders", token=user_token, body=body, headers={"Content-Type": "application/json"})
    expect_error(result, HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error")


# ------------------------------------------------------------------------------------------------------------- admin
def offer_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "tokens",
        "offerGroup": "E2eGroup",
        "prices": [{"amount": 1234, "currency": "usd"}],
        "tokens": 12,
        "cycle": "yearly",
        "tags": ["e2e"],
    }


def test_admin_routes_are_403_for_a_non_admin(api: Api, user_token: str) -> None:
    offer_id = f"e2e-{uuid.uuid4().hex[:8]}"
    expect_error(
        api.put(f"/admin/offers/{offer_id}", token=user_token, json_body=offer_body("nope")),
        HTTPStatus.FORBIDDEN,
        "forbidden",
    )
    expect_error(api.delete(f"/admin/offers/{PRICED_OFFER}", token=user_token), HTTPStatus.FORBIDDEN, "forbidden")


def test_admin_puts_then_retires_an_offer(api: Api, admin_token: str, user_token: str) -> None:
    offer_id = f"e2e-{uuid.uuid4().hex[:8]}"
    # When an admin creates an offer
    saved = expect(api.put(f"/admin/offers/{offer_id}", token=admin_token, json_body=offer_body("E2E")), HTTPStatus.OK)
    assert saved["offerId"] == offer_id
    # Then users see it
    expect(api.get(f"/offers/{offer_id}", token=user_token), HTTPStatus.OK)
    # When the admin replaces it
    replaced = expect(
        api.put(f"/admin/offers/{offer_id}", token=admin_token, json_body=offer_body("E2E v2")), HTTPStatus.OK
    )
    assert replaced["name"] == "E2E v2"
    # When the admin retires it
    retired = api.delete(f"/admin/offers/{offer_id}", token=admin_token)
    assert retired.status == HTTPStatus.NO_CONTENT, f"expected 204{retired}"
    assert retired.body == b""
    # Then it is no longer offered
    listed = expect(api.get("/offers?tags=e2e", token=user_token), HTTPStatus.OK)["offers"]
    assert offer_id not in {offer["offerId"] for offer in listed}


# ----------------------------------------------------------------------------------------------- the server itself
def test_unknown_route_is_404(api: Api, user_token: str) -> None:
    expect_error(api.get("/no/such/route", token=user_token), HTTPStatus.NOT_FOUND, "not_found")


def test_known_path_with_another_method_is_404_like_api_gateway(api: Api, user_token: str) -> None:
    expect_error(api.request("PATCH", "/orders", token=user_token), HTTPStatus.NOT_FOUND, "not_found")


def test_openapi_document_lists_the_ordering_routes(api: Api) -> None:
    document = expect(api.get("/openapi.json"), HTTPStatus.OK)
    assert document["openapi"].startswith("3.")
    assert {"/offers", "/offers/{offerId}", "/orders", "/orders/{orderId}", "/admin/offers/{offerId}"} <= set(
        document["paths"]
    )
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert document["servers"] == [{"url": api.base_url}]


def test_swagger_ui_is_served_without_a_cdn(api: Api) -> None:
    page = api.get("/docs")
    assert page.status == HTTPStatus.OK
    assert b"SwaggerUIBundle" in page.body
    assert b"https://" not in page.body.split(b"<script>")[0], "Swagger UI assets must be local"
    asset = api.get("/docs/swagger-ui-bundle.min.js")
    assert asset.status == HTTPStatus.OK and len(asset.body) > 100_000


def test_cors_preflight_is_answered_without_a_token(api: Api) -> None:
    result = api.request(
        "OPTIONS", "/orders", headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"}
    )
    assert result.status == HTTPStatus.NO_CONTENT
    assert result.headers.get("access-control-allow-origin") == "*"
    assert "idempotency-key" in result.headers.get("access-control-allow-headers", "").lower()


def test_webhook_with_a_bad_signature_is_400(api: Api) -> None:
    # The Stripe webhook has no authorizer (Function URL); the signature is its authentication.
    result = api.post(
        "/webhooks/stripe",
        body=b'{"id": "evt_x", "type": "payment_intent.succeeded"}',
        headers={"Content-Type": "application/json", "Stripe-Signature": "t=1,v1=deadbeef"},
    )
    expect_error(result, HTTPStatus.BAD_REQUEST, "invalid_signature")


def test_local_payment_success_marks_the_order_paid(api: Api, user_token: str) -> None:
    # Given a pending order with a local payment intent
    placed = expect(place_order(api, user_token, PRICED_OFFER), HTTPStatus.CREATED)
    intent = placed["payment"]["paymentIntentId"]
    # When the simulated provider reports the payment succeeded (a signed Stripe event to the webhook)
    result = api.post(f"/_local/payments/{intent}/succeed")
    delivered = expect(result, HTTPStatus.OK)
    assert delivered["event"]["type"] == "payment_intent.succeeded"
    # Then the order is paid
    order = expect(api.get(f"/orders/{placed['order']['orderId']}", token=user_token), HTTPStatus.OK)
    assert order["status"] == "paid", f"order after a successful payment: {order}"


def test_credits_flow_free_order_then_spend_hold_and_ledger(api: Api) -> None:
    """offers -> free order -> credits -> consume -> hold/capture -> ledger, over HTTP on the real stack."""
    token = token_for(f"credits-{uuid.uuid4().hex[:8]}")
    expect(place_order(api, token, FREE_OFFER), HTTPStatus.CREATED)
    groups = {g["offerGroup"]: g for g in expect(api.get("/credits", token=token), HTTPStatus.OK)["groups"]}
    assert (groups["Free"]["balance"], groups["AiTokens"]["balance"]) == (10, 20)

    spent = expect(api.post("/credits/AiTokens/consume", token=token, json_body={"count": 5}), HTTPStatus.OK)
    assert (spent["consumed"], spent["balance"]) == (5, 15)
    expect_error(
        api.post("/credits/AiTokens/consume", token=token, json_body={"count": 16}),
        HTTPStatus.PAYMENT_REQUIRED,
        "insufficient_credits",
    )

    hold = expect(api.post("/credits/AiTokens/reservations", token=token, json_body={"count": 10}), HTTPStatus.CREATED)
    captured = expect(
        api.post(f"/reservations/{hold['reservationId']}/capture", token=token, json_body={"count": 4}), HTTPStatus.OK
    )
    assert captured["status"] == "captured"

    ledger = expect(api.get("/credits/ledger?offerGroup=AiTokens", token=token), HTTPStatus.OK)["entries"]
    assert [(e["kind"], e["tokens"], e["balanceAfter"]) for e in ledger] == [
        ("capture", -4, 11),
        ("hold", 0, 15),
        ("consume", -5, 15),
        ("grant", 20, 20),
    ]
    assert sum(e["tokens"] for e in ledger) == 11


def published(api: Api, order_id: str, kinds: list[str], timeout: float = 10.0) -> list[dict[str, Any]]:
    """The events of ``order_id`` on the local bus once ``kinds`` (with repeats) arrived (the stream pump polls every
    0.5 s, so the last refund's events may still be on their way when the HTTP calls are done)."""
    deadline = time.monotonic() + timeout
    while True:
        events = expect(api.get("/_local/events"), HTTPStatus.OK)["events"]
        details = [(e["DetailType"], json.loads(e["Detail"])) for e in events]
        mine = [{"kind": kind, **detail} for kind, detail in details if detail.get("orderId", "").startswith(order_id)]
        if sorted(kinds) == sorted(event["kind"] for event in mine) or time.monotonic() > deadline:
            return mine
        time.sleep(0.2)


def test_local_money_flow_pay_consume_refund_and_events(api: Api) -> None:
    """offers -> order -> pay -> credits -> consume -> partial refund -> full refund, and the events on the bus."""
    token = token_for(f"money-{uuid.uuid4().hex[:8]}")
    placed = expect(place_order(api, token, PRICED_OFFER), HTTPStatus.CREATED)  # _100tokens, 20.00 usd
    order_id, intent = placed["order"]["orderId"], placed["payment"]["paymentIntentId"]
    expect(api.post(f"/_local/payments/{intent}/succeed"), HTTPStatus.OK)
    expect(api.post("/credits/AiTokens/consume", token=token, json_body={"count": 30}), HTTPStatus.OK)

    # 500 of 2000 back: 25 of the 100 tokens are owed and 70 remain, so all 25 go.
    expect(api.post(f"/_local/payments/{intent}/refund", json_body={"amount": 500}), HTTPStatus.OK)
    group = expect(api.get("/credits/AiTokens", token=token), HTTPStatus.OK)
    assert group["balance"] == 45
    # The rest back (cumulative 2000): all 75 still owed go; the 30 spent become a debt the next grants repay.
    expect(api.post(f"/_local/payments/{intent}/refund", json_body={"amount": 1500}), HTTPStatus.OK)
    group = expect(api.get("/credits/AiTokens", token=token), HTTPStatus.OK)
    assert (group["balance"], group["debt"], group["lots"]) == (-30, 30, [])
    order = expect(api.get(f"/orders/{order_id}", token=token), HTTPStatus.OK)
    assert (order["status"], order["refundedAmount"], order["withdrawn"]) == ("refunded", 2000, True)
    ledger = expect(api.get("/credits/ledger?offerGroup=AiTokens", token=token), HTTPStatus.OK)["entries"]
    assert [(e["kind"], e["tokens"]) for e in ledger[:2]] == [("revoke", -75), ("revoke", -25)]

    events = published(api, order_id, ["OrderPaid", "CreditsGranted", "CreditsRevoked", "CreditsRevoked"])
    kinds = [event["kind"] for event in events]
    assert kinds == ["OrderPaid", "CreditsGranted", "CreditsRevoked", "CreditsRevoked"], events
    revoked = [(event["tokens"], event["debt"]) for event in events if event["kind"] == "CreditsRevoked"]
    assert revoked == [(25, 0), (75, 30)]
    assert len({event["eventId"] for event in events}) == 4


def test_two_payments_for_one_order_end_as_one_grant_and_one_refund(api: Api) -> None:
    """Issue 12, defect 1, over HTTP: an abandoned intent's events never change the order; its success is money:
    it pays the order if nothing else did, else it is refunded at once."""
    token = token_for(f"tabs-{uuid.uuid4().hex[:8]}")
    placed = expect(place_order(api, token, PRICED_OFFER), HTTPStatus.CREATED)
    order_id, first = placed["order"]["orderId"], placed["payment"]["paymentIntentId"]
    again = expect(api.post(f"/orders/{order_id}/payment", token=token), HTTPStatus.OK)
    second = again["payment"]["paymentIntentId"]
    assert second != first

    expect(api.post(f"/_local/payments/{first}/fail"), HTTPStatus.OK)  # the abandoned one: nothing changes
    assert expect(api.get(f"/orders/{order_id}", token=token), HTTPStatus.OK)["status"] == "pending"
    expect(api.post(f"/_local/payments/{first}/succeed"), HTTPStatus.OK)  # paid in the first tab after all
    order = expect(api.get(f"/orders/{order_id}", token=token), HTTPStatus.OK)
    assert (order["status"], order["paymentIntentId"]) == ("paid", first)
    expect(api.post(f"/_local/payments/{second}/succeed"), HTTPStatus.OK)  # and in the second one
    order = expect(api.get(f"/orders/{order_id}", token=token), HTTPStatus.OK)
    assert order["status"] == "paid" and order["otherIntents"][second]["duplicateRefundId"]
    assert "refunded in full" in order["history"][-1]["message"]
    groups = expect(api.get("/credits", token=token), HTTPStatus.OK)["groups"]
    assert [(g["offerGroup"], g["balance"]) for g in groups] == [("AiTokens", 100)]  # granted once
