"""The subscriptions half as one checked state machine (Hypothesis ``RuleBasedStateMachine``).

Users add a card, subscribe to plans of three levels (upgrades, queued switches and downgrades), with and without
coupons that run out, sync, cancel (now or at period end, one or all), reload; admins refund and reset; Stripe (the
simulation) renews, declines an invoice, refunds from its dashboard, opens and decides disputes, fails a call now and
then, and its events reach the webhook late, out of order or twice; time jumps. After every step the invariants on
``SubscriptionsMachine`` are checked against the simulation's own state and the tables:

- no answer is a 5xx (a refused call at Stripe is a 502/503, which the harness arms on purpose, and nothing else);
- **nobody is billed twice**: at most one of a customer's Stripe subscriptions will charge again (one set to end at
  its period's end never does; a queued one does, at its ``trial_end``), even between two calls of a sync that
  failed halfway;
- **coupons are counted exactly**: a coupon's ``usedCount`` is its number of redemption records, never above
  ``maxUses``, and a restricted coupon is used once per customer;
- refunds never pass what was charged, at Stripe and in the customer's transactions;
- when every event has been delivered in order, every local subscription Stripe knows shows Stripe's status.

Run by ``make test`` (a fixed CI profile) and ``make soak`` (``LIFECYCLE_PROFILE=soak``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.helpers.handler_calls import Answer
from tests.subscriptions_lifecycle.driver import SubscriptionsSystem
from usercredits.adapters.stripe.subscription_mapping import processor_subscription

USERS = ("u1", "u2")
PLANS = {  # plan id -> (level, price in cents, Stripe price id)
    "basic": (1, 990, "price_basic"),
    "pro": (2, 1490, "price_pro"),
    "max": (3, 2990, "price_max"),
}
COUPONS: dict[str, dict[str, Any]] = {
    "ONCE": {"kind": "amount", "amount": {"amount": 500, "currency": "usd"}, "maxUses": 1},
    "TWICE": {"kind": "percent", "percent": "20", "maxUses": 2, "numberOfBillingCycles": 2},
    "MINE": {"kind": "amount", "amount": {"amount": 300, "currency": "usd"}, "restricted": True},
}
SECONDS = st.sampled_from([1, 60, 3600, 86400, 10 * 86400, 29 * 86400, 31 * 86400, 65 * 86400])
PICK = st.integers(min_value=0, max_value=10_000)
#: One call in six has Stripe fail (a 503 on the first or a later request of the step).
FAIL = st.sampled_from([False, False, False, False, False, True])
#: Statuses in which a Stripe subscription will bill again (trialing: at its trial end, a queued start).
BILLING = frozenset({"active", "trialing", "past_due", "incomplete"})
#: Where the harness's steps got to (the CI run must reach the ones the test module lists).
REACHED: Counter[str] = Counter()
_EXAMPLES = itertools.count(1)


class SubscriptionsMachine(RuleBasedStateMachine):
    """One example: two users with a card each, three plans, three coupons, a fresh table and simulation."""

    def __init__(self) -> None:
        super().__init__()
        self.system = SubscriptionsSystem()
        self.prefix = f"s{next(_EXAMPLES)}"
        self.pending: list[dict[str, Any]] = []  # Stripe events made and not delivered yet, oldest first
        self.delivered: list[dict[str, Any]] = []
        self.keys = itertools.count(1)
        self.reached: set[str] = set()
        self._fail_after = 0
        self.cards: dict[str, str] = {}

    def teardown(self) -> None:
        REACHED.update(self.reached)
        REACHED["(examples)"] += 1
        self.system.close()

    def _user(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def _reach(self, label: str) -> None:
        self.reached.add(label)
        tally(label)

    # --- calls -----------------------------------------------------------------------------------------------------

    def _api(self, method: str, path: str, *, allowed: tuple[int, ...], **kwargs: Any) -> Answer:
        answer = self.system.api(method, path, **kwargs)
        assert answer.status < 500 or answer.status in (502, 503), f"{method} {path}: {answer}"
        assert answer.status in allowed, f"{method} {path}: {answer}"
        return answer

    def _customer(self, name: str) -> dict[str, Any]:
        answer = self._api("GET", f"/admin/customers/{self._user(name)}", allowed=(200,), admin=True)
        customer: dict[str, Any] = answer.body
        return customer

    def _stripe_moved(self) -> None:
        """Take the events Stripe made since the last step (delivered later, by the delivery rules)."""
        self.pending.extend(self.system.sim.take_events())

    def _tick(self) -> None:
        # Each step one second later at least: Stripe's ``created`` has a one-second grain, and two events of one
        # object in the same second cannot be ordered by anyone.
        self.system.advance(1)

    # --- set-up ----------------------------------------------------------------------------------------------------

    @initialize(first=st.sampled_from(["basic", "pro"]), coupon=st.sampled_from([None, "TWICE", "MINE"]))
    def opening_subscriptions(self, first: str, coupon: str | None) -> None:
        """Each example starts with the catalog, a card each, and both users subscribed and synced (u2 with a
        coupon), so upgrades, switches, renewals, refunds and disputes have something to work on from the first
        step."""
        self._catalog_and_cards()
        self.subscribe("u1", first, None)
        self.subscribe("u2", "basic", coupon)
        self.sync("u1", key=False)
        self.sync("u2", key=True)

    def _catalog_and_cards(self) -> None:
        for plan_id, (level, price, stripe_price) in PLANS.items():
            self.system.sim.add_price(stripe_price, price)
            body = {
                "name": plan_id.title(),
                "price": {"amount": price, "currency": "usd"},
                "level": level,
                "processorPlanId": stripe_price,
            }
            self._api("PUT", f"/admin/plans/{plan_id}", allowed=(200,), body=body, admin=True)
        for code, terms in COUPONS.items():
            self._api("PUT", f"/admin/coupons/{code}", allowed=(200,), body={"name": code, **terms}, admin=True)
        for name in USERS:
            answer = self._api(
                "POST",
                "/customer/payment-methods",
                allowed=(201,),
                body={"token": "pm_card_visa"},
                user=self._user(name),
            )
            self.cards[name] = answer.body["paymentMethodId"]

    # --- users -----------------------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(USERS), plan=st.sampled_from(list(PLANS)), coupon=st.sampled_from([None, *COUPONS]))
    def subscribe(self, name: str, plan: str, coupon: str | None) -> None:
        self._tick()
        body: dict[str, Any] = {"planId": plan, "paymentMethodId": self.cards[name]}
        if coupon is not None:
            body["couponCode"] = coupon
        answer = self._api("POST", "/customer/subscriptions", allowed=(201, 409, 422), body=body, user=self._user(name))
        if answer.status == 201:
            self._reach("subscribed with a coupon" if coupon else "subscribed")
            if answer.body.get("firstBillingDate"):
                self._reach("a queued subscription")
            if any(d.get("kind") == "previous_subscription" for d in answer.body.get("discounts", [])):
                self._reach("an upgrade credit")
        elif answer.status == 422 and coupon:
            self._reach("a coupon refused")

    @rule(name=st.sampled_from(USERS), key=st.booleans(), fail=FAIL, after=st.integers(0, 4))
    def sync(self, name: str, key: bool, fail: bool = False, after: int = 0) -> None:
        """A sync, sometimes with one of Stripe's answers (the ``after``-th call) failing halfway."""
        self._tick()
        self._fail_after = after
        self._maybe_fail(fail)
        idempotency_key = f"sync-{next(self.keys)}" if key else None
        answer = self._api(
            "POST",
            "/customer/sync",
            allowed=(200, 409, 422, 502, 503),
            user=self._user(name),
            idempotency_key=idempotency_key,
        )
        self._stripe_moved()
        if answer.status == 200:
            self._reach("synced")

    @rule(name=st.sampled_from(USERS), pick=PICK, at_period_end=st.booleans(), fail=FAIL)
    def cancel(self, name: str, pick: int, at_period_end: bool, fail: bool) -> None:
        subscriptions = [s for s in self._customer(name)["subscriptions"] if s.get("status") not in ("canceled",)]
        if not subscriptions:
            return
        self._tick()
        chosen = subscriptions[pick % len(subscriptions)]
        self._fail_after = 0
        self._maybe_fail(fail)
        answer = self._api(
            "POST",
            f"/customer/subscriptions/{chosen['subscriptionId']}/cancel",
            allowed=(200, 404, 409, 502, 503),
            body={"atPeriodEnd": at_period_end},
            user=self._user(name),
        )
        self._stripe_moved()
        if answer.status == 200:
            self._reach("canceled at period end" if at_period_end else "canceled")

    @rule(name=st.sampled_from(USERS))
    def reload(self, name: str) -> None:
        self._tick()
        self._api("POST", "/customer/reload", allowed=(200, 409, 502, 503), user=self._user(name))
        self._stripe_moved()

    # --- admins ----------------------------------------------------------------------------------------------------

    @rule(name=st.sampled_from(USERS), pick=PICK, partial=st.booleans())
    def admin_refund(self, name: str, pick: int, partial: bool) -> None:
        sales = [t for t in self._customer(name)["transactions"] if t["kind"] == "sale"]
        if not sales:
            return
        self._tick()
        sale = sales[pick % len(sales)]
        body = {"amount": {"amount": 100, "currency": "usd"}} if partial else None
        answer = self._api(
            "POST",
            f"/admin/customers/{self._user(name)}/transactions/{sale['transactionId']}/refund",
            allowed=(200, 409, 422, 502, 503),
            body=body,
            admin=True,
        )
        self._stripe_moved()
        if answer.status == 200:
            self._reach("refunded by an admin")

    # --- Stripe ----------------------------------------------------------------------------------------------------

    def _stripe_subscriptions(self, *statuses: str) -> list[str]:
        # In the order Stripe made them (their ids are random: sorting them would make replays pick others)
        return [sid for sid, sub in self.system.sim.subscriptions.items() if sub["status"] in statuses]

    @precondition(lambda self: bool(self._stripe_subscriptions("active", "trialing", "past_due")))
    @rule(pick=PICK, decline=st.booleans())
    def stripe_renews(self, pick: int, decline: bool) -> None:
        """One subscription's period ends now at Stripe (paid, or declined)."""
        renewing = self._stripe_subscriptions("active", "trialing", "past_due")
        chosen = renewing[pick % len(renewing)]
        self._tick()
        with self.system.sim.lock:
            if decline:
                self.system.sim.fail_next_invoice(chosen)
            self.system.sim.renew(chosen)
        self._stripe_moved()
        self._reach("a declined renewal" if decline else "a renewal")

    @rule(seconds=SECONDS)
    def time_passes(self, seconds: int) -> None:
        """The clock moves; Stripe renews what fell due (as its test clocks do)."""
        self.system.advance(seconds)
        with self.system.sim.lock:
            renewed = self.system.sim.renew_due()
        self._stripe_moved()
        if renewed:
            self._reach("renewed by time")

    def _charges(self) -> list[str]:
        return [cid for cid, charge in self.system.sim.charges.items() if charge.get("amount", 0) > 0]

    @precondition(lambda self: bool(self._charges()))
    @rule(pick=PICK, partial=st.booleans())
    def stripe_dashboard_refund(self, pick: int, partial: bool) -> None:
        charges = self._charges()
        charge = self.system.sim.charges[charges[pick % len(charges)]]
        left = charge["amount"] - charge["amount_refunded"]
        if left <= 0:
            return
        self._tick()
        with self.system.sim.lock:
            self.system.sim.refund_charge(charge["id"], min(left, 100) if partial else None)
        self._stripe_moved()
        self._reach("refunded at Stripe")

    @precondition(lambda self: bool(self._charges()))
    @rule(pick=PICK)
    def stripe_dispute_opens(self, pick: int) -> None:
        charges = [c for c in self._charges() if not self.system.sim.charges[c].get("disputed")]
        if not charges:
            return
        self._tick()
        with self.system.sim.lock:
            self.system.sim.open_dispute(charges[pick % len(charges)])
        self._stripe_moved()
        self._reach("a dispute opened")

    @precondition(lambda self: any(d["status"] == "needs_response" for d in self.system.sim.disputes.values()))
    @rule(pick=PICK, won=st.booleans())
    def stripe_dispute_closes(self, pick: int, won: bool) -> None:
        open_ = [i for i, d in self.system.sim.disputes.items() if d["status"] == "needs_response"]
        self._tick()
        with self.system.sim.lock:
            self.system.sim.close_dispute(open_[pick % len(open_)], won=won)
        self._stripe_moved()
        self._reach("a dispute won" if won else "a dispute lost")

    def _maybe_fail(self, fail: bool) -> None:
        if fail:
            self.system.sim.fail_next(503, after=self._fail_after)
            self._reach("a Stripe call failed")

    # --- webhook delivery ------------------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.pending))
    @rule(pick=PICK)
    def deliver_one(self, pick: int) -> None:
        """An event arrives, not necessarily the oldest."""
        event = self.pending.pop(pick % len(self.pending))
        self._deliver(event)

    @precondition(lambda self: bool(self.delivered))
    @rule(pick=PICK)
    def deliver_again(self, pick: int) -> None:
        self._deliver(self.delivered[pick % len(self.delivered)])
        self._reach("an event delivered twice")

    @rule()
    def everything_arrives(self) -> None:
        """Every pending event arrives in the order Stripe made them; then each subscription Stripe knows shows
        Stripe's status locally."""
        while self.pending:
            self._deliver(self.pending.pop(0))
        self._check_in_step_with_stripe()
        self._reach("in step with Stripe")

    def _deliver(self, event: dict[str, Any]) -> None:
        answer = self.system.webhook(event)
        assert answer.status == 200, f"{event['type']}: {answer}"
        self.delivered.append(event)
        self._reach(f"delivered {event['type']}")
        self._stripe_moved()  # what the webhook asked of Stripe (nothing today) moves it too

    def _check_in_step_with_stripe(self) -> None:
        for name in USERS:
            for local in self._customer(name)["subscriptions"]:
                processor_id = (local.get("processor") or {}).get("id")
                remote = self.system.sim.subscriptions.get(processor_id or "")
                if remote is None or local["processor"]["state"] != "saved":
                    continue
                expected = processor_subscription(self.system.sim.render_subscription(remote["id"])).status
                assert local["status"] == expected.value, (local, remote["status"])

    # --- invariants ------------------------------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        """The invariants of the module docstring, after every step."""
        customers = [self._customer(name) for name in USERS]
        self._nobody_is_billed_twice()
        self._coupons_are_counted_exactly()
        self._refunds_never_pass_the_charge(customers)

    def _nobody_is_billed_twice(self) -> None:
        """At most one of a customer's Stripe subscriptions will charge again: one that ends at its period's end
        (or is canceled) never does, a queued one (trialing until the one it replaces ends) does. Two that will
        both charge are two bills for one entitlement, whatever happens next."""
        billing: dict[str, list[str]] = {}
        for subscription in self.system.sim.subscriptions.values():
            if subscription["status"] in BILLING and not subscription["cancel_at_period_end"]:
                billing.setdefault(subscription["customer"], []).append(subscription["id"])
        for customer, ids in billing.items():
            assert len(ids) <= 1, f"{customer}: {ids} will each charge again"

    def _coupons_are_counted_exactly(self) -> None:
        for code, terms in COUPONS.items():
            items = self.system.customer_items(f"COUPON#{code}")
            coupon = next((i for i in items if i["sk"] == "COUPON"), None)
            if coupon is None:
                continue
            used = int(coupon.get("usedCount") or 0)
            redemptions = [i for i in items if str(i["sk"]).startswith("REDEMPTION#")]
            assert used == len(redemptions), (code, used, redemptions)
            if "maxUses" in terms:
                assert used <= terms["maxUses"], (code, used)
            if terms.get("restricted"):
                per_customer = Counter(str(i.get("customerId")) for i in redemptions)
                assert max(per_customer.values(), default=0) <= 1, (code, per_customer)

    def _refunds_never_pass_the_charge(self, customers: list[dict[str, Any]]) -> None:
        for charge in self.system.sim.charges.values():
            assert 0 <= charge["amount_refunded"] <= charge["amount"], charge["id"]
        for customer in customers:
            transactions = customer["transactions"]
            sales = {t["transactionId"]: t["amount"]["amount"] for t in transactions if t["kind"] == "sale"}
            refunded = Counter[str]()
            for refund in (t for t in transactions if t["kind"] == "refund"):
                refunded[str(refund.get("refundedTransactionId"))] += refund["amount"]["amount"]
            for sale_id, amount in refunded.items():
                if sale_id in sales:
                    assert amount <= sales[sale_id], (sale_id, amount, sales[sale_id])
