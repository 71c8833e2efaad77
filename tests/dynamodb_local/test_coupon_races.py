"""Racing writers of the customers table on the real engine: coupon redemptions never pass maxUses and count once per
(coupon, customer, subscription); concurrent saves of one customer and concurrent payment locks have one winner."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.kernel.models import Money
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.customers import add_address, new_customer
from usercredits.subscriptions.models import AddressFields, Coupon, CouponKind, Customer
from usercredits.subscriptions.ports import RedemptionOutcome, StaleCustomerError

pytestmark = pytest.mark.dynamodb_local
NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)


def race[T](count: int, work: Callable[[int], T]) -> list[T | Exception]:
    def guarded(index: int) -> T | Exception:
        try:
            return work(index)
        except Exception as exc:  # noqa: BLE001 - the test counts outcomes
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(guarded, range(count)))


@pytest.fixture
def code(dynamodb_local: str) -> str:
    """A coupon of its own for each test (the tables are shared by the session)."""
    return f"RACE-{uuid.uuid4().hex[:10]}"


def put_coupon(code: str, max_uses: int | None) -> None:
    coupon = Coupon(code=code, kind=CouponKind.AMOUNT, amount=Money(amount=500, currency="usd"), max_uses=max_uses)
    DynamoCouponRepository().put(coupon, NOW)


def used_count(code: str) -> int:
    coupon = DynamoCouponRepository().get(code)
    assert coupon is not None
    return coupon.used_count


def test_racing_redemptions_for_distinct_subscriptions_never_pass_max_uses(code: str) -> None:
    # Given a coupon with maxUses 10
    put_coupon(code, 10)
    # When 30 subscriptions redeem it at the same time
    outcomes = race(30, lambda i: DynamoCouponRepository().redeem(code, f"cust-{i}", f"sub-{i}", 10))
    # Then exactly 10 were counted, the others refused, and usedCount is 10
    assert Counter(outcomes) == {RedemptionOutcome.REDEEMED: 10, RedemptionOutcome.LIMIT_REACHED: 20}, outcomes
    assert used_count(code) == 10


def test_racing_redemptions_of_the_same_subscription_count_once(code: str) -> None:
    # Given an unlimited coupon
    put_coupon(code, None)
    # When one (customer, subscription) redeems it 20 times at once (a sync retried by several callers)
    outcomes = race(20, lambda _: DynamoCouponRepository().redeem(code, "cust-1", "sub-1", None))
    # Then it was counted once
    assert Counter(outcomes) == {RedemptionOutcome.REDEEMED: 1, RedemptionOutcome.ALREADY_REDEEMED: 19}, outcomes
    assert used_count(code) == 1


def test_racing_subscriptions_of_one_customer_take_a_restricted_coupon_once(code: str) -> None:
    # Given a restricted, unlimited coupon
    put_coupon(code, None)
    # When 20 subscriptions of one customer redeem it at once (subscribed before any was synced)
    outcomes = race(20, lambda i: DynamoCouponRepository().redeem(code, "cust-1", f"sub-{i}", None, restricted=True))
    # Then one got it, the others were told the customer used it, and it was counted once
    assert Counter(outcomes) == {RedemptionOutcome.REDEEMED: 1, RedemptionOutcome.USED_BY_CUSTOMER: 19}, outcomes
    assert used_count(code) == 1
    assert DynamoCouponRepository().used_by_customer(code, "cust-1")


def test_racing_redemptions_mixed_repeats_and_limit(code: str) -> None:
    # Given a coupon with maxUses 3, and 8 subscriptions each redeeming it 3 times, all at once
    put_coupon(code, 3)
    outcomes = race(24, lambda i: DynamoCouponRepository().redeem(code, f"cust-{i % 8}", "sub", 3))
    # Then 3 subscriptions got it, each counted once
    counted = Counter(outcomes)
    assert counted[RedemptionOutcome.REDEEMED] == 3, outcomes
    assert set(counted) <= {
        RedemptionOutcome.REDEEMED,
        RedemptionOutcome.ALREADY_REDEEMED,
        RedemptionOutcome.LIMIT_REACHED,
    }
    assert used_count(code) == 3


def stored_customer(user_id: str) -> Customer:
    return DynamoCustomerRepository().save(customer_changes(None, new_customer(user_id, NOW)))


def test_concurrent_saves_of_one_customer_have_one_winner(user_id: str) -> None:
    # Given a stored customer that 12 requests loaded at the same version
    loaded = stored_customer(user_id)

    # When each saves its own new address at once
    def save(index: int) -> Customer:
        after, _ = add_address(loaded, AddressFields(name=f"Address {index}"), NOW)
        return DynamoCustomerRepository().save(customer_changes(loaded, after))

    outcomes = race(12, save)
    # Then one save won, every other one is stale, and the winner's address is the only one stored
    winners = [outcome for outcome in outcomes if isinstance(outcome, Customer)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(outcome, StaleCustomerError) for outcome in outcomes if outcome is not winners[0])
    reloaded = DynamoCustomerRepository().load(user_id)
    assert reloaded is not None and reloaded.version == 2
    assert [address.name for address in reloaded.addresses] == [winners[0].addresses[0].name]


def test_concurrent_payment_locks_have_one_holder(user_id: str) -> None:
    # Given a stored customer
    stored_customer(user_id)
    until = NOW + timedelta(seconds=30)
    # When 16 payment operations try to take its lock at once
    outcomes = race(16, lambda _: DynamoCustomerRepository().acquire_payment_lock(user_id, now=NOW, until=until))
    # Then exactly one holds it
    assert Counter(outcomes) == {True: 1, False: 15}, outcomes
    # and once released, the next one gets it
    DynamoCustomerRepository().release_payment_lock(user_id, until=until)
    assert DynamoCustomerRepository().acquire_payment_lock(user_id, now=NOW, until=until) is True
