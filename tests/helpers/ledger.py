"""The ledger invariant, checked through every page of ``list_ledger`` (on any credits repository)."""

from __future__ import annotations

from collections import Counter

from usercredits.domain import balances
from usercredits.domain.models import LedgerEntry
from usercredits.domain.ports import CreditsRepository


def whole_ledger(
    user_id: str, credits: CreditsRepository, *, offer_group: str | None = None, limit: int = 50
) -> list[LedgerEntry]:
    """Every entry of the user (or group), through all pages (newest first), checking no page repeats an entry."""
    entries: list[LedgerEntry] = []
    cursor: str | None = None
    for _ in range(1000):
        page = balances.list_ledger(user_id, offer_group=offer_group, limit=limit, cursor=cursor, credits=credits)
        entries += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    ids = Counter(entry.entry_id for entry in entries)
    assert not [entry_id for entry_id, n in ids.items() if n > 1], "an entry appears on two pages"
    return entries


def assert_ledger_consistent(user_id: str, credits: CreditsRepository) -> dict[str, list[LedgerEntry]]:
    """The ledger invariant for every group of the user; returns the entries per group in seq order."""
    snapshot = credits.snapshot(user_id)
    by_group: dict[str, list[LedgerEntry]] = {}
    for entry in whole_ledger(user_id, credits):
        by_group.setdefault(entry.offer_group, []).append(entry)
    assert set(by_group) == set(snapshot.groups)
    for name, entries in by_group.items():
        entries.sort(key=lambda entry: entry.seq)
        state = snapshot.groups[name]
        assert [entry.seq for entry in entries] == list(range(1, len(entries) + 1)), f"{name}: seq gap or duplicate"
        assert sum(entry.tokens for entry in entries) == state.balance, f"{name}: entries do not sum to the balance"
        assert entries[0].balance_after == entries[0].tokens, f"{name}: the first entry starts from 0"
        for previous, entry in zip(entries, entries[1:], strict=False):
            assert entry.balance_after == previous.balance_after + entry.tokens, f"{name}: seq {entry.seq}"
        assert entries[-1].balance_after == state.balance
        assert state.available == state.balance - state.held
        # The group's own listing (offerGroup filter) holds exactly these entries
        assert {e.entry_id for e in whole_ledger(user_id, credits, offer_group=name)} == {e.entry_id for e in entries}
        by_group[name] = entries
    return by_group
