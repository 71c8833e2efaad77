"""Paying an order: windows, appendDate and bundles (seed T13, T16, T17, T19, T22; docs/rules.md#paying-an-order)."""

from datetime import UTC, datetime, timedelta

from tests.helpers.present import present
from usercredits.domain.models import GroupState, HistoryEntry, Order, OrderLine, OrderStatus
from usercredits.domain.settlement import extend_window, settle_order, start_for
from usercredits.kernel.cycles import add_months
from usercredits.kernel.models import Cycle, Money

NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def pending_order(**changes: object) -> Order:
    fields: dict[str, object] = {
        "order_id": "01ROOT",
        "user_id": "alice",
        "offer_id": "StartupM",
        "offer_group": "Startup",
        "offer_name": "Startup monthly",
        "status": OrderStatus.PENDING,
        "quantity": 1,
        "total": Money(amount=4900, currency="usd"),
        "unit_tokens": 49,
        "total_tokens": 49,
        "cycle": Cycle.MONTHLY,
        "append_date": True,
        "history": [HistoryEntry(date=NOW, status=OrderStatus.PENDING, message="Order created")],
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changes)
    return Order(**fields)


def window(group: str, expires: datetime | None, starts: datetime | None = None, version: int = 3) -> GroupState:
    return GroupState(
        offer_group=group, starts=starts or NOW - timedelta(days=30), expires=expires, paid_orders=1, version=version
    )


def test_start_for_append_date_uses_latest_future_expiry() -> None:
    # Seed T13: with windows ending in 2050 the purchase starts at the latest end; a past end means now.
    assert start_for(True, window("G", datetime(2050, 12, 1, tzinfo=UTC)), NOW) == datetime(2050, 12, 1, tzinfo=UTC)
    assert start_for(True, window("G", NOW - timedelta(days=1)), NOW) == NOW
    assert start_for(True, None, NOW) == NOW
    assert start_for(False, window("G", datetime(2050, 12, 1, tzinfo=UTC)), NOW) == NOW


def test_settle_append_date_extends_existing_window_by_exactly_the_cycle() -> None:
    # Seed T16: the group's paid window ends in 2 months; weekly x 3 adds exactly 21 days after it.
    existing_end = NOW + timedelta(days=61)
    order = pending_order(cycle=Cycle.WEEKLY, quantity=3, unit_tokens=588, total_tokens=1764)
    settlement = settle_order(order, {"Startup": window("Startup", existing_end)}, NOW, "paid")
    assert settlement.order.starts == existing_end
    assert settlement.order.expires == existing_end + timedelta(days=21)
    assert settlement.order.total_tokens == 1764
    after = settlement.windows_after["Startup"]
    assert after.expires == existing_end + timedelta(days=21)
    assert after.starts == NOW - timedelta(days=30)  # the earliest start of a contiguous window is kept
    assert present(settlement.windows_before["Startup"]).version == 3


def test_settle_without_existing_group_opens_a_new_window() -> None:
    order = pending_order(cycle=Cycle.YEARLY, quantity=3, unit_tokens=588, total_tokens=1764)
    settlement = settle_order(order, {}, NOW, "paid")
    assert settlement.windows_before == {"Startup": None}
    assert settlement.windows_after["Startup"].starts == NOW
    assert settlement.windows_after["Startup"].expires == add_months(NOW, 36)


def test_settle_explicit_future_start_is_kept() -> None:
    # Seed T17: explicit start 2050-12-04, monthly x 4 -> expires 2051-04-04, 4 x 501 tokens.
    start = datetime(2050, 12, 4, tzinfo=UTC)
    order = pending_order(starts=start, quantity=4, unit_tokens=501, total_tokens=2004)
    settlement = settle_order(order, {}, NOW, "paid")
    assert (settlement.order.starts, settlement.order.expires) == (start, datetime(2051, 4, 4, tzinfo=UTC))
    assert settlement.order.total_tokens == 2004


def test_settle_non_append_purchase_never_shortens_a_longer_window() -> None:
    # docs/rules.md#validity-windows: the seed's appendDate=false reset the window to [now, now + cycle] even when it
    # ended later.
    long_end = NOW + timedelta(days=300)
    order = pending_order(append_date=False)
    settlement = settle_order(order, {"Startup": window("Startup", long_end)}, NOW, "paid")
    assert settlement.order.expires == add_months(NOW, 1)
    assert settlement.windows_after["Startup"].expires == long_end


def test_settle_after_a_gap_restarts_the_window() -> None:
    lapsed = window("Startup", NOW - timedelta(days=10), starts=NOW - timedelta(days=400))
    settlement = settle_order(pending_order(), {"Startup": lapsed}, NOW, "paid")
    assert settlement.windows_after["Startup"].starts == NOW


def test_settle_once_means_no_expiry() -> None:
    # docs/rules.md#expiry: the seed's `once` expired at once (zero-length window); it now never expires.
    settlement = settle_order(pending_order(cycle=Cycle.ONCE), {}, NOW, "paid")
    assert settlement.order.expires is None
    assert settlement.windows_after["Startup"].perpetual
    assert settlement.windows_after["Startup"].active_at(NOW + timedelta(days=10_000))


def test_extend_window_keeps_perpetual_and_timed_end() -> None:
    perpetual = GroupState(offer_group="G", starts=NOW, expires=None, perpetual=True, paid_orders=1)
    extended = extend_window(perpetual, "G", NOW, NOW + timedelta(days=5))
    assert extended.perpetual and extended.expires == NOW + timedelta(days=5) and extended.paid_orders == 2


def test_settle_bundle_appends_and_shares_root_window() -> None:
    # Seed T19: root weekly x 2; "calls" appends after its window ending at +7 months (monthly x 20 x 2);
    # "data" (no appendDate) shares the root's validity. Two child orders, paid, total 0.
    calls_end = add_months(NOW, 7)
    order = pending_order(
        offer_id="helpdesk",
        offer_group="mockHelpDesk",
        append_date=False,
        cycle=Cycle.WEEKLY,
        quantity=2,
        unit_tokens=1,
        total_tokens=2,
        combined_items=[
            OrderLine(
                offer_id="calls",
                offer_group="calls",
                quantity=40,
                unit_tokens=60,
                total_tokens=2400,
                cycle=Cycle.MONTHLY,
                append_date=True,
            ),
            OrderLine(
                offer_id="data",
                offer_group="data",
                quantity=4,
                unit_tokens=500,
                total_tokens=2000,
                cycle=Cycle.MONTHLY,
                append_date=False,
            ),
        ],
    )
    settlement = settle_order(order, {"calls": window("calls", calls_end)}, NOW, "paid")

    assert (settlement.order.starts, settlement.order.expires) == (NOW, NOW + timedelta(days=14))
    calls, data = settlement.order.combined_items
    assert (calls.starts, calls.expires) == (calls_end, add_months(calls_end, 40))
    assert (data.starts, data.expires) == (NOW, NOW + timedelta(days=14))
    children = settlement.child_orders
    assert [
        (c.offer_group, c.quantity, c.total_tokens, c.parent_order_id, c.status, c.total.amount) for c in children
    ] == [
        ("calls", 40, 2400, "01ROOT", OrderStatus.PAID, 0),
        ("data", 4, 2000, "01ROOT", OrderStatus.PAID, 0),
    ]
    assert [line.child_order_id for line in settlement.order.combined_items] == ["01ROOT-01", "01ROOT-02"]
    assert set(settlement.windows_after) == {"mockHelpDesk", "calls", "data"}


def test_settle_marks_paid_with_history() -> None:
    settlement = settle_order(pending_order(), {}, NOW, "Payment succeeded")
    assert settlement.order.status is OrderStatus.PAID
    assert [h.status for h in settlement.order.history] == [OrderStatus.PENDING, OrderStatus.PAID]
    assert settlement.order.history[-1].message == "Payment succeeded"
