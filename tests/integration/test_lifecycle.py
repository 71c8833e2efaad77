"""The money lifecycle, model-based: the state machine of ``tests/lifecycle`` against the real handlers on moto.

``make test`` runs the CI profile (a fixed set of examples, a few minutes at most); ``make soak`` runs the soak profile
(``LIFECYCLE_PROFILE=soak``: random, many and longer sequences). A failure prints the shrunk steps and a
``@reproduce_failure`` blob; keep each sequence it finds as a regular test in ``test_lifecycle_sequences.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from devtools.stripe_sim.payment_intents import FakeStripe
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.lifecycle.driver import API_KEY
from tests.lifecycle.machine import REACHED, LifecycleMachine
from usercredits.adapters.dynamodb import credits as credits_adapter
from usercredits.domain import lapses, lot_expiry, reversal

#: States the CI run must reach (in at least one example each), or the harness stopped exploring what matters.
MUST_REACH = (
    "payment_intent.succeeded: paid",
    "payment_intent.succeeded: refund-duplicate",
    "payment_intent.canceled: nothing",
    "payment_intent.payment_failed: moved",
    "delivered charge.refunded",
    "delivered charge.dispute.closed",
    "a group in debt",
    "a hold cut or released",
    "a withdrawn order (refunded)",
    "a withdrawn order (paid)",
    "an order paid by an abandoned intent",
    "a duplicate payment refunded",
    "a won dispute on a paid order",
)

PROFILES = {
    "ci": {"max_examples": 40, "stateful_step_count": 25, "derandomize": True},
    "soak": {
        "max_examples": int(os.environ.get("LIFECYCLE_EXAMPLES") or 2000),
        "stateful_step_count": 60,
        "derandomize": False,
    },
}


@pytest.fixture
def fake_stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    monkeypatch.setenv("CATALOG_CACHE_SECONDS", "0")  # admins' offer edits are seen at once
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    with FakeStripe(api_key=API_KEY) as fake:
        LifecycleMachine.stripe = fake
        yield fake


def test_the_money_lifecycle_matches_the_model(fake_stripe: FakeStripe) -> None:
    name = os.environ.get("LIFECYCLE_PROFILE", "ci")
    _run(name, PROFILES[name])


def test_the_money_lifecycle_in_tiny_transactions(fake_stripe: FakeStripe, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same machine with tiny transactions (an expiry step of 4 writes: one lot (2) with the group and the outbox
    item; a refund of 7: one lot closed, no cut), batches of lots with one expiry, and reads that show 2 lots a group
    (the others behind ``lotsCursor``, which the checks follow): expiries run in several steps, refunds leave their
    hold cuts to the group's next step and lots are read in pages, the paths that large batches of lots and many
    holds take in production (``lot_expiry``, ``reversal._fitted``, the lots cursor), checked against the unchanged
    model."""
    monkeypatch.setattr(LifecycleMachine, "batches", True)
    monkeypatch.setattr(lot_expiry, "MAX_WRITES", 4)
    monkeypatch.setattr(reversal, "MAX_TRANSACTION_ACTIONS", 7)
    monkeypatch.setattr(credits_adapter, "LOTS_SHOWN", 2)
    monkeypatch.setattr(LifecycleMachine, "lot_pages_read", 0)
    seen = {"expiry steps left work": 0, "refunds left cuts": 0}

    def plan_step(*args: Any, **kwargs: Any) -> lot_expiry.ClosingStep | None:
        step = lot_expiry.plan_closing_step(*args, **kwargs)
        seen["expiry steps left work"] += bool(step and not step.done)
        return step

    def fitted(plan: reversal.Reversal, now: Any) -> reversal.Reversal:
        fit = fitted_before(plan, now)
        seen["refunds left cuts"] += fit != plan
        return fit

    fitted_before = reversal._fitted  # noqa: SLF001 - observed, not replaced
    monkeypatch.setattr(lapses, "plan_closing_step", plan_step)
    monkeypatch.setattr(reversal, "_fitted", fitted)
    name = os.environ.get("LIFECYCLE_PROFILE", "ci")
    profile = PROFILES[name] if name != "ci" else {**PROFILES["ci"], "max_examples": 12}
    _run(f"{name}-tiny", profile)
    print("tiny transactions:", seen)
    if name == "ci":  # the derandomized examples reach both stepped paths and pages of lots (a random run may not)
        assert seen["refunds left cuts"] and seen["expiry steps left work"], f"stepped paths not reached: {seen}"
        assert LifecycleMachine.lot_pages_read > 0, "no group had more lots than a read shows"


def lifecycle_machine() -> LifecycleMachine:
    """The machine, through a factory whose text never changes: a derandomized run seeds its examples from the
    factory's source, so the machine's own code (a check, a helper) can change without reshuffling the examples
    that ``MUST_REACH`` was measured on; changing its rules or their strategies still changes the examples."""
    return LifecycleMachine()


def _run(name: str, profile: dict[str, Any]) -> None:
    REACHED.clear()
    run_state_machine_as_test(
        lifecycle_machine,  # type: ignore[arg-type]  # hypothesis takes any factory; its signature says a class
        settings=settings(
            **profile,
            deadline=None,
            print_blob=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        ),
    )
    print("lifecycle harness reached:", dict(sorted(REACHED.items())))
    if name == "ci":
        missing = [state for state in MUST_REACH if not REACHED[state]]
        assert not missing, f"the harness no longer reaches {missing}: widen its rules or its budget"
