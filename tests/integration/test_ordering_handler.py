"""The ordering function end to end on moto: lambda_handler -> domain -> PynamoDB, asserting on bodies and items."""

from __future__ import annotations

import base64
from http import HTTPStatus as S

import pytest
from botocore.exceptions import ClientError
from pynamodb.exceptions import QueryError

from tests.integration.conftest import item_kinds, outbox_events
from usercredits.adapters.dynamodb.credits_table import CreditsItem

LIST = "ordering/list_offers.json"
GET_OFFER = "ordering/get_offer.json"
CREATE = "ordering/create_order.json"
LIST_ORDERS = "ordering/list_orders.json"
GET_ORDER = "ordering/get_order.json"
PAY = "ordering/request_payment.json"
SUBSCRIPTION = "ordering/get_subscription.json"
PUT_OFFER = "ordering/put_offer_admin.json"
DELETE_OFFER = "ordering/delete_offer_admin.json"
CONFIRM = "ordering/confirm_order.json"


def create(call, offer_id: str, quantity: int | None = 1, **kw):
    body = {"offerId": offer_id} if quantity is None else {"offerId": offer_id, "quantity": quantity}
    kw.setdefault("headers", {"idempotency-key": f"k-{offer_id}-{quantity}-{kw.get('user', 'alice')}"})
    return call(CREATE, body=body, **kw)


def test_list_offers_returns_the_public_catalog_priced_in_the_default_currency(ordering_api) -> None:
    status, body, _ = ordering_api(LIST, query={})
    assert status == S.OK
    assert len(body["offers"]) == 17
    assert all(offer["price"]["currency"] == "usd" for offer in body["offers"])


def test_list_offers_filters_by_tags_and_currency(ordering_api) -> None:
    status, body, _ = ordering_api(LIST, query={"tags": "subscription,monthly", "allTags": "true", "currency": "eur"})
    assert status == S.OK
    assert {o["offerId"] for o in body["offers"]} == {
        "Free",
        "StartupM",
        "EnterpriseM",
        "ScaleUpM",
        "EbStartupM",
        "EbEnterpriseM",
        "EbScaleUpM",
    }
    assert {o["price"]["currency"] for o in body["offers"]} == {"eur"}


@pytest.mark.parametrize("currency", ["xxx", "USD", "dollars"])
def test_list_offers_unknown_currency_is_422(ordering_api, currency: str) -> None:
    status, body, _ = ordering_api(LIST, query={"currency": currency})
    assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


def test_get_offer_and_unknown_offer(ordering_api) -> None:
    status, body, _ = ordering_api(GET_OFFER, path="/offers/EnterpriseM")
    assert (status, body["offerId"], body["prices"][0]) == (S.OK, "EnterpriseM", {"amount": 9900, "currency": "usd"})
    status, body, _ = ordering_api(GET_OFFER, path="/offers/nope")
    assert (status, body["error"]) == (S.NOT_FOUND, "not_found")


def test_missing_identity_is_401(ordering_api) -> None:
    status, body, _ = ordering_api(LIST, user=None)
    assert (status, body["error"]) == (S.UNAUTHORIZED, "unauthorized")


def test_create_priced_order_is_pending_with_a_local_payment_intent(ordering_api, credits_items) -> None:
    status, body, _ = create(ordering_api, "EnterpriseM", 3)
    assert status == S.CREATED
    order, payment = body["order"], body["payment"]
    assert (order["status"], order["total"], order["unitTokens"], order["totalTokens"]) == (
        "pending",
        {"amount": 29700, "currency": "usd"},
        150,
        450,
    )
    assert payment["provider"] == "local" and payment["paymentIntentId"] == order["paymentIntentId"]
    assert payment["clientSecret"].startswith(order["paymentIntentId"])
    assert order["createdAt"].endswith("Z")
    assert item_kinds(credits_items()) == ["idempotency", "order", "paymentIntentLink"]  # the link finds the order


def test_create_free_order_is_paid_at_once_with_its_bundle(ordering_api, credits_items) -> None:
    status, body, _ = create(ordering_api, "Free")
    assert status == S.CREATED and body["payment"] is None
    order = body["order"]
    assert order["status"] == "paid" and order["starts"] and order["expires"]
    assert [h["status"] for h in order["history"]] == ["pending", "paid"]
    assert order["combinedItems"][0]["childOrderId"] == f"{order['orderId']}-01"
    items = credits_items()
    assert item_kinds(items) == [
        *("creditGroup", "creditGroup", "idempotency", "lot", "lot", "order", "order", "outbox"),
        "purchaseLimit",  # the demo Free offer has perUserLimit 1: the user's slot, taken in the same transaction
    ]
    # The facts of the payment are in the outbox, written by the same transaction: the stream publishes them.
    events = outbox_events(items)
    assert [kind for kind, _ in events] == ["OrderPaid", "CreditsGranted", "CreditsGranted"]
    assert events[0][1] | {"orderId": "-"} == {
        "userId": "alice",
        "orderId": "-",
        "offerId": "Free",
        "offerGroup": order["offerGroup"],
        "amount": 0,
        "currency": order["total"]["currency"],
        "tokens": order["totalTokens"],
    }
    assert {detail["lotId"] for _, detail in events[1:]} == {order["orderId"], f"{order['orderId']}-01"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"offerId": "EnterpriseM", "quantity": 0}, "quantity"),
        ({"offerId": "EnterpriseM", "quantity": -1}, "quantity"),
        ({"offerId": "EnterpriseM", "quantity": 10_001}, "quantity"),
        ({"offerId": "EnterpriseM", "quantity": 2.5}, "quantity"),
        ({"offerId": "EnterpriseM", "quantity": "2"}, "quantity"),
        ({"offerId": "EnterpriseM", "quantity": True}, "quantity"),
        ({"offerId": "EnterpriseM", "currency": "xxx"}, "currency"),
        ({"offerId": 42}, "offerId"),
        ({}, "offerId"),
        ({"offerId": "EnterpriseM", "price": 0}, "price"),
    ],
)
def test_create_order_bad_body_is_422_and_writes_nothing(ordering_api, credits_items, body, field) -> None:
    status, response, _ = ordering_api(CREATE, body=body, headers={"idempotency-key": "bad"})
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")
    assert any(field in detail["field"] for detail in response["details"])
    assert item_kinds(credits_items()) == []


@pytest.mark.parametrize("raw", ["{not json", "[]", "null", '"text"', ""])
def test_create_order_malformed_json_is_422(ordering_api, raw: str) -> None:
    status, response, _ = ordering_api(CREATE, raw_body=raw)
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


def test_create_order_invalid_utf8_body_is_422(ordering_api) -> None:
    from tests.conftest import http_event

    event = http_event(CREATE)
    event["body"], event["isBase64Encoded"] = base64.b64encode(b"\xff\xfe{").decode(), True
    from devtools.lambda_context import LambdaContext

    from ordering import handler

    response = handler.lambda_handler(event, LambdaContext("user-credits-test", memory_limit_in_mb=512))
    assert response["statusCode"] == S.UNPROCESSABLE_ENTITY


@pytest.mark.parametrize(
    ("offer_id", "quantity", "currency", "status", "error"),
    [
        ("nope", 1, None, S.NOT_FOUND, "not_found"),
        ("Free", 2, None, S.CONFLICT, "conflict"),
        ("1-article-month", 1, None, S.FORBIDDEN, "forbidden"),
        ("1-article-month", 1, "eur", S.UNPROCESSABLE_ENTITY, "validation_error"),
        ("EnterpriseM", 1, "jpy", S.UNPROCESSABLE_ENTITY, "validation_error"),
    ],
)
def test_create_order_refusals_write_nothing(
    ordering_api, credits_items, offer_id, quantity, currency, status, error
) -> None:
    body = {"offerId": offer_id, "quantity": quantity} | ({"currency": currency} if currency else {})
    got, response, _ = ordering_api(CREATE, body=body)
    assert (got, response["error"]) == (status, error)
    assert item_kinds(credits_items()) == []


def test_create_order_idempotency_replay_and_conflict(ordering_api, credits_items) -> None:
    headers = {"idempotency-key": "retry-me"}
    first = ordering_api(CREATE, body={"offerId": "EnterpriseM", "quantity": 2}, headers=headers)
    again = ordering_api(CREATE, body={"offerId": "EnterpriseM", "quantity": 2}, headers=headers)
    assert first[0] == again[0] == S.CREATED and first[1] == again[1]
    status, body, _ = ordering_api(CREATE, body={"offerId": "EnterpriseM", "quantity": 3}, headers=headers)
    assert (status, body["error"]) == (S.CONFLICT, "conflict")
    assert item_kinds(credits_items()) == ["idempotency", "order", "paymentIntentLink"]


def test_idempotency_key_longer_than_255_is_422(ordering_api) -> None:
    status, _, _ = ordering_api(CREATE, body={"offerId": "EnterpriseM"}, headers={"idempotency-key": "k" * 256})
    assert status == S.UNPROCESSABLE_ENTITY


def test_list_orders_newest_first_paginated_and_filtered(ordering_api) -> None:
    ids = [create(ordering_api, offer, 1)[1]["order"]["orderId"] for offer in ("StartupM", "EnterpriseM", "Free")]
    status, page1, _ = ordering_api(LIST_ORDERS, query={"limit": "2"})
    assert status == S.OK
    assert [o["orderId"] for o in page1["orders"]] == [f"{ids[2]}-01", ids[2]]
    _, page2, _ = ordering_api(LIST_ORDERS, query={"limit": "2", "cursor": page1["nextCursor"]})
    assert [o["orderId"] for o in page2["orders"]] == [ids[1], ids[0]]
    assert page2["nextCursor"] is None
    _, pending, _ = ordering_api(LIST_ORDERS, query={"status": "pending"})
    assert [o["orderId"] for o in pending["orders"]] == [ids[1], ids[0]]


@pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "201"}, {"status": "lost"}, {"cursor": "garbage!"}])
def test_list_orders_bad_query_is_422(ordering_api, query) -> None:
    status, body, _ = ordering_api(LIST_ORDERS, query=query)
    assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


def test_orders_of_another_user_are_invisible(ordering_api) -> None:
    order_id = create(ordering_api, "EnterpriseM", 1)[1]["order"]["orderId"]
    status, body, _ = ordering_api(GET_ORDER, path=f"/orders/{order_id}", user="mallory")
    assert (status, body["error"]) == (S.NOT_FOUND, "not_found")
    _, mine, _ = ordering_api(GET_ORDER, path=f"/orders/{order_id}")
    assert mine["orderId"] == order_id and mine["history"][0]["status"] == "pending"
    _, theirs, _ = ordering_api(LIST_ORDERS, user="mallory", query={})
    assert theirs["orders"] == []


def test_request_payment_gives_a_fresh_intent_then_409_once_paid(ordering_api) -> None:
    order = create(ordering_api, "EnterpriseM", 1)[1]["order"]
    status, body, _ = ordering_api(PAY, path=f"/orders/{order['orderId']}/payment")
    assert status == S.OK
    assert body["order"]["paymentAttempt"] == 2
    assert body["payment"]["paymentIntentId"] not in (None, order["paymentIntentId"])
    free = create(ordering_api, "Free")[1]["order"]
    status, body, _ = ordering_api(PAY, path=f"/orders/{free['orderId']}/payment")
    assert (status, body["error"]) == (S.CONFLICT, "conflict")


def test_subscription_reports_the_paid_order(ordering_api) -> None:
    status, body, _ = ordering_api(SUBSCRIPTION, path="/subscriptions/Free")
    assert (status, body) == (S.OK, {"subscribed": False, "orderId": None, "expires": None})
    order = create(ordering_api, "Free")[1]["order"]
    _, body, _ = ordering_api(SUBSCRIPTION, path="/subscriptions/Free")
    assert body == {"subscribed": True, "orderId": order["orderId"], "expires": order["expires"]}


def test_admin_routes_need_the_admin_scope(ordering_api) -> None:
    status, body, _ = ordering_api(PUT_OFFER, admin=False)
    assert (status, body["error"]) == (S.FORBIDDEN, "forbidden")
    status, body, _ = ordering_api(DELETE_OFFER, path="/admin/offers/Free", admin=False)
    assert (status, body["error"]) == (S.FORBIDDEN, "forbidden")


def test_admin_upsert_then_retire_keeps_existing_orders(ordering_api) -> None:
    offer = {
        "name": "Promo",
        "offerGroup": "Promo",
        "prices": [{"amount": 300, "currency": "usd"}],
        "tokens": 5,
        "cycle": "custom",
        "customCycleSeconds": 3600,
        "tags": ["promo"],
    }
    status, saved, _ = ordering_api(PUT_OFFER, path="/admin/offers/promo-1", body=offer, admin=True)
    assert (status, saved["offerId"], saved["customCycleSeconds"]) == (S.OK, "promo-1", 3600)
    order = create(ordering_api, "promo-1", 2)[1]["order"]
    status, body, _ = ordering_api(DELETE_OFFER, path="/admin/offers/promo-1", admin=True)
    assert (status, body) == (S.NO_CONTENT, None)
    assert ordering_api(GET_OFFER, path="/offers/promo-1")[0] == S.NOT_FOUND
    assert create(ordering_api, "promo-1", 1, headers={})[0] == S.NOT_FOUND
    _, kept, _ = ordering_api(GET_ORDER, path=f"/orders/{order['orderId']}")
    assert (kept["offerName"], kept["total"]["amount"]) == ("Promo", 600)
    assert ordering_api(DELETE_OFFER, path="/admin/offers/never-was", admin=True)[0] == S.NOT_FOUND


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "offerGroup": "g", "prices": [], "tokens": 1, "cycle": "monthly"},
        {
            "name": "x",
            "offerGroup": "g",
            "prices": [{"amount": -1, "currency": "usd"}],
            "tokens": 1,
            "cycle": "monthly",
        },
        {"name": "x", "offerGroup": "g", "prices": [{"amount": 1, "currency": "usd"}], "tokens": 1, "cycle": "custom"},
        {"name": "x", "offerGroup": "g", "prices": [{"amount": 1, "currency": "usd"}], "tokens": 1, "cycle": "hourly"},
        {
            "offerId": "other",
            "name": "x",
            "offerGroup": "g",
            "prices": [{"amount": 1, "currency": "usd"}],
            "tokens": 1,
            "cycle": "monthly",
        },
    ],
)
def test_admin_upsert_invalid_offer_is_422(ordering_api, body) -> None:
    status, response, _ = ordering_api(PUT_OFFER, path="/admin/offers/x", body=body, admin=True)
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


def test_throttled_storage_is_503_with_retry_after(ordering_api, monkeypatch) -> None:
    def throttled(*args, **kwargs):
        error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
        raise QueryError("throttled", cause=ClientError(error, "Query"))

    from ordering import handler

    handler.dependencies.cache_clear()
    monkeypatch.setattr(CreditsItem, "query", throttled)
    status, body, headers = ordering_api(LIST)
    assert (status, body["error"], headers.get("Retry-After")) == (S.SERVICE_UNAVAILABLE, "unavailable", "1")


def test_confirm_reconciles_with_the_provider(ordering_api) -> None:
    # The local provider keeps no state (outcomes arrive as signed events), so confirm leaves a pending order as it is
    order = create(ordering_api, "EnterpriseM", 1)[1]["order"]
    status, body, _ = ordering_api(CONFIRM, path=f"/orders/{order['orderId']}/confirm")
    assert (status, body["status"]) == (S.OK, "pending")
    free = create(ordering_api, "Free")[1]["order"]
    status, body, _ = ordering_api(CONFIRM, path=f"/orders/{free['orderId']}/confirm")
    assert (status, body["error"]) == (S.CONFLICT, "conflict")  # no payment intent to reconcile
    assert ordering_api(CONFIRM, path="/orders/01NOPE/confirm")[0] == S.NOT_FOUND


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded"])
def test_create_order_non_json_body_is_422(ordering_api, credits_items, content_type: str) -> None:
    status, body, _ = ordering_api(CREATE, raw_body='{"offerId": "Free"}', headers={"content-type": content_type})
    assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")
    assert item_kinds(credits_items()) == []


def test_admin_lists_every_offer_including_locked_and_retired(ordering_api) -> None:
    assert ordering_api(DELETE_OFFER, path="/admin/offers/_20tokens", admin=True)[0] == S.NO_CONTENT
    status, body, _ = ordering_api("ordering/list_offers_admin.json", admin=True)
    assert status == S.OK and len(body["offers"]) == 19
    assert {o["offerId"]: o["retired"] for o in body["offers"]}["_20tokens"] is True
    assert ordering_api("ordering/list_offers_admin.json", admin=False)[0] == S.FORBIDDEN


def test_a_path_without_a_route_is_404_not_500(ordering_api) -> None:
    status, body, _ = ordering_api(LIST, path="/no/such/route")
    assert (status, body["error"]) == (S.NOT_FOUND, "not_found")
