"""Reads cost what they show (issue 16, item 2): open lots are keyed in burn order under their group, reads show the
first ``LOTS_SHOWN`` of each group with a ``lotsCursor`` to the next ones, and closed lots leave the group's range.
Through the domain with the real adapters and through the consumption handler, on moto (request counts are measured
on DynamoDB Local: ``tests/dynamodb_local/test_growth_bench.py``)."""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus as S
from typing import Any

import boto3
import pytest

from tests.helpers.moto_credits import MotoWorld as World
from usercredits.adapters.dynamodb import credits as credits_adapter
from usercredits.adapters.dynamodb.cursors import encode_cursor
from usercredits.domain import balances
from usercredits.domain.credits import CreditGroup
from usercredits.errors import InvalidRequestError

SHOWN = credits_adapter.LOTS_SHOWN


@dataclass(frozen=True)
class Granted:
    lot_id: str
    tokens: int
    expires: datetime | None
    granted_at: datetime


def expected_remaining(lots: list[Granted], drawn: int) -> list[tuple[str, int]]:
    """What remains of each lot in burn order, worked out here from the README's rule (soonest expiry first, lots
    without expiry last, then the oldest grant, then the id; ``drawn`` falls on them in that order)."""
    order = sorted(
        lots, key=lambda lot: (lot.expires is None, lot.expires or lot.granted_at, lot.granted_at, lot.lot_id)
    )
    left, shown = drawn, []
    for lot in order:
        used = min(lot.tokens, left)
        left -= used
        shown.append((lot.lot_id, lot.tokens - used))
    return shown


def every_lot(world: World, user: str, group: str) -> tuple[list[CreditGroup], list[tuple[str, int]]]:
    """The group as ``GET /credits/{group}`` shows it, then every page behind its cursor: the pages and the lots."""
    pages = [balances.get_credit_group(user, group, credits=world.credits, clock=world.clock, catalog=world.catalog)]
    while pages[-1].lots_cursor:
        cursor = pages[-1].lots_cursor
        pages.append(
            balances.get_credit_group(
                user, group, credits=world.credits, clock=world.clock, lots_after=cursor, catalog=world.catalog
            )
        )
    return pages, [(lot.lot_id, lot.remaining) for page in pages for lot in page.lots]


def grant_many(world: World, user: str, count: int, seed: int) -> list[Granted]:
    """``count`` lots of 1 to 5 tokens, a third without expiry, the others expiring 2 to 40 days on (some on the same
    day, so the grant time and the id break ties), granted a second apart in a shuffled order."""
    rng = random.Random(seed)
    lots = []
    for _ in range(count):
        expires = None if rng.random() < 0.33 else world.clock.now() + timedelta(days=rng.randint(2, 40))
        tokens = rng.randint(1, 5)
        lot_id = world.grant(user, "G", tokens, expires - world.clock.now() if expires else None)
        lots.append(Granted(lot_id, tokens, expires, world.clock.now()))
        world.clock.advance(seconds=rng.choice((0, 1)))
    return lots


@pytest.fixture
def world(moto_tables: None) -> World:
    return World()


def test_a_group_shows_its_first_lots_in_burn_order_and_the_cursor_pages_the_rest_exactly(world: World) -> None:
    # Given 47 lots of mixed expiries, and 60 tokens spent (the spent part spans the first page and the second)
    lots = grant_many(world, "u", 47, seed=1)
    for _ in range(6):
        world.consume("u", "G", 10)
    total = sum(lot.tokens for lot in lots)

    # When the credits are read
    [group] = balances.list_credits("u", credits=world.credits, clock=world.clock, catalog=world.catalog)

    # Then the group shows its balance and its first lots, in burn order, with what remains of each
    expected = expected_remaining(lots, 60)
    assert (group.balance, group.available) == (total - 60, total - 60)
    assert [(lot.lot_id, lot.remaining) for lot in group.lots] == expected[:SHOWN]
    assert group.lots_cursor is not None

    # And the group's own read shows the same, and its cursor leads through every other lot, each once, exactly
    pages, shown = every_lot(world, "u", "G")
    assert pages[0].lots == group.lots and len(pages) == 3
    assert shown == expected and pages[-1].lots_cursor is None
    assert all(page.balance == total - 60 for page in pages)


def test_a_page_read_after_the_group_changed_is_still_exact(world: World) -> None:
    # Given a cursor to the second page, with 7 tokens spent (all from the first page)
    lots = grant_many(world, "u", 30, seed=2)
    world.consume("u", "G", 7)
    first = balances.get_credit_group("u", "G", credits=world.credits, clock=world.clock, catalog=world.catalog)
    assert first.lots_cursor is not None
    ahead = sum(lot.tokens for lot in first.lots)

    # When, before the next page is read, a lot that expires before every other is granted (first in burn order:
    # the lots after the cursor now have 4 more tokens ahead of them) and the spends reach 2 past the first page
    world.clock.advance(seconds=1)
    soonest = world.grant("u", "G", 4, timedelta(days=1))
    lots.append(Granted(soonest, 4, world.clock.now() + timedelta(days=1), world.clock.now()))
    world.consume("u", "G", ahead + 2 - 7)
    after = balances.get_credit_group(
        "u", "G", credits=world.credits, clock=world.clock, lots_after=first.lots_cursor, catalog=world.catalog
    )

    # Then the page shows the lots after the cursor with what remains of them now: still untouched (the 4 tokens
    # granted ahead of them cover the 2), which a page computed from the cursor's count alone would get wrong
    now = dict(expected_remaining(lots, ahead + 2))
    assert [(lot.lot_id, lot.remaining) for lot in after.lots] == [(lot.lot_id, now[lot.lot_id]) for lot in after.lots]
    assert after.lots and after.lots[0].lot_id not in {lot.lot_id for lot in first.lots}
    assert all(lot.remaining == lot.tokens for lot in after.lots)


def test_closed_lots_leave_the_group_range_and_are_kept_by_id(world: World) -> None:
    # Given 25 lots expiring tomorrow and one without expiry
    expiring = [world.grant("u", "G", 2, timedelta(days=1)) for _ in range(25)]
    keeps = world.grant("u", "G", 3, None)

    # When they expire (a read closes them)
    world.clock.advance(days=2)
    [group] = balances.list_credits("u", credits=world.credits, clock=world.clock, catalog=world.catalog)

    # Then the group shows the lot left, and its range holds nothing else: the closed lots are out of it
    assert (group.balance, [lot.lot_id for lot in group.lots], group.lots_cursor) == (3, [keeps], None)
    in_range = query("u", "CREDIT#")
    assert [item["itemType"]["S"] for item in in_range] == ["creditGroup", "lot"]
    # And each closed lot is kept, by its id, with what expired of it
    closed = {item["lotId"]["S"]: item for item in query("u", "LOTX#")}
    assert set(closed) == set(expiring)
    assert all(item["closed"]["BOOL"] and int(item["expired"]["N"]) == 2 for item in closed.values())
    assert all("expiryBucket" not in item for item in closed.values())


def test_lot_cursors_that_were_not_made_for_this_group_are_refused(world: World) -> None:
    grant_many(world, "u", SHOWN + 2, seed=3)
    grant_many(world, "u", 1, seed=4)
    cursor = balances.get_credit_group(
        "u", "G", credits=world.credits, clock=world.clock, catalog=world.catalog
    ).lots_cursor
    assert cursor is not None
    other_group = cursor_for("CREDIT#H#LOT#1", before=0, version=1)
    too_long = cursor_for("CREDIT#G#LOT#" + "1" * 1100, before=0, version=1)  # no key is that long
    negative = cursor_for("CREDIT#G#LOT#1", before=-1, version=1)
    for bad in ("garbage", other_group, negative, cursor_for("ORDER#x"), too_long):
        with pytest.raises(InvalidRequestError):
            balances.get_credit_group(
                "u", "G", credits=world.credits, clock=world.clock, lots_after=bad, catalog=world.catalog
            )


# --- through the handler ---------------------------------------------------------------------------------------------


def test_the_handler_pages_lots_and_answers_422_to_a_bad_cursor(consumption_api) -> None:
    for _ in range(SHOWN + 3):
        body = {"offerGroup": "AiTokens", "tokens": 2, "reason": "test"}
        key = {"idempotency-key": f"grant-{uuid.uuid4()}"}
        assert consumption_api(GRANT, path="/admin/users/alice/grants", body=body, admin=True, headers=key)[0] == 201
    status, body, _ = consumption_api(CREDITS)
    assert status == S.OK
    [group] = body["groups"]
    assert (group["balance"], len(group["lots"])) == (2 * (SHOWN + 3), SHOWN)
    status, page, _ = consumption_api(GROUP, path="/credits/AiTokens", query={"lotsCursor": group["lotsCursor"]})
    assert status == S.OK, page
    assert (len(page["lots"]), page["lotsCursor"]) == (3, None)
    assert {lot["lotId"] for lot in page["lots"]}.isdisjoint(lot["lotId"] for lot in group["lots"])
    for bad in ("not-a-cursor", cursor_for("CREDIT#Other#LOT#1", before=0, version=1)):
        status, error, _ = consumption_api(GROUP, path="/credits/AiTokens", query={"lotsCursor": bad})
        assert status == S.UNPROCESSABLE_ENTITY, error
        assert "cursor" in str(error).lower()


CREDITS = "consumption/get_credits.json"
GROUP = "consumption/get_credit_group.json"
GRANT = "consumption/admin_grant.json"


def cursor_for(sort_key: str, **fields: int) -> str:
    return encode_cursor(sort_key, **fields)


def query(user: str, prefix: str) -> list[dict[str, Any]]:
    pages = (
        boto3.client("dynamodb")
        .get_paginator("query")
        .paginate(
            TableName=os.environ["CREDITS_TABLE_NAME"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}, ":prefix": {"S": prefix}},
            ConsistentRead=True,
        )
    )
    return [item for page in pages for item in page["Items"]]
