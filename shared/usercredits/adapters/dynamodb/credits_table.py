"""The credits table's PynamoDB models (offers, orders, credit groups, lots, holds, ledger, outbox, idempotency).

A single-table design keyed by ``pk``/``sk`` (strings). ``template.yaml`` declares the same keys and
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

One concept: the table's schema, one PynamoDB model per item type (the customers table is ``customers_table``).
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
from pynamodb.indexes import (
    AllProjection,
    GlobalSecondaryIndex,
    IncludeProjection,
    KeysOnlyProjection,
    LocalSecondaryIndex,
)
from pynamodb.models import Model

from usercredits.adapters.dynamodb.model_base import MoneyAttribute, TableMeta, share_connection


class ByPaymentIntentIndex(GlobalSecondaryIndex["CreditsItem"]):
    """Orders by payment intent id (webhooks find their order here when the metadata is missing)."""

    class Meta:
        index_name = "ByPaymentIntent"
        projection = KeysOnlyProjection()

    paymentIntentId = UnicodeAttribute(hash_key=True)


#: What the expiry scan reads from ``ByExpiry`` (``adapters.dynamodb.expiry``): every attribute of a lot and a hold,
#: and a group's name and balance. Not a group's journal and windows: a group marked low is rewritten by every spend,
#: and with whole items projected each mark, clearing and spend while marked wrote the whole group to the index too
#: (3 units instead of 1 for a group with a full journal, measured: tests/dynamodb_local/test_expiry_index_writes.py).
EXPIRY_INDEX_ATTRIBUTES = (
    "itemType",
    "userId",
    "offerGroup",
    "balance",
    "lotId",
    "tokens",
    "starts",
    "expires",
    "orderId",
    "grantedAt",
    "closed",
    "revoked",
    "expired",
    "debt",
    "warned",
    "reservationId",
    "count",
    "reduced",
    "status",
    "captured",
    "holdExpiresAt",
    "createdAt",
    "updatedAt",
)


class ByExpiryIndex(GlobalSecondaryIndex["CreditsItem"]):
    """Items that will need attention at a time (lots expiring, holds lapsing), bucketed by hour."""

    class Meta:
        index_name = "ByExpiry"
        projection = IncludeProjection(list(EXPIRY_INDEX_ATTRIBUTES))

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

    class Meta(TableMeta):
        table_name = os.environ.get("CREDITS_TABLE_NAME", "user-credits-credits")

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


share_connection(CreditsItem)
