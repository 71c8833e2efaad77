"""Ports: what the use cases need from the outside world. Adapters implement them; tests use in-memory fakes."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from usercredits.kernel.models import DomainEvent, Page

if TYPE_CHECKING:  # annotations only: loading a port must not load the rules behind it
    from usercredits.domain.credits import HoldCut
    from usercredits.domain.expiry_index import IndexedLot, IndexPage, LowMark, ScanState
    from usercredits.domain.models import (
        GroupPolicy,
        GroupState,
        IntentState,
        LedgerEntry,
        Lot,
        Movement,
        Offer,
        Order,
        OrderStatus,
        PaymentIntent,
        Reservation,
    )
    from usercredits.domain.reversal import Reversal
    from usercredits.domain.settlement import Settlement
    from usercredits.kernel.clock import Clock
    from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError


class StaleWindowError(Exception):
    """Raised by a repository when a paid window changed since it was read (optimistic concurrency)."""


class PurchaseLimitError(Exception):
    """Raised by a repository when a new order could not take a slot: its user already holds ``perUserLimit``
    counting orders of the offer (the counter's condition failed; nothing was written)."""


@dataclass(frozen=True)
class CreditSnapshot:
    """Everything a user holds (or holds in one group), read at once: group states by group, the open lots, the open
    holds, and (only when asked for) the closed lots."""

    groups: dict[str, GroupState] = field(default_factory=dict)
    lots: list[Lot] = field(default_factory=list)
    holds: list[Reservation] = field(default_factory=list)
    closed_lots: list[Lot] = field(default_factory=list)
    #: A view of the first lots only: per group, the tokens of its open lots before the ones given (a later page) and
    #: the cursor to the ones after them (absent: none after).
    lots_before: dict[str, int] = field(default_factory=dict)
    more_lots: dict[str, str] = field(default_factory=dict)


class SpendRefusedError(Exception):
    """A spend's condition failed; ``state`` is the group as read right after (None: never bought)."""

    def __init__(self, state: GroupState | None) -> None:
        super().__init__("spend refused")
        self.state = state


class CatalogRepository(Protocol):
    def list_offers(self) -> list[Offer]:
        """Every offer, retired ones included."""
        ...

    def get_offer(self, offer_id: str) -> Offer | None: ...

    def put_offer(self, offer: Offer, now: datetime) -> None: ...

    def retire_offer(self, offer_id: str, now: datetime) -> bool:
        """Mark the offer retired; False when it does not exist."""
        ...

    def group_policy(self, offer_group: str) -> GroupPolicy:
        """The group's overdraft and low-balance settings (defaults when the catalog has none)."""
        ...

    def put_group_policy(self, policy: GroupPolicy) -> None: ...


class CreditsRepository(Protocol):
    def snapshot(
        self,
        user_id: str,
        offer_group: str | None = None,
        *,
        consistent: bool = True,
        closed_ids: Collection[str] = (),
        due_by: datetime | None = None,
    ) -> CreditSnapshot:
        """All groups, open lots and open holds of a user (or of one group), for writes that plan against them
        (``consistent=False``: an eventually consistent read, half the cost, for callers whose writes are conditional
        on what they read anyway; ``closed_ids``: those closed lots too, for refunds of purchases whose lots closed;
        ``due_by``, with a group: only its lots expiring by then, in burn order, and the next one to expire)."""
        ...

    def view(self, user_id: str, offer_group: str | None = None, *, lots_after: str | None = None) -> CreditSnapshot:
        """What a read shows, at the cost of what it shows: the groups (all, or one), the first open lots of each in
        burn order with a cursor to the others (``more_lots``), or the lots after ``lots_after`` (a cursor it gave;
        ``lots_before``: the tokens of the lots before them), and the open holds (lapsed ones are released first)."""
        ...

    def group_state(self, user_id: str, offer_group: str) -> GroupState | None: ...

    def spend(
        self,
        user_id: str,
        offer_group: str,
        movement: Movement,
        *,
        floor: int | None,
        now: datetime,
        idempotency: IdempotencyRecord | None,
    ) -> GroupState:
        """Apply a spend if the available balance covers it down to ``floor`` (None: no floor) and no lot of the
        group is past its expiry; returns the group right after. Raises ``SpendRefusedError`` or
        ``IdempotentReplayError``."""
        ...

    def ledger_page(
        self, user_id: str, *, offer_group: str | None, limit: int, cursor: str | None
    ) -> Page[LedgerEntry]: ...

    def find_entry(self, user_id: str, offer_group: str, entry_id: str) -> LedgerEntry | None:
        """One movement of a group, wherever it is kept (journal or archive)."""
        ...

    def add_lot(
        self,
        user_id: str,
        lot: Lot,
        movement: Movement,
        before: GroupState | None,
        now: datetime,
        *,
        events: Sequence[DomainEvent] = (),
        idempotency: IdempotencyRecord | None = None,
    ) -> None:
        """Grant a lot outside an order, with its ``events`` in the outbox and ``idempotency`` recorded, in one
        transaction; ``StaleWindowError`` when the group moved since ``before`` was read, ``IdempotentReplayError``
        when the key was recorded already."""
        ...

    def close_lots(
        self,
        user_id: str,
        state: GroupState,
        lots: list[Lot],
        next_expiry: datetime | None,
        movements: list[Movement],
        events: list[DomainEvent],
        now: datetime,
        *,
        cuts: Sequence[HoldCut] = (),
    ) -> None:
        """Close lots with their remaining tokens (``movements``, the ``expire`` ones; the others are the ``cuts`` of
        holds whose tokens expired), write ``events`` to the outbox, in one transaction; ``StaleWindowError`` when the
        group (or its holds) moved."""
        ...

    def mark_low(self, user_id: str, offer_group: str, at: datetime, fact_id: str) -> str:
        """Mark the group as owing the ``CreditsLow`` of the movement ``fact_id`` (in the expiry scan's index) until
        its publish is accepted: the scheduled scan sends the ones left marked. Returns the mark (unique per
        crossing; the event's id is made from it)."""
        ...

    def clear_low(self, user_id: str, offer_group: str, mark: str) -> bool:
        """Clear the group's mark if it is still ``mark`` (a newer crossing's mark stays)."""
        ...

    def get_hold(self, user_id: str, reservation_id: str) -> Reservation | None: ...

    def create_hold(
        self,
        user_id: str,
        reservation: Reservation,
        movement: Movement,
        *,
        floor: int | None,
        now: datetime,
        idempotency: IdempotencyRecord | None,
    ) -> None:
        """Write the hold and set its tokens aside, if the available balance covers them down to ``floor``.
        Raises ``SpendRefusedError`` or ``IdempotentReplayError``."""
        ...

    def finish_hold(self, user_id: str, before: Reservation, after: Reservation, movement: Movement) -> bool:
        """Capture or release a hold still held with the count read (and, for a capture, not expired, and no lot of
        its group past its expiry): the hold and the group in one transaction. False when the hold was no longer
        held as read (nothing written); ``SpendRefusedError`` when a capture found a lot past its expiry."""
        ...


class OrderRepository(Protocol):
    def get_order(self, user_id: str, order_id: str) -> Order | None: ...

    def list_orders(self, user_id: str, *, status: OrderStatus | None, limit: int, cursor: str | None) -> Page[Order]:
        """The user's orders, newest first."""
        ...

    def find_orders(self, user_id: str, *, offer_id: str, status: OrderStatus) -> list[Order]: ...

    def group_states(self, user_id: str) -> Mapping[str, GroupState]:
        """The user's paid window per offer group, in one read."""
        ...

    def limit_slots(self, user_id: str, offer_id: str) -> int:
        """How many slots of the offer's per-user limit the user holds (``domain.limits``), read consistently."""
        ...

    def create_order(
        self,
        order: Order,
        *,
        settlement: Settlement | None,
        idempotency: IdempotencyRecord | None,
        per_user_limit: int | None = None,
    ) -> None:
        """Write a new order (already settled when ``settlement`` is given) in one transaction; an order that holds
        a slot (``limit_slot``) takes it in the same transaction, if the user holds fewer than ``per_user_limit``.

        Raises ``IdempotentReplayError`` when the idempotency key exists, ``PurchaseLimitError`` when the user holds
        ``per_user_limit`` slots already and ``StaleWindowError`` when a window moved.
        """
        ...

    def settle_order(
        self, settlement: Settlement, *, read: Order | None = None, idempotency: IdempotencyRecord | None = None
    ) -> bool:
        """Move a stored order to paid with its lots, windows and child orders, in one transaction conditional on the
        order being as ``read`` (or pending) and on ``idempotency`` (e.g. the Stripe event id) not being recorded.
        An order that comes to hold a slot again (``Order.slot_change``) takes it in that transaction, whatever the
        limit (the money was collected).

        Returns False when the condition failed (it was settled already, or changed: nothing is written twice).
        Raises ``StaleWindowError`` when a window moved.
        """
        ...

    def change_status(
        self,
        read: Order,
        status: OrderStatus,
        message: str,
        now: datetime,
        idempotency: IdempotencyRecord | None,
        events: Sequence[DomainEvent] = (),
    ) -> bool:
        """Move an order still as ``read`` to ``status`` with a history entry (and ``events`` in the outbox, in the
        same write); an order that stops counting gives its slot back in that write (``Order.slot_change``). False
        if it changed meanwhile."""
        ...

    def recorded(self, user_id: str, idempotency: IdempotencyRecord) -> IdempotentReplayError | None:
        """What an ``Idempotency-Key`` of the user recorded (as the error a replay raises), or None."""
        ...

    def record_payment(
        self, order: Order, *, read: Order, idempotency: IdempotencyRecord | None, events: Sequence[DomainEvent]
    ) -> bool:
        """Write what ``order`` says about its intents (``other_intents``, history) if it is still as ``read``, with
        ``events`` in the outbox and ``idempotency`` recorded, in one write; False if it changed or was recorded."""
        ...

    def find_by_payment_intent(self, payment_intent_id: str) -> tuple[str, str] | None:
        """(userId, orderId) of the order this payment intent was made for (its current intent or an older one)."""
        ...

    def set_payment_intent(
        self, order: Order, *, intent_id: str, attempt: int, now: datetime, idempotency: IdempotencyRecord | None
    ) -> Order:
        """Record a fresh intent on a pending order, conditional on its status and attempt being unchanged."""
        ...


class ReversalRepository(Protocol):
    def apply_reversal(self, reversal: Reversal, idempotency: IdempotencyRecord | None) -> bool:
        """Write everything ``reversal`` changes in one transaction, conditional on the order, lots and groups being
        as read (an order that stops counting, a full refund, gives its slot back: ``Order.slot_change``); False
        when something changed meanwhile (read again). Raises ``IdempotentReplayError`` when ``idempotency`` was
        recorded already."""
        ...


@dataclass(frozen=True)
class RefundPorts:
    """What settling returned money reads and writes."""

    orders: OrderRepository
    credits: CreditsRepository
    catalog: CatalogRepository
    reversals: ReversalRepository
    clock: Clock


def order_for_intent(
    payment_intent_id: str, metadata: dict[str, str], orders: OrderRepository
) -> tuple[str, str] | None:
    """(userId, orderId) of a payment: from the ``orderId``/``userId`` metadata we set on the intent, else through
    the intent id index."""
    if metadata.get("orderId") and metadata.get("userId"):
        return str(metadata["userId"]), str(metadata["orderId"])
    return orders.find_by_payment_intent(payment_intent_id) if payment_intent_id else None


class EventPublisher(Protocol):
    def publish(self, events: list[DomainEvent]) -> None:
        """Publish every event or raise (retries of partial failures are the adapter's job)."""
        ...


class PaymentGateway(Protocol):
    provider: str

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        """Create (or, for the same order and attempt, return again) the intent that collects ``order.total``."""
        ...

    def retrieve_intent(self, intent_id: str) -> IntentState:
        """The intent as the provider sees it now (status, amounts, last error, next action)."""
        ...

    def cancel_intent(self, intent_id: str) -> None:
        """Cancel an abandoned intent (no-op when it already ended)."""
        ...

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        """Refund what is left of a succeeded intent's payment; the refund's id, or None when nothing was left
        (refunded already). The same ``idempotency_key`` never refunds twice."""
        ...


class ExpiryIndex(Protocol):
    def begin(self, run_id: str, now: datetime, lease_until: datetime) -> ScanState | None:
        """Take the scan's lease (free, or expired) until ``lease_until`` and return the saved cursors; None when
        another run holds it."""
        ...

    def finish(self, run_id: str, state: ScanState, now: datetime) -> bool:
        """Save the cursors and give the lease back; False (nothing saved) when this run no longer holds it."""
        ...

    def read(
        self, hour: datetime, *, after: str | None, until: datetime, limit: int, not_warned: int | None = None
    ) -> IndexPage:
        """One request's worth of the bucket ``hour``: keys after ``after`` and at or before ``until``, in order
        (with ``not_warned``: only lots not marked warned for that window)."""
        ...

    def mark_warned(self, warned: Sequence[tuple[IndexedLot, int]]) -> list[bool]:
        """Record each (lot, window) as warned, conditional on the lot still being in the index unwarned for it;
        per pair, False when the condition failed (already recorded, or the lot closed)."""
        ...

    def clear_low(self, marks: Sequence[LowMark]) -> list[bool]:
        """Take the groups out of the index, each conditional on its mark being the one read."""
        ...


class BatchPublisher(Protocol):
    def publish_each(self, events: list[DomainEvent]) -> list[bool]:
        """Publish the events (retrying rejected ones); per event, whether the bus accepted it. Never raises for a
        rejected event."""
        ...


class Budget(Protocol):
    def exhausted(self) -> bool:
        """True when the run should take no more work (its time is running short)."""
        ...
