"""Change tracking and processor items: seed scenarios M01, M02, M12 (docs/rules.md#processor-states) and M39."""

from __future__ import annotations

import pytest

from tests.helpers.subscription_builders import NOW, address, base_customer, paypal, subscription
from usercredits.errors import ConflictError
from usercredits.subscriptions.customers import update_address, update_profile
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    ProcessorItem,
    ProcessorState,
    ProfileFields,
    SubscriptionStatus,
)
from usercredits.subscriptions.subscribing import (
    cancel_all,
    set_subscription_payment_method,
)
from usercredits.subscriptions.sync_rules import reset_processor
from usercredits.subscriptions.tracking import local_id_for, processor_id_for, track, validate_is_saved

SAVED, CHANGED, INITIAL, LOCAL = (
    ProcessorState.SAVED,
    ProcessorState.CHANGED,
    ProcessorState.INITIAL,
    ProcessorState.LOCAL,
)


def states(customer: Customer) -> tuple[ProcessorState, ProcessorState, ProcessorState, ProcessorState]:
    return (
        customer.processor.state,
        customer.addresses[0].processor.state,
        customer.payment_methods[0].processor.state,
        customer.subscriptions[0].processor.state,
    )


@pytest.mark.parametrize(
    ("changes", "customer_state"),
    [
        pytest.param(ProfileFields(name="New name"), CHANGED, id="only-name"),
        pytest.param(ProfileFields(email="test@example.com"), CHANGED, id="only-email"),
        pytest.param(ProfileFields(name="New name", email="test@example.com"), CHANGED, id="several-fields"),
        pytest.param(ProfileFields(email="seer@example.com"), SAVED, id="email-same-value"),
        pytest.param(ProfileFields(email="  SEER@example.com "), SAVED, id="email-same-once-normalised"),
    ],
)
def test_m01_profile_edits_mark_only_the_customer_changed(
    changes: ProfileFields, customer_state: ProcessorState
) -> None:
    updated = update_profile(base_customer(), changes, NOW)

    assert states(updated) == (customer_state, SAVED, SAVED, SAVED)


def test_m01_undoing_an_edit_brings_the_customer_back_to_saved() -> None:
    edited = update_profile(base_customer(), ProfileFields(name="New name"), NOW)

    undone = update_profile(edited, ProfileFields(name="Pesho Peshev"), NOW)

    assert undone.processor.state is SAVED


def test_m02_address_postal_code_set_to_the_same_value_changes_nothing() -> None:
    customer, _ = update_address(base_customer(), "one", AddressFields(postal_code="1000"), NOW)

    assert states(customer) == (SAVED, SAVED, SAVED, SAVED)


def test_m02_payment_method_token_set_marks_it_changed() -> None:
    customer = base_customer()
    method = track(customer.payment_methods[0].model_copy(update={"token": "pm_new"}))

    assert method.processor.state is CHANGED


def test_m02_subscription_payment_method_change_marks_it_changed() -> None:
    customer = base_customer(payment_methods=[paypal("three", billing="one"), paypal("other")])

    updated, sub = set_subscription_payment_method(customer, "four", "other", NOW)

    assert sub.processor.state is CHANGED
    assert states(updated) == (SAVED, SAVED, SAVED, CHANGED)


def test_m12_reset_processor_drops_unsynced_items_and_reverts_edits() -> None:
    customer = base_customer(
        subscriptions=[
            subscription("s0", state=LOCAL, is_trial=True),
            subscription("s1", state=INITIAL),
            subscription("s2", state=INITIAL),
            subscription("s3", state=SAVED),
        ],
        addresses=[address("a-1"), address("a-2", name="Old"), address("a-3", state=INITIAL)],
        payment_methods=[paypal("pm-1", "a-1"), paypal("pm-2", "a-2"), paypal("pm-3", "a-3", state=INITIAL)],
    )
    customer = cancel_all(customer, NOW)  # s3: active -> canceled, changed
    customer, _ = update_address(customer, "a-2", AddressFields(name="Edited"), NOW)
    assert customer.subscriptions[3].processor.state is CHANGED
    assert customer.addresses[1].processor.state is CHANGED

    reset = reset_processor(customer)

    assert [sub.subscription_id for sub in reset.subscriptions] == ["s0", "s3"]
    assert [method.payment_method_id for method in reset.payment_methods] == ["pm-1", "pm-2"]
    assert [item.address_id for item in reset.addresses] == ["a-1", "a-2"]
    s3 = reset.subscriptions[1]
    assert s3.processor.state is SAVED
    # docs/rules.md#processor-states: the unsynced cancel is reverted, not kept
    assert s3.status is SubscriptionStatus.ACTIVE
    assert reset.addresses[1].name == "Old"
    assert reset.addresses[1].processor.state is SAVED
    assert reset.subscriptions[0].processor.state is LOCAL  # local subscriptions stay as they are


def test_m12_reset_processor_reverts_the_profile_and_clears_links_to_dropped_items() -> None:
    edited = update_profile(base_customer(), ProfileFields(name="Unsynced"), NOW)
    assert reset_processor(edited).name == "Pesho Peshev"

    never_synced = Customer(
        customer_id="c-2",
        user_id="u-2",
        payment_methods=[paypal("pm-new", state=INITIAL)],
        default_payment_method_id="pm-new",
        created_at=NOW,
    )
    reset = reset_processor(never_synced)
    assert reset.payment_methods == []
    assert reset.default_payment_method_id is None


def test_m39_validate_is_saved_requires_a_processor_id_and_the_saved_state() -> None:
    customer = base_customer()
    sub = customer.subscriptions[0]

    assert validate_is_saved(sub, "Subscription") is sub
    with pytest.raises(ConflictError, match="^Subscription not saved to processor$"):
        validate_is_saved(None, "Subscription")
    with pytest.raises(ConflictError, match="^Item not saved to processor$"):
        validate_is_saved(sub.model_copy(update={"processor": ProcessorItem(state=SAVED)}))
    with pytest.raises(ConflictError, match="not saved"):
        validate_is_saved(sub.model_copy(update={"processor": sub.processor.model_copy(update={"state": CHANGED})}))


def test_m39_local_and_processor_ids_map_both_ways_or_give_none() -> None:
    methods = base_customer().payment_methods

    assert local_id_for("id-pm-three", methods) == "three"
    assert processor_id_for("three", methods) == "id-pm-three"
    assert local_id_for(None, methods) is None
    assert local_id_for("unknown", methods) is None
    assert processor_id_for(None, methods) is None
    assert processor_id_for("unknown", methods) is None
