"""Captures and releases racing on the same holds, on the real engine: the settling transaction (delete the open hold
if still held with the count read, put its settled copy, move the group) lets exactly one through per hold, and the
balances stay exact (issue 12, defect 8: settled holds leave the credits Query's range)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import boto3
import pytest

from tests.fakes.events import RecordingEventPublisher
from tests.helpers.ledger import assert_ledger_consistent
from tests.helpers.races import grant, race
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.domain import reservations
from usercredits.domain.models import LedgerKind, Reservation, ReservationStatus
from usercredits.errors import ConflictError, UnavailableError
from usercredits.kernel.clock import SystemClock

pytestmark = pytest.mark.dynamodb_local
THREADS = 16
HOLDS = 12
#: Racers per hold: half capture 2 of its 3 tokens, half release it.
RACERS = 8


@pytest.fixture
def catalog(dynamodb_local: str) -> DynamoCatalogRepository:
    return DynamoCatalogRepository(cache_seconds=0)


@pytest.fixture
def credits(dynamodb_local: str) -> DynamoCreditsRepository:
    return DynamoCreditsRepository()


def _items(user_id: str) -> list[dict[str, Any]]:
    client = boto3.client("dynamodb")
    pages = client.get_paginator("query").paginate(
        TableName=os.environ["CREDITS_TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}},
        ConsistentRead=True,
    )
    return [item for page in pages for item in page["Items"]]


def _retrying_503(work: Any) -> Any:
    """A client retries a 503 (a transaction conflict on the engine), as the API tells it to."""
    for _ in range(20):
        try:
            return work()
        except UnavailableError:
            continue
    return work()


def test_16_threads_racing_capture_and_release_settle_each_hold_exactly_once(catalog, credits, user_id) -> None:
    # Given 100 tokens, 12 holds of 3 to race on and 2 holds (of 4 and 5) nobody touches
    group = "RaceHolds"
    grant(user_id, group, 100, credits)

    def hold(count: int) -> Reservation:
        return reservations.create_reservation(
            user_id,
            group,
            count,
            expires_in_seconds=600,
            idempotency_key=None,
            catalog=catalog,
            credits=credits,
            clock=SystemClock(),
        )

    raced = [hold(3).reservation_id for _ in range(HOLDS)]
    untouched = {hold(4).reservation_id: 4, hold(5).reservation_id: 5}

    # When 16 threads capture (2 tokens) and release each raced hold, 8 racers per hold, interleaved
    def settle(index: int) -> tuple[str, str, Reservation | Exception]:
        reservation_id, kind = raced[index % HOLDS], "capture" if (index // HOLDS) % 2 else "release"

        def once() -> Reservation:
            if kind == "capture":
                return reservations.capture_reservation(
                    user_id,
                    reservation_id,
                    2,
                    credits=credits,
                    clock=SystemClock(),
                    catalog=DynamoCatalogRepository(),
                    events=RecordingEventPublisher(),
                )
            return reservations.release_reservation(user_id, reservation_id, credits=credits, clock=SystemClock())

        try:
            return reservation_id, kind, _retrying_503(once)
        except ConflictError as refused:
            return reservation_id, kind, refused

    outcomes = race(HOLDS * RACERS, settle, workers=THREADS)

    # Then nothing but answers and 409s came back
    results = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    assert len(results) == HOLDS * RACERS, [outcome for outcome in outcomes if isinstance(outcome, Exception)]
    # and each raced hold was settled by exactly one movement, which its settled copy and every answer agree with
    ledger = assert_ledger_consistent(user_id, credits)[group]
    settling = Counter(
        entry.reservation_id for entry in ledger if entry.kind in (LedgerKind.CAPTURE, LedgerKind.RELEASE)
    )
    assert settling == Counter(dict.fromkeys(raced, 1))
    finals = {rid: reservations.get_reservation(user_id, rid, credits=credits) for rid in raced}
    for reservation_id, kind, answer in results:
        final = finals[reservation_id]
        assert final.status in (ReservationStatus.CAPTURED, ReservationStatus.RELEASED)
        if isinstance(answer, ConflictError):  # a capture after the release, or a release after the capture
            assert (kind, final.status) in (
                ("capture", ReservationStatus.RELEASED),
                ("release", ReservationStatus.CAPTURED),
            )
        else:
            assert not isinstance(answer, Exception), answer
            assert answer.model_dump() == final.model_dump()
    # and the credits range holds only the group, its lot and the untouched holds; every raced hold is settled once
    items = _items(user_id)
    in_range = Counter(item["itemType"]["S"] for item in items if item["sk"]["S"].startswith("CREDIT#"))
    assert in_range == Counter({"creditGroup": 1, "lot": 1, "hold": len(untouched)})
    copies = [item for item in items if item["sk"]["S"].startswith("HOLD#")]
    assert sorted(item["reservationId"]["S"] for item in copies) == sorted(raced)
    assert {item["reservationId"]["S"]: item["status"]["S"] for item in copies} == {
        rid: final.status.value for rid, final in finals.items()
    }
    # Balances exact: the balance is the sum of the ledger's tokens (checked above), 100 less what was captured;
    # held is the sum of the open holds' counts
    captured = sum(final.captured for final in finals.values())
    snapshot = credits.snapshot(user_id, group)
    state = snapshot.groups[group]
    assert {hold.reservation_id: hold.count for hold in snapshot.holds} == untouched
    assert (state.balance, state.held, state.available) == (100 - captured, 9, 100 - captured - 9)
    assert sum(entry.tokens for entry in ledger) == state.balance
