"""DynamoDB repositories of the subscriptions half: customers, plans and coupons, in the customers table.

A customer is one partition (``CUSTOMER#<userId>``): a ``PROFILE`` item and one item per address, payment method,
subscription and transaction, so no item grows with the customer's history (the seed's one document would pass
DynamoDB's 400 KB item limit). Loading is one Query; saving is one TransactWriteItems conditional on the profile's
version. Coupon redemptions are counted by one transaction that can neither count twice nor pass ``maxUses``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pynamodb.connection.base import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.customer_mapping import (
    child_data,
    child_from_data,
    processor_data,
    processor_from_data,
)
from usercredits.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    cancellation_codes,
    condition_failed,
    translate_errors,
)
from usercredits.adapters.dynamodb.tables import (
    CouponItem,
    CouponRedemptionItem,
    CustomerAddressItem,
    CustomerChildItem,
    CustomerPaymentMethodItem,
    CustomerProfileItem,
    CustomersItem,
    CustomerSubscriptionItem,
    CustomerTransactionItem,
    MoneyAttribute,
    PlanItem,
)
from usercredits.adapters.dynamodb.transactions import equals_stored, set_or_remove
from usercredits.domain.models import MAX_TRANSACTION_ACTIONS
from usercredits.errors import ConflictError, NotFoundError
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import (
    Address,
    Coupon,
    CouponKind,
    Customer,
    PaymentMethod,
    Plan,
    Subscription,
)
from usercredits.subscriptions.ports import (
    ChildItem,
    ChildKind,
    CustomerChanges,
    RedemptionOutcome,
    StaleCustomerError,
    SubscribeTerms,
)

PROFILE_SK = "PROFILE"
PLAN_SK = "PLAN"
PLANS_PK = "PLANS"  # one item per plan, so listing the plans is one Query (never a Scan)
COUPON_SK = "COUPON"
REDEMPTION_PREFIX = "REDEMPTION#"
CUSTOMER_USE_PREFIX = "USEDBY#"
#: How often a redemption that lost a race for the coupon item (TransactionConflict) is tried again.
_REDEEM_ATTEMPTS = 12

_CHILD_PREFIXES: dict[ChildKind, str] = {
    ChildKind.ADDRESS: "ADDRESS#",
    ChildKind.PAYMENT_METHOD: "PM#",
    ChildKind.SUBSCRIPTION: "SUB#",
    ChildKind.TRANSACTION: "TXN#",
}
_CHILD_ITEMS: dict[ChildKind, type[CustomerChildItem]] = {
    ChildKind.ADDRESS: CustomerAddressItem,
    ChildKind.PAYMENT_METHOD: CustomerPaymentMethodItem,
    ChildKind.SUBSCRIPTION: CustomerSubscriptionItem,
    ChildKind.TRANSACTION: CustomerTransactionItem,
}
#: The kind of each child item class (a loaded item is of the exact class its ``itemType`` names).
_CHILD_KINDS: dict[type[CustomerChildItem], ChildKind] = {item: kind for kind, item in _CHILD_ITEMS.items()}
#: The customer's list each kind of child is loaded into.
_CHILD_LISTS: dict[ChildKind, str] = {
    ChildKind.ADDRESS: "addresses",
    ChildKind.PAYMENT_METHOD: "payment_methods",
    ChildKind.SUBSCRIPTION: "subscriptions",
    ChildKind.TRANSACTION: "transactions",
}


#: One child write of a save: (kind, local id, the child to put, or None to delete it).
_ChildWrite = tuple[ChildKind, str, ChildItem | None]


def customer_pk(user_id: str) -> str:
    return f"CUSTOMER#{user_id}"


def child_sk(kind: ChildKind, local_id: str) -> str:
    return f"{_CHILD_PREFIXES[kind]}{local_id}"


def plan_pk(plan_id: str) -> str:
    return f"PLAN#{plan_id}"


def coupon_pk(code: str) -> str:
    return f"COUPON#{code}"


def redemption_sk(customer_id: str, subscription_id: str) -> str:
    return f"{REDEMPTION_PREFIX}{customer_id}#{subscription_id}"


def customer_use_sk(customer_id: str) -> str:
    """The coupon's "this customer used it" item: a key known before any read, so a subscribe reads it with the plan
    and the coupon, and a restricted coupon's once-per-customer rule is a put-if-absent in the redemption."""
    return f"{CUSTOMER_USE_PREFIX}{customer_id}"


def _connection() -> Connection:
    return CustomersItem._get_connection().connection  # the table's one botocore client (see share_connections)


# --- customers -----------------------------------------------------------------------------------------------------


def child_kind(item: ChildItem) -> ChildKind:
    """The kind of a child model (what its sort key prefix and item class are)."""
    if isinstance(item, Address):
        return ChildKind.ADDRESS
    if isinstance(item, PaymentMethod):
        return ChildKind.PAYMENT_METHOD
    if isinstance(item, Subscription):
        return ChildKind.SUBSCRIPTION
    return ChildKind.TRANSACTION


def child_to_item(user_id: str, child: ChildItem) -> CustomerChildItem:
    """A child as its own item: keys, local id, processor id (for the ``ByProcessorId`` index) and the child's stored
    JSON (``customer_mapping``) as a native map."""
    kind = child_kind(child)
    return _CHILD_ITEMS[kind](
        pk=customer_pk(user_id),
        sk=child_sk(kind, child.local_id),
        local_id=child.local_id,
        user_id=user_id,
        processor_id=child.processor.id,
        data=child_data(child),
    )


def _profile_actions(customer: Customer, version: int) -> list[Any]:
    """The profile's attributes as update actions: everything but ``paymentLockUntil`` (only the lock's own
    conditional writes touch it, so a save never undoes a lock taken meanwhile)."""
    item = CustomerProfileItem
    return [
        item.item_type.set(CustomerProfileItem),
        item.customer_id.set(customer.customer_id),
        item.user_id.set(customer.user_id),
        item.name.set(customer.name),
        set_or_remove(item.email, customer.email),
        set_or_remove(item.phone, customer.phone),
        set_or_remove(item.ip_address, customer.ip_address),
        item.metadata.set(dict(customer.metadata)),
        set_or_remove(item.default_payment_method_id, customer.default_payment_method_id),
        item.processor.set(processor_data(customer.processor)),
        set_or_remove(item.processor_id, customer.processor.id),
        set_or_remove(item.last_processor_save, customer.last_processor_save),
        item.version.set(version),
        item.created_at.set(customer.created_at),
        set_or_remove(item.updated_at, customer.updated_at),
    ]


def _version_condition(expected: int | None) -> Any:
    if expected is None:
        return CustomerProfileItem.pk.does_not_exist()
    return CustomerProfileItem.pk.exists() & equals_stored(CustomerProfileItem.version, expected)


def item_to_customer(profile: CustomerProfileItem, children: Iterable[CustomerChildItem]) -> Customer:
    """The customer from its profile and child items. Addresses, payment methods and subscriptions come in the
    order they were made, transactions newest first (as the domain keeps them)."""
    lists: dict[str, list[Any]] = {"addresses": [], "payment_methods": [], "subscriptions": [], "transactions": []}
    for child in children:
        kind = _CHILD_KINDS.get(type(child))
        if kind is not None:
            lists[_CHILD_LISTS[kind]].append(child_from_data(kind, child.data.as_dict()))
    for name in ("addresses", "payment_methods", "subscriptions"):
        lists[name].sort(key=lambda model: (model.created_at, model.local_id))
    lists["transactions"].sort(key=lambda model: (model.created_at, model.local_id), reverse=True)
    return Customer.model_validate(
        {
            "customer_id": profile.customer_id,
            "user_id": profile.user_id,
            "name": profile.name or "",
            "email": profile.email,
            "phone": profile.phone,
            "ip_address": profile.ip_address,
            "metadata": profile.metadata.as_dict() if profile.metadata is not None else {},
            "default_payment_method_id": profile.default_payment_method_id,
            "processor": processor_from_data(None if profile.processor is None else profile.processor.as_dict()),
            "payment_lock_until": profile.payment_lock_until,
            "last_processor_save": profile.last_processor_save,
            "version": int(profile.version or 0),
            "created_at": profile.created_at,
            "updated_at": profile.updated_at,
            **lists,
        }
    )


class DynamoCustomerRepository:
    """``CustomerRepository`` on the customers table (see the module docstring for the layout).

    A save of more than ``MAX_TRANSACTION_ACTIONS`` writes is split **safely**: only transaction mirrors (``TXN#``
    items, read-only copies of processor facts that a retry rewrites identically) may go ahead in earlier
    transactions, each with a condition check on the profile's expected version, so nothing is written if someone
    saved meanwhile; the profile and every other child are always written together in the last transaction. A save
    whose profile and non-transaction children alone pass the limit is refused with ``ConflictError`` (nothing
    written): no request of the API comes near it.
    """

    @translate_errors
    def load(self, user_id: str) -> Customer | None:
        profile: CustomerProfileItem | None = None
        children: list[CustomerChildItem] = []
        for item in CustomersItem.query(customer_pk(user_id), consistent_read=True):
            if isinstance(item, CustomerProfileItem):
                profile = item
            elif isinstance(item, CustomerChildItem):
                children.append(item)
        return None if profile is None else item_to_customer(profile, children)

    @translate_errors
    def save(self, changes: CustomerChanges) -> Customer:
        if changes.is_empty:
            return changes.customer
        customer = changes.customer
        version = (changes.expected_version or 0) + 1
        ahead: list[_ChildWrite] = []
        last: list[_ChildWrite] = [(kind, local_id, None) for kind, local_id in changes.deletions]
        for child in changes.upserts:
            kind = child_kind(child)
            (ahead if kind is ChildKind.TRANSACTION else last).append((kind, child.local_id, child))
        if len(last) + 1 > MAX_TRANSACTION_ACTIONS:
            raise ConflictError(
                f"too many changes in one save ({len(last) + 1} writes; at most {MAX_TRANSACTION_ACTIONS})"
            )
        room = MAX_TRANSACTION_ACTIONS - 1 - len(last)
        if len(ahead) > room:  # the transaction mirrors that do not fit go first, in chunks
            early, ahead = ahead[: len(ahead) - room], ahead[len(ahead) - room :]
            chunk = MAX_TRANSACTION_ACTIONS - 1  # and the condition check on the profile
            for start in range(0, len(early), chunk):
                self._write_ahead(customer.user_id, changes.expected_version, early[start : start + chunk])
        self._write(customer, changes.expected_version, version, [*last, *ahead])
        return customer.model_copy(update={"version": version})

    def _write(
        self,
        customer: Customer,
        expected: int | None,
        version: int,
        writes: Sequence[_ChildWrite],
    ) -> None:
        profile = CustomerProfileItem(pk=customer_pk(customer.user_id), sk=PROFILE_SK)
        actions, condition = _profile_actions(customer, version), _version_condition(expected)
        try:
            if not writes:  # the profile alone: one conditional UpdateItem (half the cost of a transaction)
                profile.update(actions=actions, condition=condition)
                return
            with TransactWrite(connection=_connection()) as transaction:
                transaction.update(profile, actions=actions, condition=condition)
                _add_child_writes(transaction, customer.user_id, writes)
        except UpdateError as exc:
            if condition_failed(exc, or_conflict=True):
                raise StaleCustomerError(customer.user_id) from exc
            raise
        except TransactWriteError as exc:
            if _lost_to_another_save(exc):
                raise StaleCustomerError(customer.user_id) from exc
            raise

    def _write_ahead(self, user_id: str, expected: int | None, writes: Sequence[_ChildWrite]) -> None:
        try:
            with TransactWrite(connection=_connection()) as transaction:
                transaction.condition_check(
                    CustomerProfileItem, customer_pk(user_id), PROFILE_SK, condition=_version_condition(expected)
                )
                _add_child_writes(transaction, user_id, writes)
        except TransactWriteError as exc:
            if _lost_to_another_save(exc):
                raise StaleCustomerError(user_id) from exc
            raise

    @translate_errors
    def acquire_payment_lock(self, user_id: str, *, now: datetime, until: datetime) -> bool:
        """Take the lock with one conditional UpdateItem; NotFoundError for a customer never saved."""
        lock = CustomerProfileItem.payment_lock_until
        item = CustomerProfileItem(pk=customer_pk(user_id), sk=PROFILE_SK)
        try:
            item.update(
                actions=[lock.set(until)],
                condition=CustomerProfileItem.pk.exists() & (lock.does_not_exist() | (lock < now)),
            )
        except UpdateError as exc:
            if not condition_failed(exc):
                raise
            if not self._exists(user_id):
                raise NotFoundError("customer not found") from exc
            return False
        return True

    @translate_errors
    def release_payment_lock(self, user_id: str, *, until: datetime) -> None:
        lock = CustomerProfileItem.payment_lock_until
        item = CustomerProfileItem(pk=customer_pk(user_id), sk=PROFILE_SK)
        try:
            item.update(actions=[lock.remove()], condition=lock == until)
        except UpdateError as exc:
            if not condition_failed(exc):
                raise  # a lock that expired and was taken by another operation is theirs now: leave it

    @staticmethod
    def _exists(user_id: str) -> bool:
        try:
            CustomerProfileItem.get(customer_pk(user_id), PROFILE_SK, consistent_read=True)
        except DoesNotExist:
            return False
        return True


def _lost_to_another_save(exc: TransactWriteError) -> bool:
    """The profile's version moved (its condition failed), or another transaction was writing the same items
    (``TransactionConflict``): either way, reload and retry."""
    codes = cancellation_codes(exc)  # the profile's is the only condition of a save (children are plain writes)
    return CONDITION_FAILED in codes or TRANSACTION_CONFLICT in codes


def _add_child_writes(transaction: TransactWrite, user_id: str, writes: Sequence[_ChildWrite]) -> None:
    for kind, local_id, child in writes:
        if child is None:
            transaction.delete(_CHILD_ITEMS[kind](pk=customer_pk(user_id), sk=child_sk(kind, local_id)))
        else:
            transaction.save(child_to_item(user_id, child))


# --- plans ---------------------------------------------------------------------------------------------------------


def plan_to_item(plan: Plan, now: datetime, *, pk: str, sk: str) -> PlanItem:
    return PlanItem(
        pk=pk,
        sk=sk,
        plan_id=plan.plan_id,
        name=plan.name,
        price=MoneyAttribute(amount=plan.price.amount, currency=plan.price.currency),
        billing_frequency_months=plan.billing_frequency_months,
        level=plan.level,
        processor_plan_id=plan.processor_plan_id,
        updated_at=now,
    )


def item_to_plan(item: PlanItem) -> Plan:
    return Plan(
        plan_id=item.plan_id,
        name=item.name,
        price=Money(amount=int(item.price.amount), currency=item.price.currency),
        billing_frequency_months=int(item.billing_frequency_months),
        level=int(item.level),
        processor_plan_id=item.processor_plan_id,
    )


class DynamoPlanRepository:
    """``PlanRepository``: a plan is ``PLAN#<id>`` / ``PLAN``, and a copy under ``PLANS`` / ``PLAN#<id>`` written in
    the same transaction makes listing them one Query."""

    @translate_errors
    def get(self, plan_id: str) -> Plan | None:
        try:
            item = PlanItem.get(plan_pk(plan_id), PLAN_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item_to_plan(item)

    @translate_errors
    def list_plans(self) -> list[Plan]:
        return [item_to_plan(item) for item in PlanItem.query(PLANS_PK, PlanItem.sk.startswith("PLAN#"))]

    @translate_errors
    def put(self, plan: Plan, now: datetime) -> Plan:
        with TransactWrite(connection=_connection()) as transaction:
            transaction.save(plan_to_item(plan, now, pk=plan_pk(plan.plan_id), sk=PLAN_SK))
            transaction.save(plan_to_item(plan, now, pk=PLANS_PK, sk=plan_pk(plan.plan_id)))
        return plan


# --- coupons -------------------------------------------------------------------------------------------------------


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
            with TransactWrite(connection=_connection()) as transaction:
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


# --- the subscribe route's one read --------------------------------------------------------------------------------


class DynamoSubscriptionTermsReader:
    """A plan, a coupon and the customer's use of it in one BatchGetItem (a GetItem when no coupon is named):
    ``POST /customer/subscriptions`` then stays at three requests (Query the customer, this read, the save)."""

    @translate_errors
    def read_terms(self, plan_id: str, coupon_code: str | None, *, customer_id: str | None) -> SubscribeTerms:
        if coupon_code is None:
            return SubscribeTerms(DynamoPlanRepository().get(plan_id))
        plan: Plan | None = None
        coupon: Coupon | None = None
        used = False
        keys = [(plan_pk(plan_id), PLAN_SK), (coupon_pk(coupon_code), COUPON_SK)]
        if customer_id is not None:
            keys.append((coupon_pk(coupon_code), customer_use_sk(customer_id)))
        for item in CustomersItem.batch_get(keys, consistent_read=True):
            if isinstance(item, PlanItem):
                plan = item_to_plan(item)
            elif isinstance(item, CouponItem):
                coupon = item_to_coupon(item)
            elif isinstance(item, CouponRedemptionItem):
                used = True
        return SubscribeTerms(plan, coupon, used)


__all__ = [
    "DynamoCouponRepository",
    "DynamoCustomerRepository",
    "DynamoPlanRepository",
    "DynamoSubscriptionTermsReader",
    "StaleCustomerError",
]
