"""loadProcessor: reload the customer from the payment processor (the source of truth) and merge it by processor id."""

from __future__ import annotations

from datetime import datetime

from usercredits.kernel.ids import new_ulid
from usercredits.subscriptions.changes import (
    RequestKey,
    answer_customer,
    epoch,
    keyed_request,
    load_customer,
    payment_lock,
    persist,
    run_once,
    unlocked,
)
from usercredits.subscriptions.models import Address, AddressFields, Customer, PaymentMethod, ProcessorItem, Transaction
from usercredits.subscriptions.ports import ProcessorCustomer, ProcessorPaymentMethod, ProcessorSubscription, SyncPorts
from usercredits.subscriptions.results import (
    local_subscription,
    replace_payment_method,
    replace_subscription,
    stamped,
    transactions_mirrored,
    upsert_subscription,
)
from usercredits.subscriptions.tracking import mark_saved
from usercredits.subscriptions.transactions import merge_transactions

#: Metadata keys the adapter adds to the processor customer; they are not the app's own metadata.
_OWN_METADATA = frozenset({"userId", "customerId", "ipAddress"})


def load_processor(user_id: str, ports: SyncPorts, request_key: str | None = None) -> Customer:
    """Reload the customer from the processor (the source of truth) and merge by processor id.

    Profile, payment methods (with their billing addresses), subscriptions and transactions (charges and refunds,
    one-off ones included) are read; items the processor no longer has are marked ``deleted`` instead of being kept
    as if alive (docs/rules.md#processor-reload), transactions are never dropped. Items never sent stay as they are,
    synced ones take the processor's values. A customer never sent is returned as is (the seed does not call the
    processor then).
    Loading twice changes nothing the second time. With an ``Idempotency-Key`` the key is recorded in the save, and
    a repeat answers the customer as it stands without calling the processor.
    """
    key = keyed_request("reload", request_key, {})
    return run_once(key, ports.customers, user_id, lambda: _load_processor(user_id, key, ports), answer_customer)


def _load_processor(user_id: str, key: RequestKey | None, ports: SyncPorts) -> Customer:
    customer = load_customer(user_id, ports)
    record = None if key is None else key.record(customer.customer_id)
    processor_id = customer.processor.id
    if processor_id is None:
        return customer if record is None else persist(customer, ports, lambda c: c, record)
    with payment_lock(user_id, ports):
        remote = ports.processor.retrieve_customer(processor_id)
        if remote is None:
            now = ports.clock.now()
            customer = persist(customer, ports, lambda c: _customer_gone(c, now), record)
        else:
            as_of = epoch(ports.clock.now())  # before the reads: an event created since may be newer
            methods = ports.processor.list_payment_methods(processor_id)
            subscriptions = ports.processor.list_subscriptions(processor_id)
            transactions = ports.processor.list_transactions(processor_id)
            now = ports.clock.now()
            customer = persist(
                customer,
                ports,
                lambda c: _merge_loaded(c, remote, methods, subscriptions, transactions, now, as_of),
                record,
            )
    return unlocked(customer)


def _merge_loaded(
    customer: Customer,
    remote: ProcessorCustomer,
    methods: list[ProcessorPaymentMethod],
    subscriptions: list[ProcessorSubscription],
    transactions: list[Transaction],
    now: datetime,
    as_of: int,
) -> Customer:
    merged = _merge_payment_methods(customer, methods, now)
    for remote_subscription in subscriptions:
        merged = upsert_subscription(merged, remote_subscription, now)
        recorded = local_subscription(merged, remote_subscription.id, remote_subscription.subscription_id)
        assert recorded is not None
        merged = replace_subscription(merged, stamped(recorded, as_of))
    seen = {sub.id for sub in subscriptions}
    merged = merged.model_copy(
        update={
            "subscriptions": [
                sub.model_copy(update={"deleted": True})
                if sub.processor.id is not None and sub.processor.id not in seen and not sub.deleted
                else sub
                for sub in merged.subscriptions
            ]
        }
    )
    merged = transactions_mirrored(merge_transactions(merged, transactions, now))
    # The processor's default, or none: a default it no longer has (or one never sent) is not kept.
    default = next(
        (
            m.payment_method_id
            for m in merged.payment_methods
            if remote.default_payment_method_id is not None
            and m.processor.id == remote.default_payment_method_id
            and not m.deleted
        ),
        None,
    )
    profile = merged.model_copy(
        update={
            "name": remote.name,
            "email": remote.email or merged.email,
            "phone": remote.phone,
            "ip_address": remote.metadata.get("ipAddress", merged.ip_address),
            "metadata": {key: value for key, value in remote.metadata.items() if key not in _OWN_METADATA},
            "default_payment_method_id": default,
            "updated_at": now,
        }
    )
    return mark_saved(profile, remote.id)


def _merge_payment_methods(customer: Customer, methods: list[ProcessorPaymentMethod], now: datetime) -> Customer:
    updated = customer
    for remote in methods:
        local = next((m for m in updated.payment_methods if m.processor.id == remote.id), None)
        if local is None:
            local = PaymentMethod(payment_method_id=new_ulid(now), kind=remote.kind, created_at=now)
            updated = updated.model_copy(update={"payment_methods": [*updated.payment_methods, local]})
        address_id = local.billing_address_id
        if remote.billing is not None:
            updated, address_id = _merge_address(updated, address_id, remote.billing, remote.id, now)
        method = local.model_copy(
            update={
                "kind": remote.kind,
                "details": remote.details,
                "token": None,
                "billing_address_id": address_id,
                "deleted": False,
                "updated_at": now,
            }
        )
        updated = replace_payment_method(updated, mark_saved(method, remote.id))
    seen = {remote.id for remote in methods}
    gone = [
        m.model_copy(update={"deleted": True})
        if m.processor.id is not None and m.processor.id not in seen and not m.deleted
        else m
        for m in updated.payment_methods
    ]
    return updated.model_copy(update={"payment_methods": gone})


def _merge_address(
    customer: Customer, address_id: str | None, billing: AddressFields, processor_id: str, now: datetime
) -> tuple[Customer, str]:
    existing = next((a for a in customer.addresses if a.address_id == address_id), None)
    fields = billing.model_dump()
    if existing is None:
        address = Address(address_id=new_ulid(now), created_at=now, **fields)
        addresses = [*customer.addresses, mark_saved(address, processor_id)]
    else:
        address = mark_saved(existing.model_copy(update={**fields, "company": existing.company}), processor_id)
        address = address if address != existing else existing
        addresses = [address if a.address_id == existing.address_id else a for a in customer.addresses]
    return customer.model_copy(update={"addresses": addresses}), address.address_id


def _customer_gone(customer: Customer, now: datetime) -> Customer:
    """The processor customer was deleted: its payment methods and subscriptions are gone with it; the customer
    forgets its processor id, so the next sync creates a new one."""
    methods = [m.model_copy(update={"deleted": True}) if m.processor.id else m for m in customer.payment_methods]
    subscriptions = [s.model_copy(update={"deleted": True}) if s.processor.id else s for s in customer.subscriptions]
    return customer.model_copy(
        update={
            "processor": ProcessorItem(previous_id=customer.processor.id),
            "payment_methods": methods,
            "subscriptions": subscriptions,
            "updated_at": now,
        }
    )
