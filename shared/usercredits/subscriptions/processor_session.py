"""What the use cases that talk to the payment processor share (saving, loading, money_back, billing_events): the
customer loaded or 404, the customer's payment lock, and ``persist``, every local write of theirs.

``persist`` applies a pure change to the customer and saves the difference through ``changes.save_change`` (the one
retry loop: on a concurrent save, the same change is applied again to a fresh load).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Protocol

from usercredits.errors import NotFoundError
from usercredits.kernel.clock import Clock
from usercredits.kernel.writes import IdempotencyRecord
from usercredits.subscriptions.changes import save_change
from usercredits.subscriptions.errors import PaymentInProgressError
from usercredits.subscriptions.models import Customer
from usercredits.subscriptions.ports import CustomerRepository
from usercredits.subscriptions.sync_rules import PAYMENT_LOCK_TIMEOUT


class StoragePorts(Protocol):
    """What the lock and the saves need (``SyncPorts``, and ``CustomerPorts`` for what calls no processor)."""

    @property
    def customers(self) -> CustomerRepository: ...

    @property
    def clock(self) -> Clock: ...


def load_customer(user_id: str, ports: StoragePorts) -> Customer:
    """The stored customer; ``NotFoundError`` without one."""
    customer = ports.customers.load(user_id)
    if customer is None:
        raise NotFoundError("customer not found")
    return customer


@contextmanager
def payment_lock(user_id: str, ports: StoragePorts) -> Iterator[None]:
    """Hold the customer's payment lock (docs/rules.md#payment-lock: one conditional write) for the block; released
    in any case."""
    now = ports.clock.now()
    until = now + PAYMENT_LOCK_TIMEOUT
    if not ports.customers.acquire_payment_lock(user_id, now=now, until=until):
        raise PaymentInProgressError()
    try:
        yield
    finally:
        ports.customers.release_payment_lock(user_id, until=until)


def unlocked(customer: Customer) -> Customer:
    """The customer as it stands once our payment lock is released."""
    return customer.model_copy(update={"payment_lock_until": None})


def persist(
    customer: Customer,
    ports: StoragePorts,
    change: Callable[[Customer], Customer],
    idempotency: IdempotencyRecord | None = None,
) -> Customer:
    """Apply ``change`` to ``customer`` and save the difference; on a concurrent save, apply it again to a fresh load
    (``NotFoundError`` if the customer is gone). Nothing to save: ``customer`` itself is returned. ``idempotency``:
    the request's key, recorded in the same save (``IdempotentReplayError`` when it was recorded already)."""

    def step(current: Customer | None) -> tuple[Customer, None]:
        if current is None:
            raise NotFoundError("customer not found")
        return change(current), None

    record = None if idempotency is None else (lambda _: idempotency)
    saved, _ = save_change(ports.customers, customer.user_id, step, loaded=customer, idempotency=record)
    return saved


def answer_customer(customer: Customer, customer_id: str) -> Customer:
    """What a repeated keyed sync or reload answers: the customer (``customer_id``, recorded) as it stands now."""
    return customer


def epoch(moment: datetime) -> int:
    """Unix seconds, as Stripe's event ``created``."""
    return int(moment.timestamp())
