"""Coupons in the customers table: the coupon item and its redemptions, a use counted in the same transaction as the
redemption that makes it (never past ``maxUses``; once per customer for a restricted coupon)."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from decimal import Decimal

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.customers import customers_connection
from usercredits.adapters.dynamodb.customers_table import CouponItem, CouponRedemptionItem
from usercredits.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    cancellation_codes,
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import COUPON_SK, coupon_pk, customer_use_sk, redemption_sk
from usercredits.adapters.dynamodb.model_base import MoneyAttribute
from usercredits.adapters.dynamodb.transactions import set_or_remove
from usercredits.errors import ConflictError
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import (
    Coupon,
    CouponKind,
)
from usercredits.subscriptions.ports import (
    RedemptionOutcome,
)

#: How often a redemption that lost a race for the coupon item (TransactionConflict) is tried again.
_REDEEM_ATTEMPTS = 12


def item_to_coupon(item: CouponItem) -> Coupon:
    return Coupon(
        code=item.code,
        name=item.name or "",
        description=item.description or "",
        kind=CouponKind(item.kind),
        amount=None if item.amount is None else Money(amount=int(item.amount.amount), currency=item.amount.currency),
        percent=None if item.percent is None else Decimal(item.percent),
        number_of_billing_cycles=int(item.number_of_billing_cycles),
        start_at=item.start_at,
        expire_at=item.expire_at,
        max_uses=None if item.max_uses is None else int(item.max_uses),
        used_count=int(item.used_count or 0),
        restricted=bool(item.restricted),
        created_at=item.created_at,
        updated_at=item.updated_at,
    )


class DynamoCouponRepository:
    """``CouponRepository``: ``COUPON#<code>`` holds the coupon (``COUPON``) and one item per counted redemption."""

    @translate_errors
    def get(self, code: str) -> Coupon | None:
        try:
            item = CouponItem.get(coupon_pk(code), COUPON_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item_to_coupon(item)

    @translate_errors
    def put(self, coupon: Coupon, now: datetime) -> Coupon:
        """One UpdateItem: the terms are replaced, ``usedCount`` and ``createdAt`` are kept (set when new)."""
        item = CouponItem(pk=coupon_pk(coupon.code), sk=COUPON_SK)
        amount = None
        if coupon.amount is not None:
            amount = MoneyAttribute(amount=coupon.amount.amount, currency=coupon.amount.currency)
        item.update(
            actions=[
                CouponItem.item_type.set(CouponItem),
                CouponItem.code.set(coupon.code),
                CouponItem.name.set(coupon.name),
                CouponItem.description.set(coupon.description),
                CouponItem.kind.set(coupon.kind.value),
                set_or_remove(CouponItem.amount, amount),
                set_or_remove(CouponItem.percent, None if coupon.percent is None else str(coupon.percent)),
                CouponItem.number_of_billing_cycles.set(coupon.number_of_billing_cycles),
                set_or_remove(CouponItem.start_at, coupon.start_at),
                set_or_remove(CouponItem.expire_at, coupon.expire_at),
                set_or_remove(CouponItem.max_uses, coupon.max_uses),
                CouponItem.used_count.set(CouponItem.used_count | 0),
                CouponItem.restricted.set(coupon.restricted),
                CouponItem.created_at.set(CouponItem.created_at | now),
                CouponItem.updated_at.set(now),
            ]
        )
        return item_to_coupon(item)  # update() read the item back (ALL_NEW)

    @translate_errors
    def redeem(
        self, code: str, customer_id: str, subscription_id: str, max_uses: int | None, *, restricted: bool = False
    ) -> RedemptionOutcome:
        """One TransactWriteItems: the redemption record (only if absent), the customer's use of the coupon (only if
        absent when ``restricted``) and ``ADD usedCount 1`` (only while ``usedCount < max_uses``). The cancellation
        reasons tell the outcome apart; a transaction that lost a race for the coupon item (``TransactionConflict``)
        is tried again after a short, jittered pause."""
        for attempt in range(_REDEEM_ATTEMPTS):
            codes = self._try_redeem(code, customer_id, subscription_id, max_uses, restricted)
            if codes is None:
                return RedemptionOutcome.REDEEMED
            record, customer_use, coupon = codes
            if record == CONDITION_FAILED:
                return RedemptionOutcome.ALREADY_REDEEMED
            if customer_use == CONDITION_FAILED:
                return RedemptionOutcome.USED_BY_CUSTOMER
            if coupon == CONDITION_FAILED:
                return RedemptionOutcome.LIMIT_REACHED if self.get(code) else RedemptionOutcome.UNKNOWN_COUPON
            time.sleep(random.uniform(0, 0.01 * 2 ** min(attempt, 6)))  # noqa: S311 - jitter, not security
        raise ConflictError(f"coupon {code} is being redeemed by many at once; retry shortly")

    @staticmethod
    def _try_redeem(
        code: str, customer_id: str, subscription_id: str, max_uses: int | None, restricted: bool
    ) -> list[str | None] | None:
        """None when committed; the cancellation codes [record, customer use, coupon] otherwise (raises on anything
        else).

        PynamoDB sends a transaction's puts (in the order given) before its updates, so the reasons come in that order.
        """
        now = datetime.now(UTC)
        record = CouponRedemptionItem(
            pk=coupon_pk(code),
            sk=redemption_sk(customer_id, subscription_id),
            code=code,
            customer_id=customer_id,
            subscription_id=subscription_id,
            created_at=now,
        )
        customer_use = CouponRedemptionItem(
            pk=coupon_pk(code),
            sk=customer_use_sk(customer_id),
            code=code,
            customer_id=customer_id,
            subscription_id=subscription_id,
            created_at=now,
        )
        condition = CouponItem.pk.exists()
        if max_uses is not None:
            condition &= (CouponItem.used_count < max_uses) | CouponItem.used_count.does_not_exist()
        try:
            with TransactWrite(connection=customers_connection()) as transaction:
                transaction.save(record, condition=CouponRedemptionItem.pk.does_not_exist())
                # A restricted coupon: once per customer, whichever subscription; others: the latest use is kept.
                once = CouponRedemptionItem.pk.does_not_exist() if restricted else None
                transaction.save(customer_use, condition=once)
                transaction.update(
                    CouponItem(pk=coupon_pk(code), sk=COUPON_SK),
                    actions=[CouponItem.used_count.add(1)],
                    condition=condition,
                )
        except TransactWriteError as exc:
            codes = cancellation_codes(exc)
            if len(codes) != 3 or not ({CONDITION_FAILED, TRANSACTION_CONFLICT} & set(codes)):
                raise
            return codes
        return None

    @translate_errors
    def used_by_customer(self, code: str, customer_id: str) -> bool:
        """One GetItem (the customer's use of the coupon, written with each redemption)."""
        try:
            CouponRedemptionItem.get(coupon_pk(code), customer_use_sk(customer_id), consistent_read=True)
        except DoesNotExist:
            return False
        return True
