"""The customers table's PynamoDB models (customers with their addresses, payment methods, subscriptions and
transactions; plans; coupons and their redemptions): the subscriptions half's storage. ``template.yaml`` declares the
same keys and GSI, and ``tests/infrastructure`` holds the two together; the layout is below the base model.
"""

from __future__ import annotations

import os
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    DiscriminatorAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from usercredits.adapters.dynamodb.model_base import MoneyAttribute, TableMeta, share_connection


class ByProcessorIdIndex(GlobalSecondaryIndex["CustomersItem"]):
    """Customers' items by their payment processor id (Stripe webhooks find the local item here)."""

    class Meta:
        index_name = "ByProcessorId"
        projection = KeysOnlyProjection()

    processorId = UnicodeAttribute(hash_key=True)


class CustomersItem(Model):
    """Base of every item in the customers table (customers, plans, coupons: the subscriptions half, issue 6)."""

    class Meta(TableMeta):
        table_name = os.environ.get("CUSTOMERS_TABLE_NAME", "user-credits-customers")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    item_type = DiscriminatorAttribute(attr_name="itemType")
    ttl = TTLAttribute(null=True)
    processor_id = UnicodeAttribute(null=True, attr_name="processorId")

    by_processor_id = ByProcessorIdIndex()


# Customers table layout (``CUSTOMERS_TABLE_NAME``; see ``adapters.dynamodb.customers``):
#
# =====================  =============================  ============================================================
# item                   pk                             sk
# =====================  =============================  ============================================================
# customer profile       ``CUSTOMER#<userId>``          ``PROFILE`` (version, processor side, payment lock)
# address / payment      ``CUSTOMER#<userId>``          ``ADDRESS#<id>``, ``PM#<id>``, ``SUB#<id>``, ``TXN#<id>``
# method / subscription                                 (one item per child: no item grows with the history)
# / transaction
# idempotency record     ``IDEMPOTENCY#<userId>``       ``<scope>#<Idempotency-Key>`` (in the result's save; TTL)
# outbox item            ``CUSTOMER-OUTBOX#<userId>``   ``OUTBOX#<fact id>`` (one event, in the fact's save; TTL)
# plan                   ``PLAN#<planId>``              ``PLAN``; a copy under ``PLANS`` / ``PLAN#<planId>`` lists them
# coupon                 ``COUPON#<code>``              ``COUPON`` (terms and ``usedCount``)
# coupon redemption      ``COUPON#<code>``              ``REDEMPTION#<customerId>#<subscriptionId>``
# a customer's use       ``COUPON#<code>``              ``USEDBY#<customerId>`` (same item type; once per customer
#                                                       when the coupon is restricted)
# =====================  =============================  ============================================================


class CustomerProfileItem(CustomersItem, discriminator="customer"):
    """A customer's profile (sk ``PROFILE``): every field but the child lists, the version that guards saves, and
    the soft payment lock (``paymentLockUntil``, written only by the lock's own conditional updates)."""

    customer_id = UnicodeAttribute(attr_name="customerId")
    user_id = UnicodeAttribute(attr_name="userId")
    name = UnicodeAttribute(default="")
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    ip_address = UnicodeAttribute(null=True, attr_name="ipAddress")
    metadata = MapAttribute[str, Any](null=True)
    default_payment_method_id = UnicodeAttribute(null=True, attr_name="defaultPaymentMethodId")
    processor = MapAttribute[str, Any](null=True)  # {id, state, syncedFields} as JSON values
    payment_lock_until = UTCDateTimeAttribute(null=True, attr_name="paymentLockUntil")
    last_processor_save = UTCDateTimeAttribute(null=True, attr_name="lastProcessorSave")
    version = NumberAttribute(default=0)
    created_at = UTCDateTimeAttribute(attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")


class CustomerChildItem(CustomersItem):
    """Shared shape of a customer's child items: its local id, its user, and the child itself as a native map
    (the domain model's JSON form: integer minor units, ISO-8601 UTC strings, decimals as strings)."""

    local_id = UnicodeAttribute(attr_name="localId")
    user_id = UnicodeAttribute(attr_name="userId")
    data = MapAttribute[str, Any]()


class CustomerAddressItem(CustomerChildItem, discriminator="address"):
    """An address of a customer (sk ``ADDRESS#<addressId>``)."""


class CustomerPaymentMethodItem(CustomerChildItem, discriminator="paymentMethod"):
    """A payment method of a customer (sk ``PM#<paymentMethodId>``); ``processorId`` is the Stripe ``pm_...``."""


class CustomerSubscriptionItem(CustomerChildItem, discriminator="subscription"):
    """A subscription of a customer (sk ``SUB#<subscriptionId>``), its discounts and status history inside."""


class CustomerTransactionItem(CustomerChildItem, discriminator="transaction"):
    """A charge or refund mirrored from the processor (sk ``TXN#<transactionId>``)."""


class CustomerIdempotencyItem(CustomersItem, discriminator="idempotency"):
    """An ``Idempotency-Key`` of a customers route (pk ``IDEMPOTENCY#<userId>``, sk ``<scope>#<key>``): the request's
    fingerprint and the id of the result it produced, put only if absent in the save that writes that result;
    DynamoDB's TTL deletes it after 30 days."""

    fingerprint = UnicodeAttribute()
    result_id = UnicodeAttribute(attr_name="resultId")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class CustomerOutboxEventAttribute(MapAttribute[str, Any]):
    """The event of an outbox item: its detail-type and its detail as JSON text (the credits table's outbox shape,
    so the one publisher and ``devtools.replay_outbox`` read both tables' items alike)."""

    kind = UnicodeAttribute()
    detail = UnicodeAttribute()


class CustomerOutboxItem(CustomersItem, discriminator="outbox"):
    """The event of one fact of a customer save (``subscriptions.events``), put only if absent in the save's own
    transaction under the fact's id: the table's stream hands it to the event publisher once; TTL deletes it later."""

    events = ListAttribute(of=CustomerOutboxEventAttribute)
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class PlanItem(CustomersItem, discriminator="plan"):
    """A plan (pk ``PLAN#<planId>``, sk ``PLAN``), and its listing copy (pk ``PLANS``, sk ``PLAN#<planId>``)."""

    plan_id = UnicodeAttribute(attr_name="planId")
    name = UnicodeAttribute()
    price = MoneyAttribute()
    billing_frequency_months = NumberAttribute(attr_name="billingFrequencyMonths")
    level = NumberAttribute()
    processor_plan_id = UnicodeAttribute(null=True, attr_name="processorPlanId")
    grace_period_days = NumberAttribute(null=True, attr_name="gracePeriodDays")
    trial_duration = NumberAttribute(null=True, attr_name="trialDuration")
    trial_duration_unit = UnicodeAttribute(null=True, attr_name="trialDurationUnit")
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")


class CouponItem(CustomersItem, discriminator="coupon"):
    """A coupon's terms and use count (pk ``COUPON#<code>``, sk ``COUPON``); ``usedCount`` only grows, through the
    redemption transaction, and never past ``maxUses``."""

    code = UnicodeAttribute()
    name = UnicodeAttribute(default="")
    description = UnicodeAttribute(default="")
    kind = UnicodeAttribute()
    amount = MoneyAttribute(null=True)
    percent = UnicodeAttribute(null=True)  # a decimal, as text (never a float)
    number_of_billing_cycles = NumberAttribute(attr_name="numberOfBillingCycles")
    start_at = UTCDateTimeAttribute(null=True, attr_name="startAt")
    expire_at = UTCDateTimeAttribute(null=True, attr_name="expireAt")
    max_uses = NumberAttribute(null=True, attr_name="maxUses")
    used_count = NumberAttribute(default=0, attr_name="usedCount")
    restricted = BooleanAttribute(default=False)
    created_at = UTCDateTimeAttribute(null=True, attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")


class CouponRedemptionItem(CustomersItem, discriminator="couponRedemption"):
    """One counted use of a coupon (sk ``REDEMPTION#<customerId>#<subscriptionId>``): its existence is what makes
    a redemption count once however often a sync is retried."""

    code = UnicodeAttribute()
    customer_id = UnicodeAttribute(attr_name="customerId")
    subscription_id = UnicodeAttribute(attr_name="subscriptionId")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


share_connection(CustomersItem)
