"""Settled holds leave the user's ``CREDIT#`` range (issue 12, defect 8): the transaction that captures or releases a
hold deletes its open item and puts a settled copy at ``HOLD#<id>`` (TTL 30 days, outside the ``ByExpiry`` index), so
``GET /credits`` (one Query of that range) reads only groups, lots and open holds, however many holds were settled.
Through the consumption handler and the domain with the real adapters, on moto."""

from __future__ import annotations

import os
import uuid
from collections import Counter
from datetime import UTC, datetime
from http import HTTPStatus as S
from typing import Any

import boto3
import pytest

from tests.fakes.events import RecordingEventPublisher
from tests.helpers.moto_credits import MotoWorld as World
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.transactions import IDEMPOTENCY_TTL
from usercredits.domain import balances, reservations
from usercredits.domain.models import LedgerKind, Movement, Reservation, ReservationStatus
from usercredits.errors import ConflictError

CREDITS = "consumption/get_credits.json"
GRANT = "consumption/admin_grant.json"
HOLD = "consumption/create_reservation.json"
CAPTURE = "consumption/capture_reservation.json"
RELEASE = "consumption/release_reservation.json"
#: A well-formed reservation id that was never issued.
UNKNOWN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def _query(user: str, prefix: str | None) -> list[dict[str, Any]]:
    """The user's items (``prefix``: those whose sort key starts with it), as one consistent Query."""
    key, values = "pk = :pk", {":pk": {"S": f"USER#{user}"}}
    if prefix is not None:
        key, values = f"{key} AND begins_with(sk, :prefix)", values | {":prefix": {"S": prefix}}
    client = boto3.client("dynamodb")
    pages = client.get_paginator("query").paginate(
        TableName=os.environ["CREDITS_TABLE_NAME"],
        KeyConditionExpression=key,
        ExpressionAttributeValues=values,
        ConsistentRead=True,
    )
    return [item for page in pages for item in page["Items"]]


def credit_range(user: str) -> list[dict[str, Any]]:
    """What the credits Query reads: every item of the user's ``CREDIT#`` range."""
    return _query(user, "CREDIT#")


def settled(user: str) -> dict[str, dict[str, Any]]:
    """The user's settled holds by reservation id."""
    return {item["reservationId"]["S"]: item for item in _query(user, "HOLD#")}


def kinds(items: list[dict[str, Any]]) -> Counter[str]:
    return Counter(item["itemType"]["S"] for item in items)


def open_hold_ids(user: str) -> set[str]:
    return {item["reservationId"]["S"] for item in credit_range(user) if item["itemType"]["S"] == "hold"}


def indexed(user: str) -> list[dict[str, Any]]:
    """The user's items in the sparse ``ByExpiry`` index (the items carrying its keys)."""
    return [item for item in _query(user, None) if "expiryBucket" in item]


def grant(api, user: str, tokens: int) -> None:
    body = {"offerGroup": "AiTokens", "tokens": tokens, "reason": "test"}
    key = {"idempotency-key": f"grant-{uuid.uuid4()}"}  # the sample event's own key would make it one grant
    assert api(GRANT, path=f"/admin/users/{user}/grants", body=body, admin=True, headers=key)[0] == S.CREATED


def hold(api, count: int, user: str = "alice", **extra: Any) -> dict[str, Any]:
    headers = {"idempotency-key": extra.pop("key", f"hold-{uuid.uuid4()}")}
    status, body, _ = api(
        HOLD, path="/credits/AiTokens/reservations", body={"count": count} | extra, headers=headers, user=user
    )
    assert status == S.CREATED, body
    return body


def capture(api, rid: str, count: int | None = None, user: str = "alice"):
    body = {} if count is None else {"count": count}
    return api(CAPTURE, path=f"/reservations/{rid}/capture", body=body, user=user)[:2]


def release(api, rid: str, user: str = "alice"):
    return api(RELEASE, path=f"/reservations/{rid}/release", user=user)[:2]


def assert_settled_copy(item: dict[str, Any], status: str, captured: int) -> None:
    """A settled hold: its status and capture, a TTL 30 days after it settled, and no ``ByExpiry`` keys."""
    assert (item["itemType"]["S"], item["status"]["S"], int(item["captured"]["N"])) == ("settledHold", status, captured)
    assert item["sk"]["S"] == f"HOLD#{item['reservationId']['S']}"
    settled_at = datetime.fromisoformat(item["updatedAt"]["S"].replace("Z", "+00:00")).astimezone(UTC)
    assert int(item["ttl"]["N"]) == int((settled_at + IDEMPOTENCY_TTL).timestamp())
    assert "expiryBucket" not in item and "expiresAt" not in item


# --- through the handler ---------------------------------------------------------------------------------------------


def test_the_credits_query_reads_only_groups_lots_and_open_holds_after_many_settled_holds(consumption_api) -> None:
    # Given 100 tokens, 6 holds released, 6 captured (1 token each) and one hold still open
    grant(consumption_api, "alice", 100)
    for _ in range(6):
        assert release(consumption_api, hold(consumption_api, 3)["reservationId"])[0] == S.OK
        assert capture(consumption_api, hold(consumption_api, 2)["reservationId"], 1)[0] == S.OK
    still_open = hold(consumption_api, 4)["reservationId"]
    # When the credits are read
    status, body, _ = consumption_api(CREDITS)
    # Then the answer is as before: the captures spent, the open hold held
    assert status == S.OK
    assert [(g["balance"], g["held"], g["available"]) for g in body["groups"]] == [(94, 4, 90)]
    # and the Query behind it reads only the group, its lot and the open hold
    assert kinds(credit_range("alice")) == Counter({"creditGroup": 1, "lot": 1, "hold": 1})
    assert open_hold_ids("alice") == {still_open}
    # while the 12 settled holds are kept outside that range, with a TTL and out of the expiry index
    copies = settled("alice")
    assert Counter(item["status"]["S"] for item in copies.values()) == Counter({"released": 6, "captured": 6})
    for item in copies.values():
        assert_settled_copy(item, item["status"]["S"], 1 if item["status"]["S"] == "captured" else 0)
    assert [item["reservationId"]["S"] for item in indexed("alice")] == [still_open]


def test_repeated_captures_and_releases_of_settled_holds_answer_as_before(consumption_api) -> None:
    grant(consumption_api, "alice", 20)
    captured_id = hold(consumption_api, 6)["reservationId"]
    released_id = hold(consumption_api, 5)["reservationId"]
    status, captured = capture(consumption_api, captured_id, 4)
    assert (status, captured["status"], captured["captured"]) == (S.OK, "captured", 4)
    status, released = release(consumption_api, released_id)
    assert (status, released["status"]) == (S.OK, "released")
    assert open_hold_ids("alice") == set()
    # A repeat answers the same reservation, read from its settled copy
    assert capture(consumption_api, captured_id, 4) == (S.OK, captured)
    assert release(consumption_api, released_id) == (S.OK, released)
    # and what was refused before is refused now: another capture count, releasing a capture, capturing a release
    assert capture(consumption_api, captured_id, 3)[0] == S.CONFLICT
    assert capture(consumption_api, captured_id)[0] == S.CONFLICT  # "all" is 6, not the 4 captured
    assert release(consumption_api, captured_id)[0] == S.CONFLICT
    assert capture(consumption_api, released_id)[0] == S.CONFLICT
    # Nothing moved twice: 20 - 4 captured, nothing held
    group = consumption_api(CREDITS)[1]["groups"][0]
    assert (group["balance"], group["held"], group["available"]) == (16, 0, 16)
    # Unknown ids and another user's settled holds are still 404
    assert release(consumption_api, UNKNOWN_ID)[0] == S.NOT_FOUND
    assert capture(consumption_api, captured_id, 4, user="mallory")[0] == S.NOT_FOUND
    assert release(consumption_api, released_id, user="mallory")[0] == S.NOT_FOUND


def test_a_replayed_hold_key_answers_the_reservation_after_it_settled(consumption_api) -> None:
    grant(consumption_api, "alice", 10)
    first = hold(consumption_api, 4, key="h-settled")
    assert release(consumption_api, first["reservationId"])[0] == S.OK
    status, again, _ = consumption_api(
        HOLD, path="/credits/AiTokens/reservations", body={"count": 4}, headers={"idempotency-key": "h-settled"}
    )
    assert (status, again["reservationId"], again["status"]) == (S.CREATED, first["reservationId"], "released")
    assert consumption_api(CREDITS)[1]["groups"][0]["held"] == 0


# --- through the domain, with a controllable clock -------------------------------------------------------------------


@pytest.fixture
def world(moto_tables: None) -> World:
    world = World()
    world.grant("u", "G", 10, None)
    return world


def _hold(world: World, count: int, seconds: int = 60) -> Reservation:
    return reservations.create_reservation(
        "u",
        "G",
        count,
        expires_in_seconds=seconds,
        idempotency_key=None,
        catalog=world.catalog,
        credits=world.credits,
        clock=world.clock,
    )


def test_a_lapsed_hold_released_by_a_read_leaves_the_credit_range(world: World) -> None:
    lapsed = _hold(world, 8).reservation_id
    world.clock.advance(seconds=61)
    # When the credits are read after the hold lapsed
    [group] = balances.list_credits("u", credits=world.credits, clock=world.clock, catalog=world.catalog)
    # Then it was released, and its item moved out of the range the read Query covers, and out of the index
    assert (group.balance, group.held, group.available) == (10, 0, 10)
    assert kinds(credit_range("u")) == Counter({"creditGroup": 1, "lot": 1})
    assert_settled_copy(settled("u")[lapsed], "released", 0)
    assert indexed("u") == []
    release = world.ledger("u")[0]
    assert (release.kind, release.held, release.reason) == (LedgerKind.RELEASE, -8, "hold expired")
    # and a late capture is refused as before (409), a late release answers the release
    with pytest.raises(ConflictError):
        reservations.capture_reservation(
            "u",
            lapsed,
            None,
            credits=world.credits,
            clock=world.clock,
            catalog=world.catalog,
            events=RecordingEventPublisher(),
        )
    again = reservations.release_reservation("u", lapsed, credits=world.credits, clock=world.clock)
    assert again.status is ReservationStatus.RELEASED


def test_a_capture_of_a_lapsed_hold_releases_and_moves_it(world: World) -> None:
    lapsed = _hold(world, 3).reservation_id
    world.clock.advance(seconds=61)
    with pytest.raises(ConflictError):
        reservations.capture_reservation(
            "u",
            lapsed,
            None,
            credits=world.credits,
            clock=world.clock,
            catalog=world.catalog,
            events=RecordingEventPublisher(),
        )
    assert open_hold_ids("u") == set()
    assert_settled_copy(settled("u")[lapsed], "released", 0)


def test_the_expiry_scan_release_moves_the_hold_out_too(world: World) -> None:
    lapsed, kept = _hold(world, 3).reservation_id, _hold(world, 2, seconds=3600).reservation_id
    world.clock.advance(seconds=61)
    assert world.scan().holds_released == 1
    assert open_hold_ids("u") == {kept}
    assert_settled_copy(settled("u")[lapsed], "released", 0)
    assert [item["reservationId"]["S"] for item in indexed("u")] == [kept]
    state = world.credits.group_state("u", "G")
    assert state is not None and (state.balance, state.held, state.available) == (10, 2, 8)
    assert world.scan().holds_released == 0


def test_settling_is_refused_when_the_count_is_not_the_one_read(world: World) -> None:
    # Given a hold of 5 read by a settler, then reduced to 4 by another writer before the settler writes
    credits = DynamoCreditsRepository()
    read = _hold(world, 5)
    boto3.client("dynamodb").update_item(
        TableName=os.environ["CREDITS_TABLE_NAME"],
        Key={"pk": {"S": "USER#u"}, "sk": {"S": f"CREDIT#~HOLD#{read.reservation_id}"}},
        UpdateExpression="SET #count = :four",
        ExpressionAttributeNames={"#count": "count"},
        ExpressionAttributeValues={":four": {"N": "4"}},
    )
    now = world.clock.now()
    after = read.model_copy(update={"status": ReservationStatus.RELEASED, "updated_at": now})
    movement = Movement(
        entry_id="01ARZ3NDEKTSV4RRFFQ69G5FAW",
        kind=LedgerKind.RELEASE,
        tokens=0,
        held=-read.count,
        reservation_id=read.reservation_id,
        created_at=now,
    )
    # When the settler writes what it read, it is refused and nothing is written
    assert credits.finish_hold("u", read, after, movement) is False
    assert open_hold_ids("u") == {read.reservation_id}
    assert settled("u") == {}
    state = credits.group_state("u", "G")
    assert state is not None and state.held == 5
    hold_now = credits.get_hold("u", read.reservation_id)
    assert hold_now is not None and (hold_now.count, hold_now.status) == (4, ReservationStatus.HELD)


def test_get_hold_finds_open_then_settled_holds_and_none_for_unknown_ids(world: World) -> None:
    reservation = _hold(world, 2)
    found = world.credits.get_hold("u", reservation.reservation_id)
    assert found is not None and found.status is ReservationStatus.HELD
    reservations.release_reservation("u", reservation.reservation_id, credits=world.credits, clock=world.clock)
    found = world.credits.get_hold("u", reservation.reservation_id)
    assert found is not None and (found.status, found.count) == (ReservationStatus.RELEASED, 2)
    assert world.credits.get_hold("u", UNKNOWN_ID) is None
    assert world.credits.get_hold("someone-else", reservation.reservation_id) is None
    # The settled copy keeps what the hold was, settled when the release happened
    expected = reservation.model_copy(update={"status": ReservationStatus.RELEASED, "updated_at": world.clock.now()})
    assert found.model_dump() == expected.model_dump()
