"""Load -> decide -> save: the one retry loop of every customer change (``save_change``), and what a save must write
(``customer_changes``: the difference between the customer as loaded and as changed, item by item).

The repository stores a profile item and one item per child (``ports.CustomerRepository``); writing only what
changed keeps a save to one small transaction however long the customer's history is. A save that finds the customer
changed meanwhile (``StaleCustomerError``) is redone on a fresh load, up to ``SAVE_ATTEMPTS`` times.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from usercredits.errors import ConflictError
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.subscriptions.models import Customer
from usercredits.subscriptions.ports import (
    ChildItem,
    ChildKind,
    CustomerChanges,
    CustomerRepository,
    StaleCustomerError,
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
) -> tuple[Customer, R]:
    """Apply ``step`` to the customer as stored (None: not stored yet) and save what changed, in one conditional
    transaction; when another save came first, redo it on a fresh load (``ConflictError`` after ``SAVE_ATTEMPTS``).

    ``loaded``: the customer as the caller just loaded it, used for the first attempt instead of loading again. A
    stored customer that ``step`` leaves as it was is returned as is, and nothing is written.
    """
    for attempt in range(SAVE_ATTEMPTS):
        before = loaded if attempt == 0 and loaded is not None else customers.load(user_id)
        after, result = step(before)
        changes = customer_changes(before, after)
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
    field but the child lists; the save moves its version from ``before.version`` whenever anything is written.
    """
    if before is None:
        upserts = tuple(item for kind in _CHILD_LISTS for item in _children(after, kind))
        return CustomerChanges(customer=after, expected_version=None, profile_changed=True, upserts=upserts)
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
    )


def _children(customer: Customer, kind: ChildKind) -> Sequence[ChildItem]:
    items: Sequence[ChildItem] = getattr(customer, _CHILD_LISTS[kind])
    return items


def _profile(customer: Customer) -> dict[str, object]:
    return customer.model_dump(exclude=set(_CHILD_LISTS.values()))
