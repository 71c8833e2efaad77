"""DynamoDB transactions of the credits table: one ``TransactWriteItems`` that records an ``Idempotency-Key`` with
the result it produced (and the outbox item of the events it owes: ``add_outbox``), says which condition failed and
never sends more than DynamoDB takes; and the condition and action helpers the writes share."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.connection.base import Connection
from pynamodb.constants import ALL_OLD
from pynamodb.exceptions import CancellationReason, DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.credits_table import CreditsItem, IdempotencyItem, OutboxEventAttribute, OutboxItem
from usercredits.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    cancellation_codes,
)
from usercredits.adapters.dynamodb.keys import (
    idempotency_sk,
    outbox_sk,
    user_pk,
)
from usercredits.errors import PersistenceError
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainEvent
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS, IdempotencyRecord, IdempotentReplayError

logger = logging.getLogger(__name__)


#: How long an Idempotency-Key is remembered (docs/rules.md#idempotency: 30 days).
IDEMPOTENCY_TTL = timedelta(days=30)


def credits_connection() -> Connection:
    return CreditsItem._get_connection().connection  # the table's one botocore client (see share_connections)


def equals_stored(attribute: Any, value: int) -> Any:
    """Condition: the numeric attribute still holds ``value`` (a missing attribute reads as 0, as the mappers do)."""
    condition = attribute == value
    return condition | attribute.does_not_exist() if value == 0 else condition


def set_or_remove(attribute: Any, value: Any) -> Any:
    return attribute.set(value) if value is not None else attribute.remove()


#: Outbox items outlive the stream's 24 h retention, then DynamoDB's TTL deletes them (deletes are not published).
OUTBOX_TTL = timedelta(days=2)


def add_outbox(transaction: TransactWrite, user_id: str, events: Sequence[DomainEvent], now: datetime) -> None:
    """Write ``events`` to the outbox in ``transaction``: they exist exactly when the fact they tell commits, and the
    table's stream hands them to the event publisher function (see ``OutboxItem``)."""
    if not events:
        return
    item = OutboxItem(
        pk=user_pk(user_id),
        sk=outbox_sk(new_ulid(now)),
        events=[
            OutboxEventAttribute(kind=event.kind, detail=json.dumps(event.detail, sort_keys=True, default=str))
            for event in events
        ],
        created_at=now,
        ttl=now + OUTBOX_TTL,
    )
    transaction.save(item, condition=OutboxItem.pk.does_not_exist())


class ConditionFailedError(Exception):
    """Actions of an idempotent transaction (other than the idempotency record) failed their condition:
    ``sort_keys`` are theirs (a failed action is known by its key: PynamoDB does not send actions in the order they
    were added, see ``IdempotentTransaction``)."""

    def __init__(self, sort_keys: tuple[str, ...]) -> None:
        super().__init__(", ".join(sort_keys))
        self.sort_keys = sort_keys


class TransactionTooLargeError(PersistenceError):
    """A transaction with more actions than DynamoDB takes (``MAX_TRANSACTION_ACTIONS``); it was not sent."""

    def __init__(self, actions: int) -> None:
        super().__init__(f"a transaction of {actions} actions passes DynamoDB's limit of {MAX_TRANSACTION_ACTIONS}")
        self.actions = actions


class IdempotentTransaction:
    """A TransactWrite that records the idempotency key with the result and explains why DynamoDB cancelled it.

    A failed idempotency condition becomes ``IdempotentReplayError`` (with what the first request recorded); failed
    conditions of other actions ``ConditionFailedError`` with their sort keys. Failures are matched to actions by key:
    PynamoDB sends condition checks, then deletes, then puts, then updates, whatever order they were added in, and
    DynamoDB's cancellation reasons follow the order sent.
    """

    def __init__(self, user_id: str, idempotency: IdempotencyRecord | None) -> None:
        self._user_id = user_id
        self._idempotency = idempotency
        self._transaction = TransactWrite(connection=credits_connection())

    def __enter__(self) -> TransactWrite:
        transaction = self._transaction.__enter__()
        if self._idempotency is not None:
            record = self._idempotency
            now = datetime.now(UTC)
            transaction.save(
                IdempotencyItem(
                    pk=user_pk(self._user_id),
                    sk=idempotency_sk(record.scope, record.key),
                    fingerprint=record.fingerprint,
                    result_id=record.result_id,
                    created_at=now,
                    ttl=IDEMPOTENCY_TTL,
                ),
                condition=IdempotencyItem.pk.does_not_exist(),
                return_values=ALL_OLD,  # a replay learns what the first request recorded without another read
            )
        return transaction

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        if exc_type is None and (actions := len(self._sort_keys_as_sent())) > MAX_TRANSACTION_ACTIONS:
            # Never sent: DynamoDB would refuse it whole (ValidationException). The limits on bundles and open holds
            # (``domain.models.MAX_BUNDLE_ITEMS``) keep every transaction below it; this says which one did not.
            logger.error("transaction of %d actions not sent (limit %d)", actions, MAX_TRANSACTION_ACTIONS)
            raise TransactionTooLargeError(actions)
        try:
            self._transaction.__exit__(exc_type, exc, traceback)
        except TransactWriteError as error:
            codes = cancellation_codes(error)
            sent = self._sort_keys_as_sent()
            failed = [i for i, code in enumerate(codes) if code == CONDITION_FAILED and i < len(sent)]
            if not failed:
                raise
            if self._idempotency is not None:
                record = idempotency_sk(self._idempotency.scope, self._idempotency.key)
                replayed = [i for i in failed if sent[i] == record]
                if replayed:
                    raise self._replay(error.cancellation_reasons[replayed[0]]) from error
            raise ConditionFailedError(tuple(sent[i] for i in failed)) from error

    def _sort_keys_as_sent(self) -> list[str]:
        """The sort key of each action in the order PynamoDB sends them, which is not the order they were added in:
        condition checks, then deletes, then puts, then updates (``Connection.transact_write_items``), so a failed
        action is best known by its key."""
        transaction = self._transaction
        sent = [
            *transaction._condition_check_items,
            *transaction._delete_items,
            *transaction._put_items,
            *transaction._update_items,
        ]
        return [str((action.get("Key") or action.get("Item") or {}).get("sk", {}).get("S", "")) for action in sent]

    def _replay(self, reason: CancellationReason | None) -> IdempotentReplayError:
        assert self._idempotency is not None
        if reason is not None and reason.raw_item:
            item = IdempotencyItem.from_raw_data(reason.raw_item)
            return IdempotentReplayError(item.result_id, item.fingerprint)
        try:  # an engine that does not return the item: read it
            item = IdempotencyItem.get(
                user_pk(self._user_id),
                idempotency_sk(self._idempotency.scope, self._idempotency.key),
                consistent_read=True,
            )
        except DoesNotExist:  # pragma: no cover - expired between the write and this read
            return IdempotentReplayError("", "")
        return IdempotentReplayError(item.result_id, item.fingerprint)
