"""The plan of a customer save: which writes (children, and the outbox items of the facts they record) go in which
transaction, so that none passes DynamoDB's 100 actions and a fact is always written with the child it is about."""

from __future__ import annotations

from collections.abc import Sequence

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
    mirrors, the subscriptions' facts), and each transaction mirror with the outbox items of its facts, oldest
    first: a mirror and its facts always go in the same transaction, so a fact is recorded exactly when its mirror."""
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
