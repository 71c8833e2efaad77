"""The use cases that talk to the payment processor: saveProcessor, loadProcessor, refunds, voids and billing webhooks.

``save_processor`` is the seed's saveProcessor (5.11, 5.12) made crash-safe: under the customer's payment lock it
sends the customer, then its payment methods, then its subscriptions, and **saves the local state after each
processor call**. Every call carries an idempotency key derived from local ids (and, for updates, from what is
sent and the customer's version, so a later change never reuses an earlier key), so a sync that fails halfway is
completed by the next one: what reached the processor is recorded, what did not is sent again, and a call whose
answer was lost gets the object it made the first time. Nothing is rolled back on
failure (the seed's rollback dropped the user's unsent items); the lock is released whatever happens.

Coupon uses are counted (``CouponRepository.redeem``, once per coupon, customer and subscription) before the
discount is sent; a refused one is dropped from the subscription instead of being sent.

Every local write goes through ``_persist``: apply a pure change to the customer, save the difference, and on a
concurrent save (``StaleCustomerError``) reload and apply the same change again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from usercredits.domain.ids import new_ulid
from usercredits.domain.models import Money
from usercredits.domain.ports import Clock
from usercredits.errors import ConflictError, NotFoundError
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.customers import find_payment_method
from usercredits.subscriptions.errors import PaymentInProgressError
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Customer,
    PaymentMethod,
    Plan,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SyncableModel,
    Transaction,
    TransactionKind,
)
from usercredits.subscriptions.ports import (
    CouponRepository,
    CustomerRepository,
    InvoiceReport,
    ProcessorCustomer,
    ProcessorPaymentMethod,
    ProcessorSubscription,
    RedemptionOutcome,
    StaleCustomerError,
    SubscriptionProcessor,
    SubscriptionReport,
)
from usercredits.subscriptions.results import record_payment_method_result, record_subscription_result
from usercredits.subscriptions.subscribing import find_subscription
from usercredits.subscriptions.sync import (
    PAYMENT_LOCK_TIMEOUT,
    SyncAction,
    coupon_redemptions_due,
    drop_discount,
    idempotency_key,
    payment_method_needs_update,
    subscription_sync_action,
    subscription_terms,
)
from usercredits.subscriptions.tracking import (
    keep_edits,
    mark_saved,
    processor_id_for,
    synced_value,
    track,
    tracked_snapshot,
    validate_is_saved,
)
from usercredits.subscriptions.transactions import (
    ensure_voidable,
    find_transaction,
    merge_transactions,
    record_refund,
    record_void,
    refund_amount,
    refunded_so_far,
)

#: How many times a local save is retried after a concurrent save of the same customer.
SAVE_ATTEMPTS = 5
#: Metadata keys the adapter adds to the processor customer; they are not the app's own metadata.
_OWN_METADATA = frozenset({"userId", "customerId", "ipAddress"})
_PENDING_ADDRESS = frozenset({ProcessorState.INITIAL, ProcessorState.CHANGED})


@dataclass(frozen=True)
class SyncPorts:
    """What the processor use cases need: storage for customers and coupons, the processor, and a clock."""

    customers: CustomerRepository
    coupons: CouponRepository
    processor: SubscriptionProcessor
    clock: Clock


# ---- saveProcessor ---------------------------------------------------------------------------------------------------


def save_processor(user_id: str, ports: SyncPorts) -> Customer:
    """Send the user's customer to the processor: profile, then payment methods, then subscriptions.

    Raises ``NotFoundError`` without a customer, ``PaymentInProgressError`` while another payment operation holds
    the lock, ``ConflictError`` when a subscription cannot be sent yet (no processor price, for instance), and the
    processor's ``PaymentGatewayError``/``UnavailableError``; in each case what was done so far is saved, and calling
    it again completes the sync without duplicating anything at the processor.
    """
    customer = _load(user_id, ports)
    with _payment_lock(user_id, ports):
        customer = _sync_profile(customer, ports)
        customer = _sync_payment_methods(customer, ports)
        customer = _sync_subscriptions(customer, ports)
        now = ports.clock.now()
        customer = _persist(customer, ports, lambda c: c.model_copy(update={"last_processor_save": now}))
    return _unlocked(customer)


def _sync_profile(customer: Customer, ports: SyncPorts) -> Customer:
    sent = tracked_snapshot(customer)
    processor_id = customer.processor.id
    result: ProcessorCustomer
    if processor_id is None:
        # Made again after a deletion at the processor: not under the first key, which would replay the dead one.
        key = idempotency_key("create-customer", customer.customer_id, after=customer.processor.previous_id)
        result = ports.processor.create_customer(customer, idempotency_key=key)
    elif customer.processor.state is ProcessorState.CHANGED:
        outgoing = _sendable_default(customer)
        default = processor_id_for(outgoing.default_payment_method_id, outgoing.payment_methods)
        content = {"fields": sent, "default": default}
        key = idempotency_key("update-customer", customer.customer_id, content, after=customer.version)
        result = ports.processor.update_customer(processor_id, outgoing, idempotency_key=key)
    else:
        return customer
    return _persist(customer, ports, lambda c: _synced_as(c, result.id, sent))


def _sync_payment_methods(customer: Customer, ports: SyncPorts) -> Customer:
    # Billing addresses to send, decided before the loop and marked saved only once every method was sent: an
    # address shared by two methods, saved after the first, would never reach the second.
    pending = {a.address_id: tracked_snapshot(a) for a in customer.addresses if a.processor.state in _PENDING_ADDRESS}
    sent_with: dict[str, str] = {}
    for method in list(customer.payment_methods):
        if method.deleted or method.processor.state is ProcessorState.LOCAL:
            continue
        current = find_payment_method(customer, method.payment_method_id)
        result = _send_payment_method(customer, current, current.billing_address_id in pending, ports)
        if result is None:
            if current.processor.state is ProcessorState.CHANGED and current.processor.id is not None:
                saved = mark_saved(current, current.processor.id)
                customer = _persist(customer, ports, partial(_replace_method, method=saved))
            continue
        record = partial(
            record_payment_method_result,
            payment_method_id=current.payment_method_id,
            result=result,
            now=ports.clock.now(),
        )
        customer = _persist(customer, ports, record)
        if current.billing_address_id in pending:
            sent_with[current.billing_address_id] = result.id
    if sent_with:
        customer = _persist(
            customer, ports, partial(_addresses_sent, sent={k: (v, pending[k]) for k, v in sent_with.items()})
        )
    return customer


def _send_payment_method(
    customer: Customer, method: PaymentMethod, address_pending: bool, ports: SyncPorts
) -> ProcessorPaymentMethod | None:
    """Attach, re-attach (a new token for the same local method) or update one payment method (also when its
    billing address is to be sent: ``address_pending``); None when nothing needs sending."""
    customer_id = customer.processor.id
    if customer_id is None:
        raise ConflictError("Customer not saved to processor")
    billing = _billing(customer, method)
    is_default = customer.default_payment_method_id == method.payment_method_id
    token = method.token
    if method.processor.id is None or (token is not None and token != synced_value(method, "token")):
        if token is None:
            return None  # nothing to attach yet
        key = idempotency_key("attach-payment-method", method.payment_method_id, {"token": token})
        result = ports.processor.attach_payment_method(
            customer_id, token, billing=billing, make_default=is_default, idempotency_key=key
        )
        old = method.processor.id
        if old is not None and old != result.id:
            ports.processor.detach_payment_method(old, idempotency_key=idempotency_key("detach-payment-method", old))
        return result
    if payment_method_needs_update(customer, method) or address_pending:
        content = {"billing": billing.model_dump(mode="json") if billing else None, "default": is_default}
        key = idempotency_key("update-payment-method", method.payment_method_id, content, after=customer.version)
        return ports.processor.update_payment_method(
            method.processor.id, billing=billing, make_default=is_default, idempotency_key=key
        )
    return None


def _sync_subscriptions(customer: Customer, ports: SyncPorts) -> Customer:
    for subscription_id in [sub.subscription_id for sub in customer.subscriptions]:
        action = subscription_sync_action(find_subscription(customer, subscription_id))
        if action is SyncAction.NONE:
            continue
        if action is not SyncAction.CANCEL:
            customer = _redeem_coupons(customer, subscription_id, ports)
        subscription = find_subscription(customer, subscription_id)
        as_of = _epoch(ports.clock.now())  # taken before the call: an event created since may be newer
        result = _send_subscription(customer, subscription, action, ports)
        record = partial(
            _record_sent,
            subscription_id=subscription_id,
            result=result,
            sent=tracked_snapshot(subscription),
            now=ports.clock.now(),
            as_of=as_of,
            billed=action is not SyncAction.CANCEL,
        )
        customer = _persist(customer, ports, record)
    if customer.processor.id is not None and any(sub.transactions_pending for sub in customer.subscriptions):
        # Creating or changing a subscription may have charged the customer: mirror the new transactions. The flag
        # is saved with the result, so a listing that fails is done by the next sync even with nothing to send.
        loaded = ports.processor.list_transactions(customer.processor.id)
        now = ports.clock.now()
        customer = _persist(customer, ports, lambda c: _transactions_mirrored(merge_transactions(c, loaded, now)))
    return customer


def _send_subscription(
    customer: Customer, subscription: Subscription, action: SyncAction, ports: SyncPorts
) -> ProcessorSubscription:
    local_id = subscription.subscription_id
    if action is SyncAction.CREATE:
        terms = subscription_terms(customer, subscription)
        return ports.processor.create_subscription(
            terms, idempotency_key=idempotency_key("create-subscription", local_id)
        )
    processor_id = subscription.processor.id
    if processor_id is None:
        raise ConflictError("Subscription not saved to processor")
    if action is SyncAction.CANCEL:
        key = idempotency_key("cancel-subscription", local_id)
        return ports.processor.cancel_subscription(processor_id, at_period_end=False, idempotency_key=key)
    terms = subscription_terms(customer, subscription)
    key = idempotency_key("update-subscription", local_id, dataclasses.asdict(terms), after=customer.version)
    return ports.processor.update_subscription(processor_id, terms, idempotency_key=key)


def _redeem_coupons(customer: Customer, subscription_id: str, ports: SyncPorts) -> Customer:
    """Count each coupon discount of the subscription about to be sent; drop the ones whose use is refused."""
    for redemption in coupon_redemptions_due(customer):
        if redemption.subscription_id != subscription_id:
            continue
        coupon = ports.coupons.get(redemption.coupon_code)
        outcome = ports.coupons.redeem(
            redemption.coupon_code,
            redemption.customer_id,
            redemption.subscription_id,
            coupon.max_uses if coupon is not None else None,
            restricted=redemption.restricted,
        )
        if outcome in (
            RedemptionOutcome.LIMIT_REACHED,
            RedemptionOutcome.UNKNOWN_COUPON,
            RedemptionOutcome.USED_BY_CUSTOMER,
        ):
            drop = partial(
                drop_discount,
                subscription_id=subscription_id,
                discount_id=redemption.discount_id,
                now=ports.clock.now(),
            )
            customer = _persist(customer, ports, drop)
    return customer


# ---- loadProcessor ---------------------------------------------------------------------------------------------------


def load_processor(user_id: str, ports: SyncPorts) -> Customer:
    """Reload the customer from the processor (the source of truth) and merge by processor id.

    Profile, payment methods (with their billing addresses), subscriptions and transactions (charges and refunds,
    one-off ones included) are read; items the processor no longer has are marked ``deleted`` instead of being kept
    as if alive (fix 7.2-5), transactions are never dropped. Items never sent stay as they are, synced ones take the
    processor's values. A customer never sent is returned as is (the seed does not call the processor then).
    Loading twice changes nothing the second time.
    """
    customer = _load(user_id, ports)
    processor_id = customer.processor.id
    if processor_id is None:
        return customer
    with _payment_lock(user_id, ports):
        remote = ports.processor.retrieve_customer(processor_id)
        if remote is None:
            now = ports.clock.now()
            customer = _persist(customer, ports, lambda c: _customer_gone(c, now))
        else:
            as_of = _epoch(ports.clock.now())  # before the reads: an event created since may be newer
            methods = ports.processor.list_payment_methods(processor_id)
            subscriptions = ports.processor.list_subscriptions(processor_id)
            transactions = ports.processor.list_transactions(processor_id)
            now = ports.clock.now()
            customer = _persist(
                customer, ports, lambda c: _merge_loaded(c, remote, methods, subscriptions, transactions, now, as_of)
            )
    return _unlocked(customer)


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
        merged = _upsert_subscription(merged, remote_subscription, now)
        recorded = _local_subscription(merged, remote_subscription.id, remote_subscription.subscription_id)
        assert recorded is not None
        merged = _replace_subscription(merged, _stamped(recorded, as_of))
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
    merged = _transactions_mirrored(merge_transactions(merged, transactions, now))
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
        updated = _replace_method(updated, mark_saved(method, remote.id))
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


def _upsert_subscription(customer: Customer, remote: ProcessorSubscription, now: datetime) -> Customer:
    """Record a processor subscription on its local one (by processor id, then by the local id in its metadata),
    adding it when it was made at the processor directly."""
    local = _local_subscription(customer, remote.id, remote.subscription_id)
    updated = customer
    if local is None:
        plan = next(
            (sub.plan for sub in customer.subscriptions if sub.plan.processor_plan_id == remote.price_id),
            # A price no local subscription uses (made at Stripe directly): its terms at level 0, so it never
            # outranks a plan an admin defined.
            Plan(
                plan_id=remote.price_id,
                name=remote.price_id,
                price=remote.price,
                level=0,
                processor_plan_id=remote.price_id,
            ),
        )
        local = Subscription(
            subscription_id=new_ulid(now), plan=plan, price=remote.price, created_at=remote.created_at or now
        )
        updated = customer.model_copy(update={"subscriptions": [*customer.subscriptions, local]})
    return record_subscription_result(updated, local.subscription_id, remote, now)


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


# ---- refunds and voids -----------------------------------------------------------------------------------------------


def refund_transaction(user_id: str, transaction_id: str, amount: Money | None, ports: SyncPorts) -> Transaction:
    """Refund all (``amount`` None) or part of a sale; the refund goes first in the transaction list.

    Checked before any call: ``NotFoundError`` for an unknown transaction, ``ConflictError`` when the sale or the
    customer is not at the processor, is not captured or is fully refunded, ``InvalidRequestError`` for a zero
    amount, another currency or more than what is left to refund.
    """
    _load(user_id, ports)  # NotFoundError before trying the lock
    with _payment_lock(user_id, ports):
        # Checked on the customer as it stands under the lock: two refunds cannot both pass on the same state.
        customer = _load(user_id, ports)
        sale = find_transaction(customer, transaction_id)
        validate_is_saved(customer, "Customer")
        refund_amount(customer, transaction_id, amount)
        processor_id = _processor_id(sale)
        content = {
            "amount": amount.model_dump() if amount else None,
            "refunded": refunded_so_far(customer, transaction_id),
        }
        # The refunds recorded on the sale (failed ones included) only grow, and do not move before a refund whose
        # answer was lost is recorded: its retry replays it, a later refund never does. (Not the version: any save
        # meanwhile, a webhook's, would make a retry a second refund.)
        key = idempotency_key("refund", transaction_id, content, after=_refunds_recorded(customer, transaction_id))
        refund = ports.processor.refund(processor_id, amount, idempotency_key=key)
        refund = refund.model_copy(update={"refunded_transaction_id": transaction_id})
        now = ports.clock.now()
        _persist(customer, ports, lambda c: record_refund(c, refund, now))
    return refund


def void_transaction(user_id: str, transaction_id: str, ports: SyncPorts) -> Transaction:
    """Void a sale not settled yet (an uncaptured payment is released); it is replaced in place, status voided.

    ``NotFoundError`` for an unknown transaction, ``ConflictError`` when it cannot be voided (settled already: refund
    it instead) or is not at the processor.
    """
    _load(user_id, ports)
    with _payment_lock(user_id, ports):
        customer = _load(user_id, ports)  # checked under the lock, as refunds are
        sale = ensure_voidable(customer, transaction_id)
        validate_is_saved(customer, "Customer")
        processor_id = _processor_id(sale)
        voided = ports.processor.void(processor_id, idempotency_key=idempotency_key("void", transaction_id))
        voided = voided.model_copy(
            update={
                "transaction_id": sale.transaction_id,
                "subscription_id": voided.subscription_id or sale.subscription_id,
                "discounts": voided.discounts or sale.discounts,
            }
        )
        now = ports.clock.now()
        _persist(customer, ports, lambda c: record_void(c, voided, now))
    return voided


# ---- billing webhooks ------------------------------------------------------------------------------------------------


def apply_billing_event(report: SubscriptionReport | InvoiceReport, ports: SyncPorts) -> str:
    """Apply what a verified billing event reports; returns the outcome for logs.

    A subscription report records the subscription as the event carries it; an invoice report mirrors the
    customer's transactions again and sets the subscription's failure count. A subscription event created before the
    newest subscription state recorded (an event's ``created``, or the time of a sync or load result) is ``"stale"``;
    invoice events are ordered among themselves. A redelivered event changes nothing (``"unchanged"``); one about a
    customer or subscription we do not know is ``"ignored"``; a local edit not synced yet stays pending. Dedup on
    the event id is the webhook path's job; this is safe without it too.
    """
    if isinstance(report, SubscriptionReport):
        return _apply_subscription_event(report, ports)
    return _apply_invoice_event(report, ports)


def _apply_subscription_event(report: SubscriptionReport, ports: SyncPorts) -> str:
    remote, created = report.subscription, report.created
    customer = _event_customer(report.customer_processor_id, report.user_id, ports)
    if customer is None:
        return "ignored"
    local = _local_subscription(customer, remote.id, remote.subscription_id)
    if local is not None and local.last_event_created is not None and created < local.last_event_created:
        return "stale"

    def apply(current: Customer) -> Customer:
        now = ports.clock.now()
        found = _local_subscription(current, remote.id, remote.subscription_id)
        if found is not None and found.last_event_created is not None and created < found.last_event_created:
            return current
        updated = _upsert_subscription(current, remote, now)
        recorded = _local_subscription(updated, remote.id, remote.subscription_id)
        assert recorded is not None
        if found is not None and found.processor.state is ProcessorState.CHANGED:
            # The user's edit not synced yet stays pending over the processor's values (it would be lost).
            recorded = keep_edits(recorded, found, found.processor.synced_fields)
        stamped = recorded.model_copy(update={"last_event_created": created})
        return _replace_subscription(updated, stamped)

    return _apply(customer, apply, ports)


def _apply_invoice_event(report: InvoiceReport, ports: SyncPorts) -> str:
    customer = _event_customer(report.customer_processor_id, report.user_id, ports)
    if customer is None or customer.processor.id is None:
        return "ignored"
    loaded = ports.processor.list_transactions(customer.processor.id)
    created = report.created

    def apply(current: Customer) -> Customer:
        now = ports.clock.now()
        updated = merge_transactions(current, loaded, now)
        local = _local_subscription(updated, report.subscription_processor_id, report.subscription_id)
        # Invoice events have their own stamp: one must not make an older subscription event stale, nor the reverse.
        last = local.last_invoice_event_created if local is not None else None
        if local is None or (last is not None and created < last):
            return updated
        stamped = local.model_copy(
            update={"failure_count": report.failure_count, "last_invoice_event_created": created}
        )
        return _replace_subscription(updated, stamped)

    return _apply(customer, apply, ports)


def _apply(customer: Customer, change: Callable[[Customer], Customer], ports: SyncPorts) -> str:
    saved = _persist(customer, ports, change)
    return "unchanged" if saved is customer else "applied"


def _event_customer(customer_processor_id: str | None, user_id: str | None, ports: SyncPorts) -> Customer | None:
    """The local customer an event is about: by the ``userId`` it carries, else by the processor customer's
    metadata."""
    if customer_processor_id is None:
        return None
    if not user_id:
        remote = ports.processor.retrieve_customer(customer_processor_id)
        user_id = remote.metadata.get("userId") if remote is not None else None
    customer = ports.customers.load(str(user_id)) if user_id else None
    if customer is None or customer.processor.id != customer_processor_id:
        return None
    return customer


# ---- helpers ---------------------------------------------------------------------------------------------------------


def _load(user_id: str, ports: SyncPorts) -> Customer:
    customer = ports.customers.load(user_id)
    if customer is None:
        raise NotFoundError("customer not found")
    return customer


@contextmanager
def _payment_lock(user_id: str, ports: SyncPorts) -> Iterator[None]:
    """Hold the customer's payment lock (seed 5.2, one conditional write) for the block; released in any case."""
    now = ports.clock.now()
    until = now + PAYMENT_LOCK_TIMEOUT
    if not ports.customers.acquire_payment_lock(user_id, now=now, until=until):
        raise PaymentInProgressError()
    try:
        yield
    finally:
        ports.customers.release_payment_lock(user_id, until=until)


def _unlocked(customer: Customer) -> Customer:
    """The customer as it stands once our payment lock is released."""
    return customer.model_copy(update={"payment_lock_until": None})


def _persist(customer: Customer, ports: SyncPorts, change: Callable[[Customer], Customer]) -> Customer:
    """Apply ``change`` and save the difference; on a concurrent save, reload and apply it again."""
    before = customer
    for _ in range(SAVE_ATTEMPTS):
        after = change(before)
        changes = customer_changes(before, after)
        if changes.is_empty:
            return before
        try:
            return ports.customers.save(changes)
        except StaleCustomerError:
            before = _load(customer.user_id, ports)
    raise ConflictError("the customer keeps changing; retry")


def _synced_as[S: SyncableModel](item: S, processor_id: str, sent: dict[str, Any]) -> S:
    """The item as saved at the processor with the fields ``sent``: edits made meanwhile stay ``changed``."""
    processor = ProcessorItem(id=processor_id, state=ProcessorState.SAVED, synced_fields=sent)
    return track(item.model_copy(update={"processor": processor}))


def _addresses_sent(customer: Customer, sent: Mapping[str, tuple[str, dict[str, Any]]]) -> Customer:
    """Billing addresses saved as sent (address id -> a processor method that has it, the fields sent); edits made
    meanwhile stay ``changed``."""
    addresses = [
        _synced_as(address, *sent[address.address_id]) if address.address_id in sent else address
        for address in customer.addresses
    ]
    return customer.model_copy(update={"addresses": addresses})


def _sendable_default(customer: Customer) -> Customer:
    """The customer as ``update_customer`` may send it: a default payment method removed at the processor is left
    out (Stripe refuses it, which would block every profile sync)."""
    default = next(
        (m for m in customer.payment_methods if m.payment_method_id == customer.default_payment_method_id), None
    )
    if default is None or not default.deleted:
        return customer
    return customer.model_copy(update={"default_payment_method_id": None})


def _record_sent(
    customer: Customer,
    subscription_id: str,
    result: ProcessorSubscription,
    sent: dict[str, Any],
    now: datetime,
    as_of: int,
    billed: bool,
) -> Customer:
    """A sync's result on its subscription: stamped ``as_of`` (older webhook events are then stale), flagged for
    mirroring its charges when ``billed``; edits made while it was sent (fields differing from ``sent``) stay."""
    local = find_subscription(customer, subscription_id)
    updated = record_subscription_result(customer, subscription_id, result, now)
    recorded = keep_edits(find_subscription(updated, subscription_id), local, sent)
    recorded = _stamped(recorded, as_of)
    if billed:
        recorded = recorded.model_copy(update={"transactions_pending": True})
    return _replace_subscription(updated, recorded)


def _stamped(subscription: Subscription, as_of: int) -> Subscription:
    """The subscription with a processor state recorded ``as_of`` (epoch seconds): subscription events created
    before it are stale. Invoice events keep their own stamp (a result says nothing about payment attempts)."""
    last = subscription.last_event_created
    return subscription.model_copy(update={"last_event_created": as_of if last is None else max(last, as_of)})


def _transactions_mirrored(customer: Customer) -> Customer:
    subscriptions = [
        sub.model_copy(update={"transactions_pending": False}) if sub.transactions_pending else sub
        for sub in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions})


def _refunds_recorded(customer: Customer, transaction_id: str) -> int:
    return sum(
        1
        for txn in customer.transactions
        if txn.kind is TransactionKind.REFUND and txn.refunded_transaction_id == transaction_id
    )


def _epoch(moment: datetime) -> int:
    """Unix seconds, as Stripe's event ``created``."""
    return int(moment.timestamp())


def _replace_method(customer: Customer, method: PaymentMethod) -> Customer:
    methods = [method if m.payment_method_id == method.payment_method_id else m for m in customer.payment_methods]
    return customer.model_copy(update={"payment_methods": methods})


def _replace_subscription(customer: Customer, subscription: Subscription) -> Customer:
    subscriptions = [
        subscription if s.subscription_id == subscription.subscription_id else s for s in customer.subscriptions
    ]
    return customer.model_copy(update={"subscriptions": subscriptions})


def _local_subscription(customer: Customer, processor_id: str | None, local_id: str | None) -> Subscription | None:
    by_processor = next((s for s in customer.subscriptions if processor_id and s.processor.id == processor_id), None)
    return by_processor or next((s for s in customer.subscriptions if local_id and s.subscription_id == local_id), None)


def _billing(customer: Customer, method: PaymentMethod) -> AddressFields | None:
    address = next((a for a in customer.addresses if a.address_id == method.billing_address_id), None)
    return (
        None
        if address is None
        else AddressFields.model_validate(address.model_dump(include=set(AddressFields.model_fields)))
    )


def _processor_id(transaction: Transaction) -> str:
    processor_id = transaction.processor.id
    if processor_id is None:
        raise ConflictError("Transaction not saved to processor")
    return processor_id
