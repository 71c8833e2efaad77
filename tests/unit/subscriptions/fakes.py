"""In-memory fakes of the subscriptions ports, with the semantics their protocols document."""

from __future__ import annotations

import threading
from datetime import datetime

from usercredits.subscriptions.models import Coupon
from usercredits.subscriptions.ports import RedemptionOutcome


class InMemoryCouponRepository:
    """Coupons and their redemptions; ``redeem`` is atomic (one lock stands for DynamoDB's transaction)."""

    def __init__(self, coupons: list[Coupon] | None = None) -> None:
        self.coupons = {coupon.code: coupon for coupon in coupons or []}
        self.redemptions: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.coupons)

    def __contains__(self, code: object) -> bool:
        return code in self.coupons

    def get(self, code: str) -> Coupon | None:
        return self.coupons.get(code)

    def put(self, coupon: Coupon, now: datetime) -> Coupon:
        stored = self.coupons.get(coupon.code)
        kept = coupon.model_copy(update={"used_count": stored.used_count if stored else 0, "updated_at": now})
        self.coupons[coupon.code] = kept
        return kept

    def redeem(self, code: str, customer_id: str, subscription_id: str, max_uses: int | None) -> RedemptionOutcome:
        with self._lock:
            coupon = self.coupons.get(code)
            if coupon is None:
                return RedemptionOutcome.UNKNOWN_COUPON
            if (code, customer_id, subscription_id) in self.redemptions:
                return RedemptionOutcome.ALREADY_REDEEMED
            if max_uses is not None and coupon.used_count >= max_uses:
                return RedemptionOutcome.LIMIT_REACHED
            self.redemptions.add((code, customer_id, subscription_id))
            self.coupons[code] = coupon.model_copy(update={"used_count": coupon.used_count + 1})
            return RedemptionOutcome.REDEEMED

    def used_by_customer(self, code: str, customer_id: str) -> bool:
        return any(key[:2] == (code, customer_id) for key in self.redemptions)
