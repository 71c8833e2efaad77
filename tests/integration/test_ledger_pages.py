"""A page of one group's ledger reads that group's entries only (issue 16, item 2): archived entries carry
``groupEntry`` (``<group>#<entryId>``) and the ``ByGroupLedger`` index gives one group's newest first, so a quiet
group's page does not read a busy group's history. Paging stays exact across the journal and the archive, and across a
compaction between two pages. Through the domain with the real adapters, on moto."""

from __future__ import annotations

import os
from typing import Any

import boto3
import pytest

from tests.helpers.moto_credits import MotoWorld as World
from usercredits.adapters.dynamodb.credits import JOURNAL_MAX
from usercredits.domain import balances
from usercredits.domain.models import LedgerEntry


@pytest.fixture
def world(moto_tables: None) -> World:
    return World()


def pages(world: World, user: str, group: str | None, limit: int) -> list[list[LedgerEntry]]:
    found, cursor = [], None
    while True:
        page = balances.list_ledger(user, offer_group=group, limit=limit, cursor=cursor, credits=world.credits)
        found.append(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return found


def archived(user: str) -> list[dict[str, Any]]:
    items = boto3.client("dynamodb").query(
        TableName=os.environ["CREDITS_TABLE_NAME"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={":pk": {"S": f"USER#{user}"}, ":p": {"S": "LEDGER#"}},
        ConsistentRead=True,
    )["Items"]
    return list(items)


def test_one_groups_pages_hold_exactly_its_entries_newest_first_journal_and_archive_alike(world: World) -> None:
    # Given a busy group (more spends than the journal keeps: the oldest archived) and a quiet one, interleaved
    world.grant("u", "Busy", 1_000, None)
    world.grant("u", "Quiet", 100, None)
    for index in range(JOURNAL_MAX + 30):
        world.consume("u", "Busy", 1)
        if index % 9 == 0:
            world.consume("u", "Quiet", 1)
    balances.list_credits(
        "u", credits=world.credits, clock=world.clock, catalog=world.catalog
    )  # a read compacts long journals
    stored = archived("u")
    assert stored and all(item["groupEntry"]["S"].startswith(item["offerGroup"]["S"] + "#") for item in stored)

    everything = [entry for page in pages(world, "u", None, 50) for entry in page]
    for group in ("Busy", "Quiet"):
        # When one group's ledger is read in pages of 7
        found = pages(world, "u", group, 7)
        entries = [entry for page in found for entry in page]
        # Then it holds that group's entries, each once, newest first, the same as the whole ledger's
        assert [entry.entry_id for entry in entries] == [e.entry_id for e in everything if e.offer_group == group]
        assert all(len(page) == 7 for page in found[:-1])
        assert entries[0].balance_after == (1_000 - JOURNAL_MAX - 30 if group == "Busy" else 100 - 10)


def test_a_compaction_between_two_pages_loses_and_repeats_nothing(world: World) -> None:
    world.grant("u", "G", 1_000, None)
    for _ in range(JOURNAL_MAX - 5):
        world.consume("u", "G", 1)
    first = balances.list_ledger("u", offer_group="G", limit=10, cursor=None, credits=world.credits)
    # More spends push the journal past its length; a read compacts it before the next page
    for _ in range(20):
        world.consume("u", "G", 1)
    balances.list_credits("u", credits=world.credits, clock=world.clock, catalog=world.catalog)
    assert archived("u")
    rest, cursor = [], first.next_cursor
    while cursor:
        page = balances.list_ledger("u", offer_group="G", limit=10, cursor=cursor, credits=world.credits)
        rest += page.items
        cursor = page.next_cursor
    ids = [entry.entry_id for entry in first.items + rest]
    assert len(ids) == len(set(ids)) == 1 + JOURNAL_MAX - 5  # the grant and the spends read before the cursor
    assert ids == sorted(ids, reverse=True)
