"""The webhook function end to end on moto, with real HMAC signatures (the local webhook secret)."""

from __future__ import annotations

import json
import time
from http import HTTPStatus as S
from typing import Any

import pytest

from tests.helpers.request_paths import RequestPath
from tests.integration.conftest import SECRET, intent_event, succeeded
from usercredits.adapters.stripe.webhooks import sign_payload


def test_signed_success_pays_the_order_and_grants_its_lots(
    webhook, pending_order, ordering_api, consumption_api
) -> None:
    assert webhook(succeeded(pending_order)) == (S.OK, {"received": True})
    order = ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]
    assert order["status"] == "paid"
    groups = {g["offerGroup"]: g["balance"] for g in consumption_api("consumption/get_credits.json")[1]["groups"]}
    assert groups == {"Enterprise": 150, "AiTokens": 300, "VIP_BACK_LINK": 1}


def test_the_same_event_five_times_grants_once(webhook, pending_order, consumption_api) -> None:
    for _ in range(5):
        assert webhook(succeeded(pending_order))[0] == S.OK
    ledger = consumption_api("consumption/get_ledger.json", query={"offerGroup": "Enterprise"})[1]["entries"]
    assert [entry["kind"] for entry in ledger] == ["grant"]


def test_failure_then_success_still_pays(webhook, pending_order, ordering_api) -> None:
    failed = intent_event(
        "evt_ko",
        "payment_intent.payment_failed",
        pending_order,
        status="requires_payment_method",
        last_payment_error={"message": "Declined", "type": "card_error", "code": "card_declined"},
    )
    assert webhook(failed)[0] == S.OK
    assert ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]["status"] == "refused"
    assert webhook(succeeded(pending_order))[0] == S.OK
    assert ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]["status"] == "paid"


def test_base64_bodies_are_verified_on_their_raw_bytes(webhook, pending_order) -> None:
    assert webhook(succeeded(pending_order), base64_body=True) == (S.OK, {"received": True})


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "garbage",
        "t=1,v1=00",
        sign_payload(b"{}", SECRET),
        sign_payload(b"x", "whsec_other"),
        sign_payload(b"x", SECRET, timestamp=int(time.time()) - 3600),
    ],
)
def test_bad_signatures_are_400_and_write_nothing(webhook, pending_order, ordering_api, signature) -> None:
    status, body = webhook(succeeded(pending_order), signature=signature)
    assert (status, body["error"]) == (S.BAD_REQUEST, "invalid_signature")
    assert ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]["status"] == "pending"


def test_unknown_types_and_unknown_orders_are_acknowledged(webhook) -> None:
    assert webhook({"id": "evt_x", "type": "customer.created", "data": {"object": {}}}) == (S.OK, {"received": True})
    stranger = {"id": "evt_y", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_nobody"}}}
    assert webhook(stranger) == (S.OK, {"received": True})


def test_seed_t17_explicit_start_paid_in_eur(webhook, ordering_api, consumption_api) -> None:
    # Seed T17: explicit start 2050-12-04, monthly x 4, 501 tokens per unit, 100.00 eur paid -> expires 2051-04-04,
    # 2004 tokens (the seed used the configured currency for the intent and failed non-default ones:
    # docs/rules.md#multi-currency)
    offer = {
        "name": "T17",
        "offerGroup": "T17",
        "prices": [{"amount": 10000, "currency": "eur"}],
        "tokens": 501,
        "cycle": "monthly",
    }
    assert ordering_api("ordering/put_offer_admin.json", path="/admin/offers/t17", body=offer, admin=True)[0] == 200
    body = {"offerId": "t17", "quantity": 4, "currency": "eur", "starts": "2050-12-04T00:00:00Z"}
    order = ordering_api("ordering/create_order.json", body=body, headers={"idempotency-key": "t17"})[1]["order"]
    order["total"] = {"amount": 40000, "currency": "eur"}
    assert webhook(succeeded(order, "evt_t17"))[0] == S.OK
    paid = ordering_api("ordering/get_order.json", path=f"/orders/{order['orderId']}")[1]
    assert (paid["status"], paid["starts"], paid["expires"], paid["totalTokens"]) == (
        "paid",
        "2050-12-04T00:00:00Z",
        "2051-04-04T00:00:00Z",
        2004,
    )
    group = consumption_api("consumption/get_credit_group.json", path="/credits/T17")[1]
    assert (group["balance"], group["lots"][0]["expires"]) == (2004, "2051-04-04T00:00:00Z")


def test_seed_t22_early_bird_enterprise_yearly_grants_its_bundle(webhook, ordering_api, consumption_api) -> None:
    order = ordering_api(
        "ordering/create_order.json", body={"offerId": "EbEnterpriseY"}, headers={"idempotency-key": "t22"}
    )[1]["order"]
    assert webhook(succeeded(order, "evt_t22"))[0] == S.OK
    groups = {g["offerGroup"]: g["balance"] for g in consumption_api("consumption/get_credits.json")[1]["groups"]}
    assert groups == {"EbEnterprise": 1800, "AiTokens": 8400, "VIP_BACK_LINK": 24}


def test_request_path_of_a_payment_webhook(webhook, ordering_api) -> None:
    """The README's measure: the first ``payment_intent.succeeded`` of an order (it pays the order and grants its
    lots), followed through at most 5 project files, one direction: the chain from the handler to the last file it
    reaches. It touches 7 in all (the settlement plan and the Stripe parsing beside that chain); README
    "Architecture" says which and why."""
    warm = ordering_api("ordering/create_order.json", headers={"idempotency-key": "order-warm"})[1]["order"]
    assert webhook(succeeded(warm, "evt_warm"))[0] == S.OK  # warm: the composition root is built
    order = ordering_api("ordering/create_order.json", headers={"idempotency-key": "order-traced"})[1]["order"]
    with RequestPath() as path:
        status, _ = webhook(succeeded(order, "evt_traced"))
    assert status == S.OK
    assert ordering_api("ordering/get_order.json", path=f"/orders/{order['orderId']}")[1]["status"] == "paid"
    print(path.report("Stripe payment_intent.succeeded"))
    assert len(path.chain) <= 5, path.chain
    assert len(path.followed) <= 7, path.followed
    assert path.back_and_forth == []


def _reshaped(order: dict[str, Any], path: str, value: Any, kind: str = "payment_intent.succeeded") -> dict[str, Any]:
    """A signed success of ``order`` with one field replaced by ``value`` (``path``: dotted, from the event)."""
    event = succeeded(order, f"evt_shape_{abs(hash((path, repr(value))))}")
    event["type"] = kind
    *parents, leaf = path.split(".")
    target = event
    for key in parents:
        target = target[key]
    target[leaf] = value
    return event


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("data", ["not", "an", "object"]),
        ("data.object", ["a", "list"]),
        ("data.object", "pi_text"),
        ("data.object.amount_received", "9900"),
        ("data.object.amount_received", 9900.5),
        ("data.object.amount_received", True),
        ("data.object.amount", {"value": 9900}),
        ("data.object.metadata", ["orderId", "userId"]),
        ("data.object.metadata", "orderId=1"),
    ],
)
def test_a_signed_event_of_an_unexpected_shape_is_acknowledged_and_changes_nothing(
    webhook, pending_order, ordering_api, path, value
) -> None:
    """Stripe retries a 5xx for three days: a correctly signed event we cannot read is answered 200, logged as an
    error, and writes nothing (a fraction is never rounded into an amount)."""
    assert webhook(_reshaped(pending_order, path, value)) == (S.OK, {"received": True})
    assert ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]["status"] == "pending"


@pytest.mark.parametrize(
    ("kind", "object_"),
    [
        ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": "100"}),
        ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "amount_refunded": 1.5, "currency": "usd"}),
        ("charge.refunded", {"id": "ch_1", "payment_intent": "pi_1", "metadata": [1, 2]}),
        ("charge.dispute.created", {"id": "dp_1", "payment_intent": "pi_1", "amount": [100], "status": "open"}),
        ("customer.subscription.updated", {"id": "sub_1", "status": "no-such-status"}),
        ("customer.subscription.updated", {"id": "sub_1", "status": "active", "items": "none"}),
        ("invoice.payment_failed", {"id": "in_1", "attempt_count": "3"}),
        ("invoice.paid", {"id": "in_1", "parent": ["subscription_details"]}),
    ],
)
def test_every_handled_family_acknowledges_an_unreadable_payload(webhook, kind, object_) -> None:
    event = {"id": f"evt_{kind}", "object": "event", "type": kind, "created": 1, "data": {"object": object_}}
    assert webhook(event) == (S.OK, {"received": True})


def test_a_signed_event_with_a_text_creation_time_is_acknowledged(webhook) -> None:
    event = {"id": "evt_t", "type": "invoice.paid", "created": "yesterday", "data": {"object": {"id": "in_1"}}}
    assert webhook(event) == (S.OK, {"received": True})


def test_a_signature_from_the_future_is_refused_like_a_stale_one(webhook, pending_order, ordering_api) -> None:
    event = succeeded(pending_order, "evt_future")
    payload = json.dumps(event).encode()
    ahead = sign_payload(payload, SECRET, timestamp=int(time.time()) + 3600)
    status, body = webhook(raw=payload, signature=ahead)
    assert (status, body["error"]) == (S.BAD_REQUEST, "invalid_signature")
    assert ordering_api("ordering/get_order.json", path=f"/orders/{pending_order['orderId']}")[1]["status"] == "pending"
    within = sign_payload(payload, SECRET, timestamp=int(time.time()) + 60)  # clocks drift a little: accepted
    assert webhook(raw=payload, signature=within) == (S.OK, {"received": True})
