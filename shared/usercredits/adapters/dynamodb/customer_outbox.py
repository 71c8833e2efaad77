"""The customers table's outbox: each fact of a customer save (``subscriptions.events``) as an ``OUTBOX#<fact id>``
item, put only if absent in the save's own transaction, which the table's stream hands to the event publisher (the
credits table's outbox shape: ``outbox.outbox_events`` reads both).

The fact's id is the item's key, so a fact can never be written, hence published, twice: should a save ever derive a
fact that an earlier save recorded (an item still there, TTL 2 days), its put fails its condition and the save is
sent again without it (``already_recorded``), instead of failing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.customers_table import CustomerOutboxEventAttribute, CustomerOutboxItem
from usercredits.adapters.dynamodb.errors import CONDITION_FAILED, cancellation_codes
from usercredits.adapters.dynamodb.keys import OUTBOX_PREFIX, customer_outbox_pk, outbox_sk
from usercredits.adapters.dynamodb.transactions import OUTBOX_TTL
from usercredits.subscriptions.events import CustomerFact


def add_fact(transaction: TransactWrite, user_id: str, fact: CustomerFact) -> None:
    """Put ``fact``'s outbox item in ``transaction``, only if no item holds that fact yet."""
    now = datetime.now(UTC)
    event = fact.event
    item = CustomerOutboxItem(
        pk=customer_outbox_pk(user_id),
        sk=outbox_sk(fact.fact_id),
        events=[
            CustomerOutboxEventAttribute(kind=event.kind, detail=json.dumps(event.detail, sort_keys=True, default=str))
        ],
        created_at=now,
        ttl=now + OUTBOX_TTL,
    )
    transaction.save(item, condition=CustomerOutboxItem.pk.does_not_exist())


def already_recorded(transaction: TransactWrite, error: TransactWriteError) -> set[str]:
    """The ids of the facts whose outbox item existed already, when those puts are the only actions that failed
    (else empty: the save failed for another reason). Actions are matched to DynamoDB's cancellation reasons in the
    order PynamoDB sends them: condition checks, deletes, puts, updates."""
    codes = cancellation_codes(error)
    sent: list[dict[str, Any]] = [
        *transaction._condition_check_items,
        *transaction._delete_items,
        *transaction._put_items,
        *transaction._update_items,
    ]
    failed = [_sort_key(sent[i]) if i < len(sent) else "" for i, code in enumerate(codes) if code is not None]
    if not failed or any(code not in (None, CONDITION_FAILED) for code in codes):
        return set()
    if not all(key.startswith(OUTBOX_PREFIX) for key in failed):
        return set()
    return {key.removeprefix(OUTBOX_PREFIX) for key in failed}


def _sort_key(action: dict[str, Any]) -> str:
    return str((action.get("Key") or action.get("Item") or {}).get("sk", {}).get("S", ""))
