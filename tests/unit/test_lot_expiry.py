"""The planning of an expiry in steps (pure): each step fits one transaction, exact on its own, soonest lots first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from usercredits.domain.lot_expiry import MAX_WRITES, closing_writes, plan_closing_step
from usercredits.domain.models import GroupPolicy, GroupState, LedgerKind, Lot, Reservation, ReservationStatus

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def lots(count: int, *, tokens: int = 2, order: bool = False, hours_ago: int = 1) -> list[Lot]:
    return [
        Lot(
            lot_id=f"L{index:05d}",
            offer_group="G",
            tokens=tokens,
            starts=NOW - timedelta(days=30),
            expires=NOW - timedelta(hours=hours_ago, seconds=index),  # the highest index expires first
            order_id=f"O{index:05d}" if order else None,
            granted_at=NOW - timedelta(days=30),
        )
        for index in range(count)
    ]


def holds(count: int) -> list[Reservation]:
    return [
        Reservation(
            reservation_id=f"R{index:03d}",
            offer_group="G",
            count=1,
            status=ReservationStatus.HELD,
            expires_at=NOW + timedelta(hours=1),
            created_at=NOW,
            updated_at=NOW,
        )
        for index in range(count)
    ]


def state(balance: int, *, held: int = 0, drawn: int = 0) -> GroupState:
    return GroupState(offer_group="G", balance=balance, held=held, drawn=drawn, next_expiry=NOW - timedelta(days=1))


def test_a_batch_past_one_transaction_closes_soonest_first_and_stays_due_until_the_last_step() -> None:
    batch = lots(98)
    step = plan_closing_step("u", state(196, drawn=3), batch, [], GroupPolicy(offer_group="G"), NOW)
    assert step is not None
    # Each lot is two writes (its open item deleted, its closed copy put), plus the group and the outbox item
    assert len(step.lots) == (MAX_WRITES - 2) // 2 == (closing_writes(step.lots, step.events, step.cuts) - 2) // 2
    assert [lot.lot_id for lot in step.lots] == [f"L{index:05d}" for index in range(97, 48, -1)]  # soonest first
    # The 3 drawn are used from the soonest lots: the first lot expires nothing, the second 1 of its 2
    assert [m.tokens for m in step.movements[:2]] == [-1, -2] and len(step.movements) == 48
    assert step.expired == 2 * 49 - 3 and not step.done and step.next_expiry is not None
    assert step.next_expiry <= NOW and len(step.lots_left) == 49
    after = state(196 - step.expired, drawn=0).model_copy(update={"next_expiry": step.next_expiry})
    last = plan_closing_step("u", after, step.lots_left, [], GroupPolicy(offer_group="G"), NOW)
    assert last is not None and len(last.lots) == 49 and last.done and last.next_expiry is None
    assert last.expired == 98


def test_lots_with_orders_cost_three_writes_each() -> None:
    step = plan_closing_step("u", state(200), lots(100, order=True), [], GroupPolicy(offer_group="G"), NOW)
    assert step is not None and len(step.lots) == 32 and closing_writes(step.lots, step.events, step.cuts) == 98


def test_cuts_that_do_not_fit_wait_for_the_next_step_which_closes_no_lot() -> None:
    # One lot of 60 expires while 60 holds of 1 hold all of it; no overdraft: every hold must be cut (2 writes each)
    policy = GroupPolicy(offer_group="G", overdraft="none")
    step = plan_closing_step("u", state(60, held=60), lots(1, tokens=60), holds(60), policy, NOW)
    assert step is not None and len(step.lots) == 1 and len(step.cuts) == 48
    assert [cut.hold.reservation_id for cut in step.cuts][0] == "R059"  # newest first
    assert closing_writes(step.lots, step.events, step.cuts) == 100  # group, outbox, lot x 2, 48 x 2
    assert not step.done and step.next_expiry == NOW and len(step.holds_left) == 12
    after = GroupState(offer_group="G", balance=0, held=12, next_expiry=NOW)
    rest = plan_closing_step("u", after, [], step.holds_left, policy, NOW)
    assert rest is not None and rest.lots == [] and len(rest.cuts) == 12 and rest.done
    assert {m.kind for m in rest.movements} == {LedgerKind.RELEASE}
    assert {m.reason for m in rest.movements} == {"hold cut: its tokens left the balance"}


def test_nothing_to_plan_when_nothing_is_due() -> None:
    fresh = GroupState(offer_group="G", balance=2, next_expiry=NOW + timedelta(days=1))
    later = lots(1, hours_ago=-24)
    assert plan_closing_step("u", fresh, later, [], GroupPolicy(offer_group="G"), NOW) is None
