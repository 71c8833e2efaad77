"""Local dates, free cycles and the one-discount rule: scenarios M28-M30."""

from __future__ import annotations

import pytest

from tests.helpers.subscription_builders import at, discount, plan, usd
from usercredits.subscriptions.discounts import add_discounts
from usercredits.subscriptions.entitlement import free_billing_cycles, initialize_local_dates, with_free_months
from usercredits.subscriptions.models import (
    Discount,
    DiscountKind,
    ProcessorItem,
    ProcessorState,
    Subscription,
    TrialUnit,
)

PERCENT, PREVIOUS = DiscountKind.PERCENT, DiscountKind.PREVIOUS_SUBSCRIPTION


def local_sub(**fields: object) -> Subscription:
    values: dict[str, object] = {
        "subscription_id": "local",
        "plan": plan(months=2, price=2000),
        "price": usd(2000),
        "processor": ProcessorItem(state=ProcessorState.LOCAL),
        "created_at": at("2017-03-03"),
    }
    return Subscription.model_validate(values | fields)


def test_m28_local_subscription_dates_from_the_first_billing_date() -> None:
    sub = initialize_local_dates(local_sub(first_billing_date=at("2017-03-03")))

    assert sub.paid_through_date == at("2017-05-03")
    assert (sub.billing_period_start_date, sub.billing_period_end_date) == (at("2017-03-03"), at("2017-05-03"))
    assert sub.next_billing_date == at("2017-05-04")
    assert sub.billing_day_of_month == 4


@pytest.mark.parametrize(
    ("duration", "unit", "first", "day"),
    [(4, TrialUnit.DAY, "2017-03-07", 7), (2, TrialUnit.MONTH, "2017-05-03", 3)],
    ids=["4-days", "2-months"],
)
def test_m28_local_trial_bills_first_after_the_trial(duration: int, unit: TrialUnit, first: str, day: int) -> None:
    sub = initialize_local_dates(local_sub(is_trial=True, trial_duration=duration, trial_duration_unit=unit))

    assert (sub.first_billing_date, sub.next_billing_date, sub.billing_day_of_month) == (at(first), at(first), day)
    assert (sub.paid_through_date, sub.billing_period_start_date, sub.billing_period_end_date) == (None, None, None)


def test_m28_only_local_subscriptions_get_local_dates() -> None:
    synced = local_sub(processor=ProcessorItem(id="sub_1", state=ProcessorState.SAVED))
    assert initialize_local_dates(synced) == synced


@pytest.mark.parametrize(
    ("discounts", "expected"),
    [
        pytest.param([], 0, id="none"),
        pytest.param([discount(1000)], 0, id="half"),
        pytest.param([discount(2000)], 1, id="full"),
        pytest.param([discount(2000, cycles=3, current=2)], 1, id="full-last-cycle"),
        pytest.param([discount(1000, current=0), discount(500)], 0, id="two-short"),
        pytest.param([discount(1000, discount_id="a"), discount(1000, discount_id="b")], 1, id="two-full"),
        pytest.param([discount(1000, cycles=3), discount(1000)], 1, id="one-longer"),
        pytest.param(
            [
                discount(500, cycles=3, current=1),
                discount(500, cycles=3, current=2),
                discount(1000, cycles=5, current=3),
            ],
            1,
            id="different-lifespans",
        ),
        pytest.param([discount(2000, cycles=3)], 3, id="three-full-cycles"),
    ],
)
def test_m29_free_billing_cycles(discounts: list[Discount], expected: int) -> None:
    assert free_billing_cycles(local_sub(discounts=discounts)) == expected


def test_m29_free_cycle_pushes_the_paid_through_and_next_billing_dates() -> None:
    sub = initialize_local_dates(local_sub(first_billing_date=at("2017-03-03"), discounts=[discount(2000)]))

    assert with_free_months(sub, sub.paid_through_date) == at("2017-07-03")
    assert with_free_months(sub, sub.next_billing_date) == at("2017-07-04")
    assert with_free_months(sub, None) is None


def test_m30_add_discounts_keeps_the_single_largest() -> None:
    sub = local_sub(discounts=[discount(1000)], paid_through_date=at("2017-03-03"))

    sub = add_discounts(sub, [discount(500, kind=PERCENT)])
    assert [(d.kind, d.amount.amount) for d in sub.discounts] == [(DiscountKind.AMOUNT, 1000)]

    spent = discount(1500, kind=PERCENT, current=1, discount_id="spent")  # 0 cycles left
    fresh = discount(1500, kind=PERCENT, discount_id="fresh")  # 1 cycle left
    sub = add_discounts(sub, [spent, fresh])
    assert [d.discount_id for d in sub.discounts] == ["fresh"]
    assert sub.paid_through_date == at("2017-03-03")  # not touched


def test_m30_preserved_discounts_stay_next_to_the_largest() -> None:
    sub = add_discounts(
        local_sub(discounts=[discount(1000, kind=PREVIOUS, preserve=True)]), [discount(500, kind=PERCENT)]
    )
    assert [(d.kind, d.amount.amount) for d in sub.discounts] == [(PERCENT, 500), (PREVIOUS, 1000)]


def test_m30_largest_discount_covering_the_price_gives_a_free_cycle() -> None:
    sub = add_discounts(local_sub(discounts=[discount(1000)]), [discount(2000, kind=PERCENT)])
    assert free_billing_cycles(sub) == 1
