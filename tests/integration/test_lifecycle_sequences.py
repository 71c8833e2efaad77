"""Sequences the lifecycle harness found, kept as regular tests: each replays the steps (the harness's own rules, so
the model checks every step) and ends with the invariant check. The first ones were found on the code before issue
12's fixes (the defects it lists); the later ones while building the fixes.

Each test names the defect and what went wrong; ``machine.check()`` compares the whole API with the model after each
step, so a regression fails at the step that diverges.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from devtools.stripe_sim.payment_intents import FakeStripe

from tests.lifecycle.driver import API_KEY
from tests.lifecycle.machine import LifecycleMachine

DAY = 86400


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[LifecycleMachine]:
    monkeypatch.setenv("CATALOG_CACHE_SECONDS", "0")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with FakeStripe(api_key=API_KEY) as fake:
        LifecycleMachine.stripe = fake
        state = LifecycleMachine()
        state.load_catalog()
        state.check()
        yield state
        state.teardown()


def steps(state: LifecycleMachine, *calls: tuple[str, dict[str, object]]) -> None:
    """Run rules in order, checking the invariants after each (as the harness does)."""
    for name, arguments in calls:
        getattr(state, name)(**arguments)
        state.check()


def test_defect_1_the_cancel_of_an_abandoned_intent_does_not_cancel_the_order(machine: LifecycleMachine) -> None:
    # Found on the old code: a new intent canceled the first; Stripe's payment_intent.canceled for it moved the
    # order to canceled, and the new intent's success could no longer pay it.
    steps(
        machine,
        ("place_order", {"user": "u2", "offer": "Pack", "quantity": 1}),
        ("new_intent", {"pick": 0, "with_key": False}),
        ("stripe_catches_up", {"rotate": 0}),  # the canceled event of the abandoned intent
        ("customer_pays", {"pick": 1}),
        ("stripe_catches_up", {"rotate": 0}),
    )
    order = machine.model.users[machine._user("u2")].orders
    assert [o.status for o in order.values()] == ["paid"]


def test_defect_1_two_payments_for_one_order_end_as_one_grant_and_one_refund(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("pays_in_two_tabs", {"user": "u1", "offer": "Bundle", "both": True}),
        ("stripe_catches_up", {"rotate": 1}),  # the second success first: the abandoned one is refunded
        ("stripe_catches_up", {"rotate": 0}),  # its refund's charge.refunded changes no credits
        ("redeliver", {"pick": 0}),
    )
    assert machine.reached >= {"payment_intent.succeeded: refund-duplicate", "a duplicate payment refunded"}


def test_defect_1_a_retried_payment_request_gets_the_current_intent(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("place_order", {"user": "u1", "offer": "Pack", "quantity": 1}),
        ("new_intent", {"pick": 0, "with_key": True}),
        ("new_intent", {"pick": 0, "with_key": False}),
        ("replay_new_intent", {"pick": 0}),  # the first answer's intent was canceled since
    )


def test_defect_2_a_full_refund_then_the_expiry_locks_nobody_out(machine: LifecycleMachine) -> None:
    # The refunded order's lots stayed open; at their expiry the closing transaction required the order to be paid
    # and failed forever: every read of the group answered 409.
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Pack", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("merchant_refunds", {"pick": 0, "part": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("time_passes", {"seconds": 40 * DAY}),
        ("scheduled_scan", {}),
        ("consume", {"user": "u1", "group": "Tok", "count": 1}),
        ("expiry_check", {"user": "u1"}),
    )


def test_defect_3_a_refunded_bundle_unlocks_nothing_and_append_date_starts_now(machine: LifecycleMachine) -> None:
    # Bundle (Club, appendDate) unlocks Vip; refunded, it kept unlocking it, and the next Bundle started a month later.
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Bundle", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("merchant_refunds", {"pick": 0, "part": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("place_order", {"user": "u1", "offer": "Vip", "quantity": 1}),  # 403 now
        ("buy_and_pay", {"user": "u1", "offer": "Bundle", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),  # starts now, not after the refunded month
    )


def test_defect_3_a_lost_dispute_withdraws_the_window_and_a_won_one_puts_it_back(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("buy_and_pay", {"user": "u2", "offer": "Bundle", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("dispute_opens", {"pick": 0}),
        ("stripe_catches_up", {"rotate": 0}),  # open: withdrawn, Vip locked again
        ("dispute_closes", {"pick": 0, "won": True}),
        ("stripe_catches_up", {"rotate": 0}),  # won: back, tokens restored
    )


def test_defect_4_a_dispute_won_after_a_partial_refund_restores_only_what_it_took(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Pack", "quantity": 2}),
        ("stripe_catches_up", {"rotate": 0}),
        ("consume", {"user": "u1", "group": "Tok", "count": 13}),
        ("merchant_refunds", {"pick": 0, "part": 3}),
        ("stripe_catches_up", {"rotate": 0}),
        ("chargeback", {"pick": 0, "won": True}),
        ("stripe_catches_up", {"rotate": 0}),
    )


def test_defect_5_a_hold_no_longer_shields_credits_from_a_refund(machine: LifecycleMachine) -> None:
    # Hold everything, refund in full, release: the customer had the money back and every credit.
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Pack", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("hold", {"user": "u1", "group": "Tok", "count": 9, "seconds": 3600}),
        ("merchant_refunds", {"pick": 0, "part": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("release", {"pick": 0}),
        ("consume", {"user": "u1", "group": "Tok", "count": 1}),  # 402: nothing left
    )
    assert "a hold cut or released" in machine.reached


def test_defect_5_tokens_spent_before_a_refund_are_a_debt_the_next_purchase_repays(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("buy_and_pay", {"user": "u2", "offer": "Pack", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("spends_then_refunded", {"pick": 0, "count": 9}),
        ("stripe_catches_up", {"rotate": 0}),
        ("buy_and_pay", {"user": "u2", "offer": "Forever", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
    )
    assert "a group in debt" in machine.reached


def test_defect_5_an_expired_lot_refunded_owes_what_it_used(machine: LifecycleMachine) -> None:
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Pack", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("consume", {"user": "u1", "group": "Tok", "count": 5}),
        ("time_passes", {"seconds": 40 * DAY}),
        ("merchant_refunds", {"pick": 0, "part": 1}),
        ("stripe_catches_up", {"rotate": 0}),
    )


def test_defect_6_a_far_future_start_is_refused(machine: LifecycleMachine) -> None:
    steps(machine, ("far_future_order", {"user": "u1", "offer": "Free", "starts": "9999-06-01T00:00:00Z"}))


def test_defect_7_an_admin_grant_retried_with_its_key_grants_once_and_is_published(machine: LifecycleMachine) -> None:
    # Found on the old code, shrunk to this one step.
    steps(machine, ("admin_grant", {"user": "u1", "group": "Tok", "tokens": 1, "days": None, "retried": True}))


def test_defect_9_the_free_offer_cannot_be_farmed(machine: LifecycleMachine) -> None:
    steps(machine, *[("place_order", {"user": "u1", "offer": "Free", "quantity": 1})] * 3)


def test_defect_10_expiry_check_reports_groups_whose_lots_the_scan_expired(machine: LifecycleMachine) -> None:
    # Found on the old code: a grant expiring in 20 days, time passes, the scan closes the lot first, and the
    # expiry-check reported nothing.
    steps(
        machine,
        ("admin_grant", {"user": "u1", "group": "Club", "tokens": 50, "days": 20, "retried": False}),
        ("time_passes", {"seconds": 32 * DAY}),
        ("scheduled_scan", {}),
        ("expiry_check", {"user": "u1"}),
    )


def test_found_while_building_a_lost_dispute_then_a_full_refund_closes_the_lots(machine: LifecycleMachine) -> None:
    # Found by the CI profile on the new code: the refund after a lost dispute revoked nothing more, so the reversal
    # returned early: the order became refunded, its lots stayed open and its bundle children stayed paid.
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Bundle", "quantity": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("chargeback", {"pick": 0, "won": False}),
        ("stripe_catches_up", {"rotate": 0}),
        ("merchant_refunds", {"pick": 0, "part": 1}),
        ("stripe_catches_up", {"rotate": 0}),
        ("time_passes", {"seconds": 40 * DAY}),
        ("consume", {"user": "u1", "group": "Club", "count": 1}),
    )


def test_found_on_the_old_code_a_disputed_bundle_expires_with_its_children(machine: LifecycleMachine) -> None:
    # Found on the old code (5 steps): a dispute opened on a bundle, 400 days later its child order was still paid.
    steps(
        machine,
        ("buy_and_pay", {"user": "u1", "offer": "Bundle", "quantity": 1}),
        ("buy_and_pay", {"user": "u2", "offer": "Pack", "quantity": 1}),
        ("deliver_during_stripe_outage", {"pick": 0}),
        ("dispute_opens", {"pick": 0}),
        ("deliver_during_stripe_outage", {"pick": 100}),
        ("time_passes", {"seconds": 400 * DAY}),
    )
