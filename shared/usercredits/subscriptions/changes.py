"""How a use case changes a customer: load it (``load_customer``, under the payment lock when it talks to the
processor: ``payment_lock``), apply a pure change, and save the difference (``save_change``, the one retry loop of
every customer change; ``persist``, a change applied and saved again on a fresh load after a concurrent save), with
what a save must write (``customer_changes``: the difference between the customer as loaded and as changed, item by
item; ``coupon_uses``).

The repository stores a profile item and one item per child (``ports.CustomerRepository``); writing only what
changed keeps a save to one small transaction however long the customer's history is. A save that finds the customer
changed meanwhile (``StaleCustomerError``) is redone on a fresh load, up to ``SAVE_ATTEMPTS`` times.

A request's ``Idempotency-Key`` (``RequestKey``, docs/rules.md#idempotency) is recorded in the save that writes the
request's result (``CustomerChanges.idempotency``), so a result never exists without its key nor a key without its
result; ``run_once`` answers a repeat with the recorded result as the customer holds it now, and changes nothing; the
same key with another request is ``409``.

One concept, with the lock the processor use cases (saving, loading, money_back, billing_events, cancelling) take
around their calls: docs/rules.md#payment-lock.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from usercredits.errors import ConflictError, NotFoundError
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError
from usercredits.subscriptions.errors import PaymentInProgressError
from usercredits.subscriptions.events import customer_facts
from usercredits.subscriptions.models import (
    Customer,
    DiscountKind,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
    TransactionKind,
)
from usercredits.subscriptions.ports import (
    ChildItem,
    ChildKind,
    CouponUse,
    CustomerChanges,
    CustomerRepository,
    StaleCustomerError,
    StoragePorts,
)

#: How many times a change is tried on a freshly loaded customer when another save got there first (the customers
#: API's changes and the processor use cases' saves alike).
SAVE_ATTEMPTS = OPTIMISTIC_ATTEMPTS

_CHILD_LISTS = {
    ChildKind.ADDRESS: "addresses",
    ChildKind.PAYMENT_METHOD: "payment_methods",
    ChildKind.SUBSCRIPTION: "subscriptions",
    ChildKind.TRANSACTION: "transactions",
}


def save_change[R](
    customers: CustomerRepository,
    user_id: str,
    step: Callable[[Customer | None], tuple[Customer, R]],
    *,
    loaded: Customer | None = None,
    idempotency: Callable[[R], IdempotencyRecord | None] | None = None,
) -> tuple[Customer, R]:
    """Apply ``step`` to the customer as stored (None: not stored yet) and save what changed, in one conditional
    transaction; when another save came first, redo it on a fresh load (``ConflictError`` after ``SAVE_ATTEMPTS``).

    ``loaded``: the customer as the caller just loaded it, used for the first attempt instead of loading again. A
    stored customer that ``step`` leaves as it was is returned as is, and nothing is written. ``idempotency``: the
    request key's record of the result, written with it (alone when nothing changed; ``IdempotentReplayError`` when
    recorded already; None: not recorded by this save).
    """
    for attempt in range(SAVE_ATTEMPTS):
        before = loaded if attempt == 0 and loaded is not None else customers.load(user_id)
        after, result = step(before)
        changes = customer_changes(before, after)
        if idempotency is not None:
            changes = dataclasses.replace(changes, idempotency=idempotency(result))
        if before is not None and changes.is_empty:
            return before, result
        try:
            return customers.save(changes), result
        except StaleCustomerError:
            continue
    raise ConflictError("the customer was changed by another request meanwhile; retry")


def customer_changes(before: Customer | None, after: Customer) -> CustomerChanges:
    """The writes that turn ``before`` (as loaded; None for a new customer) into ``after``.

    Children are matched by local id: new or different ones are upserted, missing ones deleted. The profile is every
    field but the child lists; the save moves its version from ``before.version`` whenever anything is written. The
    facts the change records (``events.customer_facts``) go with it, to be written in the same transaction, and so do
    the coupon uses a subscribe counts, or a withdraw gives back (``coupon_uses``).
    """
    facts = customer_facts(before, after)
    uses = coupon_uses(before, after)
    if before is None:
        upserts = tuple(item for kind in _CHILD_LISTS for item in _children(after, kind))
        return CustomerChanges(
            customer=after,
            expected_version=None,
            profile_changed=True,
            upserts=upserts,
            facts=facts,
            coupon_uses=uses,
        )
    upserts_list: list[ChildItem] = []
    deletions: list[tuple[ChildKind, str]] = []
    for kind in _CHILD_LISTS:
        old = {item.local_id: item for item in _children(before, kind)}
        new = {item.local_id: item for item in _children(after, kind)}
        upserts_list.extend(item for local_id, item in new.items() if old.get(local_id) != item)
        deletions.extend((kind, local_id) for local_id in old if local_id not in new)
    return CustomerChanges(
        customer=after,
        expected_version=before.version,
        profile_changed=_profile(before) != _profile(after),
        upserts=tuple(upserts_list),
        deletions=tuple(deletions),
        facts=facts,
        coupon_uses=uses,
    )


def coupon_uses(before: Customer | None, after: Customer) -> tuple[CouponUse, ...]:
    """The coupon uses the change from ``before`` to ``after`` counts or gives back (docs/rules.md#coupon-redemption).

    Counted: each coupon discount of a subscription the change adds (a subscribe). Given back: each coupon discount
    of a subscription that never billed and stops here: a never-synced one withdrawn or dropped (reset-processor),
    or a queued one canceled before its first billing date with no charge recorded. A use that was never counted
    (a subscription stored before uses were counted at subscribe) is skipped by the repository, not given back.
    """
    old = {sub.subscription_id: sub for sub in before.subscriptions} if before is not None else {}
    uses: list[CouponUse] = []
    for sub in after.subscriptions:
        if sub.subscription_id not in old and not sub.deleted and sub.processor.state is ProcessorState.INITIAL:
            uses += _uses(after, sub, release=False)
    new = {sub.subscription_id: sub for sub in after.subscriptions}
    for sub in old.values():
        if before is not None and _gives_back(sub, new.get(sub.subscription_id), after):
            uses += _uses(before, sub, release=True)
    return tuple(uses)


def _uses(customer: Customer, subscription: Subscription, *, release: bool) -> list[CouponUse]:
    return [
        CouponUse(
            code=discount.coupon_code,
            customer_id=discount.customer_id or customer.customer_id,
            subscription_id=subscription.subscription_id,
            restricted=discount.kind is DiscountKind.COUPON_RESTRICTED,
            release=release,
        )
        for discount in subscription.discounts
        if discount.coupon_code is not None
    ]


def _gives_back(old: Subscription, new: Subscription | None, after: Customer) -> bool:
    if old.deleted:
        return False  # given back when it was withdrawn
    if new is None or new.deleted:
        return old.processor.state is ProcessorState.INITIAL
    canceled_now = old.status is not SubscriptionStatus.CANCELED and new.status is SubscriptionStatus.CANCELED
    return canceled_now and _never_billed(new, after)


def _never_billed(subscription: Subscription, customer: Customer) -> bool:
    """Queued and canceled before its first billing date, with no charge recorded or pending for it."""
    start, at = subscription.first_billing_date, subscription.updated_at
    if start is None or at is None or at >= start:
        return False
    if subscription.transactions_pending or subscription.current_billing_cycle > 0:
        return False
    return not any(
        txn.subscription_id == subscription.subscription_id and txn.kind is TransactionKind.SALE
        for txn in customer.transactions
    )


def _children(customer: Customer, kind: ChildKind) -> Sequence[ChildItem]:
    items: Sequence[ChildItem] = getattr(customer, _CHILD_LISTS[kind])
    return items


def _profile(customer: Customer) -> dict[str, object]:
    return customer.model_dump(exclude=set(_CHILD_LISTS.values()))


# --- the Idempotency-Key of a change ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestKey:
    """A request's ``Idempotency-Key``: ``scope`` names the kind of request (keys are per user and per kind),
    ``request`` is what the request asked (the path's ids and the body), whose fingerprint tells a retry from
    another request reusing the key."""

    scope: str
    key: str
    request: Mapping[str, object] = field(default_factory=dict)

    def record(self, result_id: str) -> IdempotencyRecord:
        return IdempotencyRecord.of(self.scope, self.key, dict(self.request), result_id)

    def result_of(self, replay: IdempotentReplayError) -> str:
        """The id of the result the key recorded; ``ConflictError`` when it was recorded for another request."""
        if replay.fingerprint != self.record(replay.result_id).fingerprint:
            raise ConflictError("Idempotency-Key was already used with a different request")
        return replay.result_id

    def processor_key(self, action: str) -> str:
        """The processor's idempotency key of ``action`` done for this request: a retry after a crash between the
        processor call and the save sends the same key, and the processor answers what it did the first time
        instead of doing it again. A digest keeps it within the processor's 255 characters."""
        request = self.record("").fingerprint
        digest = hashlib.sha256(f"{self.scope}\0{self.key}\0{request}".encode()).hexdigest()[:32]
        return f"{action}:request:{digest}"


def keyed_request(scope: str, key: str | None, request: Mapping[str, object]) -> RequestKey | None:
    """The request's key (None without an ``Idempotency-Key``: the request behaves as before)."""
    return None if key is None else RequestKey(scope, key, request)


def recorded_result(customers: CustomerRepository, user_id: str, key: RequestKey | None) -> str | None:
    """The id of the result ``key`` recorded (one consistent read), or None (no key, or not used yet)."""
    if key is None:
        return None
    replay = customers.recorded(user_id, key.scope, key.key)
    return None if replay is None else key.result_of(replay)


def run_once[R](
    key: RequestKey | None,
    customers: CustomerRepository,
    user_id: str,
    run: Callable[[], R],
    find: Callable[[Customer, str], R],
) -> R:
    """``run()`` unless ``key`` recorded a result already: then that result (``find`` in the customer as stored).

    ``run`` records the key in its save; when a twin request recorded it first meanwhile, that save raises
    ``IdempotentReplayError`` (nothing written) and the twin's result is answered instead.
    """
    if key is None:
        return run()
    if (done := recorded_result(customers, user_id, key)) is not None:
        return find(_stored(customers, user_id), done)
    try:
        return run()
    except IdempotentReplayError as replay:
        return find(_stored(customers, user_id), key.result_of(replay))


def _stored(customers: CustomerRepository, user_id: str) -> Customer:
    customer = customers.load(user_id)
    if customer is None:  # pragma: no cover - a recorded result is saved with its customer
        raise NotFoundError("customer not found")
    return customer


#: How long a payment operation may hold the customer's soft lock (the seed's TRANSACTION_TIMEOUT).
PAYMENT_LOCK_TIMEOUT = timedelta(seconds=30)


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
