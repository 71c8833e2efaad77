"""The money lifecycle as one checked state machine (Hypothesis ``RuleBasedStateMachine``).

Actors drive the real handlers (``driver.System``): buyers place orders (priced, free, bundles, appendDate, locked)
and ask for new intents; Stripe (the fake server plus a queue of signed events) lets customers pay, decline, need an
action or cancel, on the current intent or an abandoned one, refunds (merchant and automatic), opens and closes
disputes, and delivers every event late, out of order or twice; users spend (with and without keys), hold, capture
and release; admins grant (with keys), set group policies, edit and retire offers; time moves past starts, hold
lapses, warning windows and expiries, and the scheduled scan runs. After every step the API is read back and
compared with ``model.Model``; the invariants are listed on ``LifecycleMachine.check``.

Run it with ``make test`` (the CI budget) or ``make soak`` (``LIFECYCLE_PROFILE=soak``: many more, longer runs). A
failure prints the shrunk steps and a ``@reproduce_failure`` blob.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import Counter
from datetime import timedelta
from typing import Any

from devtools.stripe_sim.payment_intents import FakeStripe
from hypothesis import event as tally
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.helpers.handler_calls import Answer
from tests.lifecycle.driver import System, stripe_event
from tests.lifecycle.model import MIntent, Model, MOrder

USERS = ("u1", "u2")
GROUPS = ("Tok", "Club", "Gift", "Vip", "Never")
#: Offers the harness's admins edit: the priced pack (price and tokens) and the locked one (retired and back).
SECONDS = st.sampled_from([1, 30, 61, 301, 3600, 86400, 3 * 86400, 8 * 86400, 32 * 86400, 400 * 86400])
PICK = st.integers(min_value=0, max_value=10_000)


def _has_orders(*statuses: str):
    return lambda self: bool(self._orders(*statuses))


def _has_intents(*statuses: str):
    return lambda self: bool(self._intents(*statuses))


class LifecycleMachine(RuleBasedStateMachine):
    """One example: two users, the harness catalog, a fresh table, the fake Stripe server shared by examples."""

    stripe: FakeStripe  # set by the test module (one server for every example)
    #: Batches of lots with one expiry (the tiny-transaction run turns them on; the main run keeps its rule mix,
    #: which its budget needs to reach every hard state).
    batches = False
    #: Pages of lots read behind a group's ``lotsCursor`` (the tiny-transaction run shows 2 lots a group).
    lot_pages_read = 0

    def __init__(self) -> None:
        super().__init__()
        self.system = System(self.stripe)
        self.prefix = f"x{next(_EXAMPLES)}"
        self.touched: set[str] = set()  # users the last step acted for (their reads are checked after it)
        self.model = Model([self._user(name) for name in USERS], self.system.clock.now())
        self.pending_events: list[dict[str, Any]] = []
        self.delivered_events: list[dict[str, Any]] = []
        self.keys: dict[tuple[str, str], tuple[dict[str, Any], Answer]] = {}
        self.event_ids = itertools.count(1)
        self.seen_refunds = 0
        self.steps = 0
        self.reached: set[str] = set()
        self.outbox_seen: list[tuple[str, dict[str, Any]]] = []
        self.skipped = frozenset(filter(None, os.environ.get("LIFECYCLE_SKIP", "").split(",")))

    def teardown(self) -> None:
        REACHED.update(self.reached)
        REACHED["(examples)"] += 1
        REACHED["(steps)"] += self.steps
        self.system.close()

    def _user(self, name: str) -> str:
        user_id = f"{self.prefix}-{name}"
        self.touched.add(user_id)
        return user_id

    # --- set-up ----------------------------------------------------------------------------------------------------

    def load_catalog(self) -> None:
        for offer in self.model.offers.values():
            self._admin_put_offer(offer.offer_id)
        for group, policy in self.model.policies.items():
            body = {"overdraft": policy.overdraft, "overdraftLimit": policy.limit, "lowThreshold": policy.low}
            answer = self.system.api("ordering", "PUT", f"/admin/groups/{group}", body=body, admin=True)
            assert answer.status == 200, answer

    @initialize(
        first=st.sampled_from(["Bundle", "Pack", "Forever"]),
        second=st.sampled_from(["Pack", "Bundle", "Pass", "Free"]),
        delivered=st.booleans(),
    )
    def opening_purchases(self, first: str, second: str, delivered: bool) -> None:
        """Each example starts with purchases paid (their successes delivered, or still on their way), so the rules
        that take money back, dispute it or pay twice have something to work on from the first step."""
        self.load_catalog()
        self.buy_and_pay("u1", first, 1)
        self.buy_and_pay("u2", second, 1)
        if delivered:
            self.stripe_catches_up(0)
            self.hold("u1", "Tok" if first != "Bundle" else "Club", 4, 3600)

    def _admin_put_offer(self, offer_id: str) -> Answer:
        body = self.model.offers[offer_id].body()
        answer = self.system.api("ordering", "PUT", f"/admin/offers/{offer_id}", body=body, admin=True)
        assert answer.status == 200, answer
        return answer

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _pick[T](self, items: list[T], pick: int) -> T:
        item = items[pick % len(items)]
        owner = getattr(item, "user", None)
        if isinstance(owner, str):
            self.touched.add(owner)
        elif isinstance(item, tuple) and item and isinstance(item[0], str) and item[0] in self.model.users:
            self.touched.add(item[0])
        return item

    def _orders(self, *statuses: str) -> list[MOrder]:
        return [
            order
            for user in self.model.users.values()
            for order in user.orders.values()
            if not statuses or order.status in statuses
        ]

    def _intents(self, *statuses: str) -> list[MIntent]:
        return [intent for intent in self.model.intents.values() if not statuses or intent.status in statuses]

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> None:
        self.pending_events.append(stripe_event(f"evt_{self.prefix}_{next(self.event_ids)}", kind, payload))

    def _intent_payload(self, intent: MIntent) -> dict[str, Any]:
        payload = dict(self.stripe.intents[intent.intent_id])
        return {key: value for key, value in payload.items() if not key.startswith("_")}

    def _charge_payload(self, intent: MIntent) -> dict[str, Any]:
        stripe_intent = self.stripe.intents[intent.intent_id]
        refunded = self.stripe.refunded(intent.intent_id)
        return {
            "id": f"ch_{intent.intent_id}",
            "object": "charge",
            "amount": intent.amount,
            "amount_refunded": refunded,
            "refunded": refunded >= intent.amount,
            "currency": stripe_intent["currency"],
            "payment_intent": intent.intent_id,
            "metadata": dict(stripe_intent.get("metadata") or {}),  # Stripe copies the intent's metadata
        }

    def _dispute_payload(self, intent: MIntent, status: str) -> dict[str, Any]:
        return {
            "id": f"dp_{intent.intent_id}",
            "object": "dispute",
            "amount": intent.amount,
            "currency": self.stripe.intents[intent.intent_id]["currency"],
            "charge": f"ch_{intent.intent_id}",
            "payment_intent": intent.intent_id,
            "status": status,
            "reason": "fraudulent",
        }

    def _collect_stripe_side_effects(self) -> None:
        """Stripe tells us about what our own calls did: a canceled intent and a refund each send their event."""
        for refund in self.stripe.refunds[self.seen_refunds :]:
            intent = self.model.intents.get(refund["payment_intent"])
            if intent is not None:
                intent.refunded = self.stripe.refunded(intent.intent_id)
                self._enqueue("charge.refunded", self._charge_payload(intent))
        self.seen_refunds = len(self.stripe.refunds)
        for intent in self.model.intents.values():
            if self.stripe.intents[intent.intent_id]["status"] == "canceled" and intent.status != "canceled":
                intent.status = "canceled"
                self._enqueue("payment_intent.canceled", self._intent_payload(intent))

    # --- buyers ----------------------------------------------------------------------------------------------------

    @rule(
        user=st.sampled_from(USERS),
        offer=st.sampled_from(["Pack", "Forever", "Free", "Bundle", "Vip", "Pass"]),
        quantity=st.sampled_from([1, 1, 2, 4]),
    )
    def place_order(self, user: str, offer: str, quantity: int) -> None:
        user_id = self._user(user)
        refusal = self.model.order_refusal(user_id, offer, quantity)
        answer = self.system.api(
            "ordering", "POST", "/orders", body={"offerId": offer, "quantity": quantity}, user=user_id
        )
        if refusal is not None:
            assert answer.status == refusal, f"expected {refusal}: {answer}"
            return
        assert answer.status == 201, answer
        order = answer.body["order"]
        intent = (answer.body.get("payment") or {}).get("paymentIntentId")
        placed = self.model.place(user_id, order["orderId"], offer, quantity, intent)
        if intent is None:
            assert order["status"] == "paid", answer
            self._check_window(placed, order)
        else:
            assert order["status"] == "pending", answer

    def _check_window(self, placed: MOrder, order: dict[str, Any]) -> None:
        assert order["starts"] is not None
        assert _ts(order["starts"]) == placed.starts, (order["starts"], placed.starts)

    @rule(
        user=st.sampled_from(USERS),
        offer=st.sampled_from(["Pack", "Forever", "Bundle", "Bundle", "Vip", "Pass"]),
        quantity=st.sampled_from([1, 1, 2]),
    )
    def buy_and_pay(self, user: str, offer: str, quantity: int) -> None:
        """A buyer orders and pays at once (the success event is on its way, not delivered yet)."""
        before = set(self.model.intents)
        self.place_order(user, offer, quantity)
        for intent_id in set(self.model.intents) - before:
            self._pays(self.model.intents[intent_id])

    @rule(user=st.sampled_from(USERS), offer=st.sampled_from(["Pack", "Bundle", "Forever"]), both=st.booleans())
    def pays_in_two_tabs(self, user: str, offer: str, both: bool) -> None:
        """A buyer asks for a new intent in another tab (the first one is abandoned and canceled) and pays it; with
        ``both``, the first was paid before it could be canceled: two payments for one order, one must come back."""
        before = set(self.model.intents)
        self.place_order(user, offer, 1)
        placed = set(self.model.intents) - before
        if not placed:
            return
        first = self.model.intents[placed.pop()]
        if both:
            self._pays(first)
        order = self.model.users[first.user].orders[first.order_id]
        answer = self.system.api("ordering", "POST", f"/orders/{order.order_id}/payment", user=order.user)
        assert answer.status == 200, answer
        self.model.new_intent(order, answer.body["payment"]["paymentIntentId"])
        self._collect_stripe_side_effects()
        self._pays(self.model.intents[order.current_intent or ""])

    @precondition(lambda self: bool(self.pending_events))
    @rule(rotate=PICK)
    def stripe_catches_up(self, rotate: int) -> None:
        """Stripe delivers every pending event (in an order of its own)."""
        events = self.pending_events
        self.pending_events = []
        start = rotate % len(events)
        for event in [*events[start:], *reversed(events[:start])]:
            (self.delivered_events if self._deliver(event) else self.pending_events).append(event)

    @rule(
        user=st.sampled_from(USERS),
        offer=st.sampled_from(["Pack", "Free", "Bundle"]),
        starts=st.sampled_from(["2300-01-01T00:00:00Z", "9999-06-01T00:00:00Z"]),
    )
    def far_future_order(self, user: str, offer: str, starts: str) -> None:
        """A hostile or careless client: a start centuries ahead is refused (422) with nothing written and no
        payment to collect (it could never be granted)."""
        user_id = self._user(user)
        body = {"offerId": offer, "quantity": 1, "starts": starts}
        answer = self.system.api("ordering", "POST", "/orders", body=body, user=user_id)
        assert answer.status == 422 and answer.body["error"] == "validation_error", answer

    @precondition(_has_orders("pending", "refused", "error"))
    @rule(pick=PICK, with_key=st.booleans())
    def new_intent(self, pick: int, with_key: bool) -> None:
        orders = self._orders("pending", "refused", "error")
        if not orders:
            return
        order = self._pick(orders, pick)
        key = f"pay-{order.order_id}-{len(order.intents)}" if with_key else None
        answer = self.system.api(
            "ordering", "POST", f"/orders/{order.order_id}/payment", user=order.user, idempotency_key=key
        )
        if order.status != "pending":
            assert answer.status == 409, answer
            return
        assert answer.status == 200, answer
        intent = answer.body["payment"]["paymentIntentId"]
        assert intent not in order.intents, "a fresh intent"
        self.model.new_intent(order, intent)
        if key is not None:
            self.keys[(order.user, key)] = ({"order": order.order_id}, answer)
        self._collect_stripe_side_effects()

    @precondition(lambda self: bool(self.keys))
    @rule(pick=PICK)
    def replay_new_intent(self, pick: int) -> None:
        """A retried ``POST /orders/{id}/payment`` (same key) never hands out an intent a later attempt canceled."""
        keyed = [(user, key, request) for (user, key), (request, _) in self.keys.items() if "order" in request]
        if not keyed:
            return
        user, key, request = self._pick(keyed, pick)
        order = self.model.users[user].orders[request["order"]]
        answer = self.system.api(
            "ordering", "POST", f"/orders/{order.order_id}/payment", user=user, idempotency_key=key
        )
        assert answer.status == 200, answer
        payment = answer.body["payment"]
        if payment is not None:
            assert self.stripe.intents[payment["paymentIntentId"]]["status"] != "canceled", answer
            assert payment["paymentIntentId"] == order.current_intent, (answer, order.current_intent)
        self._collect_stripe_side_effects()

    @precondition(_has_orders("pending"))
    @rule(pick=PICK)
    def new_intent_whose_cancel_fails(self, pick: int) -> None:
        """Stripe fails to cancel the abandoned intent: it stays payable, and the customer may still pay it."""
        orders = self._orders("pending")
        if not orders:
            return
        order = self._pick(orders, pick)
        self.stripe.fail_path(r"/cancel$", 503)
        answer = self.system.api("ordering", "POST", f"/orders/{order.order_id}/payment", user=order.user)
        assert answer.status == 200, answer
        self.model.new_intent(order, answer.body["payment"]["paymentIntentId"])
        self._collect_stripe_side_effects()

    @precondition(_has_orders())
    @rule(pick=PICK)
    def confirm(self, pick: int) -> None:
        orders = self._orders()
        if not orders:
            return
        order = self._pick(orders, pick)
        answer = self.system.api("ordering", "POST", f"/orders/{order.order_id}/confirm", user=order.user)
        if order.current_intent is None:
            assert answer.status == 409, answer
            return
        assert answer.status == 200, answer
        intent = self.model.intents[order.current_intent]
        kind = {
            "succeeded": "payment_intent.succeeded",
            "declined": "payment_intent.payment_failed",
            "requires_action": "payment_intent.requires_action",
            "canceled": "payment_intent.canceled",
        }.get(intent.status)
        if kind is not None:
            self._apply_intent_outcome(intent, kind, answer)
        self._collect_stripe_side_effects()

    # --- Stripe ----------------------------------------------------------------------------------------------------

    @precondition(_has_intents("requires_payment_method", "declined", "requires_action"))
    @rule(pick=PICK)
    def customer_pays(self, pick: int) -> None:
        intents = self._intents("requires_payment_method", "declined", "requires_action")
        if not intents:
            return
        self._pays(self._pick(intents, pick))

    def _pays(self, intent: MIntent) -> None:
        intent.status = "succeeded"
        self.stripe.set_intent(
            intent.intent_id, status="succeeded", amount_received=intent.amount, last_payment_error=None
        )
        self._enqueue("payment_intent.succeeded", self._intent_payload(intent))

    @precondition(_has_intents("requires_payment_method", "requires_action"))
    @rule(pick=PICK)
    def card_declined(self, pick: int) -> None:
        intents = self._intents("requires_payment_method", "requires_action")
        if not intents:
            return
        self._declines(self._pick(intents, pick))

    def _declines(self, intent: MIntent) -> None:
        intent.status = "declined"
        error = {"message": "Your card was declined.", "type": "card_error", "code": "card_declined"}
        self.stripe.set_intent(intent.intent_id, status="requires_payment_method", last_payment_error=error)
        self._enqueue("payment_intent.payment_failed", self._intent_payload(intent))

    @precondition(_has_intents("requires_payment_method"))
    @rule(pick=PICK)
    def needs_action(self, pick: int) -> None:
        intents = self._intents("requires_payment_method")
        if not intents:
            return
        intent = self._pick(intents, pick)
        intent.status = "requires_action"
        self.stripe.set_intent(intent.intent_id, status="requires_action", next_action={"type": "redirect_to_url"})
        self._enqueue("payment_intent.requires_action", self._intent_payload(intent))

    @precondition(_has_intents("requires_payment_method", "declined", "requires_action"))
    @rule(pick=PICK)
    def stripe_cancels(self, pick: int) -> None:
        intents = self._intents("requires_payment_method", "declined", "requires_action")
        if not intents:
            return
        intent = self._pick(intents, pick)
        intent.status = "canceled"
        self.stripe.set_intent(intent.intent_id, status="canceled")
        self._enqueue("payment_intent.canceled", self._intent_payload(intent))

    @precondition(_has_intents("succeeded"))
    @rule(pick=PICK, part=st.sampled_from([1, 1, 3, 10]))
    def merchant_refunds(self, pick: int, part: int) -> None:
        """A refund made in Stripe's dashboard: part 1 of ``part`` of what is left (10: a tenth)."""
        intents = [i for i in self._intents("succeeded") if self.stripe.refunded(i.intent_id) < i.amount]
        if not intents:
            return
        intent = self._pick(intents, pick)
        left = intent.amount - self.stripe.refunded(intent.intent_id)
        self.stripe.refund(intent.intent_id, max(1, left // part))
        self._collect_stripe_side_effects()

    @precondition(lambda self: any(i.dispute is None for i in self._intents("succeeded")))
    @rule(pick=PICK)
    def dispute_opens(self, pick: int) -> None:
        intents = [i for i in self._intents("succeeded") if i.dispute is None]
        if not intents:
            return
        intent = self._pick(intents, pick)
        intent.dispute = "open"
        self._enqueue("charge.dispute.created", self._dispute_payload(intent, "needs_response"))

    @precondition(lambda self: any(i.dispute == "open" for i in self._intents("succeeded")))
    @rule(pick=PICK, won=st.booleans())
    def dispute_closes(self, pick: int, won: bool) -> None:
        intents = [i for i in self._intents("succeeded") if i.dispute == "open"]
        if not intents:
            return
        intent = self._pick(intents, pick)
        intent.dispute = "won" if won else "lost"
        self._enqueue("charge.dispute.closed", self._dispute_payload(intent, intent.dispute))

    def _paying_intents(self) -> list[MIntent]:
        return [
            intent
            for intent in self._intents("succeeded")
            if intent.dispute is None
            and self.model.users[intent.user].orders[intent.order_id].paying_intent == intent.intent_id
        ]

    @precondition(lambda self: bool(self._paying_intents()))
    @rule(pick=PICK, won=st.booleans())
    def chargeback(self, pick: int, won: bool) -> None:
        """A customer disputes the payment that paid an order and the bank decides: both events are on their way
        (Stripe may deliver them in either order)."""
        intent = self._pick(self._paying_intents(), pick)
        intent.dispute = "won" if won else "lost"
        self._enqueue("charge.dispute.created", self._dispute_payload(intent, "needs_response"))
        self._enqueue("charge.dispute.closed", self._dispute_payload(intent, intent.dispute))

    @precondition(lambda self: bool(self._paying_intents()))
    @rule(pick=PICK, count=st.sampled_from([3, 9, 14]))
    def spends_then_refunded(self, pick: int, count: int) -> None:
        """A buyer spends from what a payment granted, then gets the payment refunded in full."""
        intent = self._pick(self._paying_intents(), pick)
        order = self.model.users[intent.user].orders[intent.order_id]
        self.consume(intent.user.rsplit("-", 1)[1], order.group if order.tokens else "Tok", count)
        if self.stripe.refunded(intent.intent_id) < intent.amount:
            self.stripe.refund(intent.intent_id)
            self._collect_stripe_side_effects()

    @rule(user=st.sampled_from(USERS), offer=st.sampled_from(["Pack", "Bundle", "Pass"]))
    def declined_then_paid(self, user: str, offer: str) -> None:
        """The card is declined (the order is refused), then the customer pays with another card."""
        before = set(self.model.intents)
        self.place_order(user, offer, 1)
        placed = set(self.model.intents) - before
        if not placed:
            return
        intent = self.model.intents[placed.pop()]
        self._declines(intent)
        declined = self.pending_events.pop()
        (self.delivered_events if self._deliver(declined) else self.pending_events).append(declined)
        self._pays(intent)

    @precondition(lambda self: bool(self.pending_events))
    @rule(pick=PICK)
    def deliver(self, pick: int) -> None:
        """Stripe delivers one pending event (any of them: late and out of order)."""
        if not self.pending_events:
            return
        event = self.pending_events.pop(pick % len(self.pending_events))
        if self._deliver(event):
            self.delivered_events.append(event)
        else:
            self.pending_events.append(event)

    @precondition(lambda self: bool(self.delivered_events))
    @rule(pick=PICK)
    def redeliver(self, pick: int) -> None:
        """Stripe delivers an event again (a duplicate)."""
        if self.delivered_events:
            self._deliver(self._pick(self.delivered_events, pick))

    @precondition(lambda self: bool(self.pending_events))
    @rule(pick=PICK)
    def deliver_during_stripe_outage(self, pick: int) -> None:
        """Every call to Stripe fails while one event is delivered: what needs Stripe (a duplicate's refund) fails
        with a 5xx and is done at the next delivery; nothing is half done."""
        if not self.pending_events:
            return
        event = self.pending_events.pop(pick % len(self.pending_events))
        self.stripe.fail_next(503, times=5)
        try:
            delivered = self._deliver(event, outage=True)
        finally:
            self.stripe._failures.clear()  # noqa: SLF001 - the outage ends with this delivery
        (self.delivered_events if delivered else self.pending_events).append(event)

    def _deliver(self, event: dict[str, Any], *, outage: bool = False) -> bool:
        """Deliver one event; True when the webhook accepted it (200), False when Stripe must retry it."""
        kind, payload = event["type"], event["data"]["object"]
        intent = self.model.intents[payload["id"] if kind.startswith("payment_intent.") else payload["payment_intent"]]
        self.touched.add(intent.user)
        expected = self.model.expected_intent_outcome(intent.intent_id, kind) if kind.startswith("payment_") else None
        answer = self.system.webhook(event)
        if outage and expected == "refund-duplicate" and answer.status != 200:
            assert answer.status in (502, 503), answer
            return False
        assert answer.status == 200, answer
        self._reach(f"delivered {kind}")
        if kind.startswith("payment_intent."):
            outcome = self.model.on_intent_event(intent.intent_id, kind)
            self._reach(f"{kind}: {outcome}")
            if outcome == "refund-duplicate":
                self.model.refund_duplicate(intent.intent_id)
        elif kind == "charge.refunded":
            self.model.on_charge_report(intent.intent_id, refunded=int(payload["amount_refunded"]))
        else:
            status = payload["status"]
            dispute = "won" if status in ("won", "warning_closed") else "lost"
            if kind == "charge.dispute.created":
                dispute = "open"
            self.model.on_charge_report(intent.intent_id, dispute=dispute, amount=int(payload["amount"]))
        self._collect_stripe_side_effects()
        return True

    def _apply_intent_outcome(self, intent: MIntent, kind: str, answer: Answer) -> None:
        outcome = self.model.on_intent_event(intent.intent_id, kind)
        if outcome == "refund-duplicate":
            self.model.refund_duplicate(intent.intent_id)
        order = self.model.users[intent.user].orders[intent.order_id]
        assert answer.body["status"] == order.status, (answer, order.status)

    # --- users -----------------------------------------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), group=st.sampled_from(GROUPS), count=st.sampled_from([1, 2, 5, 13, 40]))
    def consume(self, user: str, group: str, count: int) -> None:
        user_id = self._user(user)
        covered = self.model.covered(user_id, group, count)
        answer = self.system.api(
            "consumption", "POST", f"/credits/{group}/consume", body={"count": count}, user=user_id
        )
        if not covered:
            assert answer.status == 402, answer
            return
        assert answer.status == 200, answer
        self.model.consume(user_id, group, count)
        assert answer.body["balance"] == self.model.users[user_id].groups[group].balance, answer

    @rule(user=st.sampled_from(USERS), group=st.sampled_from(GROUPS), count=st.sampled_from([1, 3, 12]))
    def consume_with_key_twice(self, user: str, group: str, count: int) -> None:
        """A spend retried with its Idempotency-Key spends once."""
        user_id = self._user(user)
        key = f"spend-{next(self.event_ids)}"
        covered = self.model.covered(user_id, group, count)
        path = f"/credits/{group}/consume"
        first = self.system.api("consumption", "POST", path, body={"count": count}, user=user_id, idempotency_key=key)
        if not covered:
            assert first.status == 402, first
            return
        assert first.status == 200, first
        self.model.consume(user_id, group, count)
        again = self.system.api("consumption", "POST", path, body={"count": count}, user=user_id, idempotency_key=key)
        assert (again.status, again.body) == (first.status, first.body), (first, again)

    @rule(
        user=st.sampled_from(USERS),
        group=st.sampled_from(GROUPS),
        count=st.sampled_from([1, 4, 9, 30]),
        seconds=st.sampled_from([60, 300, 3600]),
    )
    def hold(self, user: str, group: str, count: int, seconds: int) -> None:
        user_id = self._user(user)
        covered = self.model.covered(user_id, group, count)
        body = {"count": count, "expiresInSeconds": seconds}
        answer = self.system.api("consumption", "POST", f"/credits/{group}/reservations", body=body, user=user_id)
        if not covered:
            assert answer.status == 402, answer
            return
        assert answer.status == 201, answer
        self.model.hold(user_id, answer.body["reservationId"], group, count, seconds)

    @precondition(lambda self: any(user.holds for user in self.model.users.values()))
    @rule(pick=PICK, everything=st.booleans())
    def capture(self, pick: int, everything: bool) -> None:
        holds = [(u, h) for u in self.model.users.values() for h in u.holds.values()]
        if not holds:
            return
        user, hold = self._pick(holds, pick)
        self.touched.add(user.name)
        count = None if everything else max(0, hold.count - 1)
        body = None if count is None else {"count": count}
        answer = self.system.api(
            "consumption", "POST", f"/reservations/{hold.hold_id}/capture", body=body, user=user.name
        )
        if hold.status == "captured":
            repeat = (hold.count if count is None else count) == hold.captured
            assert answer.status == (200 if repeat else 409), answer
            return
        if hold.status == "released":
            assert answer.status == 409, answer
            return
        assert answer.status == 200, answer
        self.model.capture(user.name, hold.hold_id, hold.count if count is None else count)

    @precondition(lambda self: any(user.holds for user in self.model.users.values()))
    @rule(pick=PICK)
    def release(self, pick: int) -> None:
        holds = [(u, h) for u in self.model.users.values() for h in u.holds.values()]
        if not holds:
            return
        user, hold = self._pick(holds, pick)
        self.touched.add(user.name)
        answer = self.system.api("consumption", "POST", f"/reservations/{hold.hold_id}/release", user=user.name)
        if hold.status == "captured":
            assert answer.status == 409, answer
            return
        assert answer.status == 200, answer
        if hold.status == "held":
            self.model.release(user.name, hold.hold_id)

    @rule(user=st.sampled_from(USERS))
    def expiry_check(self, user: str) -> None:
        if "expiry_check" in self.skipped:
            return
        user_id = self._user(user)
        answer = self.system.api("consumption", "POST", "/credits/expiry-check", body={}, user=user_id)
        assert answer.status == 200, answer
        assert sorted(g["offerGroup"] for g in answer.body["expired"]) == self.model.expired_groups(user_id), answer

    # --- admins ----------------------------------------------------------------------------------------------------

    @rule(
        user=st.sampled_from(USERS),
        group=st.sampled_from(GROUPS),
        tokens=st.sampled_from([1, 7, 50]),
        days=st.sampled_from([None, 1, 20]),
        retried=st.booleans(),
    )
    def admin_grant(self, user: str, group: str, tokens: int, days: int | None, retried: bool) -> None:
        user_id = self._user(user)
        expires = self.model.now + timedelta(days=days) if days else None
        body: dict[str, Any] = {"offerGroup": group, "tokens": tokens, "reason": "promo"}
        if expires is not None:
            body["expires"] = expires.isoformat()
        key = f"grant-{next(self.event_ids)}"
        path = f"/admin/users/{user_id}/grants"
        answer = self.system.api("consumption", "POST", path, body=body, admin=True, idempotency_key=key)
        assert answer.status == 201, answer
        self.model.grant(user_id, group, answer.body["lotId"], tokens, expires)
        if retried and "grant_replay" not in self.skipped:  # the answer was lost: the client retries with the key
            again = self.system.api("consumption", "POST", path, body=body, admin=True, idempotency_key=key)
            assert again.status in (200, 201) and again.body["entryId"] == answer.body["entryId"], (answer, again)

    @precondition(lambda self: self.batches)
    @rule(
        user=st.sampled_from(USERS),
        group=st.sampled_from(GROUPS),
        count=st.sampled_from([2, 3]),
        days=st.sampled_from([1, 20]),
    )
    def admin_grants_a_batch(self, user: str, group: str, count: int, days: int) -> None:
        """Promotional lots with one expiry: they come due together (in tiny transactions, an expiry in steps)."""
        user_id = self._user(user)
        expires = self.model.now + timedelta(days=days)
        body: dict[str, Any] = {"offerGroup": group, "tokens": 2, "reason": "promo", "expires": expires.isoformat()}
        for _ in range(count):
            answer = self.system.api("consumption", "POST", f"/admin/users/{user_id}/grants", body=body, admin=True)
            assert answer.status == 201, answer
            self.model.grant(user_id, group, answer.body["lotId"], 2, expires)

    @rule(group=st.sampled_from(["Tok", "Club"]), overdraft=st.sampled_from(["none", "limited", "unlimited"]))
    def admin_sets_policy(self, group: str, overdraft: str) -> None:
        policy = self.model.policy(group)
        policy.overdraft, policy.limit = overdraft, 3 if overdraft == "limited" else 0
        self.model.policies[group] = policy
        body = {"overdraft": overdraft, "overdraftLimit": policy.limit, "lowThreshold": policy.low}
        answer = self.system.api("ordering", "PUT", f"/admin/groups/{group}", body=body, admin=True)
        assert answer.status == 200, answer

    @rule(price=st.sampled_from([1000, 1200]), tokens=st.sampled_from([10, 12]))
    def admin_edits_pack(self, price: int, tokens: int) -> None:
        offer = self.model.offers["Pack"]
        offer.price, offer.tokens = price, tokens
        self._admin_put_offer("Pack")

    @rule(offer=st.sampled_from(["Vip", "Pass"]), retired=st.booleans())
    def admin_retires(self, offer: str, retired: bool) -> None:
        self.model.offers[offer].retired = retired
        self._admin_put_offer(offer)

    # --- time ------------------------------------------------------------------------------------------------------

    @rule(seconds=SECONDS)
    def time_passes(self, seconds: int) -> None:
        self.touched.update(self.model.users)
        self.system.clock.advance(seconds=seconds)
        self.model.advance(seconds)

    @rule()
    def scheduled_scan(self) -> None:
        self.touched.update(self.model.users)
        result = self.system.scan()
        assert not result.get("skipped"), result

    # Weights: Hypothesis picks among the rules that apply with equal odds; these paths lead to the states that
    # matter (paid orders, money going back), so they get more than one name.
    buy_and_pay_again = buy_and_pay
    stripe_catches_up_again = stripe_catches_up
    customer_pays_again = customer_pays
    merchant_refunds_again = merchant_refunds
    chargeback_again = chargeback
    hold_again = hold
    time_passes_again = time_passes

    # --- invariants ------------------------------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        """After every step: no 5xx and no read answers 409; each group's balance = its ledger, available = balance -
        held, every open lot within its tokens, and all of it as the model computes; order statuses; visible offers
        and subscriptions from paid, unrefunded purchases; every succeeded payment ended as one grant or one refund;
        each fact's event once."""
        if not hasattr(self, "system"):
            return
        self.steps += 1
        thorough = self.steps % 3 == 1  # everything every third step (and the first); else who the step acted for
        for user in self.model.users.values():
            if thorough or user.name in self.touched:
                self._check_credits(user.name)
                self._check_orders(user.name)
            if thorough:
                self._check_offers(user.name)
        self.touched.clear()
        self._tally()
        self._check_money()
        if thorough:
            self._check_events()

    def _tally(self) -> None:
        """What the example reached (``--hypothesis-show-statistics``): the harness must reach the hard states."""
        for user in self.model.users.values():
            reached = {
                "a group in debt": any(group.balance < 0 for group in user.groups.values()),
                "an expired lot revoked as a debt": any(
                    lot.debt for group in user.groups.values() for lot in group.lots.values()
                ),
                "a hold cut or released": any(hold.status == "released" for hold in user.holds.values()),
            }
            for order in user.orders.values():
                for name, hit in {
                    f"a withdrawn order ({order.status})": order.withdrawn,
                    "a duplicate payment refunded": bool(order.duplicate_refunds),
                    "an order paid by an abandoned intent": bool(
                        order.paying_intent and order.paying_intent != order.intents[-1]
                    ),
                    "a won dispute on a paid order": order.dispute == "won" and order.granted(),
                }.items():
                    reached[name] = reached.get(name, False) or hit
            for name, hit in reached.items():
                if hit:
                    self._reach(name)

    def _reach(self, name: str) -> None:
        with contextlib.suppress(InvalidArgument):  # a sequence replayed outside Hypothesis (regression tests)
            tally(name)
        self.reached.add(name)

    def _check_credits(self, user_id: str) -> None:
        answer = self.system.api("consumption", "GET", "/credits", user=user_id)
        assert answer.status == 200, answer
        shown = {group["offerGroup"]: group for group in answer.body["groups"]}
        expected = self.model.users[user_id].groups
        assert set(shown) == set(expected), (sorted(shown), sorted(expected))
        ledger = self._ledger(user_id)
        for name, group in expected.items():
            view = shown[name]
            assert view["available"] == view["balance"] - view["held"], view
            assert (view["balance"], view["held"]) == (group.balance, group.held), (name, view, group)
            assert sum(entry["tokens"] for entry in ledger if entry["offerGroup"] == name) == view["balance"], name
            remaining = group.remaining()
            lots = {lot["lotId"]: lot for lot in self._all_lots(user_id, view)}
            assert set(lots) == set(remaining), (name, sorted(lots), sorted(remaining))
            for lot_id, left in remaining.items():
                lot = lots[lot_id]
                assert 0 <= lot["remaining"] <= lot["tokens"], lot
                assert (lot["remaining"], lot.get("revoked", 0)) == (left, group.lots[lot_id].revoked), (lot, left)

    def _all_lots(self, user_id: str, view: dict[str, Any]) -> list[dict[str, Any]]:
        """The group's lots as shown, then every page behind its ``lotsCursor`` (reads show the first ones)."""
        lots = list(view["lots"])
        cursor = view.get("lotsCursor")
        while cursor:
            path = f"/credits/{view['offerGroup']}"
            page = self.system.api("consumption", "GET", path, user=user_id, query={"lotsCursor": cursor})
            assert page.status == 200, page
            type(self).lot_pages_read += 1
            assert (page.body["balance"], page.body["held"]) == (view["balance"], view["held"]), (view, page.body)
            lots += page.body["lots"]
            cursor = page.body.get("lotsCursor")
        assert len({lot["lotId"] for lot in lots}) == len(lots), lots  # no lot shown twice
        return lots

    def _ledger(self, user_id: str) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            answer = self.system.api("consumption", "GET", "/credits/ledger", user=user_id, query=query)
            assert answer.status == 200, answer
            entries += answer.body["entries"]
            cursor = answer.body.get("nextCursor")
            if not cursor:
                assert len({e["entryId"] for e in entries}) == len(entries)
                return entries

    def _check_orders(self, user_id: str) -> None:
        shown: dict[str, tuple[str, str]] = {}
        cursor = None
        while True:
            query = {"limit": "200", **({"cursor": cursor} if cursor else {})}
            answer = self.system.api("ordering", "GET", "/orders", user=user_id, query=query)
            assert answer.status == 200, answer
            shown |= {order["orderId"]: (order["status"], order["starts"]) for order in answer.body["orders"]}
            cursor = answer.body.get("nextCursor")
            if not cursor:
                break
        for order_id, (status, starts) in shown.items():
            assert status == self.model.order_status(user_id, order_id), (order_id, status)
            order = self.model.users[user_id].orders.get(order_id)
            if order is not None and order.starts is not None:
                assert _ts(starts) == order.starts, (order_id, starts, order.starts)

    def _check_offers(self, user_id: str) -> None:
        answer = self.system.api("ordering", "GET", "/offers", user=user_id)
        assert answer.status == 200, answer
        assert {offer["offerId"] for offer in answer.body["offers"]} == self.model.visible_offers(user_id), answer
        for offer in ("Bundle", "Pass", "Vip"):
            answer = self.system.api("ordering", "GET", f"/subscriptions/{offer}", user=user_id)
            assert answer.status == 200, answer
            assert answer.body["subscribed"] == self.model.subscribed(user_id, offer), (offer, answer)

    def _check_money(self) -> None:
        """Money in = credits out: each succeeded payment the system heard of is the one that paid its order, or
        was refunded in full (once)."""
        for intent in self.model.intents.values():
            if not intent.success_delivered:
                continue
            order = self.model.users[intent.user].orders[intent.order_id]
            paying = order.paying_intent == intent.intent_id
            refunded = self.stripe.refunded(intent.intent_id) >= intent.amount
            assert paying or refunded, f"{intent.intent_id} succeeded: no grant, no refund ({order.status})"
        ours = Counter(refund["payment_intent"] for refund in self.stripe.refunds if refund["metadata"].get("orderId"))
        assert all(count == 1 for count in ours.values()), f"a duplicate payment refunded twice: {ours}"

    def _check_events(self) -> None:
        events = [event for user in self.model.users for event in self.system.outbox(user)]
        assert len({detail["eventId"] for _, detail in events}) == len(events)
        paid = Counter(detail["orderId"] for kind, detail in events if kind == "OrderPaid")
        assert all(count == 1 for count in paid.values()), paid
        granted = Counter(
            detail["lotId"] for kind, detail in events if kind == "CreditsGranted" and not detail.get("restored")
        )
        assert all(count == 1 for count in granted.values()), granted
        expired = Counter(detail["lotId"] for kind, detail in events if kind == "CreditsExpired")
        assert all(count == 1 for count in expired.values()), expired
        if "grant_events" in self.skipped:
            return
        for user in self.model.users.values():
            for group in user.groups.values():
                for lot in group.lots.values():
                    if lot.order_id is None:
                        assert granted.get(lot.lot_id) == 1, f"admin grant {lot.lot_id} published no CreditsGranted"


def _ts(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


_EXAMPLES = itertools.count(1)
#: How many examples reached each hard state (``_tally``): the test checks the harness still gets there.
REACHED: Counter[str] = Counter()
__all__ = ["LifecycleMachine", "precondition"]
