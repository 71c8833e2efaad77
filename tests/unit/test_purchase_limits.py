"""Per-user purchase limits (``perUserLimit``, issue 12 defect 9) against the in-memory fakes: what counts, the 409,
slots given back by failures and full refunds, and a success after a refusal counting again beyond the limit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository, refund_ports_of
from tests.fakes.payments import RecordingPaymentGateway
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain import ordering, payments
from usercredits.domain.models import MAX_ORDER_QUANTITY, Offer, Order, OrderStatus
from usercredits.domain.reversal import ChargeReport, merge_report, plan_reversal
from usercredits.errors import ConflictError
from usercredits.kernel.models import Caller, Cycle, Money

PRO = Offer(
    offer_id="Pro",
    name="Pro",
    offer_group="Pro",
    prices=[Money(amount=1500, currency="usd")],
    tokens=10,
    cycle=Cycle.MONTHLY,
    per_user_limit=1,
)


@pytest.fixture
def catalog(wonderai_offers: list[Offer]) -> InMemoryCatalogRepository:
    return InMemoryCatalogRepository([*wonderai_offers, PRO])


@pytest.fixture
def place(catalog, orders, payments, clock):
    def _place(offer_id: str, user: str = "alice", key: str | None = None) -> ordering.PlacedOrder:
        return ordering.place_order(
            ordering.PlaceOrder(offer_id, idempotency_key=key),
            Caller(user_id=user),
            default_currency="usd",
            catalog=catalog,
            orders=orders,
            payments=payments,
            clock=clock,
        )

    return _place


Deliver = Callable[..., str]


@pytest.fixture
def deliver(orders: InMemoryOrderRepository, clock: FixedClock) -> Deliver:
    """Apply a verified payment intent event to an order (what the webhook handler does)."""

    def _deliver(order: Order, kind: str, event_id: str, **intent: object) -> str:
        body = {
            "id": order.payment_intent_id,
            "object": "payment_intent",
            "amount": order.total.amount,
            "amount_received": 0,
            "currency": order.total.currency,
            "metadata": {"orderId": order.order_id, "userId": order.user_id},
        } | intent
        return payments.apply_payment_event(
            event_id,
            kind,
            intent_state(body),
            orders=orders,
            payments=RecordingPaymentGateway(),
            clock=clock,
            refunds=refund_ports_of(orders, clock),
        )

    return _deliver


def refuse(deliver: Deliver, order: Order, event_id: str = "evt_ko") -> str:
    declined = {"message": "Your card was declined.", "type": "card_error", "code": "card_declined"}
    return deliver(
        order, "payment_intent.payment_failed", event_id, status="requires_payment_method", last_payment_error=declined
    )


def succeed(deliver: Deliver, order: Order, event_id: str = "evt_ok") -> str:
    return deliver(order, "payment_intent.succeeded", event_id, status="succeeded", amount_received=order.total.amount)


# --- the terms -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1, MAX_ORDER_QUANTITY + 1, "1", 1.5, True])
def test_per_user_limit_is_a_strict_integer_from_1_to_the_largest_quantity(value: object) -> None:
    with pytest.raises(ValidationError):
        Offer.model_validate({**PRO.model_dump(by_alias=True), "perUserLimit": value})


def test_the_demo_free_offer_is_limited_to_one_per_user(catalog) -> None:
    assert catalog.get_offer("Free").per_user_limit == 1


@pytest.mark.parametrize(
    ("status", "holds"),
    [
        (OrderStatus.PENDING, True),
        (OrderStatus.PAID, True),
        (OrderStatus.EXPIRED, True),
        (OrderStatus.REFUSED, False),
        (OrderStatus.ERROR, False),
        (OrderStatus.CANCELED, False),
        (OrderStatus.INCONSISTENT, False),
        (OrderStatus.REFUNDED, False),
    ],
)
def test_a_limited_order_holds_a_slot_while_pending_paid_or_expired(place, status, holds) -> None:
    order = place("Pro").order
    assert (order.limited, order.limit_slot) == (True, True)
    moved = order.model_copy(update={"status": status})
    assert moved.holds_slot is holds
    assert order.slot_change(moved) == (0 if holds else -1)
    # An order whose slot went back takes one again only by counting again (a success after a refusal).
    released = order.model_copy(update={"status": OrderStatus.REFUSED, "limit_slot": False})
    assert released.slot_change(moved) == (1 if holds else 0)


def test_orders_of_offers_without_a_limit_never_hold_a_slot(place, orders) -> None:
    order = place("EnterpriseM").order
    assert (order.limited, order.limit_slot) == (False, False)
    assert order.slot_change(order.model_copy(update={"status": OrderStatus.REFUSED})) == 0
    assert orders.slots == {}


def test_only_orders_of_limited_offers_read_the_counter(place, orders) -> None:
    place("EnterpriseM")
    place("_100tokens")
    assert orders.slot_reads == []  # orders of offers without a limit cost no extra request
    place("Pro")
    assert orders.slot_reads == [("alice", "Pro")]


# --- the limit -------------------------------------------------------------------------------------------------------


def test_at_the_limit_an_order_is_409_and_no_intent_is_created(place, orders, payments) -> None:
    # Given alice holds a pending order of Pro (perUserLimit 1)
    first = place("Pro").order
    assert orders.limit_slots("alice", "Pro") == 1 and len(payments.requests) == 1
    # When she orders it again
    with pytest.raises(ConflictError, match="purchase limit reached: at most 1 orders of offer 'Pro' per user"):
        place("Pro")
    # Then nothing was written and no payment intent was asked for
    assert list(orders.orders) == [("alice", first.order_id)]
    assert len(payments.requests) == 1 and orders.limit_slots("alice", "Pro") == 1
    # And another user is not concerned
    assert place("Pro", user="bob").order.limit_slot
    assert orders.limit_slots("bob", "Pro") == 1


def test_the_free_offer_twice_is_409_the_second_time(place, orders) -> None:
    assert place("Free").order.status is OrderStatus.PAID
    with pytest.raises(ConflictError, match="purchase limit reached"):
        place("Free")
    assert [order.offer_id for order in orders.orders.values() if order.parent_order_id is None] == ["Free"]
    assert orders.group_states("alice")["Free"].paid_orders == 1


def test_a_retry_with_the_same_idempotency_key_at_the_limit_is_answered_as_the_first_time(place, orders) -> None:
    first = place("Free", key="k1").order
    assert place("Free", key="k1").order == first  # the replay, not a 409
    with pytest.raises(ConflictError, match="purchase limit reached"):
        place("Free", key="k2")
    with pytest.raises(ConflictError, match="Idempotency-Key was already used with a different request"):
        place("Pro", key="k1")  # Pro is not at its limit: the key's own check answers


def test_the_write_enforces_the_limit_when_a_racing_order_took_the_last_slot(place, orders, payments) -> None:
    # Given the check read 0 slots, but a racing order takes the last one before the write
    real = orders.limit_slots
    orders.limit_slots = lambda user_id, offer_id: 0
    place("Pro")
    # When the second order is written
    with pytest.raises(ConflictError, match="purchase limit reached: at most 1 orders"):
        place("Pro")
    orders.limit_slots = real
    # Then only the first one exists and holds the one slot
    assert len(orders) == 1 and orders.limit_slots("alice", "Pro") == 1


# --- slots given back ------------------------------------------------------------------------------------------------


def test_a_refused_order_gives_its_slot_back(place, orders, deliver) -> None:
    first = place("Pro").order
    assert refuse(deliver, first) == "refused"
    stored = orders.get_order("alice", first.order_id)
    assert (stored.status, stored.limit_slot, orders.limit_slots("alice", "Pro")) == (OrderStatus.REFUSED, False, 0)
    assert place("Pro").order.limit_slot  # the user may order again
    assert orders.limit_slots("alice", "Pro") == 1


@pytest.mark.parametrize(
    ("kind", "intent", "status"),
    [
        ("payment_intent.canceled", {"status": "canceled"}, OrderStatus.CANCELED),
        (
            "payment_intent.requires_action",
            {"status": "requires_action", "next_action": {"type": "redirect_to_url"}},
            OrderStatus.ERROR,
        ),
    ],
)
def test_a_canceled_or_failed_order_gives_its_slot_back(place, orders, deliver, kind, intent, status) -> None:
    first = place("Pro").order
    assert deliver(first, kind, "evt_1", **intent) == status.value
    assert orders.limit_slots("alice", "Pro") == 0
    assert not orders.get_order("alice", first.order_id).limit_slot
    # A redelivery (or a later failure of an order that no longer counts) gives nothing back twice
    assert deliver(orders.get_order("alice", first.order_id), kind, "evt_1", **intent) == "unchanged"
    assert orders.limit_slots("alice", "Pro") == 0


def test_a_success_after_a_refusal_counts_again_even_beyond_the_limit(place, orders, deliver) -> None:
    # Given a refused order (its slot went back) and a new order holding the one slot
    first = place("Pro").order
    refuse(deliver, first)
    second = place("Pro").order
    assert orders.limit_slots("alice", "Pro") == 1
    # When the first order's payment succeeds after all (webhooks arrive in any order)
    assert succeed(deliver, first) == "paid"
    # Then it is granted, and counts: 2 slots of a limit of 1 (money was collected), so a third order is refused
    paid = orders.get_order("alice", first.order_id)
    assert (paid.status, paid.limit_slot) == (OrderStatus.PAID, True)
    assert orders.limit_slots("alice", "Pro") == 2
    with pytest.raises(ConflictError, match="purchase limit reached"):
        place("Pro")
    # And a redelivered success takes nothing more
    assert succeed(deliver, paid) == "unchanged" and orders.limit_slots("alice", "Pro") == 2
    assert orders.get_order("alice", second.order_id).limit_slot


def test_a_full_refund_gives_the_slot_back_a_partial_one_does_not(place, orders, clock, deliver) -> None:
    order = place("Pro").order
    assert succeed(deliver, order) == "paid"

    def refund(amount: int) -> Order:
        read = orders.get_order("alice", order.order_id)
        report = ChargeReport(payment_intent_id=read.payment_intent_id or "", currency="usd", refunded_amount=amount)
        plan = plan_reversal(
            merge_report(read, report), read, groups={}, lots=[], holds=[], policies={}, now=clock.now()
        )
        assert orders.apply_reversal(plan, None)
        return orders.get_order("alice", order.order_id)

    partly = refund(500)
    assert (partly.status, partly.limit_slot, orders.limit_slots("alice", "Pro")) == (OrderStatus.PAID, True, 1)
    refunded = refund(1500)
    assert (refunded.status, refunded.limit_slot) == (OrderStatus.REFUNDED, False)
    assert orders.limit_slots("alice", "Pro") == 0
    assert place("Pro").order.limit_slot
