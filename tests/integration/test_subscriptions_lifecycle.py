"""The subscriptions half, model-based: the state machine of ``tests/subscriptions_lifecycle`` against the customers and
webhook functions on moto and the Stripe simulation.

``make test`` runs the CI profile (a fixed set of examples); ``make soak`` the soak profile (``LIFECYCLE_PROFILE=soak``:
random, many and longer sequences). A failure prints the shrunk steps and a ``@reproduce_failure`` blob; keep each
sequence it finds as a regular test.
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.subscriptions_lifecycle.machine import REACHED, SubscriptionsMachine

#: States the CI run must reach (in at least one example each), or the harness stopped exploring what matters.
MUST_REACH = (
    "synced",
    "an upgrade credit",
    "a queued subscription",
    "subscribed with a coupon",
    "a coupon refused",
    "canceled",
    "canceled at period end",
    "a renewal",
    "a declined renewal",
    "refunded by an admin",
    "refunded at Stripe",
    "a dispute lost",
    "an event delivered twice",
    "delivered customer.subscription.updated",
    "delivered invoice.paid",
    "in step with Stripe",
)

PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 15, "stateful_step_count": 25, "derandomize": True},
    "soak": {
        "max_examples": int(os.environ.get("LIFECYCLE_EXAMPLES") or 500),
        "stateful_step_count": 60,
        "derandomize": False,
    },
}


def test_the_subscriptions_lifecycle_holds_its_invariants() -> None:
    profile = PROFILES[os.environ.get("LIFECYCLE_PROFILE", "ci")]
    REACHED.clear()
    run_state_machine_as_test(
        SubscriptionsMachine,
        settings=settings(
            **profile,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        ),
    )
    print(f"\nsubscriptions harness reached: {dict(sorted(REACHED.items()))}")
    missing = [state for state in MUST_REACH if not REACHED[state]]
    assert not missing, f"the harness no longer reaches: {missing}"
