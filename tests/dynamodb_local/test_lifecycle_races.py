"""The money lifecycle's race-sensitive steps, on the real engine with concurrent actors (moto is not atomic).

A smaller machine than ``tests/lifecycle`` (which runs sequentially on moto): each step is a burst of concurrent
actors on one user's purchases: Stripe delivering the successes of two intents of one order (and their duplicates),
refund and dispute events for the paying intent, spends, holds, captures and releases, and the expiry of the lots
(the clock moves between bursts). No exact model can say which interleaving won, so after each burst the invariants
that hold for every interleaving are checked:

- every succeeded payment ended as the one that paid its order, or was refunded (once, by us);
- per group: balance = the sum of the ledger, available = balance - held, held = what the open holds keep, every
  open lot within its tokens;
- each open lot of a paid order has exactly ``ceil(tokens × returned / total)`` revoked; a fully refunded order has
  no open lot and its window no longer counts;
- no operation failed with anything but the contract's refusals (402, 409), and every event is in the outbox once.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from threading import Barrier
from typing import Any

import pytest
from devtools.stripe_sim.payment_intents import FakeStripe
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository
from usercredits.adapters.stripe.payment_mapping import intent_state
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain import balances, ordering, payments, refunds, reservations, spending
from usercredits.domain.credits import lot_remaining
from usercredits.domain.models import DisputeStatus, GroupPolicy, Offer, OrderStatus
from usercredits.domain.reversal import ChargeReport, owed_lots, owed_share
from usercredits.errors import ConflictError, InsufficientCreditsError, InvalidRequestError, NotFoundError
from usercredits.kernel.models import Caller

pytestmark = pytest.mark.dynamodb_local

WORKERS = 12
#: What a burst may answer besides success: the contract's refusals, never a storage or internal error.
REFUSALS = (InsufficientCreditsError, ConflictError, InvalidRequestError, NotFoundError)
#: What the examples reached (checked at the end: the races must reach the states that matter).
REACHED: Counter[str] = Counter()


def _offers(suffix: str) -> list[Offer]:
    pack = Offer.model_validate(
        {
            "offerId": f"RacePack-{suffix}",
            "name": "race pack",
            "offerGroup": f"RTok-{suffix}",
            "prices": [{"amount": 1000, "currency": "usd"}],
            "tokens": 30,
            "cycle": "monthly",
        }
    )
    bundle = Offer.model_validate(
        {
            "offerId": f"RaceBundle-{suffix}",
            "name": "race bundle",
            "offerGroup": f"RClub-{suffix}",
            "prices": [{"amount": 3000, "currency": "usd"}],
            "tokens": 6,
            "cycle": "monthly",
            "appendDate": True,
            "combinedItems": [{"offerId": f"RacePack-{suffix}", "offerGroup": f"RTok-{suffix}", "quantity": 1}],
        }
    )
    return [pack, bundle]


class RaceMachine(RuleBasedStateMachine):
    stripe: FakeStripe

    def __init__(self) -> None:
        super().__init__()
        suffix = uuid.uuid4().hex[:8]
        self.user = f"race-{suffix}"
        self.clock = FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
        self.gateway = StripeGateway("sk_test_races", api_base=self.stripe.url, max_network_retries=0)
        self.catalog = DynamoCatalogRepository(cache_seconds=0)
        self.offers = _offers(suffix)
        for offer in self.offers:
            self.catalog.put_offer(offer, self.clock.now())
        self.catalog.put_group_policy(
            GroupPolicy(offer_group=self.offers[1].offer_group, overdraft="limited", overdraft_limit=2)
        )
        self.orders = DynamoOrderRepository()
        self.credits = DynamoCreditsRepository()
        self.ports = refunds.RefundPorts(
            orders=self.orders,
            credits=self.credits,
            catalog=self.catalog,
            reversals=DynamoReversalRepository(),
            clock=self.clock,
        )
        self.succeeded: dict[str, str] = {}  # intent -> order of every payment Stripe took
        self.paid_orders: list[str] = []
        self.holds: list[str] = []
        self.events = itertools.count(1)

    # --- helpers ---------------------------------------------------------------------------------------------------

    def _race(self, works: list[Callable[[], object]]) -> list[object]:
        start = Barrier(min(len(works), WORKERS))

        def run(index: int) -> object:
            if index < WORKERS:
                start.wait(timeout=30)
            try:
                return works[index]()
            except REFUSALS as refusal:
                return refusal

        with ThreadPoolExecutor(max_workers=WORKERS) as pool:
            return list(pool.map(run, range(len(works))))

    def _success(self, intent_id: str) -> Callable[[], object]:
        stripe_intent = dict(self.stripe.intents[intent_id])
        event = f"evt_{intent_id}"

        def deliver() -> object:
            return payments.apply_payment_event(
                event,
                "payment_intent.succeeded",
                intent_state(stripe_intent),
                orders=self.orders,
                payments=self.gateway,
                clock=self.clock,
                refunds=self.ports,
            )

        return deliver

    def _pay(self, intent_id: str, order_id: str) -> None:
        self.stripe.set_intent(intent_id, status="succeeded", amount_received=self.stripe.intents[intent_id]["amount"])
        self.succeeded[intent_id] = order_id

    # --- rules -----------------------------------------------------------------------------------------------------

    @rule(bundle=st.booleans(), both=st.booleans(), copies=st.integers(1, 4))
    def two_tabs_race(self, bundle: bool, both: bool, copies: int) -> None:
        """An order with two intents, one or both paid; Stripe delivers every success ``copies`` times at once."""
        offer = self.offers[1 if bundle else 0]
        caller = Caller(user_id=self.user)
        placed = ordering.place_order(
            ordering.PlaceOrder(offer.offer_id),
            caller,
            default_currency="usd",
            catalog=self.catalog,
            orders=self.orders,
            payments=self.gateway,
            clock=self.clock,
        ).order
        first = placed.payment_intent_id or ""
        if both:
            self._pay(first, placed.order_id)
        again = ordering.request_payment(
            placed.order_id, caller, idempotency_key=None, orders=self.orders, payments=self.gateway, clock=self.clock
        )
        second = again.order.payment_intent_id or ""
        self._pay(second, placed.order_id)
        works = [self._success(intent) for intent in (first, second) if intent in self.succeeded] * copies
        self._race(works)
        self.paid_orders.append(placed.order_id)

    @precondition(lambda self: bool(self.paid_orders))
    @rule(
        pick=st.integers(0, 100),
        refunds_to=st.lists(st.sampled_from([10, 2, 1]), min_size=1, max_size=3),  # 1/10, 1/2, all of it
        dispute=st.sampled_from([None, "open", "won", "lost"]),
        spends=st.integers(0, 6),
        holds=st.integers(0, 3),
        settle_holds=st.booleans(),
    )
    def money_goes_back_while_the_user_spends(
        self,
        pick: int,
        refunds_to: list[int],
        dispute: str | None,
        spends: int,
        holds: int,
        settle_holds: bool,
    ) -> None:
        order_id = self.paid_orders[pick % len(self.paid_orders)]
        order = self.orders.get_order(self.user, order_id)
        assert order is not None and order.payment_intent_id
        intent, total, group = order.payment_intent_id, order.total.amount, order.offer_group
        works: list[Callable[[], object]] = []
        for part in refunds_to:
            amount = total // part
            report = ChargeReport(payment_intent_id=intent, currency="usd", refunded_amount=amount)
            event = f"evt_refund_{intent}_{amount}"
            works.append(
                lambda r=report, e=event: refunds.apply_charge_report(e, "charge.refunded", r, ports=self.ports)
            )
        if dispute is not None:
            for status in ("open", dispute):
                report = ChargeReport(
                    payment_intent_id=intent, currency="usd", dispute_amount=total, dispute_status=DisputeStatus(status)
                )
                event = f"evt_dispute_{intent}_{status}"
                kind = "charge.dispute.created" if status == "open" else "charge.dispute.closed"
                works.append(lambda r=report, e=event, k=kind: refunds.apply_charge_report(e, k, r, ports=self.ports))
        for _ in range(spends):
            works.append(
                lambda: spending.consume_credits(
                    self.user,
                    group,
                    4,
                    idempotency_key=None,
                    catalog=self.catalog,
                    credits=self.credits,
                    clock=self.clock,
                    events=RecordingEventPublisher(),
                )
            )
        for _ in range(holds):
            works.append(self._hold(group))
        if settle_holds:
            for hold in self.holds:
                works.append(self._settle(hold, capture=ord(hold[-1]) % 2 == 0))
        self._race(works)

    def _hold(self, group: str) -> Callable[[], object]:
        def hold() -> object:
            reservation = reservations.create_reservation(
                self.user,
                group,
                3,
                expires_in_seconds=3600,
                idempotency_key=None,
                catalog=self.catalog,
                credits=self.credits,
                clock=self.clock,
            )
            self.holds.append(reservation.reservation_id)
            return reservation

        return hold

    def _settle(self, hold: str, *, capture: bool) -> Callable[[], object]:
        if capture:
            return lambda: reservations.capture_reservation(
                self.user,
                hold,
                None,
                credits=self.credits,
                clock=self.clock,
                catalog=self.catalog,
                events=RecordingEventPublisher(),
            )
        return lambda: reservations.release_reservation(self.user, hold, credits=self.credits, clock=self.clock)

    @rule(days=st.sampled_from([1, 20, 40]), readers=st.integers(1, 4))
    def time_passes_and_everyone_reads(self, days: int, readers: int) -> None:
        """Lots expire (and cut holds) while several reads and a spend race to close them."""
        self.clock.advance(days=days)
        works: list[Callable[[], object]] = [
            lambda: balances.list_credits(self.user, credits=self.credits, clock=self.clock, catalog=self.catalog)
        ] * readers
        works.append(
            lambda: spending.consume_credits(
                self.user,
                self.offers[0].offer_group,
                1,
                idempotency_key=None,
                catalog=self.catalog,
                credits=self.credits,
                clock=self.clock,
                events=RecordingEventPublisher(),
            )
        )
        self._race(works)

    # --- invariants ------------------------------------------------------------------------------------------------

    @invariant()
    def every_payment_is_one_grant_or_one_refund(self) -> None:
        ours = Counter(r["payment_intent"] for r in self.stripe.refunds if r["metadata"].get("orderId"))
        REACHED["payments refunded as duplicates"] = max(REACHED["payments refunded as duplicates"], len(ours))
        assert all(count == 1 for count in ours.values()), ours
        for intent, order_id in self.succeeded.items():
            order = self.orders.get_order(self.user, order_id)
            assert order is not None
            paying = order.payment_intent_id == intent and order.status in (
                OrderStatus.PAID,
                OrderStatus.EXPIRED,
                OrderStatus.REFUNDED,
            )
            assert paying != (ours[intent] == 1), (intent, order.status, order.payment_intent_id, ours[intent])

    @invariant()
    def balances_add_up(self) -> None:
        snapshot = self.credits.snapshot(self.user)
        entries = []
        cursor = None
        while True:
            page = self.credits.ledger_page(self.user, offer_group=None, limit=200, cursor=cursor)
            entries += page.items
            cursor = page.next_cursor
            if cursor is None:
                break
        for name, group in snapshot.groups.items():
            if group.balance < 0:
                REACHED["a group in debt"] += 1
            assert sum(e.tokens for e in entries if e.offer_group == name) == group.balance, name
            assert group.available == group.balance - group.held, name
            assert group.held == sum(h.count for h in snapshot.holds if h.offer_group == name), name
            remaining = lot_remaining([lot for lot in snapshot.lots if lot.offer_group == name], group.drawn)
            lots = {lot.lot_id: lot for lot in snapshot.lots}
            assert all(0 <= left <= lots[lot_id].tokens for lot_id, left in remaining.items()), name
        open_lots = {lot.lot_id: lot for lot in snapshot.lots}
        for order_id in self.paid_orders:
            order = self.orders.get_order(self.user, order_id)
            assert order is not None
            REACHED[f"order {order.status.value}"] += 1
            if order.status is OrderStatus.REFUNDED:
                assert not any(owed.lot_id in open_lots for owed in owed_lots(order)), order_id
                assert order.withdrawn
            for owed in owed_lots(order):
                lot = open_lots.get(owed.lot_id)
                if lot is not None and order.status in (OrderStatus.PAID, OrderStatus.EXPIRED):
                    assert lot.revoked == owed_share(owed.tokens, order.returned_amount, order.total.amount), owed


@pytest.fixture
def fake_stripe() -> Any:
    with FakeStripe(api_key="sk_test_races") as fake:
        yield fake


def test_the_lifecycle_races_keep_every_invariant(dynamodb_local: str, fake_stripe: FakeStripe) -> None:
    RaceMachine.stripe = fake_stripe
    REACHED.clear()
    run_state_machine_as_test(
        RaceMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=6,
            derandomize=True,
            deadline=None,
            database=None,
            print_blob=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print("lifecycle races reached:", dict(REACHED))
    assert REACHED["order refunded"] and REACHED["a group in debt"] and REACHED["payments refunded as duplicates"]
