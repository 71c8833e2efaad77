"""Coupon uses written in a customer save's own transaction (``CustomerChanges.coupon_uses``): what a subscribe counts
and a withdraw gives back, and how a cancelled transaction tells a refused use from a concurrent save.

A count puts the redemption (only if absent), adds 1 to ``usedCount`` (only while below ``maxUses``, compared with the
stored ``maxUses`` in the condition itself) and, for a restricted coupon, puts the customer's use (only if absent). A
give-back deletes the redemption (only if present: a use never counted, or given back already, gives nothing back),
adds -1 to ``usedCount`` and deletes the customer's use.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.customer_transactions import Write
from usercredits.adapters.dynamodb.customers_table import CouponItem, CouponRedemptionItem
from usercredits.adapters.dynamodb.errors import CONDITION_FAILED, TRANSACTION_CONFLICT, cancellation_codes
from usercredits.adapters.dynamodb.keys import COUPON_SK, coupon_pk, customer_use_sk, redemption_sk
from usercredits.subscriptions.coupons import LIMIT_REACHED
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.events import CustomerFact
from usercredits.subscriptions.ports import CouponUse, StaleCustomerError

#: How often a save with coupon uses that lost a race for a coupon item is tried again before reloading.
_ATTEMPTS = 12


def write_with_coupons(
    write: Callable[[tuple[CouponUse, ...]], None], uses: tuple[CouponUse, ...], user_id: str
) -> None:
    """``write`` the save with its coupon uses: a count refused is ``CouponError`` (nothing written); a give-back
    with nothing to give back is left out and the rest written; a transaction that only lost a race for an item
    is tried again after a short, jittered pause (then ``StaleCustomerError``: reload and redo)."""
    for attempt in range(_ATTEMPTS):
        try:
            write(uses)
            return
        except CouponsRefusedError as refused:
            if refused.counts:
                raise CouponError(LIMIT_REACHED) from refused
            uses = tuple(use for use in uses if use not in refused.releases)
        except CouponRaceError:
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))  # noqa: S311 - jitter, not security
    raise StaleCustomerError(user_id)


class Role(StrEnum):
    REDEMPTION = "redemption"
    CUSTOMER_USE = "customer_use"
    COUPON = "coupon"


#: One coupon action of the transaction: the use it belongs to and what it writes.
Action = tuple[CouponUse, Role]


@dataclass
class CouponActions:
    """The coupon actions added to a transaction, by PynamoDB's kind of action (it sends condition checks, then
    deletes, then puts, then updates, each in the order given): what maps a cancellation reason back to its use."""

    deletes: list[Action] = field(default_factory=list)
    puts: list[Action] = field(default_factory=list)
    updates: list[Action] = field(default_factory=list)


def add_coupon_uses(transaction: TransactWrite, uses: tuple[CouponUse, ...], now: datetime) -> CouponActions:
    """Add the coupon actions of ``uses`` to ``transaction``, one action per item: DynamoDB refuses a transaction that
    acts twice on one item, and a change may give a use back and count one of the same coupon (a subscribe that
    withdraws an unsent subscription with that coupon). So the coupon's count is one update by the net change (none
    for a swap), and a restricted coupon's customer use given back and taken again is one put. A save counts at most
    one use of a coupon, so the ``maxUses`` condition of a net count of one is exact."""
    actions = CouponActions()
    by_code: dict[str, list[CouponUse]] = {}
    for use in uses:
        by_code.setdefault(use.code, []).append(use)
    for code, group in by_code.items():
        releases = [use for use in group if use.release]
        counts = [use for use in group if not use.release]
        retaken = {u.customer_id for u in counts if u.restricted} & {u.customer_id for u in releases if u.restricted}
        for use in releases:
            transaction.delete(_record(use), condition=CouponRedemptionItem.pk.exists())
            actions.deletes.append((use, Role.REDEMPTION))
            if use.restricted and use.customer_id not in retaken:
                transaction.delete(_own(use))
                actions.deletes.append((use, Role.CUSTOMER_USE))
        for use in counts:
            transaction.save(_filled(_record(use), use, now), condition=CouponRedemptionItem.pk.does_not_exist())
            actions.puts.append((use, Role.REDEMPTION))
            if use.restricted:
                once = None if use.customer_id in retaken else CouponRedemptionItem.pk.does_not_exist()
                transaction.save(_filled(_own(use), use, now), condition=once)
                actions.puts.append((use, Role.CUSTOMER_USE))
        net = len(counts) - len(releases)
        if net == 0:
            continue  # a use given back and one taken: the count stays
        condition = CouponItem.pk.exists()
        if net > 0:
            condition &= CouponItem.max_uses.does_not_exist() | (CouponItem.used_count < CouponItem.max_uses)
        coupon = CouponItem(pk=coupon_pk(code), sk=COUPON_SK)
        transaction.update(coupon, actions=[CouponItem.used_count.add(net)], condition=condition)
        actions.updates.append((counts[0] if net > 0 else releases[0], Role.COUPON))
    return actions


def _record(use: CouponUse) -> CouponRedemptionItem:
    return CouponRedemptionItem(pk=coupon_pk(use.code), sk=redemption_sk(use.customer_id, use.subscription_id))


def _own(use: CouponUse) -> CouponRedemptionItem:
    return CouponRedemptionItem(pk=coupon_pk(use.code), sk=customer_use_sk(use.customer_id))


def _filled(item: CouponRedemptionItem, use: CouponUse, now: datetime) -> CouponRedemptionItem:
    item.code, item.customer_id, item.subscription_id, item.created_at = (
        use.code,
        use.customer_id,
        use.subscription_id,
        now,
    )
    return item


class CouponsRefusedError(Exception):
    """Coupon conditions failed, and nothing else did: the counts refused, the give-backs with nothing to give."""

    def __init__(self, counts: list[CouponUse], releases: list[CouponUse]) -> None:
        super().__init__("coupon use refused")
        self.counts, self.releases = counts, releases


class CouponRaceError(Exception):
    """The transaction lost a race for an item (a coupon's, most often) and no condition failed: try it again."""


def raise_for_coupons(
    codes: list[str | None], coupons: CouponActions, *, deletes_before: int, puts_before: int
) -> None:
    """Tell a refused coupon use (``CouponsRefusedError``) or a lost race (``CouponRaceError``) from the customer's
    own failures, left to the caller (the version moved, a recorded key). The customer's profile is the first
    update; ``deletes_before``/``puts_before``: the customer's own deletes and puts."""
    profile_index = deletes_before + len(coupons.deletes) + puts_before + len(coupons.puts)
    if len(codes) <= profile_index or codes[profile_index] is not None:
        return  # the version moved (or an unexpected shape)
    refused = refused_actions(codes, coupons, deletes_before=deletes_before, puts_before=puts_before, updates_before=1)
    failed = [code for code in codes if code == CONDITION_FAILED]
    if refused and len(refused) == len(failed):
        counts = [use for use, _ in refused if not use.release]
        releases = [use for use, role in refused if use.release and role is Role.REDEMPTION]
        raise CouponsRefusedError(counts, releases)
    if not failed and TRANSACTION_CONFLICT in codes:
        raise CouponRaceError


def refused_actions(
    codes: list[str | None], actions: CouponActions, *, deletes_before: int, puts_before: int, updates_before: int
) -> list[Action]:
    """The coupon actions whose condition failed, given the cancellation reasons of the whole transaction and how
    many deletes, puts and updates of the customer's own came before ours in each kind."""
    deletes = deletes_before + len(actions.deletes)
    puts = puts_before + len(actions.puts)
    slots: dict[int, Action] = {}
    for index, action in enumerate(actions.deletes):
        slots[deletes_before + index] = action
    for index, action in enumerate(actions.puts):
        slots[deletes + puts_before + index] = action
    for index, action in enumerate(actions.updates):
        slots[deletes + puts + updates_before + index] = action
    return [slots[i] for i, code in enumerate(codes) if code == CONDITION_FAILED and i in slots]


def raise_for_coupons_in_save(
    error: TransactWriteError, coupons: CouponActions, writes: Sequence[Write], recorded_key: bool
) -> None:
    """``raise_for_coupons`` for a customer save: its child deletes come before the coupons' deletes, its child and
    outbox puts and its idempotency record (``recorded_key``) before the coupons' puts."""
    deletes = sum(1 for write in writes if not isinstance(write, CustomerFact) and write[2] is None)
    puts = len(writes) - deletes + recorded_key
    raise_for_coupons(cancellation_codes(error), coupons, deletes_before=deletes, puts_before=puts)
