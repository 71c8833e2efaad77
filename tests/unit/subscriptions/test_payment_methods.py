"""Addresses and payment methods with the seed's reuse rules: scenarios M03-M08."""

from __future__ import annotations

import pytest

from tests.helpers.subscription_builders import NOW, address, base_customer, card, paypal
from usercredits.errors import ConflictError, NotFoundError
from usercredits.subscriptions.customers import (
    NewPaymentMethod,
    add_address,
    add_payment_method,
    choose_default_payment_method,
    default_payment_method,
    set_default_payment_method,
    set_default_payment_method_address,
    unused_address,
)
from usercredits.subscriptions.instruments import PaymentMethodKind
from usercredits.subscriptions.models import AddressFields, ProcessorState

SAVED, CHANGED, INITIAL = ProcessorState.SAVED, ProcessorState.CHANGED, ProcessorState.INITIAL
NEW_PAYPAL = NewPaymentMethod(token="pm_paypal_1", kind=PaymentMethodKind.PAYPAL)
NEW_CARD = NewPaymentMethod(token="pm_card_1", kind=PaymentMethodKind.CARD)
RENAME = AddressFields(name="Pesho Change")


def test_m03_unused_address_is_none_when_every_address_has_a_payment_method() -> None:
    customer = base_customer()
    assert unused_address(customer) is None

    customer, created = add_address(customer, AddressFields(), NOW)
    assert unused_address(customer) == created

    customer, _ = add_payment_method(customer, NEW_CARD, NOW, billing_address_id=created.address_id)
    assert unused_address(customer) is None


def test_m04_no_default_new_paypal_takes_the_unused_address_and_renames_it() -> None:
    customer = base_customer(
        default_payment_method_id=None,
        addresses=[
            address("one", name="Pesho Peshev Stoevski", country="BG", postal_code="1000"),
            address("two", name="Pesho Peshev Stoevski"),
        ],
    )

    updated, method = set_default_payment_method(customer, NEW_PAYPAL, NOW, RENAME)

    assert method.processor.state is INITIAL
    assert method.billing_address_id == "two"
    assert method.token == "pm_paypal_1"
    assert updated.default_payment_method_id == method.payment_method_id
    assert [item.payment_method_id for item in updated.payment_methods] == ["three", method.payment_method_id]
    one, two = updated.addresses
    assert (one.name, one.processor.state) == ("Pesho Peshev Stoevski", SAVED)
    assert (two.name, two.processor.state) == ("Pesho Change", CHANGED)
    assert updated.payment_methods[0].processor.state is SAVED


@pytest.mark.parametrize("new", [NEW_PAYPAL, NEW_CARD], ids=["paypal-is-always-new", "another-kind-is-new"])
def test_m05_default_paypal_replaced_by_a_new_method_inheriting_its_address(new: NewPaymentMethod) -> None:
    updated, method = set_default_payment_method(base_customer(), new, NOW, RENAME)

    assert method.payment_method_id != "three"
    assert (method.kind, method.billing_address_id, method.processor.state) == (new.kind, "one", INITIAL)
    assert updated.default_payment_method_id == method.payment_method_id
    assert updated.processor.state is CHANGED  # the default moved
    assert updated.payment_methods[0].processor.state is SAVED  # three itself is untouched
    assert (updated.addresses[0].name, updated.addresses[0].processor.state) == ("Pesho Change", CHANGED)


def test_m05_same_kind_other_than_paypal_is_updated_in_place() -> None:
    customer = base_customer(payment_methods=[card("three", billing="one")])

    updated, method = set_default_payment_method(customer, NEW_CARD, NOW)

    assert method.payment_method_id == "three"
    assert method.token == "pm_card_1"
    assert method.processor.state is CHANGED
    assert len(updated.payment_methods) == 1
    assert updated.processor.state is SAVED  # the default did not move


def test_m06_no_default_and_no_address_data_gives_a_method_without_billing() -> None:
    updated, method = set_default_payment_method(base_customer(default_payment_method_id=None), NEW_PAYPAL, NOW)

    assert method.billing_address_id is None
    assert updated.addresses == base_customer().addresses


def test_m06_no_default_with_address_data_and_every_address_used_creates_an_address() -> None:
    updated, method = set_default_payment_method(base_customer(default_payment_method_id=None), NEW_PAYPAL, NOW, RENAME)

    assert len(updated.addresses) == 2
    created = updated.addresses[1]
    assert (created.name, created.processor.state) == ("Pesho Change", INITIAL)
    assert method.billing_address_id == created.address_id
    assert method.processor.state is INITIAL


def test_m07_only_an_unused_address_and_no_methods_is_renamed() -> None:
    customer = base_customer(
        addresses=[address("two", name="Pesho Peshev Stoevski")], payment_methods=[], default_payment_method_id=None
    )

    updated, target = set_default_payment_method_address(customer, RENAME, NOW)

    assert target.address_id == "two"
    assert [(item.name, item.processor.state) for item in updated.addresses] == [("Pesho Change", CHANGED)]
    assert updated.payment_methods == []


def test_m07_default_method_address_is_renamed_and_the_method_stays_saved() -> None:
    updated, target = set_default_payment_method_address(base_customer(), RENAME, NOW)

    assert target.address_id == "one"
    assert (target.name, target.processor.state, target.postal_code) == ("Pesho Change", CHANGED, "1000")
    assert updated.payment_methods[0].processor.state is SAVED


def test_m07_no_addresses_creates_one_and_relinks_the_synced_default() -> None:
    updated, target = set_default_payment_method_address(base_customer(addresses=[]), RENAME, NOW)

    assert (target.name, target.processor.state) == ("Pesho Change", INITIAL)
    three = updated.payment_methods[0]
    assert (three.billing_address_id, three.processor.state) == (target.address_id, CHANGED)


def test_m07_an_initial_default_is_relinked_and_stays_initial() -> None:
    customer = base_customer(addresses=[], payment_methods=[paypal("three", state=INITIAL)])

    updated, target = set_default_payment_method_address(customer, RENAME, NOW)

    three = updated.payment_methods[0]
    assert (three.billing_address_id, three.processor.state) == (target.address_id, INITIAL)


def test_m08_add_address_appends_the_data_with_a_fresh_id() -> None:
    data = AddressFields(name="Pesho 2 Peshev Stoevski", country="US", postal_code="NXZ123")

    updated, created = add_address(base_customer(), data, NOW)

    assert created.model_dump(include=set(AddressFields.model_fields)) == data.model_dump()
    assert isinstance(created.address_id, str) and created.address_id
    assert created.processor.state is INITIAL
    assert updated.addresses[-1] == created


def test_m08_add_payment_method_appends_it_and_makes_it_the_default() -> None:
    updated, method = add_payment_method(base_customer(), NEW_CARD, NOW, billing_address_id="one")

    assert (method.token, method.billing_address_id) == ("pm_card_1", "one")
    assert updated.payment_methods[-1] == method
    assert default_payment_method(updated) == method


def test_add_payment_method_refuses_foreign_addresses_and_duplicate_tokens() -> None:
    with pytest.raises(NotFoundError):
        add_payment_method(base_customer(), NEW_CARD, NOW, billing_address_id="someone-elses")
    with pytest.raises(ConflictError):
        add_payment_method(base_customer(), NewPaymentMethod(token="id-pm-three", kind=PaymentMethodKind.PAYPAL), NOW)


def test_choose_default_payment_method_needs_one_of_the_customers_methods() -> None:
    customer = base_customer(payment_methods=[paypal("three", billing="one"), card("five")])

    assert choose_default_payment_method(customer, "five", NOW).default_payment_method_id == "five"
    with pytest.raises(NotFoundError):
        choose_default_payment_method(customer, "missing", NOW)
