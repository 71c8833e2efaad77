"""PynamoDB models: the only place the DynamoDB table schemas live in code.

Both tables are single-table designs keyed by ``pk``/``sk`` (strings). ``template.yaml`` declares the same keys and
GSIs, and ``tests/infrastructure`` holds the two together.

Credits table layout (``CREDITS_TABLE_NAME``):

=====================  =============================  ===========================================================
item                   pk                             sk
=====================  =============================  ===========================================================
offer (catalog)        ``CATALOG``                    ``OFFER#<offerId>``
order                  ``USER#<userId>``              ``ORDER#<orderId>`` (orderId is time-ordered, newest last)
credit group           ``USER#<userId>``              ``CREDIT#<offerGroup>`` (paid window, balance, journal)
open lot               ``USER#<userId>``              ``CREDIT#<offerGroup>#LOT#<burn order>#<lotId>``
open hold              ``USER#<userId>``              ``CREDIT#~HOLD#<reservationId>`` (after every group)
closed lot             ``USER#<userId>``              ``LOTX#<lotId>`` (out of the ``CREDIT#`` range)
settled hold           ``USER#<userId>``              ``HOLD#<reservationId>`` (TTL 30 days)
ledger (archived)      ``USER#<userId>``              ``LEDGER#<entryId>``
purchase limit         ``USER#<userId>``              ``LIMIT#<offerId>`` (slots held of the offer's perUserLimit)
idempotency record     ``USER#<userId>``              ``IDEMPOTENCY#<scope>#<key>`` (TTL 30 days)
=====================  =============================  ===========================================================

GSIs: ``ByPaymentIntent`` (``paymentIntentId``; sparse, orders with an intent) and ``ByExpiry`` (``expiryBucket`` +
``expiresAt``; sparse, filled by the expiry scan's items). LSI: ``ByGroupLedger`` (``pk`` + ``groupEntry`` =
``<offerGroup>#<entryId>``; sparse, the archived ledger items), so a page of one group's ledger reads that group's
entries only.

Longer than ~400 lines as one concept: the schema of both tables, one PynamoDB model per item type.
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
    NumberSetAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection, LocalSecondaryIndex
from pynamodb.models import Model

_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class ByPaymentIntentIndex(GlobalSecondaryIndex["CreditsItem"]):
    """Orders by payment intent id (webhooks find their order here when the metadata is missing)."""

    class Meta:
        index_name = "ByPaymentIntent"
        projection = KeysOnlyProjection()

    paymentIntentId = UnicodeAttribute(hash_key=True)


class ByExpiryIndex(GlobalSecondaryIndex["CreditsItem"]):
    """Items that will need attention at a time (lots expiring, holds lapsing), bucketed by hour."""

    class Meta:
        index_name = "ByExpiry"
        projection = AllProjection()

    expiryBucket = UnicodeAttribute(hash_key=True)
    expiresAt = UnicodeAttribute(range_key=True)


class ByGroupLedgerIndex(LocalSecondaryIndex["CreditsItem"]):
    """A user's archived ledger entries by group, then entry id (time-ordered): one group's page in one Query."""

    class Meta:
        index_name = "ByGroupLedger"
        projection = AllProjection()

    pk = UnicodeAttribute(hash_key=True)
    groupEntry = UnicodeAttribute(range_key=True)


class CreditsItem(Model):
    """Base of every item in the credits table; ``itemType`` picks the subclass on read."""

    class Meta:
        table_name = os.environ.get("CREDITS_TABLE_NAME", "user-credits-credits")
        region = _REGION
        billing_mode = "PAY_PER_REQUEST"

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    item_type = DiscriminatorAttribute(attr_name="itemType")
    ttl = TTLAttribute(null=True)
    payment_intent_id = UnicodeAttribute(null=True, attr_name="paymentIntentId")
    expiry_bucket = UnicodeAttribute(null=True, attr_name="expiryBucket")
    expires_at = UnicodeAttribute(null=True, attr_name="expiresAt")
    group_entry = UnicodeAttribute(null=True, attr_name="groupEntry")

    by_payment_intent = ByPaymentIntentIndex()
    by_expiry = ByExpiryIndex()
    by_group_ledger = ByGroupLedgerIndex()


class MoneyAttribute(MapAttribute[str, Any]):
    amount = NumberAttribute()
    currency = UnicodeAttribute()


class CombinedOfferAttribute(MapAttribute[str, Any]):
    offer_id = UnicodeAttribute(attr_name="offerId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    quantity = NumberAttribute()


class OfferItem(CreditsItem, discriminator="offer"):
    """A catalog offer (pk ``CATALOG``)."""

    offer_id = UnicodeAttribute(attr_name="offerId")
    name = UnicodeAttribute()
    kind = UnicodeAttribute()
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    prices = ListAttribute(of=MoneyAttribute)
    tokens = NumberAttribute()
    cycle = UnicodeAttribute()
    custom_cycle_seconds = NumberAttribute(null=True, attr_name="customCycleSeconds")
    append_date = BooleanAttribute(attr_name="appendDate")
    quantity_limit = NumberAttribute(null=True, attr_name="quantityLimit")
    per_user_limit = NumberAttribute(null=True, attr_name="perUserLimit")
    overriding_key = UnicodeAttribute(null=True, attr_name="overridingKey")
    weight = NumberAttribute()
    unlocked_by = UnicodeSetAttribute(null=True, attr_name="unlockedBy")
    tags = UnicodeSetAttribute(null=True)
    popular = NumberAttribute(null=True)
    combined_items = ListAttribute(of=CombinedOfferAttribute, null=True, attr_name="combinedItems")
    retired = BooleanAttribute()
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")


class OrderLineAttribute(MapAttribute[str, Any]):
    """One bundle item of an order, with the bundled offer's terms copied at order time."""

    offer_id = UnicodeAttribute(attr_name="offerId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    quantity = NumberAttribute()
    unit_tokens = NumberAttribute(attr_name="unitTokens")
    total_tokens = NumberAttribute(attr_name="totalTokens")
    cycle = UnicodeAttribute()
    custom_cycle_seconds = NumberAttribute(null=True, attr_name="customCycleSeconds")
    append_date = BooleanAttribute(attr_name="appendDate")
    starts = UTCDateTimeAttribute(null=True)
    expires = UTCDateTimeAttribute(null=True)
    child_order_id = UnicodeAttribute(null=True, attr_name="childOrderId")


class HistoryEntryAttribute(MapAttribute[str, Any]):
    date = UTCDateTimeAttribute()
    status = UnicodeAttribute()
    message = UnicodeAttribute()


class OrderItem(CreditsItem, discriminator="order"):
    """An order (pk ``USER#<userId>``); carries a copy of the offer's terms so retiring the offer changes nothing."""

    order_id = UnicodeAttribute(attr_name="orderId")
    user_id = UnicodeAttribute(attr_name="userId")
    offer_id = UnicodeAttribute(attr_name="offerId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    offer_name = UnicodeAttribute(attr_name="offerName")
    status = UnicodeAttribute()
    quantity = NumberAttribute()
    total = MoneyAttribute()
    unit_tokens = NumberAttribute(attr_name="unitTokens")
    total_tokens = NumberAttribute(attr_name="totalTokens")
    cycle = UnicodeAttribute()
    custom_cycle_seconds = NumberAttribute(null=True, attr_name="customCycleSeconds")
    append_date = BooleanAttribute(attr_name="appendDate")
    starts = UTCDateTimeAttribute(null=True)
    expires = UTCDateTimeAttribute(null=True)
    parent_order_id = UnicodeAttribute(null=True, attr_name="parentOrderId")
    payment_attempt = NumberAttribute(attr_name="paymentAttempt")
    combined_items = ListAttribute(of=OrderLineAttribute, null=True, attr_name="combinedItems")
    history = ListAttribute(of=HistoryEntryAttribute)
    created_at = UTCDateTimeAttribute(attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")
    refunded_amount = NumberAttribute(default=0, attr_name="refundedAmount")
    disputed_amount = NumberAttribute(default=0, attr_name="disputedAmount")
    dispute_status = UnicodeAttribute(null=True, attr_name="disputeStatus")
    revoked_for_amount = NumberAttribute(default=0, attr_name="revokedForAmount")
    withdrawn = BooleanAttribute(default=False)
    # What Stripe reported about the order's other intents (abandoned or duplicate payments), as JSON:
    # {"<intent id>": {"refundedAmount", "disputedAmount", "disputeStatus", "duplicateRefundId"}}.
    other_intents = UnicodeAttribute(null=True, attr_name="otherIntents")
    # The offer had a perUserLimit when the order was placed; the order holds one of the user's slots of it now.
    limited = BooleanAttribute(default=False)
    limit_slot = BooleanAttribute(default=False, attr_name="limitSlot")


class PurchaseLimitItem(CreditsItem, discriminator="purchaseLimit"):
    """How many orders of an offer a user holds that count towards its ``perUserLimit`` (sk ``LIMIT#<offerId>``;
    see ``usercredits.domain.limits``). Written only in the transactions of the order changes that take a slot
    (``ADD count 1``, conditional on ``count < perUserLimit`` for a new order) or give one back (``ADD count -1``)."""

    user_id = UnicodeAttribute(attr_name="userId")
    offer_id = UnicodeAttribute(attr_name="offerId")
    slots = NumberAttribute(default=0, attr_name="count")  # `count` would hide Model.count()
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")


class PaymentIntentLinkItem(CreditsItem, discriminator="paymentIntentLink"):
    """One payment intent made for an order (sk ``INTENT#<orderId>#<intentId>``), in the ``ByPaymentIntent`` index,
    written with the intent's order change: events about an abandoned intent that carry no metadata (disputes) still
    find their order. Never updated."""

    order_id = UnicodeAttribute(attr_name="orderId")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class OutboxEventAttribute(MapAttribute[str, Any]):
    """One event of an outbox item: its detail-type and its detail as JSON text (kept as written)."""

    kind = UnicodeAttribute()
    detail = UnicodeAttribute()


class MovementAttribute(MapAttribute[str, Any]):
    """One journal movement (see ``usercredits.domain.models.Movement``)."""

    entry_id = UnicodeAttribute(attr_name="entryId")
    kind = UnicodeAttribute()
    tokens = NumberAttribute()
    held = NumberAttribute(default=0)
    order_id = UnicodeAttribute(null=True, attr_name="orderId")
    lot_id = UnicodeAttribute(null=True, attr_name="lotId")
    reservation_id = UnicodeAttribute(null=True, attr_name="reservationId")
    idempotency_key = UnicodeAttribute(null=True, attr_name="idempotencyKey")
    reason = UnicodeAttribute(null=True)
    shortfall = NumberAttribute(null=True)
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class PurchaseWindowAttribute(MapAttribute[str, Any]):
    """One purchase still counting in a group's window (see ``usercredits.domain.models.PurchaseWindow``)."""

    purchase_id = UnicodeAttribute(attr_name="purchaseId")
    starts = UTCDateTimeAttribute()
    expires = UTCDateTimeAttribute()


class CreditGroupItem(CreditsItem, discriminator="creditGroup"):
    """A user's offer group (sk ``CREDIT#<group>``): paid window, balance, and the journal of recent movements.

    ``available`` (= balance - held) is stored because DynamoDB conditions cannot do arithmetic: a spend is
    conditional on ``available >= :count``. The journal lists movements in commit order; compaction moves the
    oldest ones to ledger items (``journalFirstSeq`` is the sequence number of ``journal[0]``).
    """

    user_id = UnicodeAttribute(attr_name="userId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    starts = UTCDateTimeAttribute(null=True)
    expires = UTCDateTimeAttribute(null=True)
    # True once a purchase without expiry (cycle "once") is paid: the group never lapses.
    perpetual = BooleanAttribute(default=False)
    paid_orders = NumberAttribute(default=0, attr_name="paidOrders")
    # Optimistic concurrency for the window and the lots: changes to them are conditional on the version read.
    version = NumberAttribute(default=0)
    balance = NumberAttribute(default=0)
    held = NumberAttribute(default=0)
    available = NumberAttribute(default=0)
    drawn = NumberAttribute(default=0)
    next_expiry = UTCDateTimeAttribute(null=True, attr_name="nextExpiry")
    journal = ListAttribute(of=MovementAttribute, null=True)
    journal_first_seq = NumberAttribute(default=1, attr_name="journalFirstSeq")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")
    purchases = ListAttribute(of=PurchaseWindowAttribute, null=True)
    perpetual_purchases = NumberAttribute(default=0, attr_name="perpetualPurchases")
    expired_lots = NumberAttribute(default=0, attr_name="expiredLots")


class LotItem(CreditsItem, discriminator="lot"):
    """Tokens granted at once (sk ``CREDIT#<group>#LOT#<lotId>``); in the ``ByExpiry`` index while open."""

    lot_id = UnicodeAttribute(attr_name="lotId")
    user_id = UnicodeAttribute(attr_name="userId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    tokens = NumberAttribute()
    starts = UTCDateTimeAttribute()
    expires = UTCDateTimeAttribute(null=True)
    order_id = UnicodeAttribute(null=True, attr_name="orderId")
    granted_at = UTCDateTimeAttribute(attr_name="grantedAt")
    closed = BooleanAttribute(default=False)
    revoked = NumberAttribute(default=0)
    expired = NumberAttribute(default=0)
    debt = NumberAttribute(default=0)
    # The warning windows (seconds before expiry) the expiry scan sent CreditsExpiringSoon for, once accepted.
    warned = NumberSetAttribute(null=True)


class ReservationItem(CreditsItem):
    """What a reservation holds, open (``HoldItem``) or settled (``SettledHoldItem``): the same fields, two places."""

    reservation_id = UnicodeAttribute(attr_name="reservationId")
    user_id = UnicodeAttribute(attr_name="userId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    held_count = NumberAttribute(attr_name="count")  # `count` would hide Model.count()
    reduced = NumberAttribute(default=0)  # tokens taken off it because what it held left the balance
    status = UnicodeAttribute()
    captured = NumberAttribute(default=0)
    hold_expires_at = UTCDateTimeAttribute(attr_name="holdExpiresAt")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")
    updated_at = UTCDateTimeAttribute(attr_name="updatedAt")


class HoldItem(ReservationItem, discriminator="hold"):
    """An open reservation, still held (sk ``CREDIT#~HOLD#<reservationId>``: in the user's credits Query, after every
    group); in the ``ByExpiry`` index. The transaction that captures or releases it deletes it (and puts its
    ``SettledHoldItem``), so the credits Query only ever reads open holds."""


class SettledHoldItem(ReservationItem, discriminator="settledHold"):
    """A captured or released reservation (sk ``HOLD#<reservationId>``: outside the ``CREDIT#`` range and the
    ``ByExpiry`` index), put by the transaction that settled it; kept (``ttl``) as long as an idempotency record, so a
    repeated capture or release still answers, and settled holds do not pile up."""


class LedgerItem(CreditsItem, discriminator="ledger"):
    """A movement archived from a group's journal (sk ``LEDGER#<entryId>``), with its sequence and balance after."""

    user_id = UnicodeAttribute(attr_name="userId")
    offer_group = UnicodeAttribute(attr_name="offerGroup")
    seq = NumberAttribute()
    balance_after = NumberAttribute(attr_name="balanceAfter")
    movement = MovementAttribute()


class GroupPolicyItem(CreditsItem, discriminator="groupPolicy"):
    """Catalog settings of an offer group (pk ``CATALOG``, sk ``GROUP#<group>``): overdraft and low threshold."""

    offer_group = UnicodeAttribute(attr_name="offerGroup")
    overdraft = UnicodeAttribute(default="none")
    overdraft_limit = NumberAttribute(default=0, attr_name="overdraftLimit")
    low_threshold = NumberAttribute(null=True, attr_name="lowThreshold")


class OutboxItem(CreditsItem, discriminator="outbox"):
    """Events of one committed fact (sk ``OUTBOX#<id>``), written in the fact's own transaction.

    The table's stream carries the new item to the event publisher function, which puts the events on the bus: an
    event exists exactly when its fact was committed. ``ttl`` lets DynamoDB delete the item once it is surely sent.
    """

    events = ListAttribute(of=OutboxEventAttribute)
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class ScanStateItem(CreditsItem, discriminator="scanState"):
    """A scheduled scan's progress (pk ``SCAN#<name>``, sk ``STATE``): its cursors, and the lease of the run in
    progress (one run at a time; a run that died keeps it only until its Lambda would have been stopped anyway)."""

    due_from = UnicodeAttribute(null=True, attr_name="dueFrom")  # hour bucket, "YYYY-MM-DDTHH"
    windows = UnicodeAttribute(null=True)  # JSON: {"<window seconds>": {"hour": "YYYY-MM-DDTHH", "after": key}}
    lease_owner = UnicodeAttribute(null=True, attr_name="leaseOwner")
    lease_until = UTCDateTimeAttribute(null=True, attr_name="leaseUntil")
    updated_at = UTCDateTimeAttribute(null=True, attr_name="updatedAt")


class IdempotencyItem(CreditsItem, discriminator="idempotency"):
    """Remembers which result an ``Idempotency-Key`` produced, written in the same transaction as that result."""

    fingerprint = UnicodeAttribute()
    result_id = UnicodeAttribute(attr_name="resultId")
    created_at = UTCDateTimeAttribute(attr_name="createdAt")


class ByProcessorIdIndex(GlobalSecondaryIndex["CustomersItem"]):
    """Customers' items by their payment processor id (Stripe webhooks find the local item here)."""

    class Meta:
        index_name = "ByProcessorId"
        projection = KeysOnlyProjection()

    processorId = UnicodeAttribute(hash_key=True)


class CustomersItem(Model):
    """Base of every item in the customers table (customers, plans, coupons: the subscriptions half, issue 6)."""

    class Meta:
        table_name = os.environ.get("CUSTOMERS_TABLE_NAME", "user-credits-customers")
        region = _REGION
        billing_mode = "PAY_PER_REQUEST"

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


class PlanItem(CustomersItem, discriminator="plan"):
    """A plan (pk ``PLAN#<planId>``, sk ``PLAN``), and its listing copy (pk ``PLANS``, sk ``PLAN#<planId>``)."""

    plan_id = UnicodeAttribute(attr_name="planId")
    name = UnicodeAttribute()
    price = MoneyAttribute()
    billing_frequency_months = NumberAttribute(attr_name="billingFrequencyMonths")
    level = NumberAttribute()
    processor_plan_id = UnicodeAttribute(null=True, attr_name="processorPlanId")
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


def share_connections() -> None:
    """Give every model of a table the one connection (one botocore client) of its base model.

    PynamoDB caches a connection per model class; a subclass that connects first would otherwise build its own
    botocore client (~50 ms each on a cold container). Creating the connection is cheap (the client is lazy).
    Tests call this again after pointing the models at another endpoint.
    """
    for base in (CreditsItem, CustomersItem):
        pending = list(base.__subclasses__())
        while pending:
            model = pending.pop()
            if "_connection" in model.__dict__:
                delattr(model, "_connection")
            pending.extend(model.__subclasses__())
        base._connection = None
        base._get_connection()


share_connections()

#: Every table model, keyed by the logical id of its AWS::DynamoDB::Table resource in template.yaml.
TABLE_MODELS: dict[str, type[Model]] = {"CreditsTable": CreditsItem, "CustomersTable": CustomersItem}
