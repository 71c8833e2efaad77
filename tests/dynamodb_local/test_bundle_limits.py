"""The largest bundle the API accepts, on the real engine (issue 16, item 1): every transaction it goes through fits
DynamoDB's TransactWriteItems limits (100 actions, 4 MB), measured on the requests actually sent.

``MAX_BUNDLE_ITEMS`` items, each in a group of its own (the worst case), bought from an offer with a per-user limit
(so the limit's counter is written too), paid free at once or through the webhook path, then refunded in full while
``HOLD_CUTS_IN_PLACE`` holds must be cut (more: the group's next step cuts the rest), or disputed and lost. One item
more is refused at the edge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus as S
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext
from pynamodb.connection.base import Connection

from tests.conftest import http_event
from tests.dynamodb_local.conftest import refund_ports
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.present import present
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.credits_table import OfferItem
from usercredits.adapters.dynamodb.keys import CATALOG_PK
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain import ordering, payments, refunds, reservations
from usercredits.domain.models import (
    ACTIONS_PER_ORDER,
    ACTIONS_PER_PURCHASE,
    HOLD_CUT_ACTIONS,
    HOLD_CUTS_IN_PLACE,
    MAX_BUNDLE_ITEMS,
    CombinedOffer,
    DisputeStatus,
    Offer,
    Order,
    OrderStatus,
)
from usercredits.domain.reversal import ChargeReport, owed_lots
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Caller, Cycle, Money
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

pytestmark = pytest.mark.dynamodb_local

ITEMS = MAX_BUNDLE_ITEMS
PRICE = 2000
TOKENS = 10  # per purchase: the root's and each item's lot
#: Purchases the bundle grants (the root and each item), each in a group of its own.
PURCHASES = 1 + ITEMS
#: The largest transaction: a full refund cutting the most holds it cuts in place.
LARGEST = PURCHASES * ACTIONS_PER_PURCHASE + ACTIONS_PER_ORDER + HOLD_CUT_ACTIONS
#: Paying (or disputing) writes per purchase its order (or child), its lot and its group; only a full refund closes
#: the lots (their open item deleted, their closed copy put: ``ACTIONS_PER_PURCHASE``).
GRANT_ACTIONS = 3
FOUR_MB = 4 * 1024 * 1024


@dataclass
class Sent:
    """Every TransactWriteItems sent: its actions and its request's size in bytes (JSON, as on the wire)."""

    transactions: list[tuple[int, int]] = field(default_factory=list)

    def clear(self) -> None:
        self.transactions.clear()

    @property
    def actions(self) -> list[int]:
        return [actions for actions, _ in self.transactions]

    @property
    def largest(self) -> tuple[int, int]:
        return max(self.transactions)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    record = Sent()
    original = Connection._make_api_call

    def recording(self: Connection, operation_name: str, operation_kwargs: dict[str, Any]) -> Any:
        if operation_name == "TransactWriteItems":
            size = len(json.dumps(operation_kwargs).encode())
            record.transactions.append((len(operation_kwargs["TransactItems"]), size))
        return original(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "_make_api_call", recording)
    return record


def offer(offer_id: str, *, price: int, items: int = ITEMS) -> Offer:
    return Offer.model_construct(  # unvalidated: the test also stores an offer past the maximum
        offer_id=offer_id,
        name=offer_id,
        kind="tokens",
        offer_group="MaxRoot",
        prices=[Money(amount=price, currency="usd")],
        tokens=TOKENS,
        cycle=Cycle.MONTHLY,
        per_user_limit=3,
        combined_items=[CombinedOffer(offer_id="MaxTok", offer_group=f"MaxG-{i:02d}") for i in range(items)],
    )


OFFERS = ("MaxTok", "MaxFree", "MaxPriced", "MaxPlusOne")


@pytest.fixture
def catalog(dynamodb_local: str) -> Iterator[DynamoCatalogRepository]:
    catalog = DynamoCatalogRepository(cache_seconds=0)
    now = SystemClock().now()
    item = Offer(
        offer_id="MaxTok",
        name="MaxTok",
        offer_group="MaxTok",
        prices=[Money(amount=100, currency="usd")],
        tokens=TOKENS,
        cycle=Cycle.MONTHLY,
    )
    for stored in (item, Offer.model_validate(offer("MaxFree", price=0).model_dump()), offer("MaxPriced", price=PRICE)):
        catalog.put_offer(stored, now)
    catalog.put_offer(offer("MaxPlusOne", price=PRICE, items=ITEMS + 1), now)  # stored before the limit
    yield catalog
    for offer_id in OFFERS:  # the catalog is shared by the session's tests
        OfferItem(pk=CATALOG_PK, sk=f"OFFER#{offer_id}").delete()


def place(user_id: str, offer_id: str, catalog: DynamoCatalogRepository) -> Order:
    return ordering.place_order(
        ordering.PlaceOrder(offer_id, idempotency_key=f"key-{offer_id}"),
        Caller(user_id=user_id),
        default_currency="usd",
        catalog=catalog,
        orders=DynamoOrderRepository(),
        payments=LocalPaymentGateway("whsec_test"),
        clock=SystemClock(),
    ).order


def pay_through_the_webhook(order: Order) -> None:
    intent = {
        "id": order.payment_intent_id,
        "status": "succeeded",
        "amount": PRICE,
        "amount_received": PRICE,
        "currency": "usd",
        "metadata": {"orderId": order.order_id, "userId": order.user_id},
    }
    outcome = payments.apply_payment_event(
        f"evt_paid_{order.order_id}",
        "payment_intent.succeeded",
        intent_state(intent),
        orders=DynamoOrderRepository(),
        payments=LocalPaymentGateway("whsec_test"),
        clock=SystemClock(),
        refunds=refund_ports(),
    )
    assert outcome == "paid"


def balances(user_id: str) -> dict[str, tuple[int, int]]:
    """(balance, held) per group."""
    snapshot = DynamoCreditsRepository().snapshot(user_id)
    return {name: (state.balance, state.held) for name, state in snapshot.groups.items()}


def granted_everything(user_id: str, order: Order) -> None:
    stored = DynamoOrderRepository().get_order(user_id, order.order_id)
    assert stored is not None and stored.status is OrderStatus.PAID and len(stored.combined_items) == ITEMS
    children = [DynamoOrderRepository().get_order(user_id, line.child_order_id or "") for line in stored.combined_items]
    assert all(child is not None and child.status is OrderStatus.PAID for child in children)
    expected = {"MaxRoot": (TOKENS, 0)} | {f"MaxG-{i:02d}": (TOKENS, 0) for i in range(ITEMS)}
    assert balances(user_id) == expected
    assert len(DynamoCreditsRepository().snapshot(user_id).lots) == PURCHASES


def within_limits(sent: Sent) -> None:
    actions, size = sent.largest
    assert actions <= MAX_TRANSACTION_ACTIONS and size < FOUR_MB // 10, sent.transactions


def test_a_free_bundle_at_the_maximum_is_granted_at_once(
    catalog: DynamoCatalogRepository, user_id: str, sent: Sent
) -> None:
    order = place(user_id, "MaxFree", catalog)
    assert order.status is OrderStatus.PAID
    granted_everything(user_id, order)
    # One transaction: per purchase its order (or child), lot and group; the idempotency key, outbox and limit slot.
    assert sent.actions == [PURCHASES * GRANT_ACTIONS + ACTIONS_PER_ORDER] == [66]
    within_limits(sent)


def hold_everything(user_id: str, groups: list[str], catalog: DynamoCatalogRepository) -> list[str]:
    """One hold of all its tokens in each of ``groups``: a refund of the bundle must cut each of them to nothing."""
    return [
        reservations.create_reservation(
            user_id,
            group,
            TOKENS,
            expires_in_seconds=3600,
            idempotency_key=None,
            catalog=catalog,
            credits=DynamoCreditsRepository(),
            clock=SystemClock(),
        ).reservation_id
        for group in groups
    ]


def test_a_priced_bundle_at_the_maximum_is_paid_then_refunded_in_full_cutting_the_most_holds(
    catalog: DynamoCatalogRepository, user_id: str, sent: Sent
) -> None:
    order = place(user_id, "MaxPriced", catalog)
    assert sent.actions == [4]  # order, idempotency record, limit slot, intent link: no child order yet
    pay_through_the_webhook(order)
    granted_everything(user_id, order)
    assert sent.actions[1:] == [PURCHASES * GRANT_ACTIONS + 2]  # no slot moves: pending -> paid keeps it
    hold_everything(user_id, [f"MaxG-{i:02d}" for i in range(HOLD_CUTS_IN_PLACE)], catalog)
    sent.clear()

    report = ChargeReport(payment_intent_id=order.payment_intent_id or "", currency="usd", refunded_amount=PRICE)
    assert refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports()) == "revoked 210"
    assert sent.actions == [LARGEST] == [99]
    within_limits(sent)
    refunded = DynamoOrderRepository().get_order(user_id, order.order_id)
    assert refunded is not None and refunded.status is OrderStatus.REFUNDED and refunded.withdrawn
    assert set(balances(user_id).values()) == {(0, 0)}
    closed_ids = {owed.lot_id for owed in owed_lots(refunded)}
    snapshot = DynamoCreditsRepository().snapshot(user_id, closed_ids=closed_ids)
    assert (snapshot.holds, snapshot.lots, len(snapshot.closed_lots)) == ([], [], PURCHASES)
    assert DynamoOrderRepository().limit_slots(user_id, "MaxPriced") == 0
    # A redelivery changes nothing.
    assert refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports()) == "unchanged"


def test_a_priced_bundle_at_the_maximum_is_disputed_and_lost(
    catalog: DynamoCatalogRepository, user_id: str, sent: Sent
) -> None:
    order = place(user_id, "MaxPriced", catalog)
    pay_through_the_webhook(order)
    sent.clear()
    intent = order.payment_intent_id or ""
    opened = ChargeReport(intent, "usd", dispute_amount=PRICE, dispute_status=DisputeStatus.OPEN)
    assert (
        refunds.apply_charge_report("evt_dispute", "charge.dispute.created", opened, ports=refund_ports())
        == "revoked 210"
    )
    lost = ChargeReport(intent, "usd", dispute_amount=PRICE, dispute_status=DisputeStatus.LOST)
    assert refunds.apply_charge_report("evt_lost", "charge.dispute.closed", lost, ports=refund_ports()).startswith(
        "recorded"
    )
    # Opened: order, event id, each child (withdrawn), lot and group, outbox; lost: order and event id.
    assert sent.actions == [PURCHASES * GRANT_ACTIONS + 2, 2]
    within_limits(sent)
    stored = DynamoOrderRepository().get_order(user_id, order.order_id)
    assert stored is not None and (stored.status, stored.dispute_status) == (OrderStatus.PAID, DisputeStatus.LOST)
    assert stored.withdrawn and set(balances(user_id).values()) == {(0, 0)}


def test_a_refund_with_more_holds_to_cut_than_fit_revokes_at_once_and_the_next_step_cuts_the_rest(
    catalog: DynamoCatalogRepository, user_id: str, sent: Sent
) -> None:
    order = place(user_id, "MaxPriced", catalog)
    pay_through_the_webhook(order)
    too_many = HOLD_CUTS_IN_PLACE + 1  # 2 actions each: 87 + 14 > 100
    groups = [f"MaxG-{i:02d}" for i in range(too_many)]
    holds = hold_everything(user_id, groups, catalog)
    sent.clear()
    report = ChargeReport(payment_intent_id=order.payment_intent_id or "", currency="usd", refunded_amount=PRICE)
    # The refund is applied at once, in one transaction within the limit: every token leaves, 6 of the 7 holds are
    # cut (87 actions: the order, its 20 children, 21 lots closed (2 each), 21 groups, the idempotency record, the
    # outbox item and the limit's counter; + 6 x 2)
    assert refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports()) == "revoked 210"
    assert sent.actions == [MAX_TRANSACTION_ACTIONS - 1]
    refunded = DynamoOrderRepository().get_order(user_id, order.order_id)
    assert refunded is not None and refunded.status is OrderStatus.REFUNDED
    # The hold left (in the last group) cannot be captured: the capture brings the group up to date first, which
    # cuts it (and the redelivery changes nothing)
    credits = DynamoCreditsRepository()
    assert present(credits.group_state(user_id, groups[-1])).held == TOKENS
    with pytest.raises(Exception, match="released|not held"):
        reservations.capture_reservation(
            user_id,
            holds[-1],
            None,
            credits=credits,
            clock=SystemClock(),
            catalog=catalog,
            events=RecordingEventPublisher(),
        )
    assert refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports()) == "unchanged"
    assert set(balances(user_id).values()) == {(0, 0)}
    assert [reservations.get_reservation(user_id, hold, credits=credits).count for hold in holds] == [0] * too_many


@pytest.fixture
def ordering_handler(dynamodb_local: str) -> Iterator[Any]:
    from ordering import handler

    handler.dependencies.cache_clear()
    yield handler
    handler.dependencies.cache_clear()


def call(handler: Any, base: str, **overrides: Any) -> tuple[int, Any]:
    response = handler.lambda_handler(http_event(base, **overrides), LambdaContext("OrderingFunction", 512, 30))
    return response["statusCode"], json.loads(response.get("body") or "null")


def test_one_item_past_the_maximum_is_422_at_the_admin_put_and_409_at_placement(
    catalog: DynamoCatalogRepository, user_id: str, ordering_handler: Any, sent: Sent
) -> None:
    body = offer("MaxPlusOne", price=PRICE, items=ITEMS + 1).model_dump(mode="json", by_alias=True)
    body.pop("offerId")
    status, answer = call(
        ordering_handler, "ordering/put_offer_admin.json", path="/admin/offers/MaxPlusOne", body=body, admin=True
    )
    assert status == S.UNPROCESSABLE_ENTITY
    assert [detail["field"] for detail in answer["details"]] == ["body.combinedItems"]

    status, answer = call(
        ordering_handler,
        "ordering/create_order.json",
        body={"offerId": "MaxPlusOne"},
        user=user_id,
        headers={"idempotency-key": "plus-one"},
    )
    assert (status, answer["error"]) == (S.CONFLICT, "conflict")
    assert f"bundles {ITEMS + 1} items" in answer["message"]
    assert sent.actions == []  # nothing written, no payment intent made
    assert DynamoOrderRepository().list_orders(user_id, status=None, limit=10, cursor=None).items == []
