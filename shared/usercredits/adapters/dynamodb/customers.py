"""DynamoDB repositories of the subscriptions half: customers, plans and coupons, in the customers table.

A customer is one partition (``CUSTOMER#<userId>``): a ``PROFILE`` item and one item per address, payment method,
subscription and transaction, so no item grows with the customer's history (the seed's one document would pass
DynamoDB's 400 KB item limit). Loading is one Query; saving is one TransactWriteItems conditional on the profile's
version, with the save's outbox items and coupon uses. Longer than ~400 lines as one concept: the customer's load and
its one conditional save.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from pynamodb.connection.base import Connection
from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.coupon_uses import (
    CouponActions,
    add_coupon_uses,
    raise_for_coupons_in_save,
    write_with_coupons,
)
from usercredits.adapters.dynamodb.customer_mapping import (
    child_data,
    child_from_data,
    processor_data,
    processor_from_data,
)
from usercredits.adapters.dynamodb.customer_transactions import (
    Write,
    add_fact,
    already_recorded,
    child_kind,
    chunks,
    without,
    write_units,
)
from usercredits.adapters.dynamodb.customers_table import (
    CustomerAddressItem,
    CustomerChildItem,
    CustomerIdempotencyItem,
    CustomerPaymentMethodItem,
    CustomerProfileItem,
    CustomersItem,
    CustomerSubscriptionItem,
    CustomerTransactionItem,
)
from usercredits.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    cancellation_codes,
    condition_failed,
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import (
    PROFILE_SK,
    customer_idempotency_pk,
    customer_idempotency_sk,
    customer_pk,
)
from usercredits.adapters.dynamodb.transactions import IDEMPOTENCY_TTL, equals_stored, set_or_remove
from usercredits.errors import ConflictError, NotFoundError
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS, IdempotencyRecord, IdempotentReplayError
from usercredits.subscriptions.events import CustomerFact
from usercredits.subscriptions.models import (
    Customer,
)
from usercredits.subscriptions.ports import (
    ChildItem,
    ChildKind,
    CouponUse,
    CustomerChanges,
    StaleCustomerError,
)

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


def customers_connection() -> Connection:
    return CustomersItem._get_connection().connection  # the table's one botocore client (see share_connections)


# --- customers -----------------------------------------------------------------------------------------------------


_CHILD_PREFIXES: dict[ChildKind, str] = {
    ChildKind.ADDRESS: "ADDRESS#",
    ChildKind.PAYMENT_METHOD: "PM#",
    ChildKind.SUBSCRIPTION: "SUB#",
    ChildKind.TRANSACTION: "TXN#",
}


def child_sk(kind: ChildKind, local_id: str) -> str:
    return f"{_CHILD_PREFIXES[kind]}{local_id}"


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


def _idempotency_item(user_id: str, record: IdempotencyRecord) -> CustomerIdempotencyItem:
    return CustomerIdempotencyItem(
        pk=customer_idempotency_pk(user_id),
        sk=customer_idempotency_sk(record.scope, record.key),
        fingerprint=record.fingerprint,
        result_id=record.result_id,
        created_at=datetime.now(UTC),
        ttl=IDEMPOTENCY_TTL,
    )


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
    written): no request of the API comes near it. A request's ``Idempotency-Key`` is put (only if absent) in the
    last transaction, or alone when the request changed nothing.
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
        if not changes.changes_customer:  # a keyed request that changed nothing: its record alone
            assert changes.idempotency is not None
            self._record_alone(customer.user_id, changes.idempotency)
            return customer
        version = (changes.expected_version or 0) + 1
        last, mirrors = write_units(changes)
        # with the profile, the record and the coupon uses (a redemption, a customer's use, the count: 3 each at most)
        fixed = len(last) + 1 + (changes.idempotency is not None) + 3 * len(changes.coupon_uses)
        if fixed > MAX_TRANSACTION_ACTIONS:
            raise ConflictError(f"too many changes in one save ({fixed} writes; at most {MAX_TRANSACTION_ACTIONS})")
        room = MAX_TRANSACTION_ACTIONS - fixed
        while mirrors and len(mirrors[-1]) <= room:  # as many mirrors as fit ride in the last transaction
            room -= len(mirrors[-1])
            last.extend(mirrors.pop())
        # The transaction mirrors that do not fit go first, in chunks (each with its facts' outbox items and the
        # condition check on the profile).
        for chunk in chunks(mirrors, MAX_TRANSACTION_ACTIONS - 1):
            self._write_ahead(customer.user_id, changes.expected_version, chunk)

        def write(uses: tuple[CouponUse, ...]) -> None:
            self._write(customer, changes.expected_version, version, last, changes.idempotency, uses)

        write_with_coupons(write, changes.coupon_uses, customer.user_id) if changes.coupon_uses else write(())
        return customer.model_copy(update={"version": version})

    def _write(
        self,
        customer: Customer,
        expected: int | None,
        version: int,
        writes: Sequence[Write],
        idempotency: IdempotencyRecord | None,
        uses: tuple[CouponUse, ...] = (),
    ) -> None:
        profile = CustomerProfileItem(pk=customer_pk(customer.user_id), sk=PROFILE_SK)
        actions, condition = _profile_actions(customer, version), _version_condition(expected)
        coupons: CouponActions | None = None
        try:
            if not writes and idempotency is None and not uses:  # the profile alone: one conditional UpdateItem
                profile.update(actions=actions, condition=condition)
                return
            with TransactWrite(connection=customers_connection()) as transaction:
                transaction.update(profile, actions=actions, condition=condition)
                _add_writes(transaction, customer.user_id, writes)
                if idempotency is not None:
                    record = _idempotency_item(customer.user_id, idempotency)
                    transaction.save(record, condition=CustomerIdempotencyItem.pk.does_not_exist())
                if uses:
                    coupons = add_coupon_uses(transaction, uses, datetime.now(UTC))
        except UpdateError as exc:
            if condition_failed(exc, or_conflict=True):
                raise StaleCustomerError(customer.user_id) from exc
            raise
        except TransactWriteError as exc:
            if recorded := already_recorded(transaction, exc):  # those facts were published: the rest goes alone
                self._write(customer, expected, version, without(writes, recorded), idempotency, uses)
                return
            if coupons is not None:
                raise_for_coupons_in_save(exc, coupons, writes, idempotency is not None)
            self._raise_for_save(exc, customer.user_id, idempotency)

    def _raise_for_save(self, exc: TransactWriteError, user_id: str, idempotency: IdempotencyRecord | None) -> None:
        """The save's own failure: the record's condition or the version's failed; a recorded key is a replay
        (whatever else moved), a version moved is a stale save, anything else is raised as it is."""
        replay = (
            self.recorded(user_id, idempotency.scope, idempotency.key)
            if idempotency is not None and CONDITION_FAILED in cancellation_codes(exc)
            else None
        )
        if replay is not None:
            raise replay from exc
        if _lost_to_another_save(exc):
            raise StaleCustomerError(user_id) from exc
        raise exc

    def _record_alone(self, user_id: str, idempotency: IdempotencyRecord) -> None:
        try:
            _idempotency_item(user_id, idempotency).save(condition=CustomerIdempotencyItem.pk.does_not_exist())
        except PutError as exc:
            if condition_failed(exc) and (replay := self.recorded(user_id, idempotency.scope, idempotency.key)):
                raise replay from exc
            raise

    @translate_errors
    def recorded(self, user_id: str, scope: str, key: str) -> IdempotentReplayError | None:
        try:
            item = CustomerIdempotencyItem.get(
                customer_idempotency_pk(user_id), customer_idempotency_sk(scope, key), consistent_read=True
            )
        except DoesNotExist:
            return None
        return IdempotentReplayError(item.result_id, item.fingerprint)

    def _write_ahead(self, user_id: str, expected: int | None, writes: Sequence[Write]) -> None:
        try:
            with TransactWrite(connection=customers_connection()) as transaction:
                transaction.condition_check(
                    CustomerProfileItem, customer_pk(user_id), PROFILE_SK, condition=_version_condition(expected)
                )
                _add_writes(transaction, user_id, writes)
        except TransactWriteError as exc:
            if recorded := already_recorded(transaction, exc):
                self._write_ahead(user_id, expected, without(writes, recorded))
                return
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


def _add_writes(transaction: TransactWrite, user_id: str, writes: Sequence[Write]) -> None:
    for write in writes:
        if isinstance(write, CustomerFact):
            add_fact(transaction, user_id, write)
            continue
        kind, local_id, child = write
        if child is None:
            transaction.delete(_CHILD_ITEMS[kind](pk=customer_pk(user_id), sk=child_sk(kind, local_id)))
        else:
            transaction.save(child_to_item(user_id, child))


# --- plans ---------------------------------------------------------------------------------------------------------


# --- coupons -------------------------------------------------------------------------------------------------------


# --- the subscribe route's one read --------------------------------------------------------------------------------


__all__ = ["DynamoCustomerRepository", "StaleCustomerError"]
