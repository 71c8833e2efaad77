"""The stored items of the in-memory credits repository and the pure rules its writes share (the spend
condition, a movement applied to a group, the cursors)."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from usercredits.domain.credits import burn_order
from usercredits.domain.models import GroupState, LedgerEntry, Lot, Movement, Reservation
from usercredits.errors import InvalidRequestError
from usercredits.kernel.models import DomainModel
from usercredits.kernel.writes import IdempotencyRecord

type Position = tuple[bool, datetime, datetime, str]


def copy_model[M: DomainModel](model: M) -> M:
    return model.model_copy(deep=True)


def copy_or_none(state: GroupState | None) -> GroupState | None:
    return copy_model(state) if state is not None else None


@dataclass
class CreditItems:
    """One user's items: groups, open and closed lots, open and settled holds, archived ledger entries,
    idempotency records and ``CreditsLow`` marks."""

    groups: dict[str, GroupState] = field(default_factory=dict)
    lots: dict[str, Lot] = field(default_factory=dict)
    closed: dict[str, Lot] = field(default_factory=dict)
    holds: dict[str, Reservation] = field(default_factory=dict)
    settled: dict[str, Reservation] = field(default_factory=dict)
    archive: dict[str, LedgerEntry] = field(default_factory=dict)
    keys: dict[tuple[str, str], IdempotencyRecord] = field(default_factory=dict)
    low_marks: dict[str, str] = field(default_factory=dict)

    def open_lots(self, offer_group: str | None = None) -> list[Lot]:
        """Open lots in key order: by group, each group's in burn order."""
        mine = [lot for lot in self.lots.values() if offer_group is None or lot.offer_group == offer_group]
        return sorted(mine, key=lambda lot: (lot.offer_group, burn_order(lot)))

    def open_holds(self, offer_group: str | None = None) -> list[Reservation]:
        mine = [hold for hold in self.holds.values() if offer_group is None or hold.offer_group == offer_group]
        return sorted(mine, key=lambda hold: hold.reservation_id)


def not_due(state: GroupState | None, now: datetime) -> bool:
    return state is None or state.next_expiry is None or state.next_expiry > now


def covers(state: GroupState | None, count: int, floor: int | None, now: datetime) -> bool:
    """The spend condition: no lot due, and the available balance covers ``count`` down to ``floor``; a group never
    bought may still be spent from, down to its overdraft limit."""
    if not not_due(state, now):
        return False
    if floor is None:
        return True
    return floor + count <= 0 if state is None else state.available >= floor + count


def with_movement(state: GroupState | None, offer_group: str, movement: Movement, drawn: int = 0) -> GroupState:
    """The group with ``movement`` applied and appended to its journal (created if it was never bought)."""
    base = state or GroupState(offer_group=offer_group)
    return base.model_copy(
        update={
            "balance": base.balance + movement.tokens,
            "held": base.held + movement.held,
            "drawn": base.drawn + drawn,
            "journal": [*base.journal, copy_model(movement)],
        }
    )


def encode_cursor(fields: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()


def decode_cursor(cursor: str, name: str) -> dict[str, Any]:
    try:
        fields = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequestError(f"{name} is not valid") from exc
    if not isinstance(fields, dict):
        raise InvalidRequestError(f"{name} is not valid")
    return fields


def lots_cursor(group: str, last: Lot, before: int, version: int) -> str:
    """The cursor to the group's lots after ``last`` in burn order (``before``: the tokens up to it, while the group
    is at ``version``)."""
    no_expiry, expires, granted, lot_id = burn_order(last)
    after = [no_expiry, expires.isoformat(), granted.isoformat(), lot_id]
    return encode_cursor({"group": group, "after": after, "before": before, "version": version})


def decode_lots_cursor(cursor: str, offer_group: str) -> tuple[Position, int, int]:
    """Where a cursor of ``lots_cursor`` points, the tokens before it and the group's version then (422 if it was
    not made for this group)."""
    fields = decode_cursor(cursor, "lotsCursor")
    before, version = fields.get("before"), fields.get("version")
    if fields.get("group") != offer_group or not isinstance(before, int) or not isinstance(version, int):
        raise InvalidRequestError("lotsCursor is not valid")
    try:
        flag, expires, granted, lot_id = fields["after"]
        after = (bool(flag), datetime.fromisoformat(expires), datetime.fromisoformat(granted), str(lot_id))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidRequestError("lotsCursor is not valid") from exc
    if before < 0:
        raise InvalidRequestError("lotsCursor is not valid")
    return after, before, version
