"""Per-user purchase limits (``perUserLimit``) through the handlers on moto: the demo Free offer once per user, the
admin route, and the slot moving with refusals, late successes and full refunds (webhooks with real signatures)."""

from __future__ import annotations

from http import HTTPStatus as S
from typing import Any

import pytest

from tests.integration.conftest import Call, intent_event, succeeded

CREATE = "ordering/create_order.json"
CREATE_FREE = "ordering/create_free_order.json"
PUT_OFFER = "ordering/put_offer_admin.json"
LIST_ADMIN = "ordering/list_offers_admin.json"
GET_ORDER = "ordering/get_order.json"
CREDITS = "consumption/get_credits.json"

PRO = {
    "name": "Pro",
    "offerGroup": "Pro",
    "prices": [{"amount": 1500, "currency": "usd"}],
    "tokens": 10,
    "cycle": "monthly",
    "perUserLimit": 1,
}


def order(call: Call, offer_id: str, key: str, user: str = "alice", base: str = CREATE) -> tuple[int, Any]:
    """``POST /orders`` with an Idempotency-Key of its own (the sample events carry a preset one)."""
    status, body, _ = call(base, body={"offerId": offer_id}, user=user, headers={"idempotency-key": key})
    return status, body


def slots(credits_items: Any, user: str, offer_id: str) -> int | None:
    """The user's counter of the offer (None: no item), read from the table itself."""
    for item in credits_items():
        if (item["pk"]["S"], item["sk"]["S"]) == (f"USER#{user}", f"LIMIT#{offer_id}"):
            assert item["itemType"]["S"] == "purchaseLimit"
            return int(item["count"]["N"])
    return None


def failed(placed: dict[str, Any], event_id: str = "evt_ko") -> dict[str, Any]:
    declined = {"message": "Declined", "type": "card_error", "code": "card_declined"}
    return intent_event(
        event_id, "payment_intent.payment_failed", placed, status="requires_payment_method", last_payment_error=declined
    )


def refunded(placed: dict[str, Any], amount: int) -> dict[str, Any]:
    """``charge.refunded`` (cumulative ``amount_refunded``); the order is found through the intent id."""
    charge = {
        "id": f"ch_{placed['paymentIntentId']}",
        "object": "charge",
        "amount": placed["total"]["amount"],
        "amount_refunded": amount,
        "refunded": amount >= placed["total"]["amount"],
        "currency": placed["total"]["currency"],
        "payment_intent": placed["paymentIntentId"],
        "metadata": {},
    }
    return {"id": f"evt_refund_{amount}", "object": "event", "type": "charge.refunded", "data": {"object": charge}}


@pytest.fixture
def pro(ordering_api: Call) -> None:
    status, saved, _ = ordering_api(PUT_OFFER, path="/admin/offers/Pro", body=PRO, admin=True)
    assert (status, saved["perUserLimit"]) == (S.OK, 1)


def test_the_demo_free_offer_once_per_user(ordering_api, credits_items) -> None:
    # Given alice got the Free offer
    status, body = order(ordering_api, "Free", "free-1", base=CREATE_FREE)
    assert (status, body["order"]["status"], body["order"]["limitSlot"]) == (S.CREATED, "paid", True)
    first_id = body["order"]["orderId"]
    assert slots(credits_items, "alice", "Free") == 1
    before = len(credits_items())
    # When she asks again (another request: another key)
    status, body = order(ordering_api, "Free", "free-2", base=CREATE_FREE)
    # Then it is a 409 that says why, and nothing was written
    assert (status, body["error"]) == (S.CONFLICT, "conflict")
    assert body["message"] == "purchase limit reached: at most 1 orders of offer 'Free' per user"
    assert len(credits_items()) == before
    # And a retry of the first request still answers the first order
    status, replayed = order(ordering_api, "Free", "free-1", base=CREATE_FREE)
    assert (status, replayed["order"]["orderId"]) == (S.CREATED, first_id)
    # And another user is not concerned
    status, body = order(ordering_api, "Free", "free-1", user="bob", base=CREATE_FREE)
    assert (status, body["order"]["status"]) == (S.CREATED, "paid")
    assert slots(credits_items, "bob", "Free") == 1


def test_put_offer_with_a_per_user_limit_round_trips(ordering_api) -> None:
    status, saved, _ = ordering_api(PUT_OFFER, path="/admin/offers/Pro", body={**PRO, "perUserLimit": 3}, admin=True)
    assert (status, saved["perUserLimit"]) == (S.OK, 3)
    listed = {offer["offerId"]: offer for offer in ordering_api(LIST_ADMIN, admin=True)[1]["offers"]}
    assert listed["Pro"]["perUserLimit"] == 3
    assert listed["Free"]["perUserLimit"] == 1  # the demo catalog's
    assert listed["EnterpriseM"]["perUserLimit"] is None
    # Without it, the offer has no limit again
    unlimited = {key: value for key, value in PRO.items() if key != "perUserLimit"}
    assert ordering_api(PUT_OFFER, path="/admin/offers/Pro", body=unlimited, admin=True)[0] == S.OK
    listed = {offer["offerId"]: offer for offer in ordering_api(LIST_ADMIN, admin=True)[1]["offers"]}
    assert listed["Pro"]["perUserLimit"] is None


@pytest.mark.parametrize("value", [0, 10_001, "2", 1.5])
def test_put_offer_refuses_a_per_user_limit_out_of_range(ordering_api, value) -> None:
    body = {**PRO, "perUserLimit": value}
    status, response, _ = ordering_api(PUT_OFFER, path="/admin/offers/Pro", body=body, admin=True)
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


def test_a_priced_limited_offer_at_the_limit_makes_no_intent(ordering_api, pro, credits_items) -> None:
    status, body = order(ordering_api, "Pro", "pro-1")
    assert (status, body["order"]["status"]) == (S.CREATED, "pending") and body["payment"]["paymentIntentId"]
    before = credits_items()
    status, body = order(ordering_api, "Pro", "pro-2")
    assert (status, body["error"]) == (S.CONFLICT, "conflict")
    assert credits_items() == before  # no order, no intent link, no counter change
    assert slots(credits_items, "alice", "Pro") == 1


def test_slots_go_back_on_refusal_count_again_on_a_late_success_and_go_back_on_a_full_refund(
    ordering_api, webhook, consumption_api, pro, credits_items
) -> None:
    # A refused order gives its slot back: alice may order again
    first = order(ordering_api, "Pro", "pro-1")[1]["order"]
    assert webhook(failed(first))[0] == S.OK
    assert ordering_api(GET_ORDER, path=f"/orders/{first['orderId']}")[1]["status"] == "refused"
    assert slots(credits_items, "alice", "Pro") == 0
    second = order(ordering_api, "Pro", "pro-2")[1]["order"]
    assert slots(credits_items, "alice", "Pro") == 1
    # The refused order's payment succeeds after all: it is granted and counts again, beyond the limit
    assert webhook(succeeded(first, "evt_late"))[0] == S.OK
    paid = ordering_api(GET_ORDER, path=f"/orders/{first['orderId']}")[1]
    assert (paid["status"], paid["limitSlot"]) == ("paid", True)
    assert slots(credits_items, "alice", "Pro") == 2
    assert order(ordering_api, "Pro", "pro-3")[0] == S.CONFLICT
    # A partial refund keeps the slot; a full one gives it back
    assert webhook(refunded(first, 500))[0] == S.OK
    assert slots(credits_items, "alice", "Pro") == 2
    assert webhook(refunded(first, 1500))[0] == S.OK
    refunded_order = ordering_api(GET_ORDER, path=f"/orders/{first['orderId']}")[1]
    assert (refunded_order["status"], refunded_order["limitSlot"]) == ("refunded", False)
    assert slots(credits_items, "alice", "Pro") == 1
    # Still at the limit (the second order is pending); once it is canceled, alice may order again
    assert order(ordering_api, "Pro", "pro-4")[0] == S.CONFLICT
    canceled = intent_event("evt_cancel", "payment_intent.canceled", second, status="canceled")
    assert webhook(canceled)[0] == S.OK
    assert slots(credits_items, "alice", "Pro") == 0
    assert order(ordering_api, "Pro", "pro-5")[0] == S.CREATED
    assert slots(credits_items, "alice", "Pro") == 1
