"""A customer's children and processor side mapped to their stored form and back, field by field.

``child_data`` and ``child_from_data`` are what the customers repository writes to and reads from a child item's
``data`` map; ``processor_data`` and ``processor_from_data`` the profile's ``processor`` map. The stored models are
in ``customer_records``; every field is named on both sides here, so a domain rename fails type checking instead of
renaming a stored key.
"""

from __future__ import annotations

from typing import Any

from usercredits.adapters.dynamodb.customer_records import (
    StoredAddress,
    StoredAddressFields,
    StoredChild,
    StoredDescriptor,
    StoredDiscount,
    StoredPaymentMethod,
    StoredPlan,
    StoredProcessor,
    StoredSubscription,
    StoredSubscriptionStatusEvent,
    StoredTransaction,
    StoredTransactionCustomer,
    StoredTransactionDiscount,
    StoredTransactionStatusEvent,
)
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Descriptor,
    Discount,
    PaymentMethod,
    Plan,
    ProcessorItem,
    Subscription,
    SubscriptionStatusEvent,
    Transaction,
    TransactionCustomer,
    TransactionDiscount,
    TransactionStatusEvent,
)
from usercredits.subscriptions.ports import ChildItem, ChildKind

# --- the processor side --------------------------------------------------------------------------------------------


def stored_processor(processor: ProcessorItem) -> StoredProcessor:
    return StoredProcessor(
        id=processor.id,
        state=processor.state,
        synced_fields=processor.synced_fields,
        previous_id=processor.previous_id,
    )


def processor_from(stored: StoredProcessor) -> ProcessorItem:
    return ProcessorItem(
        id=stored.id, state=stored.state, synced_fields=stored.synced_fields, previous_id=stored.previous_id
    )


def processor_data(processor: ProcessorItem) -> dict[str, Any]:
    """The profile's ``processor`` map."""
    return stored_processor(processor).model_dump(mode="json", by_alias=True)


def processor_from_data(data: dict[str, Any] | None) -> ProcessorItem:
    """The customer's processor side from the profile's ``processor`` map (absent: never sent)."""
    return ProcessorItem() if data is None else processor_from(StoredProcessor.model_validate(data))


# --- shared parts --------------------------------------------------------------------------------------------------


def _stored_address_fields(fields: AddressFields) -> StoredAddressFields:
    return StoredAddressFields(
        name=fields.name,
        company=fields.company,
        phone=fields.phone,
        country=fields.country,
        locality=fields.locality,
        street_address=fields.street_address,
        extended_address=fields.extended_address,
        postal_code=fields.postal_code,
    )


def _address_fields_from(stored: StoredAddressFields) -> AddressFields:
    return AddressFields(
        name=stored.name,
        company=stored.company,
        phone=stored.phone,
        country=stored.country,
        locality=stored.locality,
        street_address=stored.street_address,
        extended_address=stored.extended_address,
        postal_code=stored.postal_code,
    )


def _stored_descriptor(descriptor: Descriptor | None) -> StoredDescriptor | None:
    if descriptor is None:
        return None
    return StoredDescriptor(name=descriptor.name, phone=descriptor.phone, url=descriptor.url)


def _descriptor_from(stored: StoredDescriptor | None) -> Descriptor | None:
    return None if stored is None else Descriptor(name=stored.name, phone=stored.phone, url=stored.url)


# --- addresses and payment methods ---------------------------------------------------------------------------------


def stored_address(address: Address) -> StoredAddress:
    return StoredAddress(
        **dict(_stored_address_fields(address)),
        address_id=address.address_id,
        processor=stored_processor(address.processor),
        created_at=address.created_at,
        updated_at=address.updated_at,
    )


def address_from(stored: StoredAddress) -> Address:
    return Address(
        **dict(_address_fields_from(stored)),
        address_id=stored.address_id,
        processor=processor_from(stored.processor),
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def stored_payment_method(method: PaymentMethod) -> StoredPaymentMethod:
    return StoredPaymentMethod(
        payment_method_id=method.payment_method_id,
        kind=method.kind,
        token=method.token,
        billing_address_id=method.billing_address_id,
        details=method.details,
        deleted=method.deleted,
        processor=stored_processor(method.processor),
        created_at=method.created_at,
        updated_at=method.updated_at,
    )


def payment_method_from(stored: StoredPaymentMethod) -> PaymentMethod:
    return PaymentMethod(
        payment_method_id=stored.payment_method_id,
        kind=stored.kind,
        token=stored.token,
        billing_address_id=stored.billing_address_id,
        details=stored.details,
        deleted=stored.deleted,
        processor=processor_from(stored.processor),
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


# --- subscriptions -------------------------------------------------------------------------------------------------


def _stored_plan(plan: Plan) -> StoredPlan:
    return StoredPlan(
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


def _plan_from(stored: StoredPlan) -> Plan:
    return Plan(
        plan_id=stored.plan_id,
        name=stored.name,
        price=stored.price,
        billing_frequency_months=stored.billing_frequency_months,
        level=stored.level,
        processor_plan_id=stored.processor_plan_id,
        grace_period_days=stored.grace_period_days,
        trial_duration=stored.trial_duration,
        trial_duration_unit=stored.trial_duration_unit,
    )


def _stored_discount(discount: Discount) -> StoredDiscount:
    return StoredDiscount(
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
        processor=stored_processor(discount.processor),
        created_at=discount.created_at,
    )


def _discount_from(stored: StoredDiscount) -> Discount:
    return Discount(
        discount_id=stored.discount_id,
        kind=stored.kind,
        amount=stored.amount,
        name=stored.name,
        number_of_billing_cycles=stored.number_of_billing_cycles,
        never_expires=stored.never_expires,
        current_billing_cycle=stored.current_billing_cycle,
        preserve=stored.preserve,
        percent=stored.percent,
        coupon_code=stored.coupon_code,
        customer_id=stored.customer_id,
        subscription_id=stored.subscription_id,
        processor=processor_from(stored.processor),
        created_at=stored.created_at,
    )


def stored_subscription(subscription: Subscription) -> StoredSubscription:
    return StoredSubscription(
        subscription_id=subscription.subscription_id,
        plan=_stored_plan(subscription.plan),
        price=subscription.price,
        discounts=[_stored_discount(discount) for discount in subscription.discounts],
        payment_method_id=subscription.payment_method_id,
        status=subscription.status,
        status_history=[
            StoredSubscriptionStatusEvent(status=event.status, timestamp=event.timestamp)
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
        descriptor=_stored_descriptor(subscription.descriptor),
        cancel_at_period_end=subscription.cancel_at_period_end,
        deleted=subscription.deleted,
        replaces=list(subscription.replaces),
        last_event_created=subscription.last_event_created,
        last_invoice_event_created=subscription.last_invoice_event_created,
        transactions_pending=subscription.transactions_pending,
        processor=stored_processor(subscription.processor),
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def subscription_from(stored: StoredSubscription) -> Subscription:
    return Subscription(
        subscription_id=stored.subscription_id,
        plan=_plan_from(stored.plan),
        price=stored.price,
        discounts=[_discount_from(discount) for discount in stored.discounts],
        payment_method_id=stored.payment_method_id,
        status=stored.status,
        status_history=[
            SubscriptionStatusEvent(status=event.status, timestamp=event.timestamp) for event in stored.status_history
        ],
        first_billing_date=stored.first_billing_date,
        next_billing_date=stored.next_billing_date,
        paid_through_date=stored.paid_through_date,
        billing_period_start_date=stored.billing_period_start_date,
        billing_period_end_date=stored.billing_period_end_date,
        billing_day_of_month=stored.billing_day_of_month,
        current_billing_cycle=stored.current_billing_cycle,
        failure_count=stored.failure_count,
        days_past_due=stored.days_past_due,
        is_trial=stored.is_trial,
        trial_duration=stored.trial_duration,
        trial_duration_unit=stored.trial_duration_unit,
        descriptor=_descriptor_from(stored.descriptor),
        cancel_at_period_end=stored.cancel_at_period_end,
        deleted=stored.deleted,
        replaces=list(stored.replaces),
        last_event_created=stored.last_event_created,
        last_invoice_event_created=stored.last_invoice_event_created,
        transactions_pending=stored.transactions_pending,
        processor=processor_from(stored.processor),
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


# --- transactions --------------------------------------------------------------------------------------------------


def _stored_transaction_customer(customer: TransactionCustomer) -> StoredTransactionCustomer:
    return StoredTransactionCustomer(
        name=customer.name, email=customer.email, phone=customer.phone, company=customer.company
    )


def _transaction_customer_from(stored: StoredTransactionCustomer) -> TransactionCustomer:
    return TransactionCustomer(name=stored.name, email=stored.email, phone=stored.phone, company=stored.company)


def stored_transaction(transaction: Transaction) -> StoredTransaction:
    billing, customer = transaction.billing, transaction.customer
    return StoredTransaction(
        transaction_id=transaction.transaction_id,
        processor=stored_processor(transaction.processor),
        kind=transaction.kind,
        amount=transaction.amount,
        status=transaction.status,
        status_history=[
            StoredTransactionStatusEvent(status=event.status, timestamp=event.timestamp)
            for event in transaction.status_history
        ],
        subscription_id=transaction.subscription_id,
        plan_processor_id=transaction.plan_processor_id,
        refunded_transaction_id=transaction.refunded_transaction_id,
        billing=None if billing is None else _stored_address_fields(billing),
        customer=None if customer is None else _stored_transaction_customer(customer),
        discounts=[StoredTransactionDiscount(amount=item.amount, name=item.name) for item in transaction.discounts],
        descriptor=_stored_descriptor(transaction.descriptor),
        instrument=transaction.instrument,
        created_at=transaction.created_at,
        updated_at=transaction.updated_at,
        period_start=transaction.period_start,
        period_end=transaction.period_end,
        dispute=transaction.dispute,
    )


def transaction_from(stored: StoredTransaction) -> Transaction:
    billing, customer = stored.billing, stored.customer
    return Transaction(
        transaction_id=stored.transaction_id,
        processor=processor_from(stored.processor),
        kind=stored.kind,
        amount=stored.amount,
        status=stored.status,
        status_history=[
            TransactionStatusEvent(status=event.status, timestamp=event.timestamp) for event in stored.status_history
        ],
        subscription_id=stored.subscription_id,
        plan_processor_id=stored.plan_processor_id,
        refunded_transaction_id=stored.refunded_transaction_id,
        billing=None if billing is None else _address_fields_from(billing),
        customer=None if customer is None else _transaction_customer_from(customer),
        discounts=[TransactionDiscount(amount=item.amount, name=item.name) for item in stored.discounts],
        descriptor=_descriptor_from(stored.descriptor),
        instrument=stored.instrument,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
        period_start=stored.period_start,
        period_end=stored.period_end,
        dispute=stored.dispute,
    )


# --- a child item's data map ---------------------------------------------------------------------------------------


def child_data(child: ChildItem) -> dict[str, Any]:
    """A child's stored JSON (what its item's ``data`` map holds)."""
    stored: StoredChild
    if isinstance(child, Address):
        stored = stored_address(child)
    elif isinstance(child, PaymentMethod):
        stored = stored_payment_method(child)
    elif isinstance(child, Subscription):
        stored = stored_subscription(child)
    else:
        stored = stored_transaction(child)
    return stored.model_dump(mode="json", by_alias=True)


def child_from_data(kind: ChildKind, data: dict[str, Any]) -> ChildItem:
    """The child a ``kind`` item's ``data`` map holds."""
    if kind is ChildKind.ADDRESS:
        return address_from(StoredAddress.model_validate(data))
    if kind is ChildKind.PAYMENT_METHOD:
        return payment_method_from(StoredPaymentMethod.model_validate(data))
    if kind is ChildKind.SUBSCRIPTION:
        return subscription_from(StoredSubscription.model_validate(data))
    return transaction_from(StoredTransaction.model_validate(data))
