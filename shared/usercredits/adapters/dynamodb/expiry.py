"""DynamoDB side of the expiry scan: the ``ByExpiry`` index read bucket by bucket, the warning marks on lots, and the
scan's state item (cursors and lease, pk ``SCAN#<name>``).

Reads are Queries of one hour bucket of the GSI (eventually consistent, as every GSI read; what the scan acts on is
then read or written consistently by the domain's own conditional writes). Marks are conditional updates; several
go in one TransactWriteItems (one request instead of one each), falling back to one update each when a condition
fails, so each mark's outcome is known.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pynamodb.exceptions import TransactWriteError, UpdateError

from usercredits.adapters.dynamodb.credits_table import (
    ByExpiryIndex,
    CreditGroupItem,
    CreditsItem,
    HoldItem,
    LotItem,
    ScanStateItem,
)
from usercredits.adapters.dynamodb.errors import condition_failed, translate_errors
from usercredits.adapters.dynamodb.keys import bucket_hour, expiry_bucket, group_sk, lot_sk, user_pk
from usercredits.adapters.dynamodb.mappers import item_to_lot, item_to_reservation
from usercredits.adapters.dynamodb.transactions import ConditionFailedError, IdempotentTransaction
from usercredits.domain.expiry_index import (
    IndexedHold,
    IndexedLot,
    IndexEntry,
    IndexPage,
    LowMark,
    Position,
    ScanState,
    bound_key,
    hour_of,
)
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

STATE_SK = "STATE"

type _Update = tuple[CreditsItem, list[Any], Any]


def _bucket(hour: datetime) -> str:
    return expiry_bucket(hour_of(hour))


class DynamoExpiryIndex:
    """The scan's view of the credits table; ``name`` keeps the state of separate scans apart (tests)."""

    def __init__(self, name: str = "expiry") -> None:
        self._pk = f"SCAN#{name}"

    # --- state and lease -----------------------------------------------------------------------------------------

    @translate_errors
    def begin(self, run_id: str, now: datetime, lease_until: datetime) -> ScanState | None:
        """One conditional update: take the lease if it is free or expired, and read the cursors back with it."""
        item = ScanStateItem(pk=self._pk, sk=STATE_SK)
        try:
            item.update(
                actions=[
                    ScanStateItem.item_type.set(ScanStateItem),
                    ScanStateItem.lease_owner.set(run_id),
                    ScanStateItem.lease_until.set(lease_until),
                    ScanStateItem.updated_at.set(now),
                ],
                condition=ScanStateItem.lease_until.does_not_exist() | (ScanStateItem.lease_until <= now),
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return None
            raise
        windows = {
            int(window): Position(bucket_hour(saved["hour"]), saved.get("after"))
            for window, saved in json.loads(item.windows or "{}").items()
        }
        return ScanState(due_from=bucket_hour(item.due_from) if item.due_from else None, windows=windows)

    @translate_errors
    def finish(self, run_id: str, state: ScanState, now: datetime) -> bool:
        windows = {
            str(window): {"hour": _bucket(position.hour), "after": position.after}
            for window, position in sorted(state.windows.items())
        }
        actions: list[Any] = [
            ScanStateItem.windows.set(json.dumps(windows, sort_keys=True)),
            ScanStateItem.lease_until.set(now),
            ScanStateItem.lease_owner.remove(),
            ScanStateItem.updated_at.set(now),
        ]
        if state.due_from is not None:
            actions.append(ScanStateItem.due_from.set(_bucket(state.due_from)))
        try:
            ScanStateItem(pk=self._pk, sk=STATE_SK).update(
                actions=actions, condition=ScanStateItem.lease_owner == run_id
            )
        except UpdateError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    # --- the index -----------------------------------------------------------------------------------------------

    @translate_errors
    def read(
        self, hour: datetime, *, after: str | None, until: datetime, limit: int, not_warned: int | None = None
    ) -> IndexPage:
        """One Query of the bucket: keys after ``after`` (the key itself is read again and dropped: DynamoDB has no
        "greater than" together with an upper bound) up to ``until``."""
        bound = bound_key(until)
        if after is not None and after >= bound:
            return IndexPage([], None)
        key_condition = (
            ByExpiryIndex.expiresAt < bound if after is None else ByExpiryIndex.expiresAt.between(after, bound)
        )
        unwarned = None
        if not_warned is not None:
            unwarned = LotItem.warned.does_not_exist() | ~LotItem.warned.contains(not_warned)
        results = CreditsItem.by_expiry.query(_bucket(hour), key_condition, filter_condition=unwarned, page_size=limit)
        page = next(results.page_iter)
        entries = [_entry(CreditsItem.from_raw_data(raw)) for raw in page.get("Items") or []]
        last = results.page_iter.last_evaluated_key
        return IndexPage(
            [entry for entry in entries if entry is not None and entry.key != after],
            last["expiresAt"]["S"] if last else None,
        )

    @translate_errors
    def mark_warned(self, warned: Sequence[tuple[IndexedLot, int]]) -> list[bool]:
        updates: list[_Update] = []
        for entry, window in warned:
            not_yet = LotItem.warned.does_not_exist() | ~LotItem.warned.contains(window)
            updates.append(
                (
                    LotItem(pk=user_pk(entry.user_id), sk=lot_sk(entry.lot)),
                    [LotItem.warned.add({window})],
                    (LotItem.expires_at == entry.key) & not_yet,
                )
            )
        return _apply(updates)

    @translate_errors
    def clear_low(self, marks: Sequence[LowMark]) -> list[bool]:
        updates: list[_Update] = [
            (
                CreditGroupItem(pk=user_pk(mark.user_id), sk=group_sk(mark.offer_group)),
                [CreditGroupItem.expiry_bucket.remove(), CreditGroupItem.expires_at.remove()],
                CreditGroupItem.expires_at == mark.key,
            )
            for mark in marks
        ]
        return _apply(updates)


def _entry(item: CreditsItem) -> IndexEntry | None:
    key = item.expires_at
    if key is None:
        return None
    if isinstance(item, LotItem):
        warned = frozenset(int(window) for window in item.warned or ())
        return IndexedLot(item.user_id, item_to_lot(item), key, warned)
    if isinstance(item, HoldItem):  # open: settling deletes it, so it leaves the index (its copy has no index keys)
        return IndexedHold(item.user_id, item_to_reservation(item), key)
    if isinstance(item, CreditGroupItem):
        marked_at = datetime.fromisoformat(key.split("#", 1)[0])
        return LowMark(item.user_id, item.offer_group, int(item.balance or 0), marked_at, key)
    return None


def _apply(updates: list[_Update]) -> list[bool]:
    """Conditional updates, per update True when applied and False when its condition failed. Up to 100 go in one
    transaction; when it is cancelled (a condition, or a concurrent write) they are applied one by one instead."""
    results: list[bool] = []
    for start in range(0, len(updates), MAX_TRANSACTION_ACTIONS):
        chunk = updates[start : start + MAX_TRANSACTION_ACTIONS]
        if len(chunk) > 1:
            try:
                with IdempotentTransaction("", None) as transaction:
                    for item, actions, condition in chunk:
                        transaction.update(item, actions=actions, condition=condition)
            except (ConditionFailedError, TransactWriteError):
                pass  # one by one tells which condition failed
            else:
                results += [True] * len(chunk)
                continue
        results += [_update(item, actions, condition) for item, actions, condition in chunk]
    return results


def _update(item: CreditsItem, actions: list[Any], condition: Any) -> bool:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if condition_failed(exc):
            return False
        raise
    return True


__all__ = ["DynamoExpiryIndex"]
