"""Which action of a transaction failed is known by its key, not by its place: PynamoDB sends condition checks,
deletes, puts and then updates, whatever order they were added in (issue 12: an outbox put sent before the order's
update made a lost race look like a stale window, a 500; a hold deleted before the idempotency record hid a replay)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.clock import FixedClock
from usercredits.adapters.dynamodb.credits_table import CreditGroupItem, HoldItem, OrderItem
from usercredits.adapters.dynamodb.keys import hold_sk, user_pk
from usercredits.adapters.dynamodb.mappers import order_to_item, reservation_to_item
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.transactions import ConditionFailedError, IdempotentTransaction
from usercredits.domain.models import Order, OrderStatus, Reservation, ReservationStatus
from usercredits.kernel.models import Cycle, DomainEvent, Money
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

CLOCK = FixedClock()


def pending(order_id: str = "o1") -> Order:
    now = CLOCK.now()
    return Order(
        offer_id="pack",
        offer_group="G",
        quantity=1,
        unit_tokens=10,
        total_tokens=10,
        cycle=Cycle.MONTHLY,
        order_id=order_id,
        user_id="u",
        offer_name="pack",
        status=OrderStatus.PENDING,
        total=Money(amount=100, currency="usd"),
        created_at=now,
        updated_at=now,
    )


def test_a_status_change_that_lost_a_race_answers_false_even_with_events_sent_first(moto_tables: None) -> None:
    orders = DynamoOrderRepository()
    read = pending()
    order_to_item(read).save()
    OrderItem(pk=user_pk("u"), sk="ORDER#o1").update(actions=[OrderItem.updated_at.set(CLOCK.now() + timedelta(1))])
    event = DomainEvent("PaymentFailed", {"orderId": "o1"})
    assert orders.change_status(read, OrderStatus.REFUSED, "declined", CLOCK.now(), None, [event]) is False
    record = IdempotencyRecord.of("stripe-event", "evt_1", {}, "o1")
    assert orders.record_payment(read, read=read, idempotency=record, events=[event]) is False


def test_a_replay_is_recognised_when_a_delete_is_sent_before_the_record(moto_tables: None) -> None:
    now = CLOCK.now()
    hold = Reservation(
        reservation_id="h1",
        offer_group="G",
        count=1,
        status=ReservationStatus.HELD,
        expires_at=now + timedelta(hours=1),
        created_at=now,
        updated_at=now,
    )
    reservation_to_item("u", hold).save()
    record = IdempotencyRecord.of("scope", "key", {"a": 1}, "result")
    for attempt in range(2):
        try:
            with IdempotentTransaction("u", record) as transaction:
                transaction.delete(HoldItem(pk=user_pk("u"), sk=hold_sk("h1")))
                transaction.update(
                    CreditGroupItem(pk=user_pk("u"), sk="CREDIT#G"), actions=[CreditGroupItem.held.add(-1)]
                )
        except IdempotentReplayError as replay:
            assert attempt == 1 and replay.result_id == "result"
        else:
            assert attempt == 0


def test_failed_conditions_carry_the_keys_of_the_actions_that_failed(moto_tables: None) -> None:
    with pytest.raises(ConditionFailedError) as failed, IdempotentTransaction("u", None) as transaction:
        transaction.save(order_to_item(pending("o2")))
        transaction.update(
            CreditGroupItem(pk=user_pk("u"), sk="CREDIT#G"),
            actions=[CreditGroupItem.held.add(1)],
            condition=CreditGroupItem.pk.exists(),
        )
    assert failed.value.sort_keys == ("CREDIT#G",)


@pytest.mark.parametrize(
    ("reasons", "retryable"),
    [
        (["TransactionConflict", None], True),
        (["None", "ThrottlingError"], True),
        (["ConditionalCheckFailed", "TransactionConflict"], False),
        (["ValidationError"], False),
    ],
)
def test_a_transaction_cancelled_only_by_conflicts_or_throttling_is_retryable(
    reasons: list[str | None], retryable: bool
) -> None:
    # (a retryable failure is the contract's 503 with Retry-After; any other refusal a 500, never retried for ever)
    from pynamodb.exceptions import CancellationReason, TransactWriteError, VerboseClientError

    from usercredits.adapters.dynamodb.errors import translate_errors
    from usercredits.errors import PersistenceError, UnavailableError

    cause = VerboseClientError(
        {"Error": {"Code": "TransactionCanceledException", "Message": "cancelled"}},
        "TransactWriteItems",
        cancellation_reasons=[None if r is None else CancellationReason(code=r) for r in reasons],
    )

    @translate_errors
    def write() -> None:
        raise TransactWriteError("cancelled", cause=cause)

    with pytest.raises(UnavailableError if retryable else PersistenceError) as raised:
        write()
    assert isinstance(raised.value, UnavailableError) is retryable
