"""Pure credit rules: remaining per lot (burn order) and the ledger view of a journal."""

from datetime import UTC, datetime, timedelta

from usercredits.domain.credits import credit_group, journal_entries, lot_remaining, opening_balance
from usercredits.domain.models import GroupPolicy, GroupState, LedgerKind, Lot, Movement

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def lot(lot_id: str, tokens: int, expires_in_days: int | None, granted_days_ago: int = 0) -> Lot:
    return Lot(
        lot_id=lot_id,
        offer_group="G",
        tokens=tokens,
        starts=NOW,
        expires=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        granted_at=NOW - timedelta(days=granted_days_ago),
    )


def test_lot_remaining_burns_the_soonest_expiry_first_and_perpetual_last() -> None:
    lots = [lot("forever", 10, None), lot("late", 10, 30), lot("soon", 10, 5)]
    assert lot_remaining(lots, 15) == {"soon": 0, "late": 5, "forever": 10}


def test_lot_remaining_ties_go_to_the_oldest_grant() -> None:
    lots = [lot("new", 10, 5, granted_days_ago=1), lot("old", 10, 5, granted_days_ago=3)]
    assert lot_remaining(lots, 4) == {"old": 6, "new": 10}


def test_lot_remaining_in_overdraft_is_zero_never_negative() -> None:
    assert lot_remaining([lot("a", 10, 5)], 25) == {"a": 0}


def test_lot_remaining_ignores_closed_lots() -> None:
    closed = lot("gone", 10, -1).model_copy(update={"closed": True})
    assert lot_remaining([closed, lot("a", 10, 5)], 3) == {"a": 7}


def movement(tokens: int, kind: LedgerKind = LedgerKind.CONSUME, held: int = 0) -> Movement:
    return Movement(entry_id=f"e{tokens}{kind}", kind=kind, tokens=tokens, held=held, created_at=NOW)


def test_journal_entries_number_and_balance_every_movement_exactly() -> None:
    state = GroupState(
        offer_group="G",
        balance=13,
        journal=[movement(20, LedgerKind.GRANT), movement(-5), movement(-2)],
        journal_first_seq=41,
    )
    entries = journal_entries(state)
    assert [(e.seq, e.tokens, e.balance_after) for e in entries] == [(41, 20, 20), (42, -5, 15), (43, -2, 13)]
    assert opening_balance(state) == 0


def test_credit_group_view_derives_available_and_lot_remaining() -> None:
    state = GroupState(offer_group="G", balance=12, held=3, drawn=8)
    view = credit_group(state, [lot("a", 10, 5), lot("b", 10, 9)])
    assert (view.balance, view.held, view.available) == (12, 3, 9)
    assert [(v.lot_id, v.remaining) for v in view.lots] == [("a", 2), ("b", 10)]
    assert sum(v.remaining for v in view.lots) == view.balance


def test_group_policy_floor() -> None:
    assert GroupPolicy(offer_group="G").floor == 0
    assert GroupPolicy(offer_group="G", overdraft="limited", overdraft_limit=50).floor == -50
    assert GroupPolicy(offer_group="G", overdraft="unlimited").floor is None


def test_ids_made_in_the_same_millisecond_still_sort_in_order() -> None:
    from usercredits.kernel.ids import new_ulid

    ids = [new_ulid(NOW) for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
