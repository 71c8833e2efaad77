"""The customers table's transaction kit (as ``transactions.py`` is the credits table's): the plan of a customer save,
which writes go in which transaction so that none passes DynamoDB's 100 actions and a fact is always written with the
child it is about; and the outbox, each fact of a save (``subscriptions.events``) as an ``OUTBOX#<fact id>`` item, put
only if absent in the save's own transaction, which the table's stream hands to the event publisher (the credits
table's outbox shape: ``outbox.outbox_events`` reads both).

The fact's id is the item's key, so a fact can never be written, hence published, twice: should a save ever derive a
fact that an earlier save recorded (an item still there, TTL 2 days), its put fails its condition and the save is
sent again without it (``already_recorded``), instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.customers_table import CustomerOutboxEventAttribute, CustomerOutboxItem
from usercredits.adapters.dynamodb.errors import CONDITION_FAILED, cancellation_codes
from usercredits.adapters.dynamodb.keys import OUTBOX_PREFIX, customer_outbox_pk, outbox_sk
from usercredits.adapters.dynamodb.transactions import OUTBOX_TTL
from usercredits.subscriptions.events import CustomerFact
from usercredits.subscriptions.models import Address, PaymentMethod, Subscription
from usercredits.subscriptions.ports import ChildItem, ChildKind, CustomerChanges

#: One child write of a save: (kind, local id, the child to put, or None to delete it).
ChildWrite = tuple[ChildKind, str, ChildItem | None]
#: One write of a save: a child's, or the outbox item of a fact it records.
Write = ChildWrite | CustomerFact


def child_kind(item: ChildItem) -> ChildKind:
    """The kind of a child model (what its sort key prefix and item class are)."""
    if isinstance(item, Address):
        return ChildKind.ADDRESS
    if isinstance(item, PaymentMethod):
        return ChildKind.PAYMENT_METHOD
    if isinstance(item, Subscription):
        return ChildKind.SUBSCRIPTION
    return ChildKind.TRANSACTION


def write_units(changes: CustomerChanges) -> tuple[list[Write], list[list[Write]]]:
    """The writes of a save: those that must go in its last transaction (deletions, every child but transaction
    mirrors, the subscriptions' facts), and each transaction mirror with the outbox items of its facts, in the order
    of ``changes.upserts``: a mirror and its facts always go in the same transaction, so a fact is recorded exactly
    when its mirror is."""
    by_transaction: dict[str, list[CustomerFact]] = {}
    for fact in changes.facts:
        by_transaction.setdefault(fact.transaction_id or "", []).append(fact)
    last: list[Write] = [(kind, local_id, None) for kind, local_id in changes.deletions]
    mirrors: list[list[Write]] = []
    for child in changes.upserts:
        kind = child_kind(child)
        if kind is ChildKind.TRANSACTION:
            mirrors.append([(kind, child.local_id, child), *by_transaction.pop(child.local_id, [])])
        else:
            last.append((kind, child.local_id, child))
    last.extend(fact for facts in by_transaction.values() for fact in facts)  # a subscription's (or a stray) fact
    return last, mirrors


def chunks(units: Sequence[Sequence[Write]], size: int) -> list[list[Write]]:
    """``units`` packed in order into lists of at most ``size`` writes, never splitting one."""
    chunks: list[list[Write]] = []
    for unit in units:
        if not chunks or len(chunks[-1]) + len(unit) > size:
            chunks.append([])
        chunks[-1].extend(unit)
    return chunks


def without(writes: Sequence[Write], fact_ids: set[str]) -> list[Write]:
    return [write for write in writes if not (isinstance(write, CustomerFact) and write.fact_id in fact_ids)]


# --- the outbox -----------------------------------------------------------------------------------------------------


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
