"""Ports of the subscriptions half: what its use cases need from storage and from the payment processor.

Only protocols and plain data here; the DynamoDB and Stripe adapters implement them, tests use in-memory fakes.
Longer than ~400 lines as one concept: the one contract between the half's use cases and its adapters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Money
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError
from usercredits.subscriptions.events import CustomerFact
from usercredits.subscriptions.instruments import InstrumentDetails, PaymentMethodKind
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Coupon,
    Customer,
    Descriptor,
    DisputeState,
    PaymentMethod,
    Plan,
    Subscription,
    SubscriptionStatus,
    SubscriptionStatusEvent,
    Transaction,
)


class ChildKind(StrEnum):
    """The kinds of item stored under a customer, next to its profile item."""

    ADDRESS = "address"
    PAYMENT_METHOD = "payment_method"
    SUBSCRIPTION = "subscription"
    TRANSACTION = "transaction"


#: One child item of a customer (stored as its own item, keyed by kind and local id).
ChildItem = Address | PaymentMethod | Subscription | Transaction


@dataclass(frozen=True)
class CouponUse:
    """One coupon use a save counts (``release`` False: the redemption put only if absent, ``usedCount`` + 1 only
    below ``maxUses``, a restricted coupon's per-customer use put only if absent) or gives back (``release``: the
    redemption deleted only if present, ``usedCount`` - 1, the per-customer use deleted), in the save's own
    transaction (docs/rules.md#coupon-redemption)."""

    code: str
    customer_id: str
    subscription_id: str
    restricted: bool
    release: bool = False


@dataclass(frozen=True)
class CustomerChanges:
    """What a save must write (computed by ``changes.customer_changes``).

    ``customer`` is the whole new state; its profile (every field but the child lists) is written with the version
    moved from ``expected_version`` to ``expected_version + 1``; ``expected_version`` None means the customer is new
    and must not exist yet. ``upserts`` are the new or changed children; ``deletions`` the children to remove.
    ``idempotency``: the request's ``Idempotency-Key``, recorded in the same write (put only if absent).
    ``facts``: the events the change records (``events.customer_facts``), written to the outbox in the same write.
    ``coupon_uses``: coupon uses counted or given back with the change (a refused count raises ``CouponError``).
    """

    customer: Customer
    expected_version: int | None
    profile_changed: bool
    upserts: tuple[ChildItem, ...] = ()
    deletions: tuple[tuple[ChildKind, str], ...] = ()
    idempotency: IdempotencyRecord | None = None
    facts: tuple[CustomerFact, ...] = ()
    coupon_uses: tuple[CouponUse, ...] = ()

    @property
    def changes_customer(self) -> bool:
        """True when the customer's own items need writing (the profile, a child)."""
        return self.profile_changed or bool(self.upserts or self.deletions)

    @property
    def is_empty(self) -> bool:
        """True when nothing needs writing."""
        return not self.changes_customer and self.idempotency is None


class StaleCustomerError(Exception):
    """Raised by ``CustomerRepository.save`` when the stored version is not the expected one (or, for a new
    customer, when one exists already): someone else saved meanwhile; reload and retry."""


class CustomerRepository(Protocol):
    """Customers stored as one partition per customer: a profile item plus an item per address, payment method,
    subscription and transaction (so no item grows with the customer's history, unlike the seed's one document)."""

    def load(self, user_id: str) -> Customer | None:
        """The user's whole customer (profile and every child) in one query, or None before first use."""
        ...

    def save(self, changes: CustomerChanges) -> Customer:
        """Write the changes in one transaction, conditional on the profile's version; returns the customer with its
        new version. Raises ``StaleCustomerError`` when the version moved, ``IdempotentReplayError`` (nothing
        written) when ``changes.idempotency``'s key was recorded already. ``paymentLockUntil`` is left out of the
        profile write: only the lock methods below touch it, so a save never undoes a lock taken meanwhile."""
        ...

    def recorded(self, user_id: str, scope: str, key: str) -> IdempotentReplayError | None:
        """What the user's ``Idempotency-Key`` ``key`` of ``scope`` recorded (as the error a replay raises), or None."""
        ...

    def acquire_payment_lock(self, user_id: str, *, now: datetime, until: datetime) -> bool:
        """Take the customer's soft payment lock until ``until`` with one conditional write (no lock, or one that
        expired before ``now``); False when another operation holds it (docs/rules.md#payment-lock)."""
        ...

    def release_payment_lock(self, user_id: str, *, until: datetime) -> None:
        """Release the lock taken until ``until`` (a no-op when it expired and was taken by someone else)."""
        ...


class RedemptionOutcome(StrEnum):
    REDEEMED = "redeemed"  # counted now
    ALREADY_REDEEMED = "already_redeemed"  # this (coupon, customer, subscription) was counted before: not again
    LIMIT_REACHED = "limit_reached"  # counting it would pass maxUses: nothing written
    USED_BY_CUSTOMER = "used_by_customer"  # a restricted coupon this customer redeemed for another subscription
    UNKNOWN_COUPON = "unknown_coupon"


@dataclass(frozen=True)
class SubscribeTerms:
    """What a subscribe needs besides the customer: the plan, the coupon named (if any), and whether the customer
    already used that coupon (what a restricted coupon allows once)."""

    plan: Plan | None
    coupon: Coupon | None = None
    used_by_customer: bool = False


@dataclass(frozen=True)
class Redemption:
    """A coupon discount about to be sent to the processor, whose use must be counted first."""

    coupon_code: str
    customer_id: str
    subscription_id: str
    discount_id: str
    restricted: bool


class CouponRepository(Protocol):
    def get(self, code: str) -> Coupon | None: ...

    def put(self, coupon: Coupon, now: datetime) -> Coupon:
        """Create or replace a coupon's terms (admin); ``used_count`` is kept from the stored coupon."""
        ...

    def redeem(
        self, code: str, customer_id: str, subscription_id: str, max_uses: int | None, *, restricted: bool = False
    ) -> RedemptionOutcome:
        """Count one use of the coupon for (customer, subscription), atomically.

        One transaction: put a redemption record keyed by (code, customer, subscription) only if absent, record the
        customer's use (only if absent when ``restricted``: ``USED_BY_CUSTOMER`` when this customer redeemed it for
        another subscription), and add 1 to ``usedCount`` only if ``usedCount < max_uses`` (no condition when
        ``max_uses`` is None). So a use is counted exactly once per (coupon, customer, subscription) however often a
        sync is retried, a restricted coupon once per customer even when two subscriptions race, and concurrent
        redemptions never take ``usedCount`` past ``max_uses`` (docs/rules.md#coupon-redemption).
        """
        ...

    def used_by_customer(self, code: str, customer_id: str) -> bool:
        """True when the customer has redeemed the coupon for any subscription (restricted coupons: once each)."""
        ...


class PlanRepository(Protocol):
    def get(self, plan_id: str) -> Plan | None: ...

    def list_plans(self) -> list[Plan]: ...

    def put(self, plan: Plan, now: datetime) -> Plan:
        """Create or replace a plan (admin). Subscriptions keep their own copy of the plan they were made from."""
        ...


@dataclass(frozen=True)
class ProcessorCustomer:
    """A customer as the processor has it."""

    id: str
    name: str = ""
    email: str | None = None
    phone: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    default_payment_method_id: str | None = None  # a processor id
    deleted: bool = False


@dataclass(frozen=True)
class ProcessorPaymentMethod:
    """A payment method as the processor has it (``customer_id``: the processor customer it is attached to)."""

    id: str
    kind: PaymentMethodKind
    details: InstrumentDetails | None = None
    customer_id: str | None = None
    billing: AddressFields | None = None


@dataclass(frozen=True)
class DiscountTerms:
    """A local discount as the processor must apply it (a Stripe coupon: ``amount_off`` for the cycles)."""

    discount_id: str
    amount: Money
    number_of_billing_cycles: int  # the cycles left
    never_expires: bool
    name: str
    # The discount's original number of cycles (``number_of_billing_cycles`` shrinks as it is billed): what names
    # its processor coupon, so an update recognises the coupon already applied. None: not known (the cycles left).
    total_billing_cycles: int | None = None


@dataclass(frozen=True)
class SubscriptionTerms:
    """What to create or update at the processor for a subscription (built by ``sync.subscription_terms``).

    ``first_billing_date`` in the future means a queued start (a trial end or billing anchor at the processor).
    """

    subscription_id: str  # the local id, sent as metadata so webhooks and loads find the local item
    customer_processor_id: str
    price_id: str
    payment_method_processor_id: str | None
    first_billing_date: datetime | None
    discounts: tuple[DiscountTerms, ...]
    descriptor: Descriptor | None
    cancel_at_period_end: bool
    user_id: str | None = None  # sent as metadata too, so a webhook finds the customer without a lookup
    billing_frequency_months: int = 1  # to turn discount cycles into processor months
    is_trial: bool = False  # a trial until first_billing_date (not a queued start)


@dataclass(frozen=True)
class ProcessorDiscount:
    """A discount applied at the processor; ``discount_id`` is the local id it was made from (kept in the processor
    coupon's metadata), None for one added at the processor directly."""

    processor_id: str
    amount: Money
    number_of_billing_cycles: int
    current_billing_cycle: int = 0
    discount_id: str | None = None
    name: str = ""


@dataclass(frozen=True)
class ProcessorSubscription:
    """A subscription as the processor has it, mapped to local statuses and dates (docs/rules.md#status-mapping)."""

    id: str
    status: SubscriptionStatus
    price: Money
    price_id: str
    is_trial: bool = False
    subscription_id: str | None = None  # the local id from metadata, when it was made here
    payment_method_id: str | None = None  # a processor id
    first_billing_date: datetime | None = None
    paid_through_date: datetime | None = None
    billing_period_start_date: datetime | None = None
    billing_period_end_date: datetime | None = None
    next_billing_date: datetime | None = None
    cancel_at_period_end: bool = False
    current_billing_cycle: int = 0
    failure_count: int = 0
    days_past_due: int = 0
    discounts: tuple[ProcessorDiscount, ...] = ()
    status_history: tuple[SubscriptionStatusEvent, ...] = ()  # newest first
    created_at: datetime | None = None


@dataclass(frozen=True)
class SubscriptionReport:
    """A processor's word on one subscription (a webhook event), sent ``created`` (epoch seconds)."""

    subscription: ProcessorSubscription
    customer_processor_id: str | None
    user_id: str | None  # from the subscription's metadata, when it was made here
    created: int


@dataclass(frozen=True)
class InvoiceReport:
    """A processor's word on an invoice (a webhook event): paid (``failure_count`` 0) or how many payment attempts
    failed, sent ``created`` (epoch seconds)."""

    customer_processor_id: str | None
    user_id: str | None  # from the subscription's metadata, when it was made here
    subscription_processor_id: str | None
    subscription_id: str | None  # the local id from the subscription's metadata
    failure_count: int
    created: int


@dataclass(frozen=True)
class ChargeBackReport:
    """What a ``charge.refunded`` or ``charge.dispute.*`` event says about a charge, for the subscriptions half (when
    no credits order paid with it): the charge, its customer when the event names one (a dispute does not), and for
    a dispute its state."""

    charge_processor_id: str
    customer_processor_id: str | None
    dispute: DisputeState | None = None


class SubscriptionProcessor(Protocol):
    """What saveProcessor / loadProcessor, refunds and voids need from the payment processor (Stripe).

    Every call that creates or changes something takes an idempotency key (``sync.idempotency_key``): a retry after
    a failure halfway through a sync gets the object the first attempt made instead of a duplicate. Failures raise
    ``usercredits.errors.PaymentGatewayError`` (a refusal) or ``UnavailableError`` (retry later).
    """

    def create_customer(self, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer: ...

    def update_customer(self, processor_id: str, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        """Send name, email, phone, metadata and the default payment method (as a processor id)."""
        ...

    def retrieve_customer(self, processor_id: str) -> ProcessorCustomer | None:
        """The processor customer, or None when it was deleted there."""
        ...

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        """A payment method by its processor id (to learn its kind and owner before adding it), or None."""
        ...

    def attach_payment_method(
        self,
        customer_processor_id: str,
        token: str,
        *,
        billing: AddressFields | None,
        make_default: bool,
        idempotency_key: str,
    ) -> ProcessorPaymentMethod: ...

    def update_payment_method(
        self, processor_id: str, *, billing: AddressFields | None, make_default: bool, idempotency_key: str
    ) -> ProcessorPaymentMethod: ...

    def detach_payment_method(self, processor_id: str, *, idempotency_key: str) -> None: ...

    def list_payment_methods(self, customer_processor_id: str) -> list[ProcessorPaymentMethod]: ...

    def create_subscription(self, terms: SubscriptionTerms, *, idempotency_key: str) -> ProcessorSubscription: ...

    def update_subscription(
        self, processor_id: str, terms: SubscriptionTerms, *, idempotency_key: str
    ) -> ProcessorSubscription:
        """Update everything but the first billing date (as the seed's driver does)."""
        ...

    def cancel_subscription(
        self, processor_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProcessorSubscription: ...

    def list_subscriptions(self, customer_processor_id: str) -> list[ProcessorSubscription]:
        """Every subscription of the customer, canceled ones included."""
        ...

    def list_transactions(self, customer_processor_id: str) -> list[Transaction]:
        """Charges (from invoices and one-off payments alike) and refunds, mapped to transactions; a refund names
        the refunded charge by its processor id in ``refunded_transaction_id`` (see ``merge_transactions``)."""
        ...

    def refund(self, transaction_processor_id: str, amount: Money | None, *, idempotency_key: str) -> Transaction:
        """Refund all (None) or part of a charge; returns the refund as a transaction."""
        ...

    def void(self, transaction_processor_id: str, *, idempotency_key: str) -> Transaction:
        """Cancel an uncaptured payment or refund an unsettled charge in full; returns the voided transaction."""
        ...

    def charge_customer(self, transaction_processor_id: str) -> str | None:
        """The processor customer a charge belongs to (None for an unknown charge or one of no customer): how a
        dispute event, which names only the charge, finds its customer."""
        ...


class PaymentMethodLookup(Protocol):
    """What a payment method token is, as the processor knows it (the Stripe adapter's ``retrieve_payment_method``)."""

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        """The payment method behind ``token`` (its kind, display fields and the processor customer it is attached
        to), or None when the processor does not know the token."""
        ...


class SubscriptionTermsReader(Protocol):
    """The plan and the coupon a subscribe names, and the customer's use of that coupon, read together (one request
    in DynamoDB)."""

    def read_terms(self, plan_id: str, coupon_code: str | None, *, customer_id: str | None) -> SubscribeTerms: ...


class StoragePorts(Protocol):
    """What loading, locking and saving a customer need (``SyncPorts``, and ``CustomerPorts`` for what calls no
    processor)."""

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class CustomerPorts:
    """Everything the customers use cases (``service``) need."""

    customers: CustomerRepository
    plans: PlanRepository
    coupons: CouponRepository
    terms: SubscriptionTermsReader
    payment_methods: PaymentMethodLookup
    clock: Clock


@dataclass(frozen=True)
class SyncPorts:
    """What the processor use cases need: storage for customers and coupons, the processor, and a clock."""

    customers: CustomerRepository
    coupons: CouponRepository
    processor: SubscriptionProcessor
    clock: Clock
