"""Coupon uses counted in the subscribe's own transaction, on the real engine with racing subscribers
(docs/rules.md#coupon-redemption): never past ``maxUses``, and a withdraw racing a subscribe never leaves
``usedCount`` off the uses actually held."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from threading import Barrier

import pytest

from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.dynamodb.plans import DynamoPlanRepository, DynamoSubscriptionTermsReader
from usercredits.adapters.local_payment_methods import LocalPaymentMethodLookup
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Money
from usercredits.subscriptions import cancelling, service
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import Coupon, CouponKind, Plan
from usercredits.subscriptions.ports import CustomerPorts, SyncPorts

pytestmark = pytest.mark.dynamodb_local


def ports() -> CustomerPorts:
    return CustomerPorts(
        customers=DynamoCustomerRepository(),
        plans=DynamoPlanRepository(),
        coupons=DynamoCouponRepository(),
        terms=DynamoSubscriptionTermsReader(),
        payment_methods=LocalPaymentMethodLookup(),
        clock=SystemClock(),
    )


def no_processor() -> SyncPorts:
    raise AssertionError("a withdraw calls no processor")


@pytest.fixture
def coupon_and_plan(dynamodb_local: str) -> tuple[str, str]:
    """A plan and a coupon of their own (the tables are shared by the session); their ids."""
    suffix = uuid.uuid4().hex[:10]
    plan = Plan(plan_id=f"plan-{suffix}", name="Pro", price=Money(amount=1490, currency="usd"), level=2)
    DynamoPlanRepository().put(plan, SystemClock().now())
    return plan.plan_id, f"RACE-{suffix}"


def put_coupon(code: str, max_uses: int) -> None:
    coupon = Coupon(code=code, kind=CouponKind.AMOUNT, amount=Money(amount=500, currency="usd"), max_uses=max_uses)
    DynamoCouponRepository().put(coupon, SystemClock().now())


def used_count(code: str) -> int:
    coupon = DynamoCouponRepository().get(code)
    assert coupon is not None
    return coupon.used_count


def race[T](works: list[Callable[[], T]]) -> list[T | Exception]:
    start = Barrier(len(works))

    def guarded(work: Callable[[], T]) -> T | Exception:
        start.wait()
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - the test counts outcomes
            return exc

    with ThreadPoolExecutor(max_workers=len(works)) as pool:
        return list(pool.map(guarded, works))


def test_racing_subscribes_get_exactly_max_uses(coupon_and_plan: tuple[str, str]) -> None:
    # Given a coupon with 4 uses
    plan_id, code = coupon_and_plan
    put_coupon(code, 4)
    users = [f"user-{uuid.uuid4().hex[:10]}" for _ in range(16)]
    # When 16 users subscribe with it at the same time
    outcomes = race(
        [partial(service.subscribe, u, plan_id, payment_method_id=None, coupon_code=code, ports=ports()) for u in users]
    )
    # Then exactly 4 got it, the others were refused with the seed's message, and usedCount is 4
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert kinds == {"Subscription": 4, "CouponError": 12}, outcomes
    assert all(str(o) == "Promocode limit reached" for o in outcomes if isinstance(o, CouponError))
    assert used_count(code) == 4
    holders = [user for user in users if (c := DynamoCustomerRepository().load(user)) and c.subscriptions]
    assert len(holders) == 4


def test_a_withdraw_racing_a_subscribe_never_leaves_the_count_off(coupon_and_plan: tuple[str, str]) -> None:
    plan_id, code = coupon_and_plan
    put_coupon(code, 1)
    for _ in range(6):
        withdraw_while_another_subscribes(plan_id, code)


def withdraw_while_another_subscribes(plan_id: str, code: str) -> None:
    # Given the coupon's one use held by a never-synced subscription
    holder, other = (f"user-{uuid.uuid4().hex[:10]}" for _ in range(2))
    held = service.subscribe(holder, plan_id, payment_method_id=None, coupon_code=code, ports=ports())
    # When its holder withdraws it while another user subscribes with the coupon
    race(
        [
            lambda: cancelling.cancel_subscription(
                holder, held.subscription_id, at_period_end=False, ports=ports(), processor=no_processor
            ),
            lambda: service.subscribe(other, plan_id, payment_method_id=None, coupon_code=code, ports=ports()),
        ]
    )
    # Then usedCount is the number of live subscriptions holding it: 0 or 1, never off
    live = [
        (user, sub.subscription_id)
        for user in (holder, other)
        if (customer := DynamoCustomerRepository().load(user)) is not None
        for sub in customer.subscriptions
        if not sub.deleted and sub.discounts
    ]
    assert used_count(code) == len(live) <= 1
    for user, subscription_id in live:  # given back for the next round
        cancelling.cancel_subscription(
            user, subscription_id, at_period_end=False, ports=ports(), processor=no_processor
        )
    assert used_count(code) == 0


def test_subscribing_again_with_the_same_coupon_swaps_its_use(coupon_and_plan: tuple[str, str]) -> None:
    """A subscribe withdraws the customer's unsent subscription and counts the coupon for the new one in one
    transaction, which DynamoDB allows only with one action per item: the coupon's count nets to nothing (found by
    the subscriptions harness: a 500 before)."""
    plan_id, code = coupon_and_plan
    put_coupon(code, max_uses=2)
    user = f"swap-{uuid.uuid4().hex[:8]}"
    first = service.subscribe(user, plan_id, payment_method_id=None, coupon_code=code, ports=ports())
    second = service.subscribe(user, plan_id, payment_method_id=None, coupon_code=code, ports=ports())
    assert used_count(code) == 1
    customer = DynamoCustomerRepository().load(user)
    assert customer is not None
    withdrawn = next(s for s in customer.subscriptions if s.subscription_id == first.subscription_id)
    assert withdrawn.deleted and second.discounts[0].coupon_code == code
    # and the use is the new subscription's: withdrawing it gives the coupon back
    cancelling.cancel_subscription(
        user, second.subscription_id, at_period_end=False, ports=ports(), processor=no_processor
    )
    assert used_count(code) == 0
