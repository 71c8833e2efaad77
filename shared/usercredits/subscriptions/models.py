"""Customers, addresses, payment methods, plans, subscriptions, discounts, coupons and transactions.

Their fields as the API shows them: docs/api.md#customers-plans-subscriptions-and-coupons-customersfunction.

Every item that mirrors a processor object carries ``processor: {id, state, syncedFields}``. Items link to each other
by local ids (ULIDs), never by processor ids, so relations exist before anything reaches the processor. Money is
``Money`` (integer minor units); percents are ``Decimal``; every datetime is timezone-aware UTC.

Longer than ~400 lines as one concept: the subscriptions half's entities, which reference one another.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, JsonValue, field_validator, model_validator

from usercredits.errors import NotFoundError
from usercredits.kernel.models import DomainModel, Identifier, Money
from usercredits.subscriptions.instruments import InstrumentDetails, PaymentMethodKind


def _unset(value: object) -> bool:
    return value is None


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


#: A timezone-aware datetime, normalised to UTC (naive datetimes are refused: they hide an assumption).
UtcDateTime = Annotated[AwareDatetime, AfterValidator(_as_utc)]

_EMAIL = re.compile(r"^[\w.+-]+@([\w-]+\.)+[\w-]{2,10}$")
# The seed's statement descriptor: a 3, 7 or 12 character prefix, "*", and the rest up to 22 characters; or no "*".
_DESCRIPTOR_NAME = re.compile(r"^(?:[^*]{3}\*.{1,18}|[^*]{7}\*.{1,14}|[^*]{12}\*.{1,9}|[^*]{0,22})$")
_METADATA_KEYS = 50  # Stripe's limits for metadata, so a customer's metadata can always be sent
_METADATA_KEY_LENGTH = 40
_METADATA_VALUE_LENGTH = 500


class ProcessorState(StrEnum):
    """Where an item stands with the processor (the seed stores ``inital``, a typo we do not keep)."""

    INITIAL = "initial"  # created locally, never sent
    CHANGED = "changed"  # exists at the processor, edited locally since
    SAVED = "saved"  # in step with the processor
    LOCAL = "local"  # deliberately never sent (an app-managed trial, for instance)


#: States whose item counts as existing (the seed's ``isActive``): everything but ``initial``.
ACTIVE_STATES = frozenset({ProcessorState.SAVED, ProcessorState.CHANGED, ProcessorState.LOCAL})


class ProcessorItem(DomainModel):
    """The processor side of an item.

    ``synced_fields`` holds the tracked fields as they were at the last sync (JSON form): comparing with it tells
    an edit from a no-op, and restoring it reverts edits that never reached the processor
    (docs/rules.md#processor-states).
    """

    id: str | None = None
    state: ProcessorState = ProcessorState.INITIAL
    synced_fields: dict[str, JsonValue] | None = None
    # The processor object this item was linked to before it was deleted there (only until it is made again): a new
    # create must not reuse the first one's idempotency key. Left out of the JSON form while unset.
    previous_id: str | None = Field(default=None, exclude_if=lambda value: value is None)


class SyncableModel(DomainModel):
    """Base of the items kept in step with the processor; ``tracked_fields`` are the ones whose edit needs a sync."""

    tracked_fields: ClassVar[tuple[str, ...]] = ()

    processor: ProcessorItem = Field(default_factory=ProcessorItem)

    @property
    def local_id(self) -> str:
        """The item's local id (a ULID): what other items link to."""
        raise NotImplementedError


class AddressFields(DomainModel):
    """What a customer may say about an address (all of it is stored: docs/rules.md#payment-methods)."""

    name: str | None = Field(default=None, max_length=200)
    company: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")
    locality: str | None = Field(default=None, max_length=200)
    street_address: str | None = Field(default=None, max_length=200)
    extended_address: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=20)

    @field_validator("country", mode="before")
    @classmethod
    def _upper_country(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class Address(SyncableModel, AddressFields):
    tracked_fields: ClassVar[tuple[str, ...]] = tuple(AddressFields.model_fields)

    address_id: Identifier
    created_at: UtcDateTime
    updated_at: UtcDateTime | None = None

    @property
    def local_id(self) -> str:
        return self.address_id


class PaymentMethod(SyncableModel):
    """A way to pay. ``token`` is a processor payment method id (Stripe ``pm_...``) still to attach at the next sync:
    the seed's nonce, cleared once synced. ``details`` are filled from the processor."""

    tracked_fields: ClassVar[tuple[str, ...]] = ("billing_address_id", "token")

    payment_method_id: Identifier
    kind: PaymentMethodKind
    token: str | None = Field(default=None, max_length=255)
    billing_address_id: str | None = None
    details: InstrumentDetails | None = None
    deleted: bool = False  # removed at the processor (a tombstone: docs/rules.md#processor-reload)
    created_at: UtcDateTime
    updated_at: UtcDateTime | None = None

    @property
    def local_id(self) -> str:
        return self.payment_method_id


class TrialUnit(StrEnum):
    DAY = "day"
    MONTH = "month"


class Plan(DomainModel):
    """A plan defined by an admin; each subscription keeps a copy of the plan it was made from.

    ``grace_period_days``: how long after its paid-through date a subscription still entitles (None: the global
    setting, docs/rules.md#entitlement). ``trial_duration`` and ``trial_duration_unit`` (both or neither): the free
    trial a first subscription to the plan gets (docs/rules.md#trials).
    """

    plan_id: Identifier
    name: str = Field(min_length=1, max_length=200)
    price: Money
    billing_frequency_months: int = Field(default=1, ge=1, le=120, strict=True)
    level: int = Field(default=1, ge=0, le=1000, strict=True)  # precedence: a higher level is a better plan
    processor_plan_id: str | None = Field(default=None, max_length=255)  # the Stripe price id
    # Left out of the JSON form while unset: a synced subscription's snapshot of its plan (``syncedFields``) made
    # before they existed still equals the plan, so it does not look edited.
    grace_period_days: int | None = Field(default=None, ge=0, le=365, strict=True, exclude_if=_unset)
    trial_duration: int | None = Field(default=None, ge=1, le=730, strict=True, exclude_if=_unset)
    trial_duration_unit: TrialUnit | None = Field(default=None, exclude_if=_unset)

    @model_validator(mode="after")
    def _trial_terms_together(self) -> Plan:
        if (self.trial_duration is None) != (self.trial_duration_unit is None):
            raise ValueError("trialDuration and trialDurationUnit go together")
        return self


class DiscountKind(StrEnum):
    AMOUNT = "amount"
    PERCENT = "percent"
    COUPON = "coupon"
    COUPON_RESTRICTED = "coupon_restricted"  # a coupon each customer may use once
    PREVIOUS_SUBSCRIPTION = "previous_subscription"  # credit for the unused part of a lower subscription


_COUPON_KINDS = frozenset({DiscountKind.COUPON, DiscountKind.COUPON_RESTRICTED})


class Discount(DomainModel):
    """An amount off a subscription's price for ``number_of_billing_cycles`` cycles.

    Each discount has its own id, also at the processor (docs/rules.md#discounts).
    """

    discount_id: Identifier
    kind: DiscountKind
    amount: Money
    name: str = Field(default="", max_length=200)
    number_of_billing_cycles: int = Field(default=1, ge=1, strict=True)
    never_expires: bool = False
    current_billing_cycle: int = Field(default=0, ge=0, strict=True)
    preserve: bool = False  # kept by add_discounts next to the single largest other discount
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    coupon_code: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    processor: ProcessorItem = Field(default_factory=ProcessorItem)
    created_at: UtcDateTime

    @property
    def cycles_left(self) -> int:
        """Billing cycles it still applies to (the seed's ``numberOfBillingcyclesLeft``)."""
        return self.number_of_billing_cycles - self.current_billing_cycle

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Discount:
        if (self.percent is not None) != (self.kind is DiscountKind.PERCENT):
            raise ValueError("percent is set on percent discounts, and only there")
        if (self.coupon_code is not None) != (self.kind in _COUPON_KINDS):
            raise ValueError("couponCode is set on coupon discounts, and only there")
        if (self.customer_id is not None) != (self.kind is DiscountKind.COUPON_RESTRICTED):
            raise ValueError("customerId is set on restricted coupon discounts, and only there")
        if (self.subscription_id is not None) != (self.kind is DiscountKind.PREVIOUS_SUBSCRIPTION):
            raise ValueError("subscriptionId is set on previous-subscription credits, and only there")
        return self


class Descriptor(DomainModel):
    """The card-statement descriptor (docs/rules.md#statement-descriptor)."""

    name: str | None = Field(default=None, max_length=22)
    phone: str | None = Field(default=None, pattern=r"^[0-9.\-]{10,14}$")
    url: str | None = Field(default=None, max_length=13)

    @field_validator("name")
    @classmethod
    def _descriptor_name(cls, value: str | None) -> str | None:
        if value is not None and not _DESCRIPTOR_NAME.match(value):
            raise ValueError(
                "name must be a 3, 7 or 12 character prefix, '*' and a product name (22 characters in all), "
                "or up to 22 characters without '*'"
            )
        return value


class SubscriptionStatus(StrEnum):
    ACTIVE = "active"
    CANCELED = "canceled"
    EXPIRED = "expired"
    PAST_DUE = "past_due"
    PENDING = "pending"


class SubscriptionStatusEvent(DomainModel):
    status: SubscriptionStatus
    timestamp: UtcDateTime


class Subscription(SyncableModel):
    """A customer's subscription to a plan. ``paid_through_date`` drives entitlement (see ``entitlement``).

    ``status`` is None until the processor (or the app, for a local subscription) gives one.
    """

    tracked_fields: ClassVar[tuple[str, ...]] = (
        "discounts",
        "plan",
        "payment_method_id",
        "first_billing_date",
        "paid_through_date",
        "status",
        "price",
        "descriptor",
        "is_trial",
        "trial_duration",
        "trial_duration_unit",
        "cancel_at_period_end",
    )

    subscription_id: Identifier
    plan: Plan
    price: Money  # per cycle; the plan's price at first, the processor's once synced
    discounts: list[Discount] = Field(default_factory=list)
    payment_method_id: str | None = None
    status: SubscriptionStatus | None = None
    status_history: list[SubscriptionStatusEvent] = Field(default_factory=list)  # newest first
    first_billing_date: UtcDateTime | None = None
    next_billing_date: UtcDateTime | None = None
    paid_through_date: UtcDateTime | None = None
    billing_period_start_date: UtcDateTime | None = None
    billing_period_end_date: UtcDateTime | None = None
    billing_day_of_month: int | None = Field(default=None, ge=1, le=31)
    current_billing_cycle: int = Field(default=0, ge=0)
    failure_count: int = Field(default=0, ge=0)
    days_past_due: int = Field(default=0, ge=0)
    is_trial: bool = False
    trial_duration: int | None = Field(default=None, ge=0)
    trial_duration_unit: TrialUnit | None = None
    descriptor: Descriptor | None = None
    cancel_at_period_end: bool = False
    deleted: bool = False  # a soft delete (or deleted at the processor); not tracked, so it never triggers a sync
    # Local ids of the subscriptions this one ends at the processor once it is there (an upgrade, a queued switch):
    # docs/rules.md#replaced-subscriptions. Not tracked: it is never sent as such.
    replaces: list[str] = Field(default_factory=list)
    # Epoch seconds (comparable with Stripe's event ``created``) of the newest state recorded, per event family: a
    # subscription event or a sync/load result for ``last_event_created``, an invoice event for the other.
    last_event_created: int | None = Field(default=None, ge=0)
    last_invoice_event_created: int | None = Field(default=None, ge=0)
    transactions_pending: bool = False  # a create/update result recorded whose charges are not mirrored yet
    created_at: UtcDateTime
    updated_at: UtcDateTime | None = None

    @property
    def local_id(self) -> str:
        return self.subscription_id


class CouponKind(StrEnum):
    AMOUNT = "amount"
    PERCENT = "percent"


class Coupon(DomainModel):
    """A promotion code (docs/rules.md#coupons). ``max_uses`` None means unlimited; ``used_count`` only ever grows
    through the repository's atomic ``redeem``. A ``restricted`` coupon can be used once per customer."""

    code: Identifier
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=1000)
    kind: CouponKind
    amount: Money | None = None
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    number_of_billing_cycles: int = Field(default=1, ge=1, le=120, strict=True)
    start_at: UtcDateTime | None = None
    expire_at: UtcDateTime | None = None
    max_uses: int | None = Field(default=None, ge=1, strict=True)
    used_count: int = Field(default=0, ge=0, strict=True)
    restricted: bool = False
    created_at: UtcDateTime | None = None
    updated_at: UtcDateTime | None = None

    @model_validator(mode="after")
    def _value_matches_kind(self) -> Coupon:
        if self.kind is CouponKind.AMOUNT and (self.amount is None or self.percent is not None):
            raise ValueError("an amount coupon has an amount and no percent")
        if self.kind is CouponKind.PERCENT and (self.percent is None or self.amount is not None):
            raise ValueError("a percent coupon has a percent and no amount")
        if self.start_at is not None and self.expire_at is not None and self.expire_at < self.start_at:
            raise ValueError("expireAt is before startAt")
        return self


class TransactionKind(StrEnum):
    SALE = "sale"
    REFUND = "refund"


class TransactionStatus(StrEnum):
    """The seed's transaction statuses (Braintree's; docs/rules.md#status-mapping maps Stripe's onto them)."""

    AUTHORIZATION_EXPIRED = "authorization_expired"
    AUTHORIZED = "authorized"
    AUTHORIZING = "authorizing"
    SETTLEMENT_PENDING = "settlement_pending"
    SETTLEMENT_CONFIRMED = "settlement_confirmed"
    SETTLEMENT_DECLINED = "settlement_declined"
    FAILED = "failed"
    GATEWAY_REJECTED = "gateway_rejected"
    PROCESSOR_DECLINED = "processor_declined"
    SETTLED = "settled"
    SETTLING = "settling"
    SUBMITTED_FOR_SETTLEMENT = "submitted_for_settlement"
    VOIDED = "voided"


class DisputeState(StrEnum):
    """A chargeback on a sale: open (funds withdrawn), then won (given back) or lost (final)."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class TransactionStatusEvent(DomainModel):
    status: TransactionStatus
    timestamp: UtcDateTime


class TransactionCustomer(DomainModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None


class TransactionDiscount(DomainModel):
    amount: Money
    name: str = ""


class Transaction(DomainModel):
    """A charge or refund mirrored from the processor (read-only locally)."""

    transaction_id: Identifier
    processor: ProcessorItem = Field(default_factory=ProcessorItem)
    kind: TransactionKind = TransactionKind.SALE
    amount: Money
    status: TransactionStatus
    status_history: list[TransactionStatusEvent] = Field(default_factory=list)
    subscription_id: str | None = None
    plan_processor_id: str | None = None
    refunded_transaction_id: str | None = None  # on a refund: the local id of the refunded sale
    # On a subscription's sale: the billing period it paid (the invoice line's), so a refund or a lost dispute can
    # take that period's entitlement back (docs/rules.md#subscription-refunds-and-disputes).
    period_start: UtcDateTime | None = None
    period_end: UtcDateTime | None = None
    dispute: DisputeState | None = None
    billing: AddressFields | None = None
    customer: TransactionCustomer | None = None
    discounts: list[TransactionDiscount] = Field(default_factory=list)
    descriptor: Descriptor | None = None
    instrument: InstrumentDetails | None = None
    created_at: UtcDateTime
    updated_at: UtcDateTime | None = None

    @property
    def local_id(self) -> str:
        return self.transaction_id


def _metadata_fits_the_processor(value: dict[str, str]) -> dict[str, str]:
    if len(value) > _METADATA_KEYS:
        raise ValueError(f"metadata holds at most {_METADATA_KEYS} keys")
    for key, item in value.items():
        if not key or len(key) > _METADATA_KEY_LENGTH or len(item) > _METADATA_VALUE_LENGTH:
            raise ValueError(
                f"metadata keys are 1-{_METADATA_KEY_LENGTH} characters and values at most {_METADATA_VALUE_LENGTH}"
            )
    return value


def _normalised_email(value: object) -> object:
    if isinstance(value, str):
        value = value.strip().lower()
        if not _EMAIL.match(value):
            raise ValueError("email must look like name@domain.tld")
    return value


def _trimmed(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


#: The profile's validated fields, shared by the customer and ``PUT /customer``.
CustomerName = Annotated[str, BeforeValidator(_trimmed), Field(max_length=200)]
Email = Annotated[str, BeforeValidator(_normalised_email), Field(max_length=254)]
Phone = Annotated[str, Field(max_length=40)]
Metadata = Annotated[dict[str, str], AfterValidator(_metadata_fits_the_processor)]


class ProfileFields(DomainModel):
    """What a customer may change about themselves (``PUT /customer``); unset fields are left as they are."""

    name: CustomerName | None = None
    email: Email | None = None
    phone: Phone | None = None
    metadata: Metadata | None = None


class Customer(SyncableModel):
    """The customer of one user: profile, addresses, payment methods, subscriptions and transactions.

    Stored as one partition per customer with an item per child (see ``ports.CustomerRepository``), never as one
    ever-growing item. ``version`` guards concurrent saves; ``payment_lock_until`` is the soft lock of
    docs/rules.md#payment-lock.
    """

    tracked_fields: ClassVar[tuple[str, ...]] = (
        "name",
        "email",
        "phone",
        "ip_address",
        "default_payment_method_id",
        "metadata",
    )

    customer_id: Identifier
    user_id: str = Field(min_length=1, max_length=256)  # the JWT sub, whatever characters it uses
    name: CustomerName = ""
    email: Email | None = None
    phone: Phone | None = None
    ip_address: str | None = Field(default=None, max_length=45)
    metadata: Metadata = Field(default_factory=dict)
    addresses: list[Address] = Field(default_factory=list)
    payment_methods: list[PaymentMethod] = Field(default_factory=list)
    default_payment_method_id: str | None = None
    subscriptions: list[Subscription] = Field(default_factory=list)
    transactions: list[Transaction] = Field(default_factory=list)  # newest first
    payment_lock_until: UtcDateTime | None = None
    last_processor_save: UtcDateTime | None = None
    version: int = Field(default=0, ge=0)
    created_at: UtcDateTime
    updated_at: UtcDateTime | None = None

    @property
    def local_id(self) -> str:
        return self.customer_id

    def payment_method(self, payment_method_id: str) -> PaymentMethod:
        """The payment method ``payment_method_id`` (deleted ones included); NotFoundError otherwise."""
        found = next((item for item in self.payment_methods if item.payment_method_id == payment_method_id), None)
        if found is None:
            raise NotFoundError(f"payment method {payment_method_id} not found")
        return found

    def subscription(self, subscription_id: str) -> Subscription:
        """The subscription ``subscription_id``; NotFoundError otherwise."""
        found = next((item for item in self.subscriptions if item.subscription_id == subscription_id), None)
        if found is None:
            raise NotFoundError(f"subscription {subscription_id} not found")
        return found
