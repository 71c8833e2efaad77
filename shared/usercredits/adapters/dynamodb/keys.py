"""The keys of both tables (credits, and customers at the end), in one place (the layout: ``tables.py`` and
docs/data-model.md).

Every partition and sort key the credits adapters write or read is built here, so a range a Query reads and the
items written into it cannot drift apart. Group names and ids are made of ``[A-Za-z0-9_.:-]`` (``Identifier``): none
holds ``#``, ``$`` or ``~``, and all sort after ``#`` and ``$``, which the range bounds below rely on.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from usercredits.domain.models import Lot

CATALOG_PK = "CATALOG"
OUTBOX_PREFIX = "OUTBOX#"
LIMIT_PREFIX = "LIMIT#"
INTENT_PREFIX = "INTENT#"
LEDGER_PREFIX = "LEDGER#"
#: Every group, open lot and open hold of a user sorts between these two.
CREDITS_FIRST, CREDITS_END = "CREDIT#", "CREDIT$"
#: Only the groups and their lots (open holds sort after every group: ``~`` > any group name).
GROUPS_END = "CREDIT#~"
#: The ``ByExpiry`` index's hour buckets.
_HOUR_FORMAT = "%Y-%m-%dT%H"


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


def offer_sk(offer_id: str) -> str:
    return f"OFFER#{offer_id}"


def policy_sk(offer_group: str) -> str:
    return f"GROUP#{offer_group}"


def order_sk(order_id: str) -> str:
    return f"ORDER#{order_id}"


def intent_sk(order_id: str, intent_id: str) -> str:
    return f"{INTENT_PREFIX}{order_id}#{intent_id}"


def limit_sk(offer_id: str) -> str:
    return f"{LIMIT_PREFIX}{offer_id}"


def idempotency_sk(scope: str, key: str) -> str:
    return f"IDEMPOTENCY#{scope}#{key}"


def outbox_sk(ulid: str) -> str:
    return f"{OUTBOX_PREFIX}{ulid}"


def ledger_sk(entry_id: str) -> str:
    return f"{LEDGER_PREFIX}{entry_id}"


def group_sk(offer_group: str) -> str:
    return f"CREDIT#{offer_group}"


def group_lots_prefix(offer_group: str) -> str:
    """The sort keys of a group's open lots start with this."""
    return f"{group_sk(offer_group)}#LOT#"


def group_range_end(offer_group: str) -> str:
    """Sorts after the group's item and every open lot of it, and before the next group (``$`` > ``#``)."""
    return f"{group_sk(offer_group)}#LOT$"


def lot_sk(lot: Lot) -> str:
    """Where the lot lives: an open lot under its group, keyed in burn order (soonest expiry first, lots without
    expiry last, then the oldest grant, then the id: ``credits.burn_order``), so the first lots of a group are one
    bounded Query and the lots after a cursor the next one; a closed lot out of every credits range
    (``closed_lot_sk``), so reads never meet the history."""
    if lot.closed:
        return closed_lot_sk(lot.lot_id)
    head = f"0{_sortable(lot.expires)}" if lot.expires is not None else f"1{_sortable(lot.granted_at)}"
    return f"{group_lots_prefix(lot.offer_group)}{head}#{_sortable(lot.granted_at)}#{lot.lot_id}"


def lots_due_by(offer_group: str, moment: datetime) -> str:
    """Sorts after the keys of the group's open lots that expire by ``moment`` and before every other lot's."""
    return f"{group_lots_prefix(offer_group)}0{_sortable(moment)}~"


def lots_with_expiry_end(offer_group: str) -> str:
    """Sorts after the group's open lots that expire and before those that never do."""
    return f"{group_lots_prefix(offer_group)}1"


def closed_lot_sk(lot_id: str) -> str:
    """A closed lot, by its id (= its order's id for purchased lots: a refund finds it without a Query)."""
    return f"LOTX#{lot_id}"


def hold_sk(reservation_id: str) -> str:
    # "~" sorts after every group name, so open holds come last in the user's CREDIT# range.
    return f"CREDIT#~HOLD#{reservation_id}"


def settled_hold_sk(reservation_id: str) -> str:
    # Outside the CREDIT# range: no read of the balances meets a settled hold.
    return f"HOLD#{reservation_id}"


def expiry_bucket(moment: datetime) -> str:
    """The ``ByExpiry`` hour bucket of a moment (UTC)."""
    return f"{moment.astimezone(UTC):{_HOUR_FORMAT}}"


def bucket_hour(bucket: str) -> datetime:
    """The hour a ``ByExpiry`` bucket stands for."""
    return datetime.strptime(bucket, _HOUR_FORMAT).replace(tzinfo=UTC)


def _sortable(moment: datetime) -> str:
    """A fixed-width UTC timestamp that sorts as the time does (years 1-9999)."""
    at = moment.astimezone(UTC)
    return f"{at.year:04d}{at.month:02d}{at.day:02d}T{at.hour:02d}{at.minute:02d}{at.second:02d}.{at.microsecond:06d}"


#: The outbox replay's markers (``devtools.replay_outbox``), in a partition of their own: no user's reads meet them.
OUTBOX_REPLAY_PK = "OUTBOX-REPLAY"


def outbox_replay_sk(outbox_pk: str, outbox_sk: str) -> str:
    """The replay marker of the outbox item ``outbox_pk``/``outbox_sk`` (its events' ids all share its key)."""
    return f"{outbox_pk}|{outbox_sk}"


# --- the customers table ---------------------------------------------------------------------------------------------

PROFILE_SK = "PROFILE"

PLAN_SK = "PLAN"

PLANS_PK = "PLANS"  # one item per plan, so listing the plans is one Query (never a Scan)

COUPON_SK = "COUPON"

REDEMPTION_PREFIX = "REDEMPTION#"

CUSTOMER_USE_PREFIX = "USEDBY#"


def customer_pk(user_id: str) -> str:
    return f"CUSTOMER#{user_id}"


def customer_idempotency_pk(user_id: str) -> str:
    """The partition of a customer's ``Idempotency-Key`` records: apart from ``CUSTOMER#<userId>``, so loading the
    customer (one Query of its partition) never reads them; no other partition starts with ``IDEMPOTENCY#``."""
    return f"IDEMPOTENCY#{user_id}"


def customer_idempotency_sk(scope: str, key: str) -> str:
    return f"{scope}#{key}"


def customer_outbox_pk(user_id: str) -> str:
    """The partition of a customer's outbox items (sk ``outbox_sk(<fact id>)``): apart from ``CUSTOMER#<userId>``, so
    loading the customer never reads them; no other partition starts with ``CUSTOMER-OUTBOX#``."""
    return f"CUSTOMER-OUTBOX#{user_id}"


def plan_pk(plan_id: str) -> str:
    return f"PLAN#{plan_id}"


def coupon_pk(code: str) -> str:
    return f"COUPON#{code}"


def redemption_sk(customer_id: str, subscription_id: str) -> str:
    return f"{REDEMPTION_PREFIX}{customer_id}#{subscription_id}"


def customer_use_sk(customer_id: str) -> str:
    """The coupon's "this customer used it" item: a key known before any read, so a subscribe reads it with the plan
    and the coupon, and a restricted coupon's once-per-customer rule is a put-if-absent in the redemption."""
    return f"{CUSTOMER_USE_PREFIX}{customer_id}"
