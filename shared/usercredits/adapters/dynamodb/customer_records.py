"""The stored form of a customer's children and of its processor side: the JSON kept in the customers table.

A customer's addresses, payment methods, subscriptions and transactions are stored as native maps in their items'
``data`` attribute (``tables.CustomerChildItem``), and its processor side in the profile's ``processor`` attribute.
These models declare that JSON apart from the domain models, and ``customer_mapping`` maps the two field by field,
so a domain field renamed or added changes nothing stored until the mapping says so, and items already stored keep
loading. The keys are the camelCase ones written since the first version (pinned by the test fixture
``tests/integration/stored_customer_v1.json``). Money and an instrument's display fields are closed value objects
and are stored in their own JSON form; ``syncedFields`` is the domain's snapshot of an item's tracked fields, stored
as given (see ``subscriptions.tracking``).
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

from usercredits.kernel.models import Money
from usercredits.subscriptions.instruments import InstrumentDetails, PaymentMethodKind
from usercredits.subscriptions.models import (
    DiscountKind,
    DisputeState,
    ProcessorState,
    SubscriptionStatus,
    TransactionKind,
    TransactionStatus,
    TrialUnit,
)


class StoredModel(BaseModel):
    """Base of the stored JSON objects: camelCase keys, unknown keys refused (as they always were), built lazily.

    Defaults are those of the fields' first versions, so items written before a field existed still load.
    """

    model_config = ConfigDict(
        frozen=True, populate_by_name=True, alias_generator=to_camel, extra="forbid", defer_build=True
    )


class StoredProcessor(StoredModel):
    id: str | None = None
    state: ProcessorState = ProcessorState.INITIAL
    synced_fields: dict[str, JsonValue] | None = None
    # Written only while set (items stored before it existed have no such key).
    previous_id: str | None = Field(default=None, exclude_if=lambda value: value is None)


class StoredAddressFields(StoredModel):
    name: str | None = None
    company: str | None = None
    phone: str | None = None
    country: str | None = None
    locality: str | None = None
    street_address: str | None = None
    extended_address: str | None = None
    postal_code: str | None = None


class StoredAddress(StoredAddressFields):
    address_id: str
    processor: StoredProcessor = Field(default_factory=StoredProcessor)
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None


class StoredPaymentMethod(StoredModel):
    payment_method_id: str
    kind: PaymentMethodKind
    token: str | None = None
    billing_address_id: str | None = None
    details: InstrumentDetails | None = None
    deleted: bool = False
    processor: StoredProcessor = Field(default_factory=StoredProcessor)
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None


class StoredPlan(StoredModel):
    """The copy of its plan a subscription keeps."""

    plan_id: str
    name: str
    price: Money
    billing_frequency_months: int = 1
    level: int = 1
    processor_plan_id: str | None = None
    # Written only while set (copies stored before they existed have no such keys).
    grace_period_days: int | None = Field(default=None, exclude_if=lambda value: value is None)
    trial_duration: int | None = Field(default=None, exclude_if=lambda value: value is None)
    trial_duration_unit: TrialUnit | None = Field(default=None, exclude_if=lambda value: value is None)


class StoredDiscount(StoredModel):
    discount_id: str
    kind: DiscountKind
    amount: Money
    name: str = ""
    number_of_billing_cycles: int = 1
    never_expires: bool = False
    current_billing_cycle: int = 0
    preserve: bool = False
    percent: Decimal | None = None
    coupon_code: str | None = None
    customer_id: str | None = None
    subscription_id: str | None = None
    processor: StoredProcessor = Field(default_factory=StoredProcessor)
    created_at: AwareDatetime


class StoredDescriptor(StoredModel):
    name: str | None = None
    phone: str | None = None
    url: str | None = None


class StoredSubscriptionStatusEvent(StoredModel):
    status: SubscriptionStatus
    timestamp: AwareDatetime


class StoredSubscription(StoredModel):
    subscription_id: str
    plan: StoredPlan
    price: Money
    discounts: list[StoredDiscount] = Field(default_factory=list)
    payment_method_id: str | None = None
    status: SubscriptionStatus | None = None
    status_history: list[StoredSubscriptionStatusEvent] = Field(default_factory=list)
    first_billing_date: AwareDatetime | None = None
    next_billing_date: AwareDatetime | None = None
    paid_through_date: AwareDatetime | None = None
    billing_period_start_date: AwareDatetime | None = None
    billing_period_end_date: AwareDatetime | None = None
    billing_day_of_month: int | None = None
    current_billing_cycle: int = 0
    failure_count: int = 0
    days_past_due: int = 0
    is_trial: bool = False
    trial_duration: int | None = None
    trial_duration_unit: TrialUnit | None = None
    descriptor: StoredDescriptor | None = None
    cancel_at_period_end: bool = False
    deleted: bool = False
    replaces: list[str] = Field(default_factory=list, exclude_if=lambda value: not value)  # absent while empty
    last_event_created: int | None = None
    last_invoice_event_created: int | None = None
    transactions_pending: bool = False
    processor: StoredProcessor = Field(default_factory=StoredProcessor)
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None


class StoredTransactionStatusEvent(StoredModel):
    status: TransactionStatus
    timestamp: AwareDatetime


class StoredTransactionCustomer(StoredModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None


class StoredTransactionDiscount(StoredModel):
    amount: Money
    name: str = ""


class StoredTransaction(StoredModel):
    transaction_id: str
    processor: StoredProcessor = Field(default_factory=StoredProcessor)
    kind: TransactionKind = TransactionKind.SALE
    amount: Money
    status: TransactionStatus
    status_history: list[StoredTransactionStatusEvent] = Field(default_factory=list)
    subscription_id: str | None = None
    plan_processor_id: str | None = None
    refunded_transaction_id: str | None = None
    billing: StoredAddressFields | None = None
    customer: StoredTransactionCustomer | None = None
    discounts: list[StoredTransactionDiscount] = Field(default_factory=list)
    descriptor: StoredDescriptor | None = None
    instrument: InstrumentDetails | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime | None = None
    # Written only while set (transactions stored before they existed have no such keys).
    period_start: AwareDatetime | None = Field(default=None, exclude_if=lambda value: value is None)
    period_end: AwareDatetime | None = Field(default=None, exclude_if=lambda value: value is None)
    dispute: DisputeState | None = Field(default=None, exclude_if=lambda value: value is None)


#: The stored form of each kind of child item.
StoredChild = StoredAddress | StoredPaymentMethod | StoredSubscription | StoredTransaction
