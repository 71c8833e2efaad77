"""The hot-item bench keeps its figures honest (devtools/bench/hot_item.py; the hot-item ceiling section): a spend's
write units are positive whole numbers, follow AWS's rule on the group item's size, and grow with the journal, up to
the bound the ceiling is documented with (7 write units at JOURNAL_MAX, 22 with an Idempotency-Key)."""

from __future__ import annotations

import math

import pytest
from devtools.bench.capacity import number_size, write_units
from devtools.bench.hot_item import hot_item_rows

from usercredits.adapters.dynamodb.credits import JOURNAL_KEEP, JOURNAL_MAX

pytestmark = pytest.mark.dynamodb_local

#: The documented bound (README / notes: 143 spends/s without a key, 45 with one, at the longest journal).
LARGEST_SPEND_WCU = 7
LARGEST_KEYED_SPEND_WCU = 22


def test_number_sizes_are_the_bytes_dynamodb_charges() -> None:
    # Given numbers as DynamoDB Local was measured to charge them (digit pairs aligned on the point, + 1, + 1 if < 0)
    charged = {"0": 1, "1": 2, "-1": 3, "12": 2, "123": 3, "100": 2, "0.5": 2, "-100": 3, "999940": 4}
    # Then the bench's item sizes count them the same
    assert {text: number_size(text) for text in charged} == charged


def test_write_units_per_spend_grow_with_the_journal_up_to_the_documented_bound(dynamodb_local: str) -> None:
    # When a spend is measured right after compaction and at the length whose spend compacts
    rows = hot_item_rows((JOURNAL_KEEP, JOURNAL_MAX), endpoint_url=dynamodb_local)

    # Then every figure is a positive whole number of write units, by AWS's rule on the group item's size
    short, long = rows
    for row in rows:
        for units in (row.wcu_spend, row.wcu_keyed_spend, row.wcu_keyed_group):
            assert isinstance(units, int) and units > 0
        assert row.wcu_spend == math.ceil(row.item_bytes / 1024)
        assert row.wcu_keyed_group == write_units(row.keyed_item_bytes, transactional=True)
        assert row.wcu_keyed_spend > row.wcu_keyed_group  # the idempotency record is written too
    # And they grow with the journal, up to the documented bound
    assert short.item_bytes < long.item_bytes
    assert short.wcu_spend < long.wcu_spend <= LARGEST_SPEND_WCU
    assert short.wcu_keyed_spend < long.wcu_keyed_spend <= LARGEST_KEYED_SPEND_WCU
    # And only the spend at JOURNAL_MAX compacts: its own write, the group item (2x) and one ledger item per movement
    assert short.wcu_compaction_spend is None
    assert long.moved == JOURNAL_MAX + 1 - JOURNAL_KEEP
    assert long.wcu_compaction_group == write_units(long.item_bytes, transactional=True)
    assert long.wcu_compaction_spend == long.wcu_spend + long.wcu_compaction_group + 2 * long.moved
