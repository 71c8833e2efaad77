"""Discount builders, coupons, the upgrade credit and descriptors: scenarios M31-M35, M37 and M38.

The seed's subscription costs 19.90 here (1990 minor units).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from tests.helpers.subscription_builders import at, base_customer, plan, subscription, usd
from usercredits.kernel.models import Money
from usercredits.subscriptions.coupons import (
    EXPIRED,
    INVALID,
    LIMIT_REACHED,
    NOT_YET_ACTIVE,
    check_coupon,
    coupon_amount,
    coupon_discount,
    coupon_error,
    ensure_valid_coupon,
    is_expired,
    is_use_limit_reached,
)
from usercredits.subscriptions.discounts import previous_subscription_credit
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import Coupon, CouponKind, Descriptor, DiscountKind, Subscription
from usercredits.subscriptions.subscribing import apply_coupon

NOW = at("2016-10-29")


def priced(amount: int, created: str = "2016-10-29") -> Subscription:
    return subscription("sub", price=amount, created=created)


def amount_coupon(amount: int = 1000, **fields: object) -> Coupon:
    return Coupon.model_validate(
        {"code": "TEN", "name": "Ten off", "kind": CouponKind.AMOUNT, "amount": usd(amount)} | fields
    )


def percent_coupon(percent: str, **fields: object) -> Coupon:
    return Coupon.model_validate({"code": "PCT", "kind": CouponKind.PERCENT, "percent": Decimal(percent)} | fields)


def test_m32_coupon_amounts_are_capped_at_the_price() -> None:
    price = usd(1990)
    assert coupon_amount(amount_coupon(1000), price) == usd(1000)
    assert coupon_amount(amount_coupon(2000), price) == usd(1990)
    assert coupon_amount(percent_coupon("20"), price) == usd(398)
    assert coupon_amount(percent_coupon("100"), price) == usd(1990)
    assert coupon_amount(amount_coupon(1000), Money(amount=1990, currency="eur")).amount == 0


def test_m32_percent_coupon_above_100_is_refused_when_defined() -> None:
    with pytest.raises(ValidationError):
        percent_coupon("180")


@pytest.mark.parametrize(
    ("used", "limit", "reached"),
    [(6, 5, True), (2, 5, False), (6, None, False), (5, 5, True)],
    ids=["6-of-5", "2-of-5", "unlimited", "5-of-5-fixed-off-by-one"],
)
def test_m33_use_limit(used: int, limit: int | None, reached: bool) -> None:
    assert is_use_limit_reached(amount_coupon(used_count=used, max_uses=limit)) is reached


@pytest.mark.parametrize(("expire_at", "expired"), [(at("2017-03-29"), True), (at("2017-04-29"), False), (None, False)])
def test_m33_expiry(expire_at: datetime | None, expired: bool) -> None:
    assert is_expired(amount_coupon(expire_at=expire_at), at("2017-03-31")) is expired


@pytest.mark.parametrize(
    ("coupon", "message"),
    [
        pytest.param(None, INVALID, id="missing"),
        pytest.param(amount_coupon(expire_at=at("2016-09-29")), EXPIRED, id="expired"),
        pytest.param(amount_coupon(start_at=at("2016-11-29")), NOT_YET_ACTIVE, id="pending"),
        pytest.param(amount_coupon(used_count=6, max_uses=5), LIMIT_REACHED, id="limit"),
        pytest.param(
            amount_coupon(start_at=at("2016-09-01"), expire_at=at("2016-09-29"), used_count=6, max_uses=5),
            EXPIRED,
            id="expired-checked-before-limit",
        ),
        pytest.param(amount_coupon(), None, id="no-window-no-limit"),
    ],
)
def test_m34_validation_messages_in_the_seeds_order(coupon: Coupon | None, message: str | None) -> None:
    assert coupon_error(coupon, NOW) == message
    if message is None:
        assert ensure_valid_coupon(coupon, NOW) is coupon
    else:
        with pytest.raises(CouponError, match=f"^{message}$"):
            ensure_valid_coupon(coupon, NOW)


WINDOW = {"start_at": at("2016-09-29"), "expire_at": at("2016-12-29")}


@pytest.mark.parametrize("restricted", [False, True], ids=["coupon", "restricted"])
@pytest.mark.parametrize(
    ("fields", "price", "valid"),
    [
        pytest.param(WINDOW | {"used_count": 3, "max_uses": 2}, 1990, False, id="used-3-of-2"),
        pytest.param(WINDOW | {"start_at": at("2016-11-29")}, 1990, False, id="starts-later"),
        pytest.param({"expire_at": at("2016-09-29")}, 1990, False, id="expired"),
        pytest.param(WINDOW | {"used_count": 3, "max_uses": 5}, 1990, True, id="in-range-3-of-5"),
        pytest.param(WINDOW, 0, False, id="nothing-off-a-free-plan"),
    ],
)
def test_m35_coupon_discounts(fields: dict[str, object], price: int, valid: bool, restricted: bool) -> None:
    coupon = amount_coupon(number_of_billing_cycles=4, restricted=restricted).model_copy(update=fields)

    built = coupon_discount(priced(price), coupon, NOW, customer_id="customer-1")

    if not valid:
        assert built is None
        return
    assert built is not None
    assert (built.amount.amount, built.number_of_billing_cycles, built.coupon_code) == (1000, 4, "TEN")
    expected_kind = DiscountKind.COUPON_RESTRICTED if restricted else DiscountKind.COUPON
    assert (built.kind, built.customer_id) == (expected_kind, "customer-1" if restricted else None)


def test_m35_no_coupon_and_a_used_restricted_coupon_build_nothing() -> None:
    assert coupon_discount(priced(1990), None, NOW) is None
    restricted = amount_coupon(restricted=True)
    assert coupon_discount(priced(1990), restricted, NOW, customer_id="customer-1", used_by_customer=True) is None


def test_check_coupon_answers_with_the_amount_for_a_plan() -> None:
    assert check_coupon(amount_coupon(), usd(1990), NOW).amount == usd(1000)
    assert check_coupon(None, usd(1990), NOW).error == INVALID
    assert check_coupon(amount_coupon(restricted=True), usd(1990), NOW, used_by_customer=True).error == LIMIT_REACHED
    assert check_coupon(amount_coupon(), Money(amount=1990, currency="eur"), NOW).error == INVALID


def test_apply_coupon_adds_the_discount_or_raises_the_seed_message() -> None:
    customer = base_customer()
    updated, sub = apply_coupon(customer, "four", amount_coupon(500), NOW)
    assert [(d.kind, d.amount.amount) for d in sub.discounts] == [(DiscountKind.COUPON, 500)]
    assert updated.subscriptions[0] == sub

    with pytest.raises(CouponError, match="^Promocode expired$"):
        apply_coupon(customer, "four", amount_coupon(expire_at=at("2016-01-01")), NOW)
    with pytest.raises(CouponError, match="^Promocode limit reached$"):
        apply_coupon(customer, "four", amount_coupon(restricted=True), NOW, used_by_customer=True)


PREVIOUS = subscription("prev", price=1000, created="2017-08-29")  # 08-29 to 09-29, 31 days


@pytest.mark.parametrize(
    ("created", "credit"),
    [
        pytest.param("2017-09-14", 484, id="half-used"),  # seed: 10.00; fixed: 15/31 of 10.00
        pytest.param("2017-09-27", 65, id="nearly-used"),  # seed: 10.00; fixed: 2/31 of 10.00
        pytest.param("2017-09-29", None, id="at-the-end"),  # seed: 10.00; fixed: nothing left
        pytest.param("2017-10-27", None, id="after-the-end"),
        pytest.param("2017-07-27", None, id="before-the-start"),
    ],
)
def test_m37_previous_subscription_credit_is_the_unused_part(created: str, credit: int | None) -> None:
    new = subscription("new", price=1000, created=created, state=PREVIOUS.processor.state)

    built = previous_subscription_credit(new, PREVIOUS, at(created))

    assert (built.amount.amount if built else None) == credit
    if built:
        assert (built.kind, built.subscription_id, built.preserve) == (DiscountKind.PREVIOUS_SUBSCRIPTION, "prev", True)


def test_m37_no_previous_or_a_free_previous_gives_no_credit() -> None:
    new = subscription("new", price=1000, created="2017-09-14")
    assert previous_subscription_credit(new, None, at("2017-09-14")) is None
    free = PREVIOUS.model_copy(update={"price": usd(0), "plan": plan(price=0)})
    assert previous_subscription_credit(new, free, at("2017-09-14")) is None


@pytest.mark.parametrize("name", ["Enhancv*Pro Plan", "IBM*Pro Plan", "BangaloreIBM*Pro Plan", "Pro Plan"])
def test_m38_valid_descriptor_names(name: str) -> None:
    assert Descriptor(name=name).name == name


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "Some*Pro Plan"},
        {"name": "IBM*Pro Plan Bangalore BN"},
        {"phone": "08884154"},
        {"url": "http://enhancv.com/test"},
    ],
    ids=["4-char-prefix", "too-long", "short-phone", "long-url"],
)
def test_m38_invalid_descriptors(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Descriptor.model_validate(fields)


def test_m38_valid_phone_and_url() -> None:
    assert Descriptor(phone="0888-415-412", url="enhancv.com").phone == "0888-415-412"
