"""Domain entities and value objects (frozen pydantic models, serialised in camelCase as the HTTP contract says).

Longer than ~400 lines as one concept: the credits half's entities and value objects (the shared ones are in
``usercredits.kernel.models``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from usercredits.kernel.models import Cycle, DomainModel, Identifier, Money
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

#: Largest quantity one order may ask for when the offer sets no quantityLimit (guards against absurd totals).
MAX_ORDER_QUANTITY = 10_000


class OrderStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"
    REFUSED = "refused"
    ERROR = "error"
    INCONSISTENT = "inconsistent"
    EXPIRED = "expired"
    REFUNDED = "refunded"
    CANCELED = "canceled"


#: Orders whose credits were granted: money going back takes credits back from them.
GRANTED = frozenset({OrderStatus.PAID, OrderStatus.EXPIRED, OrderStatus.REFUNDED})
#: The statuses in which a limited order holds one of its user's slots of its offer (``domain/limits.py``).
COUNTING = frozenset({OrderStatus.PENDING, OrderStatus.PAID, OrderStatus.EXPIRED})


class DisputeStatus(StrEnum):
    """A chargeback's state as far as credits care: open (funds withdrawn), then won or lost (final)."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


# --- how big a bundle can be --------------------------------------------------------------------------------------
# Everything one fact about an order changes is one DynamoDB TransactWriteItems, which takes at most 100 actions. The
# largest transaction a bundle goes through is a full refund (or a dispute) that cuts holds; paying it (the webhook, or
# a free order at once) is the same without the holds. Per purchase the order grants (the order itself and each
# bundle item; worst case: each in a group of its own) it writes its order item (the root's own, an item's child
# order), its lot and its group; once per transaction the idempotency record (Stripe event id or Idempotency-Key),
# the outbox item and the counter of the offer's per-user limit; and room is kept for 16 holds cut in the same
# transaction, two actions each (the open hold deleted, its settled copy put; more holds wait for the group's next
# step, see ``reversal._fitted``):
#
#     (1 + items) × 3 + 3 + 16 × 2 <= 100
#     items <= (100 - 3 - 32) // 3 - 1 = 65 // 3 - 1 = 20
#
# (IdempotentTransaction in adapters/dynamodb/transactions.py never sends more; tests/dynamodb_local/
# test_bundle_limits.py measures each transaction of the largest bundle.)

#: Per purchase an order grants: its order item (root or child), its lot (a full refund closes it: its open item
#: deleted and its closed copy put), its group.
ACTIONS_PER_PURCHASE = 4
#: Per order transaction: the idempotency record, the outbox item, the per-user limit's counter.
ACTIONS_PER_ORDER = 3
#: Hold cuts a refund or dispute of the largest bundle still makes in its own transaction (2 actions each); more wait
#: for the group's next step (``reversal._fitted``).
HOLD_CUTS_IN_PLACE = 6
#: Actions a transaction keeps for the holds it cuts.
HOLD_CUT_ACTIONS = HOLD_CUTS_IN_PLACE * 2
#: The most items an offer may bundle (``combinedItems``), so that no transaction of its orders passes the limit: 20.
MAX_BUNDLE_ITEMS = (MAX_TRANSACTION_ACTIONS - ACTIONS_PER_ORDER - HOLD_CUT_ACTIONS) // ACTIONS_PER_PURCHASE - 1


class CombinedOffer(DomainModel):
    """A bundle item: buying the root offer also grants ``quantity`` units of ``offer_id`` into ``offer_group``."""

    offer_id: Identifier
    offer_group: Identifier
    quantity: int = Field(default=1, ge=1, le=MAX_ORDER_QUANTITY, strict=True)


class OfferTerms(DomainModel):
    """Everything an admin defines about an offer (the body of ``PUT /admin/offers/{offerId}``)."""

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["subscription", "tokens", "expertise"] = "tokens"
    offer_group: Identifier
    prices: list[Money] = Field(min_length=1, max_length=50)
    tokens: int = Field(ge=0, le=10**12, strict=True)
    cycle: Cycle
    custom_cycle_seconds: int | None = Field(default=None, ge=1, le=100 * 366 * 86400, strict=True)
    append_date: bool = False
    quantity_limit: int | None = Field(default=None, ge=1, le=MAX_ORDER_QUANTITY, strict=True)
    # How many orders of this offer one user may hold that count (pending, paid or expired; see ``domain.limits``).
    per_user_limit: int | None = Field(default=None, ge=1, le=MAX_ORDER_QUANTITY, strict=True)
    overriding_key: Identifier | None = None
    weight: int = Field(default=0, ge=-(10**6), le=10**6, strict=True)
    unlocked_by: list[Identifier] = Field(default_factory=list, max_length=100)
    tags: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default_factory=list, max_length=50)
    popular: int | None = Field(default=None, ge=0, le=1000, strict=True)
    combined_items: list[CombinedOffer] = Field(
        default_factory=list,
        max_length=MAX_BUNDLE_ITEMS,
        description=(
            f"Offers bundled with this one: buying it also grants each item. At most {MAX_BUNDLE_ITEMS}: paying, "
            "refunding or disputing a bundle writes its order, child orders, lots and groups in one DynamoDB "
            "transaction (at most 100 actions); an order of a stored offer with more is refused (409)."
        ),
    )

    @field_validator("unlocked_by", "tags")
    @classmethod
    def _as_set(cls, values: list[str]) -> list[str]:
        # Set semantics, first occurrence kept (the seed's asUnlockingOfferGroups deduplicates the same way).
        return list(dict.fromkeys(values))

    @model_validator(mode="after")
    def _consistent(self) -> OfferTerms:
        currencies = [price.currency for price in self.prices]
        if len(set(currencies)) != len(currencies):
            raise ValueError("prices must hold at most one price per currency")
        if self.cycle is Cycle.CUSTOM and self.custom_cycle_seconds is None:
            raise ValueError("cycle 'custom' needs customCycleSeconds")
        if self.cycle is not Cycle.CUSTOM and self.custom_cycle_seconds is not None:
            raise ValueError("customCycleSeconds is only meaningful with cycle 'custom'")
        return self

    def price_in(self, currency: str) -> Money | None:
        """The offer's price in ``currency``, or None when it is not sold in that currency (no conversion)."""
        return next((price for price in self.prices if price.currency == currency), None)


class Offer(OfferTerms):
    """A catalog offer."""

    offer_id: Identifier
    retired: bool = False

    @property
    def is_locked(self) -> bool:
        """True when only buyers of one of ``unlocked_by`` groups may see and order it."""
        return bool(self.unlocked_by)


class OfferView(Offer):
    """An offer as shown to a caller: ``price`` is the one in the requested currency."""

    price: Money


class HistoryEntry(DomainModel):
    date: datetime
    status: OrderStatus
    message: str


class Purchase(DomainModel):
    """What one purchase grants: a copy of the offer's terms, the quantity bought, and (once paid) its window."""

    offer_id: str
    offer_group: str
    quantity: int
    unit_tokens: int
    total_tokens: int
    cycle: Cycle
    custom_cycle_seconds: int | None = None
    append_date: bool = False
    starts: datetime | None = None
    expires: datetime | None = None


class OrderLine(Purchase):
    """One bundle item of an order (``quantity`` already multiplied by the order's quantity)."""

    child_order_id: str | None = None


class IntentFigures(DomainModel):
    """What Stripe reported about one payment intent of an order that is not the intent paying it (an abandoned or
    a duplicate one): money that went back on it, and the refund we made of a duplicate payment."""

    refunded_amount: int = 0
    disputed_amount: int = 0
    dispute_status: DisputeStatus | None = None
    duplicate_refund_id: str | None = None


class Order(Purchase):
    """A purchase attempt, with a copy of what was bought so later catalog edits change nothing.

    ``payment_intent_id`` is the order's current intent (the newest one asked for) until an intent pays it; from then
    on it is the intent that paid it. Its money figures are the order's own (``refunded_amount``...); those of the
    order's other intents are kept apart in ``other_intents``, so a refund of an abandoned or duplicate payment never
    takes back the credits the paying one bought.
    """

    order_id: str
    user_id: str
    offer_name: str
    status: OrderStatus
    total: Money
    payment_intent_id: str | None = None
    parent_order_id: str | None = None
    payment_attempt: int = 0
    combined_items: list[OrderLine] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime
    # Money returned to the buyer (minor units; Stripe's cumulative ``amount_refunded``), the amount of a dispute
    # that is open or was lost, the dispute's state, and the returned amount the credit revocation is settled for.
    refunded_amount: int = 0
    disputed_amount: int = 0
    dispute_status: DisputeStatus | None = None
    revoked_for_amount: int = 0
    # The purchase no longer counts (its money went back in full: refunds, or a dispute open or lost): it unlocks
    # nothing, is no subscription and its window is withdrawn from its groups (bundle children carry it too).
    withdrawn: bool = False
    other_intents: dict[str, IntentFigures] = Field(default_factory=dict)
    # The offer had a ``perUserLimit`` when the order was placed (a copied term), and whether the order holds one of
    # the user's slots of that offer now (``domain/limits.py``: while it counts; given back when it stops counting).
    limited: bool = False
    limit_slot: bool = False

    @property
    def holds_slot(self) -> bool:
        """Whether the order, as it is, holds a slot of its user's per-user limit: it is limited and its status
        counts (``COUNTING``)."""
        return self.limited and self.status in COUNTING

    def with_slot(self) -> Order:
        """The order with ``limit_slot`` saying whether it holds a slot as it is now."""
        holds = self.holds_slot
        return self if self.limit_slot == holds else self.model_copy(update={"limit_slot": holds})

    def slot_change(self, after: Order) -> int:
        """How changing this order (as stored: its ``limit_slot`` is what it holds) into ``after`` moves its user's
        counter of the offer: +1 when it comes to hold a slot (a success after a refusal: taken whatever the counter
        says), -1 when it gives its slot back, 0 otherwise. The repositories write what this says."""
        return int(after.holds_slot) - int(self.limit_slot)

    @property
    def returned_amount(self) -> int:
        """What the buyer got back so far: refunds plus an open or lost dispute, never more than was paid."""
        return min(self.total.amount, self.refunded_amount + self.disputed_amount)

    @property
    def fully_returned(self) -> bool:
        """All of a priced order's money went back (a free order never does)."""
        return self.total.amount > 0 and self.returned_amount >= self.total.amount


class LedgerKind(StrEnum):
    GRANT = "grant"
    CONSUME = "consume"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    EXPIRE = "expire"
    REVOKE = "revoke"
    ADJUST = "adjust"


class Movement(DomainModel):
    """One change of a group's balance or held amount, as appended to the group's journal.

    ``tokens`` is the signed change of the balance (a hold moves nothing, a consume is negative); ``held`` the signed
    change of the held amount. Its position in the journal (commit order) gives its sequence number and balance after.
    """

    entry_id: str
    kind: LedgerKind
    tokens: int
    held: int = 0
    order_id: str | None = None
    lot_id: str | None = None
    reservation_id: str | None = None
    idempotency_key: str | None = None
    reason: str | None = None
    # A revocation that could not take everything it should (tokens already spent, beyond the overdraft policy).
    shortfall: int | None = None
    created_at: datetime


class LedgerEntry(Movement):
    """A movement with its place in the group's history: ``seq`` (1, 2, ...) and the balance right after it."""

    offer_group: str
    seq: int
    balance_after: int


class PurchaseWindow(DomainModel):
    """One purchase's validity in a group (an order, or a bundle item's child order), while it still counts."""

    purchase_id: str
    starts: datetime
    expires: datetime


class GroupState(DomainModel):
    """A user's offer group: the window paid for, the balance, and the journal of its latest movements.

    ``drawn`` is what has been taken from the group's open lots (consumed or captured, minus what closed lots had
    used): each open lot's remaining is derived from it (see ``credits.lot_remaining``). ``version`` guards the window
    and lot changes (optimistic concurrency); balance changes are atomic additions and need no version.
    """

    offer_group: str
    starts: datetime | None = None
    expires: datetime | None = None
    perpetual: bool = False
    paid_orders: int = 0
    version: int = 0
    balance: int = 0
    held: int = 0
    drawn: int = 0
    next_expiry: datetime | None = None
    journal: list[Movement] = Field(default_factory=list)
    journal_first_seq: int = 1
    # The purchases the window is made of: those with an expiry still running when the group was last written, and
    # the number of valid purchases without expiry. A purchase withdrawn by a refund leaves them, and the window is
    # computed again from what is left (``settlement.window_of``).
    purchases: list[PurchaseWindow] = Field(default_factory=list)
    perpetual_purchases: int = 0
    # Lots closed by their expiry (``POST /credits/expiry-check`` lists groups where this happened).
    expired_lots: int = 0

    @property
    def available(self) -> int:
        """What may be spent or held now: the balance minus what holds keep aside."""
        return self.balance - self.held

    def active_at(self, now: datetime) -> bool:
        """True while some paid purchase of the group is still valid."""
        return self.perpetual or (self.expires is not None and self.expires > now)


class Lot(DomainModel):
    """Tokens granted at once (by an order, a bundle item or an admin), spendable until ``expires`` (None: never)."""

    lot_id: str
    offer_group: str
    tokens: int
    starts: datetime
    expires: datetime | None = None
    order_id: str | None = None
    granted_at: datetime
    closed: bool = False
    # Tokens taken back by refunds or disputes: the lot counts as ``tokens - revoked`` from then on.
    revoked: int = 0
    # Once closed by its expiry: the tokens that expired, and the tokens taken back after it closed (what it had used
    # beyond what is still paid for, a debt on its group).
    expired: int = 0
    debt: int = 0

    @property
    def effective_tokens(self) -> int:
        """What the lot grants once revocations are taken off."""
        return self.tokens - self.revoked


class ReservationStatus(StrEnum):
    HELD = "held"
    CAPTURED = "captured"
    RELEASED = "released"


class Reservation(DomainModel):
    """Tokens set aside for work in progress: counted out of ``available`` until captured or released."""

    reservation_id: str
    offer_group: str
    count: int
    status: ReservationStatus
    captured: int = 0
    # Tokens taken off the hold because what it held left the balance (a refund, an expiry): ``count`` is what it
    # still holds.
    reduced: int = 0
    expires_at: datetime
    created_at: datetime
    updated_at: datetime


class GroupPolicy(DomainModel):
    """Catalog settings of an offer group: how far its balance may go below zero, and when it counts as low.

    ``overdraft``: ``none`` (default: a spend the available balance does not cover is refused), ``limited`` (down to
    ``-overdraftLimit``) or ``unlimited`` (the seed's post-paid mode).
    """

    offer_group: Identifier
    overdraft: Literal["none", "limited", "unlimited"] = "none"
    overdraft_limit: int = Field(default=0, ge=0, le=10**12, strict=True)
    low_threshold: int | None = Field(default=None, ge=0, le=10**12, strict=True)

    @property
    def floor(self) -> int | None:
        """The lowest available balance a spend may leave (None: no floor)."""
        if self.overdraft == "unlimited":
            return None
        return -self.overdraft_limit if self.overdraft == "limited" else 0


class PaymentIntent(DomainModel):
    """What the payment provider answers when asked to collect an order's total."""

    provider: str
    payment_intent_id: str
    client_secret: str


@dataclass(frozen=True)
class IntentState:
    """What the ordering use cases need from a PaymentIntent read back from Stripe (no card data, no secret).

    ``last_error`` is formatted like the seed's history message: ``"<message> - <type>: <code>"``; ``next_action`` is
    the type of the action the customer must take (``use_stripe_sdk``, ``redirect_to_url``...).
    """

    payment_intent_id: str
    status: str
    amount: int
    amount_received: int
    currency: str
    metadata: dict[str, str]
    last_error: str | None = None
    next_action: str | None = None


@dataclass(frozen=True)
class PlacedOrder:
    """An order with the payment intent that pays it (None: nothing to pay, or paid already)."""

    order: Order
    payment: PaymentIntent | None
