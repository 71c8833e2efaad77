"""Response bodies of the customers function, and their mapping from the domain models, field by field.

A response shows what a client needs, never the sync bookkeeping the domain keeps: the customer's ``version``,
``paymentLockUntil`` and ``lastProcessorSave``, the processor side's ``syncedFields`` and ``previousId``, and a
subscription's ``lastEventCreated``, ``lastInvoiceEventCreated`` and ``transactionsPending`` stay out. A field added
to a domain model (or to what is stored) therefore reaches no client until it is mapped here on purpose.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from usercredits.kernel.models import DomainModel, Money
from usercredits.subscriptions.instruments import InstrumentDetails, PaymentMethodKind
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Coupon,
    CouponKind,
    Customer,
    Descriptor,
    Discount,
    DiscountKind,
    DisputeState,
    PaymentMethod,
    Plan,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
    Transaction,
    TransactionCustomer,
    TransactionKind,
    TransactionStatus,
    TrialUnit,
)


class ProcessorStatus(DomainModel):
    """An item's standing with the payment processor: its processor id (a Stripe ``cus_``/``pm_``/``sub_``... id,
    None until sent) and whether local changes wait for ``POST /customer/sync`` (``initial``/``changed``)."""

    id: str | None
    state: ProcessorState


class AddressDetails(DomainModel):
    """The fields of an address (a customer's, or a transaction's billing address)."""

    name: str | None
    company: str | None
    phone: str | None
    country: str | None
    locality: str | None
    street_address: str | None
    extended_address: str | None
    postal_code: str | None


class AddressResponse(AddressDetails):
    address_id: str
    processor: ProcessorStatus
    created_at: datetime
    updated_at: datetime | None


class PaymentMethodResponse(DomainModel):
    """A way to pay; ``token`` is the processor payment method id still to attach (None once synced)."""

    payment_method_id: str
    kind: PaymentMethodKind
    token: str | None
    billing_address_id: str | None
    details: InstrumentDetails | None
    deleted: bool
    processor: ProcessorStatus
    created_at: datetime
    updated_at: datetime | None


class PlanResponse(DomainModel):
    plan_id: str
    name: str
    price: Money
    billing_frequency_months: int
    level: int
    processor_plan_id: str | None
    grace_period_days: int | None
    trial_duration: int | None
    trial_duration_unit: TrialUnit | None


class DiscountResponse(DomainModel):
    discount_id: str
    kind: DiscountKind
    amount: Money
    name: str
    number_of_billing_cycles: int
    never_expires: bool
    current_billing_cycle: int
    preserve: bool
    percent: Decimal | None
    coupon_code: str | None
    customer_id: str | None
    subscription_id: str | None
    processor: ProcessorStatus
    created_at: datetime


class SubscriptionStatusChange(DomainModel):
    status: SubscriptionStatus
    timestamp: datetime


class CustomerSubscriptionResponse(DomainModel):
    """A customer's subscription to a plan (named apart from the ordering function's ``SubscriptionResponse``: the
    dev server merges both into one OpenAPI document)."""

    subscription_id: str
    plan: PlanResponse
    price: Money
    discounts: list[DiscountResponse]
    payment_method_id: str | None
    # ``trialing``: an active subscription in its trial (isTrial), as Stripe says it; the domain keeps active + isTrial.
    status: SubscriptionStatus | Literal["trialing"] | None
    status_history: list[SubscriptionStatusChange]
    first_billing_date: datetime | None
    next_billing_date: datetime | None
    paid_through_date: datetime | None
    billing_period_start_date: datetime | None
    billing_period_end_date: datetime | None
    billing_day_of_month: int | None
    current_billing_cycle: int
    failure_count: int
    days_past_due: int
    is_trial: bool
    trial_duration: int | None
    trial_duration_unit: TrialUnit | None
    descriptor: Descriptor | None
    cancel_at_period_end: bool
    deleted: bool
    replaces: list[str]  # local ids of the subscriptions it ends at the processor once synced
    processor: ProcessorStatus
    created_at: datetime
    updated_at: datetime | None


class TransactionStatusChange(DomainModel):
    status: TransactionStatus
    timestamp: datetime


class TransactionCustomerDetails(DomainModel):
    name: str | None
    email: str | None
    phone: str | None
    company: str | None


class TransactionDiscountResponse(DomainModel):
    amount: Money
    name: str


class TransactionResponse(DomainModel):
    transaction_id: str
    kind: TransactionKind
    amount: Money
    status: TransactionStatus
    status_history: list[TransactionStatusChange]
    subscription_id: str | None
    plan_processor_id: str | None
    refunded_transaction_id: str | None
    period_start: datetime | None
    period_end: datetime | None
    dispute: DisputeState | None
    billing: AddressDetails | None
    customer: TransactionCustomerDetails | None
    discounts: list[TransactionDiscountResponse]
    descriptor: Descriptor | None
    instrument: InstrumentDetails | None
    processor: ProcessorStatus
    created_at: datetime
    updated_at: datetime | None


class CustomerResponse(DomainModel):
    customer_id: str
    user_id: str
    name: str
    email: str | None
    phone: str | None
    ip_address: str | None
    metadata: dict[str, str]
    addresses: list[AddressResponse]
    payment_methods: list[PaymentMethodResponse]
    default_payment_method_id: str | None
    subscriptions: list[CustomerSubscriptionResponse]
    transactions: list[TransactionResponse]
    processor: ProcessorStatus
    created_at: datetime
    updated_at: datetime | None


class CouponResponse(DomainModel):
    code: str
    name: str
    description: str
    kind: CouponKind
    amount: Money | None
    percent: Decimal | None
    number_of_billing_cycles: int
    start_at: datetime | None
    expire_at: datetime | None
    max_uses: int | None
    used_count: int
    restricted: bool
    created_at: datetime | None
    updated_at: datetime | None


class SubscriptionsResponse(DomainModel):
    subscriptions: list[CustomerSubscriptionResponse]


class CurrentSubscriptionResponse(DomainModel):
    subscription: CustomerSubscriptionResponse | None


class CouponCheckResponse(DomainModel):
    valid: bool
    error: str | None = None
    amount: Money | None = None


# --- from the domain -----------------------------------------------------------------------------------------------


def processor_status(processor: ProcessorItem) -> ProcessorStatus:
    return ProcessorStatus(id=processor.id, state=processor.state)


def _address_values(fields: AddressFields) -> dict[str, Any]:
    return {
        "name": fields.name,
        "company": fields.company,
        "phone": fields.phone,
        "country": fields.country,
        "locality": fields.locality,
        "street_address": fields.street_address,
        "extended_address": fields.extended_address,
        "postal_code": fields.postal_code,
    }


def address_response(address: Address) -> AddressResponse:
    return AddressResponse.model_validate(
        {
            **_address_values(address),
            "address_id": address.address_id,
            "processor": processor_status(address.processor),
            "created_at": address.created_at,
            "updated_at": address.updated_at,
        }
    )


def payment_method_response(method: PaymentMethod) -> PaymentMethodResponse:
    return PaymentMethodResponse(
        payment_method_id=method.payment_method_id,
        kind=method.kind,
        token=method.token,
        billing_address_id=method.billing_address_id,
        details=method.details,
        deleted=method.deleted,
        processor=processor_status(method.processor),
        created_at=method.created_at,
        updated_at=method.updated_at,
    )


def plan_response(plan: Plan) -> PlanResponse:
    return PlanResponse(
        plan_id=plan.plan_id,
        name=plan.name,
        price=plan.price,
        billing_frequency_months=plan.billing_frequency_months,
        level=plan.level,
        processor_plan_id=plan.processor_plan_id,
        grace_period_days=plan.grace_period_days,
        trial_duration=plan.trial_duration,
        trial_duration_unit=plan.trial_duration_unit,
    )


def discount_response(discount: Discount) -> DiscountResponse:
    return DiscountResponse(
        discount_id=discount.discount_id,
        kind=discount.kind,
        amount=discount.amount,
        name=discount.name,
        number_of_billing_cycles=discount.number_of_billing_cycles,
        never_expires=discount.never_expires,
        current_billing_cycle=discount.current_billing_cycle,
        preserve=discount.preserve,
        percent=discount.percent,
        coupon_code=discount.coupon_code,
        customer_id=discount.customer_id,
        subscription_id=discount.subscription_id,
        processor=processor_status(discount.processor),
        created_at=discount.created_at,
    )


def subscription_response(subscription: Subscription) -> CustomerSubscriptionResponse:
    return CustomerSubscriptionResponse(
        subscription_id=subscription.subscription_id,
        plan=plan_response(subscription.plan),
        price=subscription.price,
        discounts=[discount_response(discount) for discount in subscription.discounts],
        payment_method_id=subscription.payment_method_id,
        status=_shown_status(subscription),
        status_history=[
            SubscriptionStatusChange(status=event.status, timestamp=event.timestamp)
            for event in subscription.status_history
        ],
        first_billing_date=subscription.first_billing_date,
        next_billing_date=subscription.next_billing_date,
        paid_through_date=subscription.paid_through_date,
        billing_period_start_date=subscription.billing_period_start_date,
        billing_period_end_date=subscription.billing_period_end_date,
        billing_day_of_month=subscription.billing_day_of_month,
        current_billing_cycle=subscription.current_billing_cycle,
        failure_count=subscription.failure_count,
        days_past_due=subscription.days_past_due,
        is_trial=subscription.is_trial,
        trial_duration=subscription.trial_duration,
        trial_duration_unit=subscription.trial_duration_unit,
        descriptor=subscription.descriptor,
        cancel_at_period_end=subscription.cancel_at_period_end,
        deleted=subscription.deleted,
        replaces=list(subscription.replaces),
        processor=processor_status(subscription.processor),
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def _shown_status(subscription: Subscription) -> SubscriptionStatus | Literal["trialing"] | None:
    if subscription.is_trial and subscription.status is SubscriptionStatus.ACTIVE:
        return "trialing"
    return subscription.status


def _transaction_customer(customer: TransactionCustomer) -> TransactionCustomerDetails:
    return TransactionCustomerDetails(
        name=customer.name, email=customer.email, phone=customer.phone, company=customer.company
    )


def transaction_response(transaction: Transaction) -> TransactionResponse:
    billing, customer = transaction.billing, transaction.customer
    return TransactionResponse(
        transaction_id=transaction.transaction_id,
        kind=transaction.kind,
        amount=transaction.amount,
        status=transaction.status,
        status_history=[
            TransactionStatusChange(status=event.status, timestamp=event.timestamp)
            for event in transaction.status_history
        ],
        subscription_id=transaction.subscription_id,
        plan_processor_id=transaction.plan_processor_id,
        refunded_transaction_id=transaction.refunded_transaction_id,
        period_start=transaction.period_start,
        period_end=transaction.period_end,
        dispute=transaction.dispute,
        billing=None if billing is None else AddressDetails.model_validate(_address_values(billing)),
        customer=None if customer is None else _transaction_customer(customer),
        discounts=[
            TransactionDiscountResponse(amount=discount.amount, name=discount.name)
            for discount in transaction.discounts
        ],
        descriptor=transaction.descriptor,
        instrument=transaction.instrument,
        processor=processor_status(transaction.processor),
        created_at=transaction.created_at,
        updated_at=transaction.updated_at,
    )


def customer_response(customer: Customer) -> CustomerResponse:
    return CustomerResponse(
        customer_id=customer.customer_id,
        user_id=customer.user_id,
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        ip_address=customer.ip_address,
        metadata=dict(customer.metadata),
        addresses=[address_response(address) for address in customer.addresses],
        payment_methods=[payment_method_response(method) for method in customer.payment_methods],
        default_payment_method_id=customer.default_payment_method_id,
        subscriptions=[subscription_response(subscription) for subscription in customer.subscriptions],
        transactions=[transaction_response(transaction) for transaction in customer.transactions],
        processor=processor_status(customer.processor),
        created_at=customer.created_at,
        updated_at=customer.updated_at,
    )


def coupon_response(coupon: Coupon) -> CouponResponse:
    return CouponResponse(
        code=coupon.code,
        name=coupon.name,
        description=coupon.description,
        kind=coupon.kind,
        amount=coupon.amount,
        percent=coupon.percent,
        number_of_billing_cycles=coupon.number_of_billing_cycles,
        start_at=coupon.start_at,
        expire_at=coupon.expire_at,
        max_uses=coupon.max_uses,
        used_count=coupon.used_count,
        restricted=coupon.restricted,
        created_at=coupon.created_at,
        updated_at=coupon.updated_at,
    )
