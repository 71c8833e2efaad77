"""Entitlement queries: scenarios M14-M21 (validSubscriptions / activeSubscriptions / subscription(at)).

Dates as the seed's helper fills them: paid through = first billing + billing frequency, period end = paid through.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.subscription_builders import at, base_customer, discount, subscription
from usercredits.subscriptions.entitlement import (
    active_subscriptions,
    current_subscription,
    in_billing_period,
    valid_subscriptions,
)
from usercredits.subscriptions.models import ProcessorState, Subscription, SubscriptionStatus

ACTIVE, CANCELED, PAST_DUE = SubscriptionStatus.ACTIVE, SubscriptionStatus.CANCELED, SubscriptionStatus.PAST_DUE
# The seed's createdAt defaulted to the real "now" (2019 when its tests ran): after every date checked here.
SEED_RUN = "2019-06-12T10:00:00Z"


def check(subs: list[Subscription], when: str, valid: list[str], active: list[str], current: str | None) -> None:
    customer = base_customer(subscriptions=subs)
    moment = at(when)
    assert [sub.subscription_id for sub in valid_subscriptions(customer, moment)] == valid
    assert [sub.subscription_id for sub in active_subscriptions(customer, moment)] == active
    found = current_subscription(customer, moment)
    assert (found.subscription_id if found else None) == current


def test_m14_one_active_subscription_is_valid_active_and_current() -> None:
    check([subscription("one", created="2017-01-02")], "2017-01-10", ["one"], ["one"], "one")


def test_m15_canceled_subscription_created_at_midnight_is_valid_the_evening_before() -> None:
    subs = [subscription("one", status=CANCELED, created="2017-07-14T00:00:00Z")]
    check(subs, "2017-07-13T22:08:23Z", ["one"], [], "one")


@pytest.mark.parametrize(
    ("when", "valid"), [("2017-07-26T08:23:00Z", []), ("2017-06-01T08:23:00Z", ["one"])], ids=["ended", "running"]
)
def test_m16_trial_is_valid_until_its_first_billing_day(when: str, valid: list[str]) -> None:
    trial = subscription(
        "one", status=CANCELED, is_trial=True, first_billing="2017-07-06", created=SEED_RUN
    ).model_copy(update={"paid_through_date": at("2017-08-06"), "billing_period_end_date": at("2017-08-06")})
    check([trial], when, valid, [], valid[0] if valid else None)


def test_m17_paid_through_date_governs_not_the_billing_period_end() -> None:
    sub = subscription(
        "one",
        status=CANCELED,
        is_trial=True,
        first_billing="2017-06-01",
        created="2017-08-01",
        paid_through="2017-07-31",
        period_start="2017-08-01",
        period_end="2017-08-31",
    )
    check([sub], "2017-08-29T08:23:00Z", [], [], None)


@pytest.mark.parametrize("when", ["2017-08-14T22:08:23Z", "2017-08-15T22:08:23Z"], ids=["switch-day", "next-day"])
def test_m18_switching_keeps_both_valid_with_the_newer_first(when: str) -> None:
    subs = [
        subscription("one", status=CANCELED, created="2017-07-14T00:00:00Z"),
        subscription("two", status=ACTIVE, created="2017-08-15T00:00:00Z"),
    ]
    check(subs, when, ["two", "one"], ["two"], "two")


def test_m19_last_day_of_grace_still_entitles() -> None:
    # Paid through 07-26; on 07-27 the one-day grace still covers the day.
    check([subscription("one", created="2017-06-26")], "2017-07-27", ["one"], ["one"], "one")


def test_m19_a_day_after_the_grace_nothing_entitles() -> None:
    sub = subscription("one", created="2017-06-26")
    assert not in_billing_period(sub, at("2017-07-28"))
    assert not in_billing_period(sub, at("2017-07-28"), grace=timedelta(0)) and in_billing_period(sub, at("2017-07-26"))


def test_m19_long_expired_subscription_entitles_nothing() -> None:
    check([subscription("one", first_billing="2016-12-01", created=SEED_RUN)], "2017-01-10", [], [], None)


def test_m19_past_due_is_valid_but_not_active() -> None:
    check([subscription("one", status=PAST_DUE, created="2017-01-02")], "2017-01-10", ["one"], [], "one")


def test_m20_mixed_states_levels_and_trials() -> None:
    subs = [
        subscription("two", level=1, created="2016-12-01"),
        subscription("three", level=2, is_trial=True, created="2017-01-15"),
        subscription("one", level=3, status=PAST_DUE, created="2017-01-02", state=ProcessorState.CHANGED),
        subscription("four", level=3, created="2017-01-02", state=ProcessorState.INITIAL),
    ]
    check(subs, "2017-01-10", ["one", "three"], ["three"], "one")


def test_m21_level_order_then_latest_period_end() -> None:
    subs = [
        subscription("three", level=3, is_trial=True, created="2017-01-15"),
        subscription("one", level=1, months=2, created="2017-01-02"),
        subscription("four", level=1, created="2017-02-02"),  # starts in the future
        subscription("two", level=2, created="2017-01-02"),
        subscription("five", level=2, created="2017-01-03"),
        subscription("six", level=2, created="2017-01-03", deleted=True),
    ]
    order = ["three", "five", "two", "one"]
    check(subs, "2017-01-10", order, order, "three")


def test_free_cycles_extend_the_entitlement() -> None:
    free = subscription("one", created="2017-06-26", price=2000, discounts=[discount(2000)])
    assert in_billing_period(free, at("2017-08-27"))  # paid through 07-26 + one free month + grace
    assert not in_billing_period(free, at("2017-08-28"))
