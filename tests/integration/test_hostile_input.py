"""Hostile and careless input at the HTTP edge (issue 14, section A), through the real handlers on moto: path
parameters decoded exactly once, JSON media types, JSON a parser cannot represent, identifiers within DynamoDB's key
limits, admin routes refused before their body is read. Never a 5xx, never a partial write."""

from __future__ import annotations

import json
import urllib.parse
from http import HTTPStatus as S
from typing import Any

import boto3
import pytest
from devtools.lambda_events import caller_claims, http_api_event

from tests.conftest import load_event
from tests.integration.conftest import Call
from usercredits.http_input import MAX_IDEMPOTENCY_KEY_BYTES, MAX_USER_ID_BYTES

#: Subjects as identity providers issue them (Auth0, Google through Auth0, e-mail, Cognito UUID, non-ASCII names).
SUBJECTS = [
    "auth0|5f7c8ec7c33c6c004bbafe82",
    "google-oauth2|104534325863453447866",
    "jane.doe+credits@example.com",
    "3f2b9c1e-8d4a-4f6b-9e2a-1c5d7b8e9f01",
    "José Müller",
    "李小龍",
    "100%41 sure",  # a literal "%41": decoded once it stays "%41", never "A"
]
GRANT = "consumption/admin_grant.json"
GRANT_BODY = {"offerGroup": "AiTokens", "tokens": 7, "reason": "edge test"}


def _encoded(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _as_typed(value: str) -> str:
    """The value as a client may send it without encoding it: only ``%`` must be."""
    return value.replace("%", "%25")


def _tokens(groups: list[dict[str, Any]], group: str = "AiTokens") -> int:
    return sum(g["balance"] for g in groups if g["offerGroup"] == group)


def _table_items(name_env: str) -> list[dict[str, Any]]:
    import os

    return boto3.client("dynamodb").scan(TableName=os.environ[name_env])["Items"]


# --------------------------------------------------------------------------------- 1. path parameters, decoded once
@pytest.mark.parametrize("subject", SUBJECTS)
def test_admin_routes_act_on_the_decoded_user_whether_the_path_came_encoded_or_not(
    consumption_api: Call, subject: str
) -> None:
    # Given a grant through the percent-encoded path (as a client sends it) and one through the decoded path
    for n, path_id in enumerate((_encoded(subject), _as_typed(subject))):
        path, key = f"/admin/users/{path_id}/grants", {"idempotency-key": f"grant-{n}"}
        status, entry, _ = consumption_api(GRANT, path=path, body=GRANT_BODY, headers=key, admin=True)
        assert status == S.CREATED, entry
    # Then the user named by the subject itself holds both, seen by them and by an admin (encoded path)
    _, mine, _ = consumption_api("consumption/get_credits.json", user=subject)
    assert _tokens(mine["groups"]) == 14
    admin_path = f"/admin/users/{_encoded(subject)}/credits"
    _, seen, _ = consumption_api("consumption/admin_get_user_credits.json", path=admin_path, admin=True)
    assert _tokens(seen["groups"]) == 14
    # And an admin spend on the route with two parameters reaches the same user and group
    spend = f"/admin/users/{_encoded(subject)}/credits/%41iTokens/consume"
    status, spent, _ = consumption_api("consumption/admin_consume.json", path=spend, body={"count": 4}, admin=True)
    assert (status, spent["balance"], spent["offerGroup"]) == (S.OK, 10, "AiTokens"), spent


def test_an_event_without_path_parameters_has_its_raw_path_decoded_exactly_once(
    consumption_api: Call, lambda_context: Any
) -> None:
    from consumption import handler

    # Given an event whose rawPath is still percent-encoded and that carries no pathParameters
    event = http_api_event(
        load_event(GRANT), body=json.dumps(GRANT_BODY), claims=caller_claims("ops", admin=True), path_parameters={}
    )
    event["rawPath"] = "/admin/users/auth0%7C100%2541/grants"
    # When it is resolved
    response = handler.lambda_handler(event, lambda_context)
    # Then the user is "auth0|100%41": "%7C" decoded, "%2541" decoded once (not on to "A")
    assert response["statusCode"] == S.CREATED, response
    _, mine, _ = consumption_api("consumption/get_credits.json", user="auth0|100%41")
    assert _tokens(mine["groups"]) == 7


def test_an_encoded_slash_is_no_path_separator_inside_a_value(consumption_api: Call) -> None:
    # API Gateway decodes the path before routing: "a%2Fb" is two segments, so no route (404), never a 5xx
    status, body, _ = consumption_api(GRANT, path="/admin/users/a%2Fb/grants", body=GRANT_BODY, admin=True)
    assert status == S.NOT_FOUND, body


def test_ordering_path_ids_are_decoded(ordering_api: Call) -> None:
    status, offer, _ = ordering_api("ordering/get_offer.json", path="/offers/%45nterprise%4D")
    assert (status, offer["offerId"]) == (S.OK, "EnterpriseM")
    _, placed, _ = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"})
    order_id = placed["order"]["orderId"]
    encoded = "".join(f"%{ord(c):02X}" for c in order_id)
    status, order, _ = ordering_api("ordering/get_order.json", path=f"/orders/{encoded}")
    assert (status, order["orderId"]) == (S.OK, order_id)
    status, body, _ = ordering_api("ordering/get_subscription.json", path="/subscriptions/%45nterpriseM")
    assert status == S.OK, body


@pytest.mark.parametrize("subject", SUBJECTS)
def test_ordering_serves_every_subject_shape(ordering_api: Call, subject: str) -> None:
    status, placed, _ = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, user=subject)
    assert (status, placed["order"]["userId"]) == (S.CREATED, subject), placed
    order_id = placed["order"]["orderId"]
    _, listed, _ = ordering_api("ordering/list_orders.json", query={}, user=subject)
    assert [o["orderId"] for o in listed["orders"]] == [order_id]
    status, order, _ = ordering_api("ordering/get_order.json", path=f"/orders/{order_id}", user=subject)
    assert (status, order["userId"]) == (S.OK, subject)


@pytest.mark.parametrize("subject", SUBJECTS)
def test_customers_admin_route_finds_the_decoded_user(customers_api: Any, subject: str) -> None:
    # Given the user's own customer
    status, mine = customers_api("get_customer", user=subject)
    assert status == S.OK, mine
    # Then an admin finds it through the encoded path and through the decoded one
    for path_id in (_encoded(subject), _as_typed(subject)):
        status, seen = customers_api("get_customer_admin", path=f"/admin/customers/{path_id}", admin=True)
        assert (status, seen["customerId"]) == (S.OK, mine["customerId"]), seen


def test_customers_coupon_code_is_decoded(customers_api: Any) -> None:
    body = {"kind": "amount", "amount": {"amount": 500, "currency": "usd"}}
    status, saved = customers_api("put_coupon_admin", path="/admin/coupons/%57ELCOME5", body=body, admin=True)
    assert (status, saved["code"]) == (S.OK, "WELCOME5"), saved
    status, check = customers_api("check_coupon", path="/coupons/WELCOM%455", query={})
    assert (status, check["valid"]) == (S.OK, True), check


# ------------------------------------------------------------------------------------------------ 2. media types
JSON_MEDIA_TYPES = ["APPLICATION/JSON", "application/json; charset=UTF-8", "Application/Json;charset=utf-8"]
NOT_JSON = ["text/plain", "multipart/form-data", "application/x-www-form-urlencoded", "application/xml"]


@pytest.mark.parametrize("content_type", JSON_MEDIA_TYPES)
def test_json_media_types_in_any_case_and_with_parameters_are_json(
    ordering_api: Call, consumption_api: Call, customers_api: Any, content_type: str
) -> None:
    headers = {"content-type": content_type}
    status, body, _ = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, headers=headers)
    assert status == S.CREATED, body
    status, body, _ = consumption_api(GRANT, body=GRANT_BODY, headers=headers, admin=True)
    assert status == S.CREATED, body
    status, body = customers_api("update_customer", body={"name": "Ann", "email": "ann@example.com"}, headers=headers)
    assert status == S.OK, body


@pytest.mark.parametrize("content_type", NOT_JSON)
def test_a_non_json_media_type_is_the_contracts_422_and_writes_nothing(
    ordering_api: Call, consumption_api: Call, customers_api: Any, content_type: str
) -> None:
    headers = {"content-type": content_type}
    answers = [
        ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, headers=headers)[:2],
        consumption_api(GRANT, body=GRANT_BODY, headers=headers, admin=True)[:2],
        customers_api("update_customer", body={"name": "Ann", "email": "ann@example.com"}, headers=headers),
    ]
    for status, body in answers:
        assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error"), body
        assert "application/json" in body["message"]
    assert not [i for i in _table_items("CREDITS_TABLE_NAME") if i["pk"]["S"] != "CATALOG"]
    assert not _table_items("CUSTOMERS_TABLE_NAME")


# ------------------------------------------------------------------------------------- 3. JSON a parser cannot hold
UNSAFE_BODIES = {
    "deep array": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "33 levels": '{"a":' * 33 + "1" + "}" * 33,
    "integer of 5000 digits": '{"count": ' + "9" * 5_000 + "}",
    "negative integer of 100 digits": '{"count": -' + "1" * 100 + "}",
}
#: Every route that reads a body (admin routes called as an admin), per function.
BODY_ROUTES = {
    "ordering": [
        "ordering/create_order.json",
        "ordering/put_offer_admin.json",
        "ordering/put_group_policy_admin.json",
    ],
    "consumption": [
        "consumption/consume.json",
        "consumption/admin_consume.json",
        GRANT,
        "consumption/create_reservation.json",
        "consumption/capture_reservation.json",
        "consumption/expiry_check.json",
    ],
    "customers": [
        "customers/update_customer.json",
        "customers/add_address.json",
        "customers/add_payment_method.json",
        "customers/set_default_payment_method.json",
        "customers/subscribe.json",
        "customers/cancel_subscription.json",
        "customers/put_plan_admin.json",
        "customers/put_coupon_admin.json",
        "customers/refund_admin.json",
    ],
}


@pytest.mark.parametrize("body_name", list(UNSAFE_BODIES))
def test_unrepresentable_json_is_a_validation_error_on_every_route_with_a_body(
    moto_tables: None, lambda_context: Any, body_name: str
) -> None:
    import importlib

    for function, samples in BODY_ROUTES.items():
        handler = importlib.import_module(f"{function}.handler")
        for sample in samples:
            admin = "/admin/" in load_event(sample)["rawPath"]
            event = http_api_event(
                load_event(sample), body=UNSAFE_BODIES[body_name], claims=caller_claims("alice", admin=admin)
            )
            response = handler.lambda_handler(event, lambda_context)
            answer = json.loads(response["body"])
            assert (response["statusCode"], answer["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error"), (
                sample,
                answer,
            )


# --------------------------------------------------------------------------- 4. identifiers within the key limits
LONG_SUBJECT = "auth0|" + "x" * 994  # ~1,000 characters


def test_a_subject_too_long_for_the_keys_is_refused_before_anything_is_written(
    ordering_api: Call, consumption_api: Call, customers_api: Any
) -> None:
    answers = [
        ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, user=LONG_SUBJECT)[:2],
        ordering_api("ordering/list_orders.json", user=LONG_SUBJECT)[:2],
        consumption_api("consumption/consume.json", body={"count": 1}, user=LONG_SUBJECT)[:2],
        consumption_api("consumption/get_credits.json", user=LONG_SUBJECT)[:2],
        customers_api("get_customer", user=LONG_SUBJECT),
        customers_api("update_customer", body={"name": "Ann", "email": "ann@example.com"}, user=LONG_SUBJECT),
    ]
    for status, body in answers:
        assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error"), body
        assert f"at most {MAX_USER_ID_BYTES} bytes" in body["message"]
    assert not [i for i in _table_items("CREDITS_TABLE_NAME") if i["pk"]["S"] != "CATALOG"]
    assert not _table_items("CUSTOMERS_TABLE_NAME")


@pytest.mark.parametrize(
    "subject",
    ["u" * MAX_USER_ID_BYTES, "😀" * (MAX_USER_ID_BYTES // 4), "auth0|" + "é" * ((MAX_USER_ID_BYTES - 6) // 2)],
    ids=["ascii", "emoji", "accented"],
)
def test_a_user_id_at_the_byte_limit_works_end_to_end(
    ordering_api: Call, consumption_api: Call, customers_api: Any, subject: str
) -> None:
    assert len(subject.encode()) == MAX_USER_ID_BYTES
    # An order (priced, with its payment intent), a grant through the encoded admin path, a spend, a customer
    status, placed, _ = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, user=subject)
    assert (status, placed["order"]["userId"]) == (S.CREATED, subject), placed
    status, _, _ = consumption_api(GRANT, path=f"/admin/users/{_encoded(subject)}/grants", body=GRANT_BODY, admin=True)
    assert status == S.CREATED
    status, spent, _ = consumption_api("consumption/consume.json", body={"count": 2}, user=subject)
    assert (status, spent["balance"]) == (S.OK, 5), spent
    assert customers_api("get_customer", user=subject)[0] == S.OK
    # One byte more is refused, as a subject and as an admin route's userId
    longer = subject + "x"
    status, body, _ = consumption_api("consumption/get_credits.json", user=longer)
    assert status == S.UNPROCESSABLE_ENTITY, body
    grant_path = f"/admin/users/{_encoded(longer)}/grants"
    status, body, _ = consumption_api(GRANT, path=grant_path, body=GRANT_BODY, admin=True)
    assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error"), body
    status, body = customers_api("get_customer_admin", path=f"/admin/customers/{_encoded(longer)}", admin=True)
    assert status == S.UNPROCESSABLE_ENTITY, body


def test_a_255_emoji_idempotency_key_is_refused_by_bytes_and_says_so(ordering_api: Call, consumption_api: Call) -> None:
    key = {"idempotency-key": "😀" * 255}  # 255 characters, within the contract, but 1,020 bytes
    answers = [
        ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, headers=key)[:2],
        consumption_api("consumption/consume.json", body={"count": 1}, headers=key)[:2],
        consumption_api("consumption/create_reservation.json", body={"count": 1}, headers=key)[:2],
        consumption_api(GRANT, body=GRANT_BODY, headers=key, admin=True)[:2],
        consumption_api("consumption/consume.json", body={"count": 1, "idempotencyKey": "😀" * 255})[:2],
    ]
    for status, body in answers:
        assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error"), body
        assert f"at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes" in body["message"]
    assert not [i for i in _table_items("CREDITS_TABLE_NAME") if i["pk"]["S"] != "CATALOG"]


def test_an_idempotency_key_at_the_byte_limit_works_and_repeats(ordering_api: Call, consumption_api: Call) -> None:
    key = "😀" * (MAX_IDEMPOTENCY_KEY_BYTES // 4)
    headers = {"idempotency-key": key}
    first = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, headers=headers)
    again = ordering_api("ordering/create_order.json", body={"offerId": "EnterpriseM"}, headers=headers)
    assert first[0] == S.CREATED and again[1]["order"]["orderId"] == first[1]["order"]["orderId"]
    consumption_api(GRANT, path="/admin/users/alice/grants", body=GRANT_BODY, admin=True)
    spent = consumption_api("consumption/consume.json", body={"count": 1}, headers=headers)
    repeat = consumption_api("consumption/consume.json", body={"count": 1}, headers=headers)
    assert spent[0] == S.OK and repeat[1]["entryId"] == spent[1]["entryId"] and repeat[1]["balance"] == 6
    in_body = consumption_api("consumption/consume.json", body={"count": 1, "idempotencyKey": key})
    assert in_body[0] == S.OK, in_body


def test_only_throttling_and_timeouts_are_a_503_a_storage_refusal_is_not(
    consumption_api: Call, monkeypatch: pytest.MonkeyPatch
) -> None:
    from usercredits.domain import balances
    from usercredits.errors import PersistenceError, UnavailableError

    def refused(*_: Any, **__: Any) -> None:
        raise PersistenceError("storage error: ValidationException")

    def throttled(*_: Any, **__: Any) -> None:
        raise UnavailableError("storage is busy (ThrottlingException); retry shortly", retry_after=1)

    # A refusal that no retry can cure is a 500 (logged, alarmed on), never a 503 a client would retry forever
    monkeypatch.setattr(balances, "list_credits", refused)
    status, body, headers = consumption_api("consumption/get_credits.json")
    assert (status, body["error"], "Retry-After" in headers) == (S.INTERNAL_SERVER_ERROR, "internal_error", False)
    # while throttling is the 503 with Retry-After
    monkeypatch.setattr(balances, "list_credits", throttled)
    status, body, headers = consumption_api("consumption/get_credits.json")
    assert (status, body["error"], headers.get("Retry-After")) == (S.SERVICE_UNAVAILABLE, "unavailable", "1")


# ---------------------------------------------------------------------------- 6. admin routes authorize first
def test_every_admin_route_refuses_a_user_token_whatever_the_body(moto_tables: None, lambda_context: Any) -> None:
    import importlib

    from devtools.cfn import http_routes, load_template
    from devtools.lambda_events import new_event

    admin_routes = [r for r in http_routes(load_template()) if r.path.startswith("/admin/")]
    assert len(admin_routes) >= 10
    for route in admin_routes:
        path = route.path.replace("{", "").replace("}", "")  # any value: the parameter's own name
        for body in ("{not json", '{"count": "x"}', "[" * 50_000, ""):
            event = http_api_event(
                new_event(route.method, path),
                route_key=f"{route.method} {route.path}",
                path=path,
                body=body,
                headers={"content-type": "application/json"},
                claims=caller_claims("mallory"),
            )
            response = importlib.import_module(f"{route.function}.handler").lambda_handler(event, lambda_context)
            answer = json.loads(response["body"])
            assert (response["statusCode"], answer["error"]) == (S.FORBIDDEN, "forbidden"), (route, body, answer)
