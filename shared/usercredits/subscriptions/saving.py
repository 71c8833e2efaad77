"""saveProcessor: send the user's customer to the payment processor (docs/rules.md#processor-sync), made crash-safe.

Under the customer's payment lock it sends the customer, then its payment methods, then its subscriptions, and
**saves the local state after each processor call**. Every call carries an idempotency key derived from local ids
(and, for updates, from what is sent and the customer's version, so a later change never reuses an earlier key), so a
sync that fails halfway is completed by the next one: what reached the processor is recorded, what did not is sent
again, and a call whose answer was lost gets the object it made the first time. Nothing is rolled back on failure
(the seed's rollback dropped the user's unsent items); the lock is released whatever happens.

Coupon uses are counted at subscribe, in the subscribe's own save; a subscription stored before that still has its
use counted here (``CouponRepository.redeem``, once per coupon, customer and subscription) before the discount is
sent, and a refused one stops the sync with 409 instead of being dropped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from usercredits.errors import ConflictError
from usercredits.kernel.writes import IdempotencyRecord
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
from usercredits.subscriptions.coupons import INVALID, LIMIT_REACHED
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    PaymentMethod,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SyncableModel,
)
from usercredits.subscriptions.ports import (
    ProcessorCustomer,
    ProcessorPaymentMethod,
    ProcessorSubscription,
    RedemptionOutcome,
    SyncPorts,
)
from usercredits.subscriptions.results import (
    record_payment_method_result,
    record_subscription_result,
    replace_payment_method,
    replace_subscription,
    stamped,
    transactions_mirrored,
)
from usercredits.subscriptions.sync_rules import (
    SyncAction,
    coupon_redemptions_due,
    end_replaced,
    hold_replaced,
    idempotency_key,
    payment_method_needs_update,
    replaced_to_end,
    replaced_to_hold,
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
)
from usercredits.subscriptions.transactions import merge_transactions

_PENDING_ADDRESS = frozenset({ProcessorState.INITIAL, ProcessorState.CHANGED})
#: Redemptions a sync refuses, with the seed's message for each.
_REFUSED = {
    RedemptionOutcome.LIMIT_REACHED: LIMIT_REACHED,
    RedemptionOutcome.USED_BY_CUSTOMER: LIMIT_REACHED,
    RedemptionOutcome.UNKNOWN_COUPON: INVALID,
}


def save_processor(user_id: str, ports: SyncPorts, request_key: str | None = None) -> Customer:
    """Send the user's customer to the processor: profile, then payment methods, then subscriptions.

    Raises ``NotFoundError`` without a customer, ``PaymentInProgressError`` while another payment operation holds
    the lock, ``ConflictError`` when a subscription cannot be sent yet (no processor price, for instance), and the
    processor's ``PaymentGatewayError``/``UnavailableError``; in each case what was done so far is saved, and calling
    it again completes the sync without duplicating anything at the processor. With an ``Idempotency-Key`` the key
    is recorded in the last save, and a repeat answers the customer as it stands without calling the processor.
    """
    key = keyed_request("sync", request_key, {})
    return run_once(key, ports.customers, user_id, lambda: _save_processor(user_id, key, ports), answer_customer)


def _save_processor(user_id: str, key: RequestKey | None, ports: SyncPorts) -> Customer:
    customer = load_customer(user_id, ports)
    with payment_lock(user_id, ports):
        customer = _sync_profile(customer, ports)
        customer = _sync_payment_methods(customer, ports)
        customer = _sync_subscriptions(customer, ports)
        now = ports.clock.now()
        record = None if key is None else key.record(customer.customer_id)
        customer = persist(customer, ports, lambda c: c.model_copy(update={"last_processor_save": now}), record)
    return unlocked(customer)


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
    return persist(customer, ports, lambda c: _synced_as(c, result.id, sent))


def _sync_payment_methods(customer: Customer, ports: SyncPorts) -> Customer:
    # Billing addresses to send, decided before the loop and marked saved only once every method was sent: an
    # address shared by two methods, saved after the first, would never reach the second.
    pending = {a.address_id: tracked_snapshot(a) for a in customer.addresses if a.processor.state in _PENDING_ADDRESS}
    sent_with: dict[str, str] = {}
    for method in list(customer.payment_methods):
        if method.deleted or method.processor.state is ProcessorState.LOCAL:
            continue
        current = customer.payment_method(method.payment_method_id)
        result = _send_payment_method(customer, current, current.billing_address_id in pending, ports)
        if result is None:
            if current.processor.state is ProcessorState.CHANGED and current.processor.id is not None:
                saved = mark_saved(current, current.processor.id)
                customer = persist(customer, ports, partial(replace_payment_method, method=saved))
            continue
        record = partial(
            record_payment_method_result,
            payment_method_id=current.payment_method_id,
            result=result,
            now=ports.clock.now(),
        )
        customer = persist(customer, ports, record)
        if current.billing_address_id in pending:
            sent_with[current.billing_address_id] = result.id
    if sent_with:
        customer = persist(
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
        customer = _send_replaced(customer, subscription_id, ports, select=replaced_to_hold, mark=hold_replaced)
        customer = sync_subscription(customer, subscription_id, ports)
        customer = _send_replaced(customer, subscription_id, ports, select=replaced_to_end, mark=end_replaced)
    if customer.processor.id is not None and any(sub.transactions_pending for sub in customer.subscriptions):
        # Creating or changing a subscription may have charged the customer: mirror the new transactions. The flag
        # is saved with the result, so a listing that fails is done by the next sync even with nothing to send.
        loaded = ports.processor.list_transactions(customer.processor.id)
        now = ports.clock.now()
        customer = persist(customer, ports, lambda c: transactions_mirrored(merge_transactions(c, loaded, now)))
    return customer


def sync_subscription(
    customer: Customer, subscription_id: str, ports: SyncPorts, idempotency: IdempotencyRecord | None = None
) -> Customer:
    """Send one subscription's pending change (create, update or cancel) and save the answer, as a sync does; the
    caller holds the payment lock. Nothing pending: nothing is called (only ``idempotency`` is saved, if given).
    Used by the sync for each subscription and by the cancel routes for the ones they cancel."""
    action = subscription_sync_action(customer.subscription(subscription_id))
    if action is SyncAction.NONE:
        return customer if idempotency is None else persist(customer, ports, lambda c: c, idempotency)
    if action is not SyncAction.CANCEL:
        customer = _redeem_coupons(customer, subscription_id, ports)
    subscription = customer.subscription(subscription_id)
    as_of = epoch(ports.clock.now())  # taken before the call: an event created since may be newer
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
    return persist(customer, ports, record, idempotency)


def _send_replaced(
    customer: Customer,
    subscription_id: str,
    ports: SyncPorts,
    *,
    select: Callable[[Customer, str], list[str]],
    mark: Callable[..., Customer],
) -> Customer:
    """Mark the subscriptions ``subscription_id`` replaces that ``select`` names (``mark``, saved as pending first),
    then send each; a sync that stops in between is completed by the next one under the same keys.

    Used twice around the create of a new subscription (docs/rules.md#replaced-subscriptions): before it, the ones
    that would renew are held to their period end (``sync_rules.hold_replaced``), so whatever fails after this call
    the customer can never be charged by both; after it, an upgrade's lower levels are canceled now
    (``sync_rules.end_replaced``)."""
    ids = select(customer, subscription_id)
    if not ids:
        return customer
    customer = persist(customer, ports, partial(mark, subscription_id=subscription_id, now=ports.clock.now()))
    for replaced_id in ids:
        customer = sync_subscription(customer, replaced_id, ports)
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
    """Count each coupon discount of the subscription about to be sent, for subscriptions stored before uses were
    counted at subscribe (for the others the use is there already: ``ALREADY_REDEEMED``, nothing counted twice).

    A use refused now is never dropped silently: the sync stops with 409 naming the coupon and the subscription,
    which stays unsent with its discount shown (withdraw it and subscribe again; docs/rules.md#coupon-redemption).
    """
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
        if outcome in _REFUSED:
            raise ConflictError(
                f"coupon {redemption.coupon_code} of subscription {subscription_id} can no longer be used "
                f"({_REFUSED[outcome]}): withdraw the subscription and subscribe again"
            )
    return customer


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
    local = customer.subscription(subscription_id)
    updated = record_subscription_result(customer, subscription_id, result, now)
    recorded = keep_edits(updated.subscription(subscription_id), local, sent)
    recorded = stamped(recorded, as_of)
    if billed:
        recorded = recorded.model_copy(update={"transactions_pending": True})
    return replace_subscription(updated, recorded)


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


def _billing(customer: Customer, method: PaymentMethod) -> AddressFields | None:
    address = next((a for a in customer.addresses if a.address_id == method.billing_address_id), None)
    return (
        None
        if address is None
        else AddressFields.model_validate(address.model_dump(include=set(AddressFields.model_fields)))
    )
