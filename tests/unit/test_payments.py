"""Payment events moving orders forward only (fakes; the webhook tests run the same through the handler)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository, refund_ports_of
from tests.fakes.payments import RecordingPaymentGateway
from tests.helpers.present import present
from usercredits.adapters.stripe.webhooks import parse_event
from usercredits.domain import ordering, payments
from usercredits.domain.models import OrderStatus
from usercredits.domain.stripe_events import PaymentIntentEvent
from usercredits.kernel.models import Caller


def intent_event(event_id: str, kind: str, order, **intent) -> dict[str, Any]:
    body = {
        "id": order.payment_intent_id,
        "object": "payment_intent",
        "amount": order.total.amount,
        "amount_received": 0,
        "currency": order.total.currency,
        "metadata": {"orderId": order.order_id, "userId": order.user_id},
    } | intent
    return {"id": event_id, "type": kind, "data": {"object": body}}


def succeeded(order, event_id: str = "evt_ok", **extra) -> dict[str, Any]:
    return intent_event(
        event_id,
        "payment_intent.succeeded",
        order,
        **({"status": "succeeded", "amount_received": order.total.amount} | extra),
    )


def failed(order, event_id: str = "evt_ko") -> dict[str, Any]:
    return intent_event(
        event_id,
        "payment_intent.payment_failed",
        order,
        status="requires_payment_method",
        last_payment_error={"message": "Your card was declined.", "type": "card_error", "code": "card_declined"},
    )


GATEWAY = RecordingPaymentGateway()


def apply_payment_event(event: dict[str, Any], *, orders, clock, gateway=GATEWAY) -> str:
    """What the webhook handler does with a verified event."""
    parsed = parse_event(event)
    if not isinstance(parsed, PaymentIntentEvent):
        return "ignored"
    return payments.apply_payment_event(
        parsed.event_id,
        parsed.kind,
        parsed.intent,
        orders=orders,
        payments=gateway,
        clock=clock,
        refunds=refund_ports_of(orders, clock),
    )


@pytest.fixture
def pending(catalog: InMemoryCatalogRepository, orders: InMemoryOrderRepository, clock: FixedClock):
    return ordering.place_order(
        ordering.PlaceOrder("EnterpriseM"),
        Caller(user_id="alice"),
        default_currency="usd",
        catalog=catalog,
        orders=orders,
        payments=RecordingPaymentGateway(),
        clock=clock,
    ).order


def test_succeeded_pays_and_grants_once_even_delivered_five_times(pending, orders, clock) -> None:
    outcomes = [apply_payment_event(succeeded(pending), orders=orders, clock=clock) for _ in range(5)]
    assert outcomes[0] == "paid" and set(outcomes[1:]) == {"unchanged"}
    assert orders.get_order("alice", pending.order_id).status is OrderStatus.PAID
    assert orders.group_states("alice")["Enterprise"].paid_orders == 1


@pytest.mark.parametrize("sequence", list(itertools.permutations(["ok", "ko"])))
def test_success_and_failure_in_any_order_end_paid(pending, orders, clock, sequence) -> None:
    for step in sequence:
        apply_payment_event(succeeded(pending) if step == "ok" else failed(pending), orders=orders, clock=clock)
    order = orders.get_order("alice", pending.order_id)
    assert order.status is OrderStatus.PAID
    assert orders.group_states("alice")["Enterprise"].paid_orders == 1


def test_failure_is_refused_with_the_cards_message(pending, orders, clock) -> None:
    assert apply_payment_event(failed(pending), orders=orders, clock=clock) == "refused"
    order = orders.get_order("alice", pending.order_id)
    assert order.history[-1].message == "Your card was declined. - card_error: card_declined"


@pytest.mark.parametrize("extra", [{"amount_received": 1}, {"currency": "eur"}])
def test_amount_or_currency_mismatch_is_inconsistent_grants_nothing_and_is_refunded(
    pending, orders, clock, extra
) -> None:
    # Seed T18 / docs/rules.md#payment-outcomes: the status itself becomes inconsistent (not only a history entry), and
    # nothing is granted; the money that came in is not kept: it is refunded in full, once
    gateway = RecordingPaymentGateway()
    assert apply_payment_event(succeeded(pending, **extra), orders=orders, clock=clock, gateway=gateway) == "refunded"
    order = orders.get_order("alice", pending.order_id)
    assert order.status is OrderStatus.INCONSISTENT
    assert "Enterprise" not in orders.group_states("alice")
    assert list(gateway.refunds.values()) == [pending.payment_intent_id]
    assert order.other_intents[pending.payment_intent_id].duplicate_refund_id is not None
    # a later success of the same payment neither pays the inconsistent order nor refunds again
    assert apply_payment_event(succeeded(pending, "evt_2"), orders=orders, clock=clock, gateway=gateway) == "unchanged"
    assert len(gateway.refunds) == 1


def test_requires_action_is_error_and_canceled_after_paid_changes_nothing(pending, orders, clock) -> None:
    action = intent_event(
        "evt_a",
        "payment_intent.requires_action",
        pending,
        status="requires_action",
        next_action={"type": "use_stripe_sdk"},
    )
    assert apply_payment_event(action, orders=orders, clock=clock) == "error"
    assert apply_payment_event(succeeded(pending), orders=orders, clock=clock) == "paid"
    canceled = intent_event("evt_c", "payment_intent.canceled", pending, status="canceled")
    assert apply_payment_event(canceled, orders=orders, clock=clock) == "unchanged"
    assert orders.get_order("alice", pending.order_id).status is OrderStatus.PAID


def test_unknown_types_and_orders_are_acknowledged(pending, orders, clock) -> None:
    assert (
        apply_payment_event({"id": "e", "type": "customer.created", "data": {"object": {}}}, orders=orders, clock=clock)
        == "ignored"
    )
    stranger = intent_event("e2", "payment_intent.succeeded", pending, metadata={}, id="pi_nobody")
    assert apply_payment_event(stranger, orders=orders, clock=clock) == "unknown-order"


def test_order_is_found_by_intent_id_without_metadata(pending, orders, clock) -> None:
    event = succeeded(pending, metadata={})
    assert apply_payment_event(event, orders=orders, clock=clock) == "paid"


# --- issue 12, defect 1: events of an abandoned intent -------------------------------------------------------------


@pytest.fixture
def abandoned(pending, orders, clock):
    """The order after ``POST /orders/{id}/payment``: its first intent abandoned (returned), a fresh one current."""
    gateway = RecordingPaymentGateway()
    again = ordering.request_payment(
        pending.order_id, Caller(user_id="alice"), idempotency_key=None, orders=orders, payments=gateway, clock=clock
    )
    assert again.order.payment_intent_id != pending.payment_intent_id
    return pending, again.order


@pytest.mark.parametrize("kind", ["canceled", "failed", "requires_action"])
def test_a_failure_of_an_abandoned_intent_leaves_the_order_pending(abandoned, orders, clock, kind) -> None:
    old, current = abandoned
    event = {
        "canceled": intent_event("evt_c", "payment_intent.canceled", old, status="canceled"),
        "failed": failed(old),
        "requires_action": intent_event(
            "evt_a", "payment_intent.requires_action", old, status="requires_action", next_action={"type": "x"}
        ),
    }[kind]
    assert apply_payment_event(event, orders=orders, clock=clock) == "stale-intent"
    assert orders.get_order("alice", old.order_id).status is OrderStatus.PENDING
    # the new intent still pays it
    assert apply_payment_event(succeeded(current, "evt_new"), orders=orders, clock=clock) == "paid"


def test_a_success_of_an_abandoned_intent_pays_the_pending_order_and_cancels_the_new_one(
    abandoned, orders, clock
) -> None:
    old, current = abandoned
    gateway = RecordingPaymentGateway()
    assert apply_payment_event(succeeded(old), orders=orders, clock=clock, gateway=gateway) == "paid"
    paid = orders.get_order("alice", old.order_id)
    assert (paid.status, paid.payment_intent_id) == (OrderStatus.PAID, old.payment_intent_id)
    assert gateway.canceled == [current.payment_intent_id] and gateway.refunds == {}
    # the customer paid the new one too before it was canceled: that money goes back, once
    duplicate = succeeded(current, "evt_dup")
    assert apply_payment_event(duplicate, orders=orders, clock=clock, gateway=gateway) == "refunded"
    assert apply_payment_event(duplicate, orders=orders, clock=clock, gateway=gateway) == "unchanged"
    assert list(gateway.refunds.values()) == [current.payment_intent_id]
    assert orders.group_states("alice")["Enterprise"].paid_orders == 1
    assert [event.kind for event in orders.outbox].count("PaymentRefunded") == 1


def test_a_success_of_an_abandoned_intent_after_the_order_was_paid_is_refunded(abandoned, orders, clock) -> None:
    old, current = abandoned
    gateway = RecordingPaymentGateway()
    assert apply_payment_event(succeeded(current, "evt_new"), orders=orders, clock=clock, gateway=gateway) == "paid"
    assert apply_payment_event(succeeded(old), orders=orders, clock=clock, gateway=gateway) == "refunded"
    order = orders.get_order("alice", old.order_id)
    assert order.payment_intent_id == current.payment_intent_id and order.status is OrderStatus.PAID
    assert list(gateway.refunds.values()) == [old.payment_intent_id]


def test_a_retried_payment_request_never_hands_out_an_intent_a_later_attempt_canceled(pending, orders, clock) -> None:
    gateway, alice = RecordingPaymentGateway(), Caller(user_id="alice")
    first = ordering.request_payment(
        pending.order_id, alice, idempotency_key="k1", orders=orders, payments=gateway, clock=clock
    )
    later = ordering.request_payment(
        pending.order_id, alice, idempotency_key=None, orders=orders, payments=gateway, clock=clock
    )
    replay = ordering.request_payment(
        pending.order_id, alice, idempotency_key="k1", orders=orders, payments=gateway, clock=clock
    )
    assert present(first.payment).payment_intent_id in gateway.canceled
    assert present(replay.payment).payment_intent_id == present(later.payment).payment_intent_id
    apply_payment_event(succeeded(later.order, "evt_paid"), orders=orders, clock=clock, gateway=gateway)
    after_paid = ordering.request_payment(
        pending.order_id, alice, idempotency_key="k1", orders=orders, payments=gateway, clock=clock
    )
    assert after_paid.payment is None and after_paid.order.status is OrderStatus.PAID
