"""The subscriptions half's events: which facts a save records (``events.customer_facts``), each once, through the
one save path (``changes.customer_changes`` / ``save_change``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.fakes.subscriptions import InMemoryCustomerRepository
from tests.helpers.subscription_builders import at, base_customer, subscription, usd
from usercredits.subscriptions.changes import customer_changes, save_change
from usercredits.subscriptions.events import CustomerFact, customer_facts
from usercredits.subscriptions.models import (
    Customer,
    Subscription,
    SubscriptionStatus,
    SubscriptionStatusEvent,
    Transaction,
    TransactionKind,
    TransactionStatus,
    TransactionStatusEvent,
)

S = SubscriptionStatus
T = TransactionStatus


def _with_status(sub: Subscription, status: SubscriptionStatus, when: str) -> Subscription:
    history = [SubscriptionStatusEvent(status=status, timestamp=at(when)), *sub.status_history]
    return sub.model_copy(update={"status": status, "status_history": history, "updated_at": at(when)})


def _sale(
    txn_id: str, status: T, *, kind: TransactionKind = TransactionKind.SALE, when: str = "2017-02-03"
) -> Transaction:
    return Transaction(
        transaction_id=txn_id,
        kind=kind,
        amount=usd(1320),
        status=status,
        status_history=[TransactionStatusEvent(status=status, timestamp=at(when))],
        subscription_id="four",
        refunded_transaction_id="t1" if kind is TransactionKind.REFUND else None,
        created_at=at(when),
    )


def _kinds(facts: tuple[CustomerFact, ...]) -> list[str]:
    return [fact.event.kind for fact in facts]


def _customer(**overrides: object) -> Customer:
    return base_customer(**overrides)


def test_a_new_subscription_is_created_and_activated_with_its_plan_and_price() -> None:
    before = _customer(subscriptions=[])
    new = _with_status(subscription("s1", status=None, created="2017-03-01"), S.ACTIVE, "2017-03-01")
    facts = customer_facts(before, before.model_copy(update={"subscriptions": [new]}))
    assert _kinds(facts) == ["SubscriptionCreated", "SubscriptionActivated"]
    detail = facts[1].event.detail
    assert (detail["userId"], detail["customerId"], detail["subscriptionId"]) == ("pesho", "customer-1", "s1")
    assert (detail["amount"], detail["currency"], detail["status"]) == (1000, "usd", "active")
    assert detail["occurredAt"] == "2017-03-01T00:00:00Z" and detail["plan"] == new.plan.plan_id
    assert all(fact.transaction_id is None for fact in facts)


def test_a_pending_subscription_is_created_only_then_activated_once() -> None:
    pending = subscription("s1", status=S.PENDING)
    before = _customer(subscriptions=[])
    saved = before.model_copy(update={"subscriptions": [pending]})
    assert _kinds(customer_facts(before, saved)) == ["SubscriptionCreated"]
    active = saved.model_copy(update={"subscriptions": [_with_status(pending, S.ACTIVE, "2017-03-02")]})
    assert _kinds(customer_facts(saved, active)) == ["SubscriptionActivated"]
    assert customer_facts(active, active) == ()  # a save that changes nothing records nothing


def test_past_due_then_active_again_are_distinct_facts_and_cancel_is_final() -> None:
    sub = subscription("s1")
    states = [sub]
    for status, when in [(S.PAST_DUE, "2017-04-01"), (S.ACTIVE, "2017-04-03"), (S.PAST_DUE, "2017-05-01")]:
        states.append(_with_status(states[-1], status, when))
    states.append(_with_status(states[-1], S.CANCELED, "2017-05-09"))
    facts = [
        fact
        for old, new in zip(states, states[1:], strict=False)
        for fact in customer_facts(_customer(subscriptions=[old]), _customer(subscriptions=[new]))
    ]
    assert _kinds(tuple(facts)) == [
        "SubscriptionPastDue",
        "SubscriptionActivated",
        "SubscriptionPastDue",
        "SubscriptionCanceled",
    ]
    assert len({fact.fact_id for fact in facts}) == 4  # two past dues, two ids
    assert facts[-1].fact_id == "SUB#s1#canceled"


def test_a_renewal_is_the_paid_through_date_moving_forward_on_an_active_subscription() -> None:
    sub = subscription("s1", paid_through="2017-02-01")
    assert sub.paid_through_date is not None
    later = sub.paid_through_date + timedelta(days=30)
    renewed = sub.model_copy(update={"paid_through_date": later})
    facts = customer_facts(_customer(subscriptions=[sub]), _customer(subscriptions=[renewed]))
    assert _kinds(facts) == ["SubscriptionRenewed"]
    assert facts[0].event.detail["paidThroughDate"] == "2017-03-03T00:00:00Z"
    assert facts[0].fact_id == "SUB#s1#renewed#20170303T000000.000000Z"
    # not on a past-due subscription, not backwards, not at the first paid-through date (that is the activation)
    past_due = sub.model_copy(update={"status": S.PAST_DUE})
    moved = past_due.model_copy(update={"paid_through_date": later})
    assert customer_facts(_customer(subscriptions=[past_due]), _customer(subscriptions=[moved])) == ()
    back = sub.model_copy(update={"paid_through_date": sub.paid_through_date - timedelta(days=1)})
    assert customer_facts(_customer(subscriptions=[sub]), _customer(subscriptions=[back])) == ()
    unpaid = sub.model_copy(update={"paid_through_date": None})
    assert customer_facts(_customer(subscriptions=[unpaid]), _customer(subscriptions=[sub])) == ()


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (T.SUBMITTED_FOR_SETTLEMENT, "TransactionSucceeded"),
        (T.SETTLED, "TransactionSucceeded"),
        (T.PROCESSOR_DECLINED, "TransactionFailed"),
        (T.FAILED, "TransactionFailed"),
        (T.VOIDED, "TransactionVoided"),
    ],
)
def test_a_new_sale_records_its_outcome(status: TransactionStatus, kind: str) -> None:
    before = _customer()
    after = before.model_copy(update={"transactions": [_sale("t1", status)]})
    facts = customer_facts(before, after)
    assert _kinds(facts) == [kind]
    assert facts[0].transaction_id == "t1"  # written with the mirror of t1
    detail = facts[0].event.detail
    assert (detail["transactionId"], detail["amount"], detail["currency"]) == ("t1", 1320, "usd")
    assert (detail["subscriptionId"], detail["plan"], detail["status"]) == ("four", "id-plan", status.value)


def test_a_sale_succeeds_once_however_its_settlement_moves_then_is_voided_or_refunded() -> None:
    steps = [T.AUTHORIZED, T.SUBMITTED_FOR_SETTLEMENT, T.SETTLING, T.SETTLED]
    kinds = []
    for old, new in zip(steps, steps[1:], strict=False):
        before = _customer(transactions=[_sale("t1", old)])
        kinds += _kinds(customer_facts(before, _customer(transactions=[_sale("t1", new)])))
    assert kinds == ["TransactionSucceeded"]
    voided = customer_facts(
        _customer(transactions=[_sale("t1", T.SUBMITTED_FOR_SETTLEMENT)]),
        _customer(transactions=[_sale("t1", T.VOIDED)]),
    )
    assert [(f.event.kind, f.fact_id) for f in voided] == [("TransactionVoided", "TXN#t1#voided")]
    settled = _sale("t1", T.SETTLED)
    refund = _sale("r1", T.SETTLED, kind=TransactionKind.REFUND, when="2017-02-10")
    refunded = customer_facts(_customer(transactions=[settled]), _customer(transactions=[refund, settled]))
    assert _kinds(refunded) == ["TransactionRefunded"]
    assert refunded[0].event.detail["refundedTransactionId"] == "t1"
    assert refunded[0].event.detail["occurredAt"] == "2017-02-10T00:00:00Z"


def test_facts_ride_on_the_changes_and_two_saves_never_record_one_twice() -> None:
    # Given a customer saved once with a pending subscription
    repository = InMemoryCustomerRepository()
    pending = subscription("s1", status=S.PENDING)
    save_change(repository, "pesho", lambda _: (_customer(subscriptions=[pending]), None))
    # When the same activation is saved twice (a retried request, a redelivered webhook: each on a fresh load)
    activate = _with_status(pending, S.ACTIVE, "2017-03-02")

    def step(current: Customer | None) -> tuple[Customer, None]:
        assert current is not None
        return current.model_copy(update={"subscriptions": [activate]}), None

    for _ in range(2):
        save_change(repository, "pesho", step)
    # Then each fact was recorded once, and the second save had none to record
    assert [event.kind for event in repository.events] == ["SubscriptionCreated", "SubscriptionActivated"]
    stored = repository.load("pesho")
    assert stored is not None
    assert customer_changes(stored, stored).facts == ()


def test_a_save_retried_after_a_conflict_records_its_facts_once() -> None:
    repository = InMemoryCustomerRepository([_customer(subscriptions=[subscription("s1", status=S.PENDING)])])
    repository.fail_next_saves = 1  # another writer got there first: the step runs again on a fresh load

    def activate(current: Customer | None) -> tuple[Customer, None]:
        assert current is not None
        subs = [_with_status(current.subscriptions[0], S.ACTIVE, "2017-03-02")]
        return current.model_copy(update={"subscriptions": subs}), None

    save_change(repository, "pesho", activate)
    assert [event.kind for event in repository.events] == ["SubscriptionActivated"]


def test_every_event_kind_is_documented_in_the_readme_and_the_api_page() -> None:
    from pathlib import Path

    from usercredits.subscriptions import events

    root = Path(__file__).resolve().parents[3]
    readme, api = (root / "README.md").read_text(), (root / "docs" / "api.md").read_text()
    kinds = [value for name, value in vars(events).items() if name.startswith(("SUBSCRIPTION_", "TRANSACTION_"))]
    assert len(kinds) == 9
    assert all(f"| `{kind}` |" in readme and f"| `{kind}` |" in api for kind in kinds)
