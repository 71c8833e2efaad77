"""Refunds and disputes through the webhook function on moto, with real signatures: money going back takes credits
back, once, whatever the order or number of deliveries."""

from __future__ import annotations

import itertools
from http import HTTPStatus as S
from typing import Any

import pytest

from tests.integration.conftest import Call, outbox_events, succeeded

ORDER = "ordering/get_order.json"
CREDITS = "consumption/get_credits.json"
LEDGER = "consumption/get_ledger.json"
CONSUME = "consumption/consume.json"


def refunded(order: dict[str, Any], amount: int, event_id: str | None = None) -> dict[str, Any]:
    """A ``charge.refunded`` event: Stripe sends the charge, whose ``amount_refunded`` is cumulative."""
    total = order["total"]["amount"]
    charge = {
        "id": f"ch_{order['paymentIntentId']}",
        "object": "charge",
        "amount": total,
        "amount_refunded": amount,
        "refunded": amount >= total,
        "currency": order["total"]["currency"],
        "payment_intent": order["paymentIntentId"],
        "metadata": {},  # a charge does not carry the intent's metadata: the order is found through the intent id
    }
    return {
        "id": event_id or f"evt_refund_{amount}",
        "object": "event",
        "type": "charge.refunded",
        "data": {"object": charge},
    }


def dispute(order: dict[str, Any], kind: str, status: str, event_id: str | None = None) -> dict[str, Any]:
    body = {
        "id": "dp_1",
        "object": "dispute",
        "amount": order["total"]["amount"],
        "currency": order["total"]["currency"],
        "charge": f"ch_{order['paymentIntentId']}",
        "payment_intent": order["paymentIntentId"],
        "status": status,
        "reason": "fraudulent",
    }
    return {"id": event_id or f"evt_{kind}_{status}", "object": "event", "type": kind, "data": {"object": body}}


def balances(consumption_api: Call) -> dict[str, int]:
    return {g["offerGroup"]: g["balance"] for g in consumption_api(CREDITS)[1]["groups"]}


def get_order(ordering_api: Call, order: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = ordering_api(ORDER, path=f"/orders/{order['orderId']}")[1]
    return body


def ledger(consumption_api: Call, group: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = consumption_api(LEDGER, query={"offerGroup": group})[1]["entries"]
    return entries


# EnterpriseM (9900 usd) grants Enterprise 150 tokens (its own lot), AiTokens 300 and VIP_BACK_LINK 1 (bundle lots).
PAID = {"Enterprise": 150, "AiTokens": 300, "VIP_BACK_LINK": 1}


@pytest.fixture
def paid_order(webhook, pending_order, consumption_api) -> dict[str, Any]:
    assert webhook(succeeded(pending_order)) == (S.OK, {"received": True})
    assert balances(consumption_api) == PAID
    return pending_order


def test_full_refund_revokes_what_remains_of_every_lot_and_refunds_the_order(
    webhook, paid_order, ordering_api, consumption_api, credits_items
) -> None:
    assert webhook(refunded(paid_order, 9900)) == (S.OK, {"received": True})
    assert balances(consumption_api) == {"Enterprise": 0, "AiTokens": 0, "VIP_BACK_LINK": 0}
    order = get_order(ordering_api, paid_order)
    assert order["status"] == "refunded" and order["refundedAmount"] == 9900 and order["revokedForAmount"] == 9900
    children = ordering_api("ordering/list_orders.json", query={"limit": "10"})[1]["orders"]
    assert {child["status"] for child in children if child.get("parentOrderId")} == {"refunded"}
    revoke = ledger(consumption_api, "AiTokens")[0]
    assert revoke["kind"] == "revoke" and revoke["tokens"] == -300 and revoke["balanceAfter"] == 0
    assert revoke.get("shortfall") is None
    revoked = [detail for kind, detail in outbox_events(credits_items()) if kind == "CreditsRevoked"]
    assert sorted((d["offerGroup"], d["tokens"], d["debt"]) for d in revoked) == [
        ("AiTokens", 300, 0),
        ("Enterprise", 150, 0),
        ("VIP_BACK_LINK", 1, 0),
    ]


def test_partial_refunds_revoke_the_proportional_share_rounded_up_and_cumulatively(
    webhook, paid_order, ordering_api, consumption_api
) -> None:
    # 1000 of 9900: AiTokens owes ceil(300 * 1000 / 9900) = ceil(30.3) = 31, Enterprise ceil(15.2) = 16, the 1-token
    # lot ceil(0.101) = 1.
    assert webhook(refunded(paid_order, 1000))[0] == S.OK
    assert balances(consumption_api) == {"Enterprise": 134, "AiTokens": 269, "VIP_BACK_LINK": 0}
    order = get_order(ordering_api, paid_order)
    assert order["status"] == "paid" and order["refundedAmount"] == 1000
    # Stripe's amount_refunded is cumulative: 4950 of 9900 owes 150 in all, so 119 more.
    assert webhook(refunded(paid_order, 4950))[0] == S.OK
    assert balances(consumption_api) == {"Enterprise": 75, "AiTokens": 150, "VIP_BACK_LINK": 0}
    assert [e["tokens"] for e in ledger(consumption_api, "AiTokens")[:2]] == [-119, -31]


def test_spent_tokens_are_revoked_in_full_as_a_debt_the_next_grant_repays(
    webhook, paid_order, ordering_api, consumption_api, credits_items
) -> None:
    # Defect 5 (issue 12): the 280 spent used to be a "shortfall" never collected: the buyer kept value twice.
    assert consumption_api(CONSUME, path="/credits/AiTokens/consume", body={"count": 280})[0] == S.OK
    assert webhook(refunded(paid_order, 9900))[0] == S.OK
    groups = {g["offerGroup"]: g for g in consumption_api(CREDITS)[1]["groups"]}
    assert (groups["AiTokens"]["balance"], groups["AiTokens"]["debt"]) == (-280, 280)
    revoke = ledger(consumption_api, "AiTokens")[0]
    assert (revoke["kind"], revoke["tokens"]) == ("revoke", -300)
    event = next(
        d for k, d in outbox_events(credits_items()) if k == "CreditsRevoked" and d["offerGroup"] == "AiTokens"
    )
    assert (event["tokens"], event["debt"]) == (300, 280)
    assert consumption_api(CONSUME, path="/credits/AiTokens/consume", body={"count": 1})[0] == S.PAYMENT_REQUIRED
    # the next purchase repays the debt first: 300 tokens bought, 20 left to spend
    placed = ordering_api(
        "ordering/create_order.json", body={"offerId": "_300tokens"}, headers={"idempotency-key": "again"}
    )
    assert placed[0] == S.CREATED, placed
    again = placed[1]["order"]
    assert webhook(succeeded(again, "evt_again"))[0] == S.OK
    assert balances(consumption_api)["AiTokens"] == 20


def test_a_limited_overdraft_lets_a_revocation_take_the_balance_negative_down_to_its_limit(
    webhook, paid_order, consumption_api
) -> None:
    # VIP_BACK_LINK allows -1 (demo catalog): its only token spent, a full refund takes the balance to -1.
    assert consumption_api(CONSUME, path="/credits/VIP_BACK_LINK/consume", body={"count": 1})[0] == S.OK
    assert webhook(refunded(paid_order, 9900))[0] == S.OK
    assert balances(consumption_api)["VIP_BACK_LINK"] == -1
    assert ledger(consumption_api, "VIP_BACK_LINK")[0]["tokens"] == -1


def test_a_refund_delivered_five_times_revokes_once(webhook, paid_order, consumption_api) -> None:
    for _ in range(5):
        assert webhook(refunded(paid_order, 4950, event_id="evt_same")) == (S.OK, {"received": True})
    assert balances(consumption_api)["AiTokens"] == 150
    # A different event repeating the same cumulative figure changes nothing either.
    assert webhook(refunded(paid_order, 4950, event_id="evt_other"))[0] == S.OK
    assert [e["kind"] for e in ledger(consumption_api, "AiTokens")] == ["revoke", "grant"]


def test_an_older_smaller_refund_arriving_late_changes_nothing(webhook, paid_order, consumption_api) -> None:
    assert webhook(refunded(paid_order, 9900))[0] == S.OK
    assert webhook(refunded(paid_order, 1000))[0] == S.OK
    assert balances(consumption_api)["AiTokens"] == 0
    assert [e["kind"] for e in ledger(consumption_api, "AiTokens")] == ["revoke", "grant"]


@pytest.mark.parametrize("steps", list(itertools.permutations(["succeeded", "refund-1000", "refund-9900"])))
def test_success_and_refunds_in_every_order_end_the_same(
    steps, webhook, pending_order, ordering_api, consumption_api
) -> None:
    events = {
        "succeeded": succeeded(pending_order),
        "refund-1000": refunded(pending_order, 1000),
        "refund-9900": refunded(pending_order, 9900),
    }
    for step in steps:
        assert webhook(events[step]) == (S.OK, {"received": True})
    order = get_order(ordering_api, pending_order)
    assert (order["status"], order["refundedAmount"], order["revokedForAmount"]) == ("refunded", 9900, 9900)
    assert balances(consumption_api) == {"Enterprise": 0, "AiTokens": 0, "VIP_BACK_LINK": 0}
    ai = ledger(consumption_api, "AiTokens")
    assert sum(e["tokens"] for e in ai) == 0 and ai[-1]["kind"] == "grant"


def test_a_refund_before_the_success_is_recorded_then_settled_by_the_payment(
    webhook, pending_order, ordering_api, consumption_api
) -> None:
    assert webhook(refunded(pending_order, 4950))[0] == S.OK
    order = get_order(ordering_api, pending_order)
    assert (order["status"], order["refundedAmount"], order["revokedForAmount"]) == ("pending", 4950, 0)
    assert "no credits were granted yet" in order["history"][-1]["message"]
    assert webhook(succeeded(pending_order))[0] == S.OK
    order = get_order(ordering_api, pending_order)
    assert (order["status"], order["revokedForAmount"]) == ("paid", 4950)
    assert balances(consumption_api)["AiTokens"] == 150


def test_a_lost_dispute_keeps_the_credits_revoked(webhook, paid_order, ordering_api, consumption_api) -> None:
    assert webhook(dispute(paid_order, "charge.dispute.created", "needs_response"))[0] == S.OK
    assert balances(consumption_api) == {"Enterprise": 0, "AiTokens": 0, "VIP_BACK_LINK": 0}
    assert get_order(ordering_api, paid_order)["disputeStatus"] == "open"
    assert webhook(dispute(paid_order, "charge.dispute.closed", "lost"))[0] == S.OK
    assert balances(consumption_api) == {"Enterprise": 0, "AiTokens": 0, "VIP_BACK_LINK": 0}
    order = get_order(ordering_api, paid_order)
    assert (order["disputeStatus"], order["disputedAmount"], order["status"]) == ("lost", 9900, "paid")


def test_a_won_dispute_gives_the_credits_back(
    webhook, paid_order, ordering_api, consumption_api, credits_items
) -> None:
    assert consumption_api(CONSUME, path="/credits/AiTokens/consume", body={"count": 100})[0] == S.OK
    assert webhook(dispute(paid_order, "charge.dispute.created", "needs_response"))[0] == S.OK
    assert balances(consumption_api)["AiTokens"] == -100  # all 300 revoked: the 100 spent are a debt
    assert webhook(dispute(paid_order, "charge.dispute.closed", "won"))[0] == S.OK
    assert balances(consumption_api) == {"Enterprise": 150, "AiTokens": 200, "VIP_BACK_LINK": 1}
    restore = ledger(consumption_api, "AiTokens")[0]
    assert (restore["kind"], restore["tokens"]) == ("adjust", 300)
    kinds = [kind for kind, _ in outbox_events(credits_items())]
    assert kinds.count("CreditsRevoked") == 3 and kinds.count("CreditsGranted") == 3 + 3  # paid, then restored
    assert get_order(ordering_api, paid_order)["disputeStatus"] == "won"


def test_a_dispute_closed_before_its_creation_is_delivered_stays_closed(
    webhook, paid_order, ordering_api, consumption_api
) -> None:
    assert webhook(dispute(paid_order, "charge.dispute.closed", "won"))[0] == S.OK
    assert webhook(dispute(paid_order, "charge.dispute.created", "needs_response"))[0] == S.OK
    assert balances(consumption_api) == PAID
    assert get_order(ordering_api, paid_order)["disputeStatus"] == "won"


def test_refunds_of_unknown_payments_and_inquiries_are_acknowledged_and_ignored(
    webhook, paid_order, consumption_api
) -> None:
    stranger = paid_order | {"paymentIntentId": "pi_unknown", "orderId": "nope"}
    assert webhook(refunded(stranger, 9900)) == (S.OK, {"received": True})
    assert webhook(dispute(paid_order, "charge.dispute.created", "warning_needs_response")) == (
        S.OK,
        {"received": True},
    )
    other_currency = refunded(paid_order, 9900)
    other_currency["data"]["object"]["currency"] = "eur"
    assert webhook(other_currency)[0] == S.OK
    assert balances(consumption_api) == PAID


def test_payment_failures_are_published_through_the_outbox(webhook, pending_order, credits_items) -> None:
    from tests.integration.conftest import intent_event

    failed = intent_event(
        "evt_ko",
        "payment_intent.payment_failed",
        pending_order,
        status="requires_payment_method",
        last_payment_error={"message": "Declined", "type": "card_error", "code": "card_declined"},
    )
    for _ in range(3):
        assert webhook(failed)[0] == S.OK
    events = outbox_events(credits_items())
    assert [kind for kind, _ in events] == ["PaymentFailed"]
    assert events[0][1]["status"] == "refused" and events[0][1]["orderId"] == pending_order["orderId"]
