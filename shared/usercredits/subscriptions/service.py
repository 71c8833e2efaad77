"""Use cases of the customers API: load the customer, apply one pure domain step, save what changed.

Each change loads the customer (one Query; a customer not stored yet starts as a fresh one), runs the domain
function and saves what changed in one conditional transaction (``changes.save_change``, which redoes it on a fresh
load when another save came first).
Nothing here talks to the payment processor except ``PaymentMethodLookup``, which reads what a token is.
One concept above 400 lines: every local use case of the customers API, each a few lines around that one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from usercredits.errors import ConflictError, InvalidRequestError, NotFoundError
from usercredits.kernel.models import DomainModel
from usercredits.kernel.writes import IdempotencyRecord
from usercredits.subscriptions import coupons as coupon_rules
from usercredits.subscriptions import customers as customer_rules
from usercredits.subscriptions import entitlement, subscribing
from usercredits.subscriptions.changes import RequestKey, customer_changes, keyed_request, run_once, save_change
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Coupon,
    Customer,
    Descriptor,
    PaymentMethod,
    Plan,
    ProfileFields,
    Subscription,
)
from usercredits.subscriptions.ports import ChildItem, CustomerPorts, StaleCustomerError

# --- reads ---------------------------------------------------------------------------------------------------------


def get_customer(user_id: str, *, ports: CustomerPorts) -> Customer:
    """The caller's customer, created on first use.

    An existing customer is one Query. A customer not stored yet is created with one conditional write (so its id
    and creation date stay the same from the first read on); when a concurrent request created it first, that one
    is read back.
    """
    stored = ports.customers.load(user_id)
    if stored is not None:
        return stored
    fresh = customer_rules.new_customer(user_id, ports.clock.now())
    try:
        return ports.customers.save(customer_changes(None, fresh))
    except StaleCustomerError:
        created = ports.customers.load(user_id)
        if created is None:  # pragma: no cover - created and deleted in between
            raise ConflictError("customer changed concurrently; retry") from None
        return created


def get_customer_for_admin(user_id: str, *, ports: CustomerPorts) -> Customer:
    """Any user's customer (admin); 404 when that user never had one (an admin read creates nothing)."""
    stored = ports.customers.load(user_id)
    if stored is None:
        raise NotFoundError(f"customer of user {user_id} not found")
    return stored


def list_subscriptions(
    user_id: str,
    *,
    at: datetime | None,
    valid: bool,
    active: bool,
    ports: CustomerPorts,
    grace: timedelta = entitlement.GRACE_PERIOD,
) -> list[Subscription]:
    """The seed's activeSubscriptions (``active``) or validSubscriptions (``valid``) at ``at`` (default now), by
    precedence; with neither, every subscription of the customer as stored. One Query, no write. ``grace``: the
    default grace period (the setting), for plans that set none."""
    customer = _load_or_fresh(user_id, ports)
    when = at or ports.clock.now()
    if active:
        return entitlement.active_subscriptions(customer, when, grace)
    if valid:
        return entitlement.valid_subscriptions(customer, when, grace)
    return list(customer.subscriptions)


def current_subscription(
    user_id: str, *, at: datetime | None, ports: CustomerPorts, grace: timedelta = entitlement.GRACE_PERIOD
) -> Subscription | None:
    """The customer's entitlement at ``at`` (default now): the highest valid subscription, or None."""
    customer = _load_or_fresh(user_id, ports)
    return entitlement.current_subscription(customer, at or ports.clock.now(), grace)


def check_coupon(user_id: str, code: str, *, plan_id: str | None, ports: CustomerPorts) -> coupon_rules.CouponCheck:
    """Can the caller use coupon ``code`` now (on plan ``plan_id``: and for how much)?

    Without a plan only the coupon's state is checked (the seed's validateState); with one, also what it takes off
    the plan's price. A restricted coupon the caller already redeemed is "Promocode limit reached". Unknown plan:
    404; unknown coupon: ``valid: false`` with "Invalid promocode".
    """
    now = ports.clock.now()
    if plan_id is None:
        coupon = ports.coupons.get(code)
        error = coupon_rules.coupon_error(coupon, now)
        if error is None and coupon is not None and _used_by_caller(coupon, user_id, ports):
            error = coupon_rules.LIMIT_REACHED
        return coupon_rules.CouponCheck(valid=error is None, error=error)
    terms = ports.terms.read_terms(plan_id, code, customer_id=None)
    if terms.plan is None:
        raise NotFoundError(f"plan {plan_id} not found")
    used = terms.coupon is not None and _used_by_caller(terms.coupon, user_id, ports)
    return coupon_rules.check_coupon(terms.coupon, terms.plan.price, now, used_by_customer=used)


# --- changes -------------------------------------------------------------------------------------------------------


def update_profile(user_id: str, fields: ProfileFields, *, ports: CustomerPorts) -> Customer:
    """Set the fields given (name trimmed, email lowercased and validated); a synced customer whose values really
    change becomes ``changed``."""
    saved, _ = _change(
        user_id, ports, lambda customer, now: (customer_rules.update_profile(customer, fields, now), None)
    )
    return saved


def add_address(user_id: str, data: AddressFields, *, ports: CustomerPorts, request_key: str | None = None) -> Address:
    """Append an address (state initial; sent with the next sync)."""
    key = keyed_request("address", request_key, data.model_dump(mode="json"))
    return run_once(
        key,
        ports.customers,
        user_id,
        lambda: _change_child(
            user_id, ports, lambda customer, now: customer_rules.add_address(customer, data, now), key=key
        ),
        customer_rules.find_address,
    )


def add_payment_method(
    user_id: str,
    token: str,
    *,
    billing_address_id: str | None,
    make_default: bool,
    ports: CustomerPorts,
    request_key: str | None = None,
) -> PaymentMethod:
    """Add the payment method behind a processor token (a Stripe ``pm_...``), by default as the new default.

    The token is looked up first: one the processor does not know, or one attached to another processor customer,
    is refused (422) and nothing is written. Adding the same token twice is 409 (unless it is the same request
    repeated with its ``Idempotency-Key``: that answers the method added).
    """
    request = {"token": token, "billingAddressId": billing_address_id, "makeDefault": make_default}
    key = keyed_request("payment-method", request_key, request)

    def add() -> PaymentMethod:
        stored = ports.customers.load(user_id)
        method = _looked_up(token, stored, ports)

        def step(current: Customer, now: datetime) -> tuple[Customer, PaymentMethod]:
            return customer_rules.add_payment_method(
                current, method, now, billing_address_id=billing_address_id, make_default=make_default
            )

        return _change_child(user_id, ports, step, key=key, loaded=stored)

    return run_once(key, ports.customers, user_id, add, Customer.payment_method)


def set_default_payment_method(
    user_id: str, payment_method_id: str, *, address: AddressFields | None = None, ports: CustomerPorts
) -> Customer:
    """Make one of the customer's payment methods the default (404 for an unknown id); with ``address``, write it
    into the default's billing address (the seed's setDefaultPaymentMethodAddress)."""

    saved, _ = _change(
        user_id, ports, lambda customer, now: (_chosen_default(customer, payment_method_id, address, now), None)
    )
    return saved


def set_subscription_payment_method(
    user_id: str, subscription_id: str, payment_method_id: str, *, ports: CustomerPorts
) -> Subscription:
    """Pay one subscription with another of the customer's payment methods (404 for an unknown subscription or
    method, 422 for one removed at the processor); a synced subscription becomes ``changed`` and the next sync sends
    it."""
    _, subscription = _change(
        user_id,
        ports,
        lambda customer, now: subscribing.set_subscription_payment_method(
            customer, subscription_id, payment_method_id, now
        ),
    )
    return subscription


def grant_local_subscription(
    user_id: str, plan_id: str, *, trial: bool, ports: CustomerPorts, request_key: str | None = None
) -> Subscription:
    """Admin: give a user an app-managed subscription to a plan (``subscribing.add_local_subscription``: never sent
    to the processor, never billed); 404 for an unknown plan. The user's customer is created if needed."""

    def step(customer: Customer, now: datetime) -> tuple[Customer, Subscription]:
        plan = ports.plans.get(plan_id)
        if plan is None:
            raise NotFoundError(f"plan {plan_id} not found")
        return subscribing.add_local_subscription(customer, plan, now, trial=trial)

    key = keyed_request("local-subscription", request_key, {"planId": plan_id, "trial": trial})
    return run_once(
        key,
        ports.customers,
        user_id,
        lambda: _change_child(user_id, ports, step, key=key),
        Customer.subscription,
    )


def replace_default_payment_method(
    user_id: str, token: str, *, address: AddressFields | None = None, ports: CustomerPorts
) -> Customer:
    """The seed's setDefaultPaymentMethod: the processor token becomes the default payment method with the reuse
    rules of docs/rules.md#payment-methods (a same-kind, non-PayPal default is updated in place; a new one inherits
    its billing address), and ``address`` goes to the default's billing address. The token is looked up as
    ``add_payment_method`` does (unknown or foreign: 422, nothing written)."""
    stored = ports.customers.load(user_id)
    method = _looked_up(token, stored, ports)

    def step(customer: Customer, now: datetime) -> tuple[Customer, None]:
        methods = customer.payment_methods
        known = next((item for item in methods if token in (item.token, item.processor.id) and not item.deleted), None)
        if known is None:
            updated, _ = customer_rules.set_default_payment_method(customer, method, now, address)
            return updated, None
        # A token the customer already has: it becomes the default as it is (never a duplicate).
        return _chosen_default(customer, known.payment_method_id, address, now), None

    saved, _ = _change(user_id, ports, step, loaded=stored)
    return saved


def subscribe(
    user_id: str,
    plan_id: str,
    *,
    payment_method_id: str | None,
    coupon_code: str | None,
    ports: CustomerPorts,
    request_key: str | None = None,
    trial: bool = True,
    descriptor: Descriptor | None = None,
    grace: timedelta = entitlement.GRACE_PERIOD,
) -> Subscription:
    """Subscribe to a plan: queued behind an equal or better valid subscription, or an upgrade now with a credit for
    the unused part of the lower one (``subscribing.add_subscription``), with the coupon's discount if one is named,
    the plan's trial unless ``trial`` is False, and the statement ``descriptor`` if given.

    Three requests, with or without a coupon: Query the customer, read the plan, the coupon and the customer's use of
    it together, save. Unknown plan: 404 (nothing written); a coupon that cannot be used: 422 with the seed's message
    ("Invalid promocode", "Promocode expired", ...). The coupon's use is counted by the save itself, in the same
    transaction (``changes.coupon_uses``): a coupon that another subscribe filled meanwhile is 422 "Promocode limit
    reached" there, with nothing written. Cancels: ``cancelling`` (they may call the processor).
    """

    def step(customer: Customer, now: datetime) -> tuple[Customer, Subscription]:
        terms = ports.terms.read_terms(
            plan_id, coupon_code, customer_id=customer.customer_id if coupon_code is not None else None
        )
        if terms.plan is None:
            raise NotFoundError(f"plan {plan_id} not found")
        updated, subscription = subscribing.add_subscription(
            customer,
            terms.plan,
            now,
            payment_method_id=payment_method_id,
            descriptor=descriptor,
            trial=trial,
            grace=grace,
        )
        if coupon_code is not None:
            used = terms.coupon is not None and terms.coupon.restricted and terms.used_by_customer
            updated, subscription = subscribing.apply_coupon(
                updated, subscription.subscription_id, terms.coupon, now, used_by_customer=used
            )
        return updated, subscription

    request: dict[str, object] = {"planId": plan_id, "paymentMethodId": payment_method_id, "couponCode": coupon_code}
    # Only when not the default, so the keys of requests made before these fields existed still match.
    if not trial:
        request["trial"] = False
    if descriptor is not None:
        request["descriptor"] = descriptor.model_dump(mode="json")
    key = keyed_request("subscribe", request_key, request)
    return run_once(
        key,
        ports.customers,
        user_id,
        lambda: _change_child(user_id, ports, step, key=key),
        Customer.subscription,
    )


# --- admin ---------------------------------------------------------------------------------------------------------


def put_plan(plan: Plan, *, ports: CustomerPorts) -> Plan:
    """Create or replace a plan (subscriptions keep the copy they were made from)."""
    return ports.plans.put(plan, ports.clock.now())


def put_coupon(code: str, terms: dict[str, Any], *, ports: CustomerPorts) -> Coupon:
    """Create or replace coupon ``code``'s terms (its use count is kept); invalid terms are 422 with details."""
    coupon = _validated(Coupon, {**terms, "code": code, "used_count": 0})
    return ports.coupons.put(coupon, ports.clock.now())


# --- plumbing ------------------------------------------------------------------------------------------------------


def _load_or_fresh(user_id: str, ports: CustomerPorts) -> Customer:
    """The stored customer, or a fresh one (not written) for a user who has none yet."""
    return ports.customers.load(user_id) or customer_rules.new_customer(user_id, ports.clock.now())


def _change[R](
    user_id: str,
    ports: CustomerPorts,
    step: Callable[[Customer, datetime], tuple[Customer, R]],
    *,
    loaded: Customer | None = None,
    idempotency: Callable[[R], IdempotencyRecord] | None = None,
) -> tuple[Customer, R]:
    """Load, apply ``step``, save what changed (``changes.save_change``). ``loaded``: the customer as the caller just
    loaded it (a stored one), used for the first attempt instead of loading again; ``idempotency``: the request
    key's record of the result, saved with it."""

    def decide(before: Customer | None) -> tuple[Customer, R]:
        now = ports.clock.now()
        after, result = step(before or customer_rules.new_customer(user_id, now), now)
        if before is not None and _untouched(before) == _untouched(after):
            return before, result  # a no-op (values set to what they were) writes nothing, not even updatedAt
        return after, result

    return save_change(ports.customers, user_id, decide, loaded=loaded, idempotency=idempotency)


def _change_child[C: ChildItem](
    user_id: str,
    ports: CustomerPorts,
    step: Callable[[Customer, datetime], tuple[Customer, C]],
    *,
    key: RequestKey | None,
    loaded: Customer | None = None,
) -> C:
    """``_change`` of a step that makes or changes one child, the request's key (if any) recorded with it."""

    def record(child: C) -> IdempotencyRecord:
        assert key is not None
        return key.record(child.local_id)

    _, child = _change(user_id, ports, step, loaded=loaded, idempotency=None if key is None else record)
    return child


def _untouched(customer: Customer) -> Customer:
    return customer.model_copy(update={"updated_at": None})


def _chosen_default(
    customer: Customer, payment_method_id: str, address: AddressFields | None, now: datetime
) -> Customer:
    updated = customer_rules.choose_default_payment_method(customer, payment_method_id, now)
    if address is not None:
        updated, _ = customer_rules.set_default_payment_method_address(updated, address, now)
    return updated


def _looked_up(token: str, stored: Customer | None, ports: CustomerPorts) -> customer_rules.NewPaymentMethod:
    """The payment method behind ``token`` as the processor knows it; 422 when it is unknown or attached to another
    processor customer (a foreign payment method)."""
    processor_id = stored.processor.id if stored is not None else None
    found = ports.payment_methods.retrieve_payment_method(token)
    if found is None:
        raise InvalidRequestError(f"unknown payment method {token!r}")
    if found.customer_id is not None and found.customer_id != processor_id:
        raise InvalidRequestError(f"payment method {token!r} belongs to another customer (a foreign payment method)")
    return customer_rules.NewPaymentMethod(token=token, kind=found.kind, details=found.details)


def _used_by_caller(coupon: Coupon, user_id: str, ports: CustomerPorts) -> bool:
    """For a restricted coupon: has the caller's customer redeemed it already? (Other coupons: False, no read.)"""
    if not coupon.restricted:
        return False
    customer = ports.customers.load(user_id)
    return customer is not None and ports.coupons.used_by_customer(coupon.code, customer.customer_id)


def _validated[M: DomainModel](model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in error.errors()]
        raise InvalidRequestError(f"invalid {model.__name__.lower()}", details=details) from error
