"""Customer-level operations: cancelSubscriptions (M11), cancelling one subscription, and profile checks."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.helpers.subscription_builders import at, base_customer, subscription
from usercredits.errors import InvalidRequestError
from usercredits.subscriptions.customers import new_customer, update_profile
from usercredits.subscriptions.models import ProcessorState, ProfileFields, SubscriptionStatus
from usercredits.subscriptions.subscribing import cancel_all, cancel_subscription

S = SubscriptionStatus


def test_m11_cancel_subscriptions_cancels_pending_past_due_and_active_only() -> None:
    statuses = [S.EXPIRED, S.ACTIVE, S.PAST_DUE, S.PENDING, S.CANCELED]
    customer = base_customer(subscriptions=[subscription(f"s{i}", status=s) for i, s in enumerate(statuses)])

    canceled = cancel_all(customer, at("2017-07-14"))

    assert [sub.status for sub in canceled.subscriptions] == [S.EXPIRED, S.CANCELED, S.CANCELED, S.CANCELED, S.CANCELED]
    changed = [sub.processor.state is ProcessorState.CHANGED for sub in canceled.subscriptions]
    assert changed == [False, True, True, True, False]


def test_cancel_one_subscription_now_at_period_end_or_withdraw_an_unsent_one() -> None:
    customer = base_customer(
        subscriptions=[subscription("now"), subscription("later"), subscription("unsent", state=ProcessorState.INITIAL)]
    )
    when = at("2017-07-14")

    customer, now = cancel_subscription(customer, "now", when)
    customer, later = cancel_subscription(customer, "later", when, at_period_end=True)
    customer, unsent = cancel_subscription(customer, "unsent", when)

    assert (now.status, now.processor.state) == (S.CANCELED, ProcessorState.CHANGED)
    assert (later.status, later.cancel_at_period_end, later.processor.state) == (S.ACTIVE, True, ProcessorState.CHANGED)
    assert (unsent.status, unsent.deleted) == (S.CANCELED, True)
    assert cancel_subscription(customer, "now", when)[1] == now  # cancelling twice changes nothing


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a@b.c", "a@b.averyverylongtld"])
def test_bad_emails_are_refused(email: str) -> None:
    with pytest.raises(ValidationError):
        ProfileFields(email=email)
    with pytest.raises(InvalidRequestError):
        new_customer("alice", at("2017-01-01"), email=email)


def test_new_customer_trims_and_lowercases() -> None:
    customer = new_customer("alice", at("2017-01-01"), email="  Alice@Example.COM ", name="  Alice  ")
    assert (customer.email, customer.name, customer.processor.state) == (
        "alice@example.com",
        "Alice",
        ProcessorState.INITIAL,
    )


def test_email_cannot_be_removed() -> None:
    with pytest.raises(InvalidRequestError):
        update_profile(base_customer(), ProfileFields(email=None), at("2017-01-01"))


def test_clearing_name_and_metadata_gives_their_empty_values() -> None:
    customer = update_profile(
        base_customer(metadata={"plan": "pro"}), ProfileFields(name=None, metadata=None), at("2017-01-01")
    )
    assert (customer.name, customer.metadata, customer.processor.state) == ("", {}, ProcessorState.CHANGED)
