"""On the real engine: the outbox reaches the bus through the table's stream, and refunds racing each other and
spends revoke exactly what the rules say (moto is not atomic and has no stream records in Lambda's shape)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext

from tests.dynamodb_local.conftest import refund_ports
from tests.helpers.streams import mine, stream_records
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.local_payments import LocalPaymentGateway
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.domain import balances, ordering, payments, refunds, spending
from usercredits.domain.models import Offer, OrderStatus
from usercredits.domain.reversal import ChargeReport
from usercredits.errors import InsufficientCreditsError
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Caller, DomainEvent

pytestmark = pytest.mark.dynamodb_local


class RecordingPublisher:
    def __init__(self, fail_from: int | None = None) -> None:
        self.published: list[DomainEvent] = []
        self.calls = 0
        self.fail_from = fail_from

    def publish(self, events: list[DomainEvent]) -> None:
        self.calls += 1
        if self.fail_from is not None and self.calls >= self.fail_from:
            raise RuntimeError("bus unavailable")
        self.published.extend(events)


@pytest.fixture
def catalog(dynamodb_local: str, wonderai_offers: list[Offer]) -> DynamoCatalogRepository:
    catalog = DynamoCatalogRepository(cache_seconds=0)
    for offer in wonderai_offers:
        catalog.put_offer(offer, SystemClock().now())
    return catalog


def paid_order(user_id: str, catalog: DynamoCatalogRepository) -> Any:
    order = ordering.place_order(
        ordering.PlaceOrder("EnterpriseM"),
        Caller(user_id=user_id),
        default_currency="usd",
        catalog=catalog,
        orders=DynamoOrderRepository(),
        payments=LocalPaymentGateway("whsec_test"),
        clock=SystemClock(),
    ).order
    intent = {
        "id": order.payment_intent_id,
        "status": "succeeded",
        "amount": 9900,
        "amount_received": 9900,
        "currency": "usd",
        "metadata": {"orderId": order.order_id, "userId": user_id},
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
    return order


def test_the_stream_carries_each_committed_fact_to_the_bus_once_and_in_order(
    dynamodb_local: str, user_id: str, catalog: DynamoCatalogRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from event_publisher import handler

    order = paid_order(user_id, catalog)
    report = ChargeReport(payment_intent_id=order.payment_intent_id or "", currency="usd", refunded_amount=9900)
    assert refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports()).startswith(
        "revoked"
    )

    records = mine(stream_records(dynamodb_local), user_id)
    publisher = RecordingPublisher()
    monkeypatch.setattr(handler, "publisher", lambda: publisher)
    answer = handler.lambda_handler({"Records": records}, LambdaContext("EventPublisherFunction", 256, 60))

    assert answer == {"batchItemFailures": []}
    kinds = [event.kind for event in publisher.published]
    assert kinds == ["OrderPaid", *["CreditsGranted"] * 3, *["CreditsRevoked"] * 3]
    assert {event.detail["userId"] for event in publisher.published} == {user_id}
    ids = [event.detail["eventId"] for event in publisher.published]
    assert len(set(ids)) == len(ids) and all(str(i).startswith("OUTBOX#") for i in ids)
    # Only outbox inserts publish: the spend items, lots, orders... of the same stream are skipped.
    assert len(records) > 2


def test_a_failed_publish_reports_that_record_and_every_later_one_for_retry(
    dynamodb_local: str, user_id: str, catalog: DynamoCatalogRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from event_publisher import handler

    order = paid_order(user_id, catalog)
    report = ChargeReport(payment_intent_id=order.payment_intent_id or "", currency="usd", refunded_amount=9900)
    refunds.apply_charge_report("evt_refund", "charge.refunded", report, ports=refund_ports())
    records = mine(stream_records(dynamodb_local), user_id)
    outbox = [r for r in records if r["dynamodb"]["Keys"]["sk"]["S"].startswith("OUTBOX#")]
    assert len(outbox) == 2

    publisher = RecordingPublisher(fail_from=1)
    monkeypatch.setattr(handler, "publisher", lambda: publisher)
    answer = handler.lambda_handler({"Records": outbox}, LambdaContext("EventPublisherFunction", 256, 60))
    assert answer["batchItemFailures"] == [{"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in outbox]
    assert publisher.published == []

    retry = RecordingPublisher()
    monkeypatch.setattr(handler, "publisher", lambda: retry)
    assert handler.lambda_handler({"Records": outbox}, LambdaContext("EventPublisherFunction", 256, 60)) == {
        "batchItemFailures": []
    }
    assert [event.kind for event in retry.published][:1] == ["OrderPaid"]


def test_racing_refund_events_and_spends_revoke_exactly_once_in_full(
    dynamodb_local: str, user_id: str, catalog: DynamoCatalogRepository
) -> None:
    order = paid_order(user_id, catalog)
    intent = order.payment_intent_id or ""
    credits = DynamoCreditsRepository()

    def refund(index: int) -> str:
        amount = (1000, 4950, 9900)[index % 3]
        report = ChargeReport(payment_intent_id=intent, currency="usd", refunded_amount=amount)
        return refunds.apply_charge_report(f"evt_{index % 6}", "charge.refunded", report, ports=refund_ports())

    def spend(_: int) -> bool:
        try:
            spending.consume_credits(
                user_id,
                "AiTokens",
                10,
                idempotency_key=None,
                catalog=catalog,
                credits=credits,
                events=RecordingPublisher(),
                clock=SystemClock(),
            )
        except InsufficientCreditsError:
            return False
        return True

    with ThreadPoolExecutor(max_workers=12) as pool:
        spends = pool.map(spend, range(20))
        outcomes = list(pool.map(refund, range(18)))
        spent = 10 * sum(spends)

    assert all(outcome.startswith(("revoked", "unchanged")) for outcome in outcomes), outcomes
    stored = DynamoOrderRepository().get_order(user_id, order.order_id)
    assert stored is not None and stored.status is OrderStatus.REFUNDED and stored.revoked_for_amount == 9900
    snapshot = credits.snapshot(user_id, "AiTokens")
    group = snapshot.groups["AiTokens"]
    # Whatever the interleaving: all 300 revoked (once), the spent ones as a debt; nothing is left to spend.
    assert group.balance == -spent and group.available == -spent and snapshot.lots == []
    entries = balances.list_ledger(user_id, offer_group="AiTokens", limit=100, cursor=None, credits=credits).items
    revoked = -sum(e.tokens for e in entries if e.kind.value == "revoke")
    assert revoked == 300
    assert sum(e.tokens for e in entries) == group.balance


def test_the_dev_server_stream_pump_delivers_new_outbox_items_and_retries_failed_ones(
    dynamodb_local: str, user_id: str, catalog: DynamoCatalogRepository
) -> None:
    from devtools.stream_pump import StreamPump

    batches: list[list[str]] = []
    fail = {"next": True}

    def deliver(event: dict[str, Any]) -> dict[str, Any]:
        records = event["Records"]
        batches.append([r["dynamodb"]["Keys"]["sk"]["S"] for r in records])
        if fail["next"]:
            fail["next"] = False
            return {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    pump = StreamPump(dynamodb_local, deliver)
    pump._discover("LATEST")  # as start() does, without the background thread
    paid_order(user_id, catalog)
    assert pump.poll_once() == 0  # delivered, but the publisher failed: kept for the next poll
    assert pump.poll_once() == 1
    assert len(batches) == 2 and batches[0] == batches[1] and all(sk.startswith("OUTBOX#") for sk in batches[0])
    assert pump.poll_once() == 0 and len(batches) == 2  # nothing new
