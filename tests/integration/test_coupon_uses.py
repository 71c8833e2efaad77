"""A coupon's use is counted at subscribe and given back when the subscription never bills
(docs/rules.md#coupon-redemption), through customers' lambda_handler on moto: ``GET /coupons/{code}`` and the stored
``usedCount`` reflect every use."""

from __future__ import annotations

from dataclasses import replace
from http import HTTPStatus
from typing import Any

from tests.helpers import local_customers
from tests.helpers.customers_api import Call
from tests.helpers.local_customers import define_coupon, define_pro_plan, store, stored, subscribe
from tests.helpers.subscription_builders import base_customer
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.discounts import add_discounts, new_discount
from usercredits.subscriptions.models import DiscountKind, Subscription

S = HTTPStatus
clock = local_customers.clock  # 2017-01-10 12:00 UTC
api = local_customers.api  # the customers function (local provider) at that clock


def used(code: str = "TEN") -> int:
    coupon = DynamoCouponRepository().get(code)
    assert coupon is not None
    return coupon.used_count


def check(api: Call, code: str = "TEN") -> dict[str, Any]:
    status, body = api("check_coupon", path=f"/coupons/{code}", query={})
    assert status == S.OK
    return dict(body)


def withdraw(api: Call, subscription: dict[str, Any], user: str = "alice") -> None:
    path = f"/customer/subscriptions/{subscription['subscriptionId']}/cancel"
    status, body = api("cancel_subscription", path=path, body={}, user=user)
    assert status == S.OK and body["deleted"] is True, body


def test_the_last_use_of_a_coupon_goes_to_one_subscriber_and_a_withdraw_gives_it_back(api: Call) -> None:
    # Given a coupon with one use left
    define_pro_plan(api)
    define_coupon(api, maxUses=1)
    # When alice subscribes with it
    status, alices = subscribe(api, couponCode="TEN")
    assert status == S.CREATED, alices
    # Then it is counted at once, and bob is refused it (nothing of his written)
    assert used() == 1
    assert check(api)["error"] == "Promocode limit reached"
    status, body = api("subscribe", body={"planId": "pro", "couponCode": "TEN"}, user="bob")
    assert (status, body["message"]) == (S.UNPROCESSABLE_ENTITY, "Promocode limit reached")
    # When alice withdraws her subscription (never synced), twice
    withdraw(api, alices)
    withdraw(api, alices)
    # Then the use is back once, and bob can have it
    assert used() == 0
    assert check(api)["valid"] is True
    status, bobs = api("subscribe", body={"planId": "pro", "couponCode": "TEN"}, user="bob")
    assert status == S.CREATED, bobs
    assert used() == 1


def test_a_restricted_coupon_is_once_per_customer_until_given_back(api: Call) -> None:
    define_pro_plan(api)
    define_coupon(api, restricted=True, maxUses=10)
    status, first = subscribe(api, couponCode="TEN")
    assert status == S.CREATED
    status, body = subscribe(api, couponCode="TEN")
    assert (status, body["message"]) == (S.UNPROCESSABLE_ENTITY, "Promocode limit reached")
    assert len(stored().subscriptions) == 1 and used() == 1
    withdraw(api, first)
    assert used() == 0
    status, _ = subscribe(api, couponCode="TEN")
    assert status == S.CREATED and used() == 1


def test_the_admin_reset_gives_back_the_uses_of_the_subscriptions_it_drops(api: Call) -> None:
    store(base_customer(user_id="alice"))  # a synced customer (reset needs one)
    define_pro_plan(api)
    define_coupon(api)
    assert subscribe(api, couponCode="TEN")[0] == S.CREATED
    assert used() == 1
    status, customer = api("reset_processor_admin", path="/admin/customers/alice/reset-processor", admin=True)
    assert status == S.OK, customer
    assert [s["subscriptionId"] for s in customer["subscriptions"]] == ["four"]
    assert used() == 0


def test_withdrawing_a_subscription_whose_use_was_never_counted_gives_nothing_back(api: Call) -> None:
    """A subscription stored before uses were counted at subscribe: its withdraw leaves ``usedCount`` alone."""
    define_pro_plan(api)
    define_coupon(api)
    assert subscribe(api, couponCode="TEN")[0] == S.CREATED  # counted: usedCount 1
    legacy = _legacy_subscription_with_the_coupon()
    withdraw(api, {"subscriptionId": legacy.subscription_id})
    assert used() == 1
    [withdrawn] = [s for s in stored().subscriptions if s.subscription_id == legacy.subscription_id]
    assert withdrawn.deleted is True


def _legacy_subscription_with_the_coupon() -> Subscription:
    """A never-synced subscription with a TEN discount written straight to the table (no redemption)."""
    customer = stored()
    template = customer.subscriptions[0]
    legacy = template.model_copy(update={"subscription_id": "01LEGACY0000000000000000000", "discounts": []})
    discount = new_discount(
        DiscountKind.COUPON, legacy, 149, legacy.created_at, name="TEN", number_of_billing_cycles=2, coupon_code="TEN"
    )
    legacy = add_discounts(legacy, [discount])
    changed = customer.model_copy(update={"subscriptions": [*customer.subscriptions, legacy]})
    changes = customer_changes(customer, changed)
    DynamoCustomerRepository().save(replace(changes, coupon_uses=()))  # as stored before: no use counted
    return legacy
