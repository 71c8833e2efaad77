"""Issue 12, defect 6: windows that cannot be represented.

An order whose window (or a bundle item's) would end more than ``MAX_WINDOW`` from now, or that starts more than
``MAX_START_AHEAD`` ahead, is a 422 before any payment intent or write; and cycle arithmetic saturates at ``MAX_TIME``
instead of overflowing, so a payment can always be applied.
"""

import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pynamodb.attributes import UTCDateTimeAttribute

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository
from tests.fakes.payments import RecordingPaymentGateway
from usercredits.adapters.dynamodb.credits_table import LotItem, OrderItem
from usercredits.adapters.dynamodb.mappers import item_to_lot, item_to_order, lot_to_item, order_to_item
from usercredits.domain import ordering, payments
from usercredits.domain.models import CombinedOffer, GroupState, Offer, OrderStatus
from usercredits.domain.settlement import extend_window, settle_order, start_for
from usercredits.errors import InvalidRequestError
from usercredits.kernel.cycles import MAX_START_AHEAD, MAX_TIME, MAX_WINDOW, add_months, cycle_end
from usercredits.kernel.models import Caller, Cycle, Money

CENTURY_SECONDS = 100 * 366 * 86400  # the longest customCycleSeconds an offer may have


def offer(offer_id: str, cycle: Cycle, amount: int = 1000, **terms: object) -> Offer:
    fields: dict[str, object] = {
        "offer_id": offer_id,
        "name": offer_id,
        "offer_group": offer_id,
        "prices": [Money(amount=amount, currency="usd")],
        "tokens": 10,
        "cycle": cycle,
    }
    return Offer(**(fields | terms))  # type: ignore[arg-type]


class CountingOrders(InMemoryOrderRepository):
    """The in-memory repository, counting the group-window Queries."""

    def __init__(self) -> None:
        super().__init__()
        self.window_reads = 0

    def group_states(self, user_id: str):
        self.window_reads += 1
        return super().group_states(user_id)


@pytest.fixture
def orders() -> CountingOrders:
    return CountingOrders()


@pytest.fixture
def place(catalog: InMemoryCatalogRepository, orders: CountingOrders, payments: RecordingPaymentGateway, clock):
    keys = itertools.count(1)

    def _place(offer_id: str, quantity: int = 1, **kwargs: object) -> ordering.PlacedOrder:
        key = f"key-{next(keys)}"  # a key, so a refused order is seen not to record one
        command = ordering.PlaceOrder(offer_id, quantity, idempotency_key=key, **kwargs)  # type: ignore[arg-type]
        return ordering.place_order(
            command,
            Caller(user_id="alice"),
            default_currency="usd",
            catalog=catalog,
            orders=orders,
            payments=payments,
            clock=clock,
        )

    return _place


def refused(place, field: str, offer_id: str, quantity: int = 1, **kwargs: object) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        place(offer_id, quantity, **kwargs)
    assert caught.value.message.startswith(f"{field} ")
    assert caught.value.details is not None
    assert [detail["field"] for detail in caught.value.details] == [f"body.{field}"]
    return caught.value


def assert_nothing_happened(orders: CountingOrders, payments: RecordingPaymentGateway) -> None:
    assert (len(orders), orders.windows, orders.keys, orders.outbox, payments.requests) == (0, {}, {}, [], [])


# --- starts --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offer_id", ["EnterpriseM", "Free"])
def test_far_future_starts_is_422_naming_starts_writing_nothing(place, orders, payments, offer_id) -> None:
    error = refused(place, "starts", offer_id, starts=datetime(9999, 12, 1, tzinfo=UTC))
    assert "9999-12-01" in error.message and "too far ahead" in error.message
    assert_nothing_happened(orders, payments)


def test_starts_past_year_9999_in_utc_is_422_not_an_overflow(place, orders, payments) -> None:
    # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC: comparing it must not overflow.
    starts = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(-timedelta(hours=1)))
    refused(place, "starts", "EnterpriseM", starts=starts)
    assert_nothing_happened(orders, payments)


def test_starts_just_inside_the_bound_is_accepted(place, clock, payments) -> None:
    placed = place("EnterpriseM", starts=clock.now() + MAX_START_AHEAD)
    assert placed.order.status is OrderStatus.PENDING and len(payments.requests) == 1
    with pytest.raises(InvalidRequestError, match="^starts "):
        place("StartupM", starts=clock.now() + MAX_START_AHEAD + timedelta(seconds=1))


def test_free_order_starting_at_the_bound_is_settled(place, clock) -> None:
    starts = clock.now() + MAX_START_AHEAD
    order = place("Free", starts=starts).order
    assert (order.status, order.starts, order.expires) == (OrderStatus.PAID, starts, add_months(starts, 1))


# --- quantity ------------------------------------------------------------------------------------------------------


def test_yearly_times_10000_is_422_naming_quantity_with_nothing_written_and_no_intent(place, orders, payments) -> None:
    error = refused(place, "quantity", "_100tokens", 10_000)
    assert error.message.startswith("quantity 10000 of offer '_100tokens' makes a window")
    assert "within 100 years" in error.message
    assert_nothing_happened(orders, payments)


def test_yearly_at_the_bound_is_accepted_and_one_more_year_is_not(catalog, place, orders, payments, clock) -> None:
    catalog.put_offer(offer("FreeYearly", Cycle.YEARLY, amount=0), clock.now())
    order = place("FreeYearly", 100).order  # 100 years: inside MAX_WINDOW (100 x 366 days)
    assert (order.status, order.expires) == (OrderStatus.PAID, add_months(clock.now(), 1200))
    assert place("_100tokens", 100).order.status is OrderStatus.PENDING
    placed = len(orders)
    refused(place, "quantity", "_100tokens", 101)
    assert len(orders) == placed and len(payments.requests) == 1


@pytest.mark.parametrize("amount", [0, 500])
def test_custom_cycle_of_a_century_fits_once_and_not_twice(catalog, place, orders, payments, clock, amount) -> None:
    catalog.put_offer(offer("Century", Cycle.CUSTOM, amount, custom_cycle_seconds=CENTURY_SECONDS), clock.now())
    refused(place, "quantity", "Century", 2)
    refused(place, "quantity", "Century", 10_000)
    assert_nothing_happened(orders, payments)
    order = place("Century", 1).order  # exactly at the bound
    assert order.status is (OrderStatus.PAID if amount == 0 else OrderStatus.PENDING)
    if amount == 0:
        assert order.expires == clock.now() + MAX_WINDOW


# --- appendDate and bundles ----------------------------------------------------------------------------------------


def paid_window(orders: InMemoryOrderRepository, group: str, expires: datetime) -> None:
    orders.windows[("alice", group)] = GroupState(
        offer_group=group, starts=expires - timedelta(days=30), expires=expires, paid_orders=1, version=1
    )


def test_append_date_order_after_a_window_99_years_ahead_is_422(place, orders, payments, clock) -> None:
    paid_window(orders, "Startup", add_months(clock.now(), 99 * 12))
    error = refused(place, "quantity", "StartupY", 2)  # yearly, appendDate: it would end 101 years from now
    assert f"starting {add_months(clock.now(), 99 * 12):%Y-%m-%d}" in error.message
    assert (len(orders), orders.keys, payments.requests) == (0, {}, [])
    assert orders.window_reads == 1
    assert place("StartupY", 1).order.status is OrderStatus.PENDING  # ends 100 years from now: inside


def test_windows_are_read_once_and_only_when_needed(place, orders) -> None:
    place("_100tokens")  # priced, no appendDate anywhere, not locked: no Query
    assert orders.window_reads == 0
    place("StartupY")  # priced with appendDate: one Query, for the check
    assert orders.window_reads == 1
    place("Free")  # free: one Query, shared by the check and the settlement
    assert orders.window_reads == 2


def test_explicit_starts_ignores_append_date_like_settlement(place, orders, clock) -> None:
    # settle_order starts an order with an explicit start there, not after the group's window: so does the check.
    paid_window(orders, "Startup", add_months(clock.now(), 99 * 12))
    assert place("StartupY", 2, starts=clock.now() + timedelta(days=1)).order.status is OrderStatus.PENDING


@pytest.fixture
def bundle(catalog: InMemoryCatalogRepository, clock: FixedClock) -> InMemoryCatalogRepository:
    catalog.put_offer(offer("Pack", Cycle.YEARLY, append_date=True), clock.now())
    items = [CombinedOffer(offer_id="Pack", offer_group="Packs", quantity=60)]
    catalog.put_offer(offer("Bundle", Cycle.MONTHLY, combined_items=items), clock.now())
    return catalog


def test_bundle_line_whose_window_is_too_long_is_422(bundle, place, orders, payments) -> None:
    # The root is 2 months; its appendDate line is 60 x 2 = 120 years of Pack.
    error = refused(place, "quantity", "Bundle", 2)
    assert error.message.startswith("quantity 2 of 'Pack' in offer 'Bundle' makes a window")
    assert_nothing_happened(orders, payments)
    assert place("Bundle", 1).order.status is OrderStatus.PENDING  # 60 years: fine


def test_bundle_line_appended_after_a_far_window_is_422(bundle, place, orders, payments, clock) -> None:
    paid_window(orders, "Packs", add_months(clock.now(), 50 * 12))
    refused(place, "quantity", "Bundle", 1)  # 50 + 60 years
    assert (len(orders), payments.requests) == (0, [])


def test_bundle_line_without_append_date_shares_the_roots_window(catalog, place, clock) -> None:
    # EnterpriseY bundles 14 x _300tokens (yearly, no appendDate): the line lasts as long as the root, not 14 years.
    order = place("EnterpriseY", 7).order
    assert order.status is OrderStatus.PENDING and order.combined_items[0].quantity == 98


# --- a payment can always be applied -------------------------------------------------------------------------------


def test_payment_after_the_window_moved_near_year_9999_grants_with_a_saturated_expiry(place, orders, clock) -> None:
    pending = place("StartupY", 3).order
    paid_window(orders, "Startup", datetime(9999, 6, 1, tzinfo=UTC))  # other orders stacked meanwhile
    paid = payments.apply_order_paid("alice", pending.order_id, orders=orders, clock=clock, message="paid")
    assert (paid.status, paid.starts, paid.expires) == (OrderStatus.PAID, datetime(9999, 6, 1, tzinfo=UTC), MAX_TIME)
    assert orders.group_states("alice")["Startup"].expires == MAX_TIME
    granted = [event.detail for event in orders.outbox if event.kind == "CreditsGranted"]
    assert granted[0]["expires"] == MAX_TIME.isoformat()


def test_settlement_from_a_saturated_window_does_not_overflow(clock) -> None:
    now = clock.now()
    saturated = GroupState(offer_group="G", starts=now, expires=MAX_TIME, paid_orders=1, version=1)
    assert start_for(True, saturated, now) == MAX_TIME
    extended = extend_window(saturated, "G", MAX_TIME, cycle_end(MAX_TIME, Cycle.YEARLY, 10_000))
    assert (extended.starts, extended.expires) == (now, MAX_TIME)


def test_saturated_times_survive_the_dynamodb_items(place, orders, clock) -> None:
    attribute = UTCDateTimeAttribute()
    assert attribute.deserialize(attribute.serialize(MAX_TIME)) == MAX_TIME
    pending = place("StartupY").order
    paid_window(orders, "Startup", datetime(9999, 12, 1, tzinfo=UTC))
    settlement = settle_order(pending, dict(orders.group_states("alice")), clock.now(), "paid")
    order_item = order_to_item(settlement.order)
    restored = item_to_order(OrderItem.from_raw_data(order_item.serialize()))
    assert (restored.starts, restored.expires) == (datetime(9999, 12, 1, tzinfo=UTC), MAX_TIME)
    lot = settlement.lots[0]
    assert item_to_lot(LotItem.from_raw_data(lot_to_item("alice", lot).serialize())).expires == MAX_TIME


# --- cycle arithmetic ----------------------------------------------------------------------------------------------

ZONES = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))])


@given(
    start=st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=ZONES),
    cycle=st.sampled_from(list(Cycle)),
    units=st.integers(min_value=1, max_value=10**6),
    seconds=st.integers(min_value=1, max_value=CENTURY_SECONDS),
)
def test_cycle_end_saturates_instead_of_raising(start: datetime, cycle: Cycle, units: int, seconds: int) -> None:
    end = cycle_end(start, cycle, units, seconds if cycle is Cycle.CUSTOM else None)
    if cycle is Cycle.ONCE:
        assert end is None
        return
    assert end is not None
    ceiling = MAX_TIME.replace(tzinfo=start.tzinfo)
    assert end <= ceiling
    assert end > start or end == ceiling


@given(
    start=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=ZONES),
    months=st.integers(min_value=-(10**7), max_value=10**7),
)
def test_add_months_never_raises(start: datetime, months: int) -> None:
    end = add_months(start, months)
    if months > 0:
        assert end == MAX_TIME.replace(tzinfo=start.tzinfo) or start < end <= MAX_TIME.replace(tzinfo=start.tzinfo)
    elif months < 0:
        assert end <= start


def test_cycle_end_at_the_edges() -> None:
    assert cycle_end(datetime(9999, 1, 31, tzinfo=UTC), Cycle.MONTHLY, 11) == MAX_TIME  # Dec 31 would pass it
    assert cycle_end(datetime(9999, 1, 31, tzinfo=UTC), Cycle.MONTHLY, 10) == datetime(9999, 11, 30, tzinfo=UTC)
    assert cycle_end(datetime(2026, 1, 1, tzinfo=UTC), Cycle.CUSTOM, 10**6, CENTURY_SECONDS) == MAX_TIME
    assert cycle_end(datetime(2026, 1, 1, tzinfo=UTC), Cycle.DAILY, 10**12) == MAX_TIME
    assert cycle_end(datetime(2026, 1, 1, tzinfo=UTC), Cycle.YEARLY, 10**12) == MAX_TIME
    assert add_months(datetime(2026, 1, 1, tzinfo=UTC), -(10**6)) == datetime(1, 1, 1, tzinfo=UTC)
