"""In-memory fakes of the subscriptions ports, with the semantics their protocols document."""

from __future__ import annotations

import threading
from datetime import datetime

from usercredits.kernel.models import DomainEvent
from usercredits.kernel.writes import IdempotentReplayError
from usercredits.subscriptions.coupons import LIMIT_REACHED
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.models import Coupon, Customer
from usercredits.subscriptions.ports import CouponUse, CustomerChanges, RedemptionOutcome, StaleCustomerError


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

    def redeem(
        self, code: str, customer_id: str, subscription_id: str, max_uses: int | None, *, restricted: bool = False
    ) -> RedemptionOutcome:
        with self._lock:
            coupon = self.coupons.get(code)
            if coupon is None:
                return RedemptionOutcome.UNKNOWN_COUPON
            if (code, customer_id, subscription_id) in self.redemptions:
                return RedemptionOutcome.ALREADY_REDEEMED
            if restricted and self.used_by_customer(code, customer_id):
                return RedemptionOutcome.USED_BY_CUSTOMER
            if max_uses is not None and coupon.used_count >= max_uses:
                return RedemptionOutcome.LIMIT_REACHED
            self.redemptions.add((code, customer_id, subscription_id))
            self.coupons[code] = coupon.model_copy(update={"used_count": coupon.used_count + 1})
            return RedemptionOutcome.REDEEMED

    def used_by_customer(self, code: str, customer_id: str) -> bool:
        return any(key[:2] == (code, customer_id) for key in self.redemptions)

    def apply_uses(self, uses: tuple[CouponUse, ...]) -> None:
        """A save's coupon uses, all or none (``CouponError`` when a count is refused); a give-back with nothing to
        give back is skipped, as the real save's transaction does."""
        with self._lock:
            coupons, redemptions = dict(self.coupons), set(self.redemptions)
            for use in uses:
                key = (use.code, use.customer_id, use.subscription_id)
                coupon = coupons.get(use.code)
                if use.release:
                    if key in redemptions and coupon is not None:
                        redemptions.discard(key)
                        coupons[use.code] = coupon.model_copy(update={"used_count": coupon.used_count - 1})
                    continue
                taken = use.restricted and any(k[:2] == key[:2] for k in redemptions)
                full = coupon is not None and coupon.max_uses is not None and coupon.used_count >= coupon.max_uses
                if coupon is None or key in redemptions or taken or full:
                    raise CouponError(LIMIT_REACHED)
                redemptions.add(key)
                coupons[use.code] = coupon.model_copy(update={"used_count": coupon.used_count + 1})
            self.coupons, self.redemptions = coupons, redemptions


class InMemoryCustomerRepository:
    """Customers by user id, with the port's semantics: versioned saves (``StaleCustomerError``), a payment lock taken
    by one conditional step, and ``save`` leaving the lock as it is; given ``coupons``, a save counts or gives back
    its coupon uses there, atomically with the change. ``saves`` counts the writes;
    ``fail_next_saves`` makes the next saves raise ``StaleCustomerError`` as a concurrent writer would. ``events``
    holds the events the saves recorded, each fact once (the outbox's put only if absent, by fact id)."""

    def __init__(
        self, customers: list[Customer] | None = None, *, coupons: InMemoryCouponRepository | None = None
    ) -> None:
        self.customers = {customer.user_id: customer for customer in customers or []}
        self.coupons = coupons  # where a save's coupon uses are counted (None: not counted)
        self.records: dict[tuple[str, str, str], IdempotentReplayError] = {}
        self.saves = 0
        self.fail_next_saves = 0
        self.facts: dict[str, DomainEvent] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.customers)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.customers

    def load(self, user_id: str) -> Customer | None:
        return self.customers.get(user_id)

    def save(self, changes: CustomerChanges) -> Customer:
        with self._lock:
            user_id = changes.customer.user_id
            stored = self.customers.get(user_id)
            record = changes.idempotency
            if record is not None and (replay := self.records.get((user_id, record.scope, record.key))):
                raise replay
            if not changes.changes_customer:
                self._record(user_id, changes)
                return changes.customer
            if self.fail_next_saves:
                self.fail_next_saves -= 1
                raise StaleCustomerError()
            if changes.expected_version is None and stored is not None:
                raise StaleCustomerError()
            if changes.expected_version is not None and (stored is None or stored.version != changes.expected_version):
                raise StaleCustomerError()
            if self.coupons is not None:
                self.coupons.apply_uses(changes.coupon_uses)
            version = 0 if changes.expected_version is None else changes.expected_version + 1
            lock = stored.payment_lock_until if stored is not None else None
            saved = changes.customer.model_copy(update={"version": version, "payment_lock_until": lock})
            self.customers[saved.user_id] = saved
            self._record(user_id, changes)
            for fact in changes.facts:
                self.facts.setdefault(fact.fact_id, fact.event)
            self.saves += 1
            return saved

    def _record(self, user_id: str, changes: CustomerChanges) -> None:
        """The request key is written with the change (in the same step, as the real save's transaction does)."""
        if (record := changes.idempotency) is not None:
            recorded = IdempotentReplayError(record.result_id, record.fingerprint)
            self.records[user_id, record.scope, record.key] = recorded

    def recorded(self, user_id: str, scope: str, key: str) -> IdempotentReplayError | None:
        return self.records.get((user_id, scope, key))

    @property
    def events(self) -> list[DomainEvent]:
        return list(self.facts.values())

    def acquire_payment_lock(self, user_id: str, *, now: datetime, until: datetime) -> bool:
        with self._lock:
            stored = self.customers.get(user_id)
            if stored is None:
                return False
            if stored.payment_lock_until is not None and stored.payment_lock_until > now:
                return False
            self.customers[user_id] = stored.model_copy(update={"payment_lock_until": until})
            return True

    def release_payment_lock(self, user_id: str, *, until: datetime) -> None:
        with self._lock:
            stored = self.customers.get(user_id)
            if stored is not None and stored.payment_lock_until == until:
                self.customers[user_id] = stored.model_copy(update={"payment_lock_until": None})
