"""Customer methods: profile, addresses and payment methods, with their reuse rules (docs/rules.md#customers,
#payment-methods).

Every function returns a new customer (and the item it made or changed); edits to synced items mark them changed as
they happen (``tracking.track``), so there is no separate markChanged step to forget.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import ValidationError

from usercredits.errors import ConflictError, InvalidRequestError, NotFoundError
from usercredits.kernel.ids import new_ulid
from usercredits.kernel.models import DomainModel
from usercredits.subscriptions.instruments import InstrumentDetails, PaymentMethodKind
from usercredits.subscriptions.models import (
    Address,
    AddressFields,
    Customer,
    PaymentMethod,
    ProfileFields,
    SyncableModel,
)
from usercredits.subscriptions.tracking import track


class NewPaymentMethod(DomainModel):
    """A payment method to add: the processor's token (a Stripe ``pm_...`` id) and its kind, as the adapter read it
    from the processor (it also checks that the token belongs to this customer or to nobody yet)."""

    token: str
    kind: PaymentMethodKind
    details: InstrumentDetails | None = None


def new_customer(user_id: str, now: datetime, *, email: str | None = None, name: str = "") -> Customer:
    """A new customer for ``user_id`` (created on first use), not yet sent to the processor."""
    return _validated(
        Customer, {"customer_id": new_ulid(now), "user_id": user_id, "email": email, "name": name, "created_at": now}
    )


def update_profile(customer: Customer, changes: ProfileFields, now: datetime) -> Customer:
    """The customer with the fields set in ``changes`` (name trimmed, email lowercased and validated).

    Setting a field to its current value is not a change: a synced customer stays ``saved``.
    """
    updates = changes.model_dump(exclude_unset=True)
    if "email" in updates and updates["email"] is None:
        raise InvalidRequestError("email cannot be removed")
    if "name" in updates and updates["name"] is None:
        updates["name"] = ""
    if "metadata" in updates and updates["metadata"] is None:
        updates["metadata"] = {}
    return _touch(track(customer.model_copy(update=updates)), now)


def add_address(customer: Customer, data: AddressFields, now: datetime) -> tuple[Customer, Address]:
    """Append a new address (state initial) and return it (the seed's addAddress)."""
    address = Address(address_id=new_ulid(now), created_at=now, **data.model_dump())
    return _touch(customer.model_copy(update={"addresses": [*customer.addresses, address]}), now), address


def update_address(customer: Customer, address_id: str, data: AddressFields, now: datetime) -> tuple[Customer, Address]:
    """Assign the fields set in ``data`` to an address (like the seed's ``Object.assign``); a synced address whose
    values really differ becomes ``changed``."""
    address = find_address(customer, address_id)
    updated = track(address.model_copy(update={**data.model_dump(exclude_unset=True), "updated_at": now}))
    if updated.processor == address.processor and _same_fields(updated, address):
        return customer, address
    addresses = _replaced(customer.addresses, updated)
    return _touch(customer.model_copy(update={"addresses": addresses}), now), updated


def find_address(customer: Customer, address_id: str) -> Address:
    """The customer's address ``address_id``; NotFoundError otherwise (another customer's id is not found either)."""
    address = next((item for item in customer.addresses if item.address_id == address_id), None)
    if address is None:
        raise NotFoundError(f"address {address_id} not found")
    return address


def default_payment_method(customer: Customer) -> PaymentMethod | None:
    """The payment method whose local id is ``default_payment_method_id``, or None."""
    wanted = customer.default_payment_method_id
    return next((item for item in customer.payment_methods if item.payment_method_id == wanted), None)


def unused_address(customer: Customer) -> Address | None:
    """The first address no payment method uses as its billing address, or None (the seed's getUnusedAddress)."""
    used = {method.billing_address_id for method in customer.payment_methods}
    return next((address for address in customer.addresses if address.address_id not in used), None)


def add_payment_method(
    customer: Customer,
    method: NewPaymentMethod,
    now: datetime,
    *,
    billing_address_id: str | None = None,
    make_default: bool = True,
) -> tuple[Customer, PaymentMethod]:
    """Append a new payment method for ``method.token`` and (by default, as the seed's addPaymentMethodNonce does)
    make it the default. ``billing_address_id`` must be one of the customer's addresses."""
    if billing_address_id is not None:
        find_address(customer, billing_address_id)
    if any(method.token in (item.token, item.processor.id) and not item.deleted for item in customer.payment_methods):
        raise ConflictError("this payment method was already added")
    created = PaymentMethod(
        payment_method_id=new_ulid(now),
        kind=method.kind,
        token=method.token,
        details=method.details,
        billing_address_id=billing_address_id,
        created_at=now,
    )
    updated = customer.model_copy(update={"payment_methods": [*customer.payment_methods, created]})
    if make_default:
        updated = track(updated.model_copy(update={"default_payment_method_id": created.payment_method_id}))
    return _touch(updated, now), created


def set_default_payment_method(
    customer: Customer, method: NewPaymentMethod, now: datetime, address: AddressFields | None = None
) -> tuple[Customer, PaymentMethod]:
    """Make ``method`` the default payment method with the reuse rules of docs/rules.md#payment-methods.

    The current default is updated in place (same local id: it becomes ``changed`` once synced) when it has the same
    kind and is not PayPal. Otherwise a new payment method is added, inheriting the current default's billing
    address; PayPal is always new, and so is a change of kind. With ``address``, the default's billing address is
    then set as ``set_default_payment_method_address`` does.
    """
    current = default_payment_method(customer)
    if current is not None and current.kind is method.kind and method.kind is not PaymentMethodKind.PAYPAL:
        chosen = track(current.model_copy(update={"token": method.token, "details": method.details, "updated_at": now}))
        methods = _replaced(customer.payment_methods, chosen)
    else:
        chosen = PaymentMethod(
            payment_method_id=new_ulid(now),
            kind=method.kind,
            token=method.token,
            details=method.details,
            billing_address_id=current.billing_address_id if current is not None else None,
            created_at=now,
        )
        methods = [*customer.payment_methods, chosen]
    updated = track(
        customer.model_copy(update={"payment_methods": methods, "default_payment_method_id": chosen.payment_method_id})
    )
    if address is not None:
        updated, _ = set_default_payment_method_address(updated, address, now)
        chosen = updated.payment_method(chosen.payment_method_id)
    return _touch(updated, now), chosen


def set_default_payment_method_address(
    customer: Customer, data: AddressFields, now: datetime
) -> tuple[Customer, Address]:
    """Write ``data`` into the default payment method's billing address (docs/rules.md#payment-methods).

    The target is the default's billing address, else the first unused address, else a new address (initial). The
    default payment method, if any, then points at the target: a synced one becomes ``changed`` when that moves it,
    an initial one stays initial.
    """
    current = default_payment_method(customer)
    target = None
    if current is not None and current.billing_address_id is not None:
        target = next((item for item in customer.addresses if item.address_id == current.billing_address_id), None)
    target = target or unused_address(customer)
    if target is None:
        updated, address = add_address(customer, data, now)
    else:
        updated, address = update_address(customer, target.address_id, data, now)
    if current is not None and current.billing_address_id != address.address_id:
        relinked = track(current.model_copy(update={"billing_address_id": address.address_id, "updated_at": now}))
        updated = updated.model_copy(update={"payment_methods": _replaced(updated.payment_methods, relinked)})
    return _touch(updated, now), address


def choose_default_payment_method(customer: Customer, payment_method_id: str, now: datetime) -> Customer:
    """Make an existing payment method the default (``PUT /customer/default-payment-method``)."""
    method = customer.payment_method(payment_method_id)
    if method.deleted:
        raise InvalidRequestError(f"payment method {payment_method_id} was removed at the payment processor")
    if customer.default_payment_method_id == payment_method_id:
        return customer
    return _touch(track(customer.model_copy(update={"default_payment_method_id": payment_method_id})), now)


def _replaced[T: SyncableModel](items: list[T], new: T) -> list[T]:
    return [new if item.local_id == new.local_id else item for item in items]


def _same_fields(left: Address, right: Address) -> bool:
    return left.model_dump(exclude={"updated_at"}) == right.model_dump(exclude={"updated_at"})


def _touch(customer: Customer, now: datetime) -> Customer:
    return customer.model_copy(update={"updated_at": now})


def _validated[M: DomainModel](model: type[M], data: dict[str, object]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        details = [{"field": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in error.errors()]
        raise InvalidRequestError(f"invalid {model.__name__.lower()}", details=details) from error
