"""``changes.run_once`` on the in-memory customers: a repeat is answered from the record, a twin that records the key
between the check and the save is answered too (its save writes nothing), another request under the key is 409."""

from __future__ import annotations

import pytest

from tests.fakes.subscriptions import InMemoryCustomerRepository
from tests.helpers.subscription_builders import NOW
from usercredits.errors import ConflictError
from usercredits.subscriptions.changes import RequestKey, customer_changes, keyed_request, run_once, save_change
from usercredits.subscriptions.customers import add_address, find_address, new_customer
from usercredits.subscriptions.models import Address, AddressFields, Customer

USER = "pesho"
FIELDS = AddressFields(name="Pesho Peshev", country="BG", postal_code="1000")


@pytest.fixture
def customers() -> InMemoryCustomerRepository:
    repository = InMemoryCustomerRepository()
    repository.save(customer_changes(None, new_customer(USER, NOW)))
    return repository


def add(customers: InMemoryCustomerRepository, key: RequestKey | None) -> Address:
    def step(customer: Customer | None) -> tuple[Customer, Address]:
        assert customer is not None
        return add_address(customer, FIELDS, NOW)

    def run() -> Address:
        record = None if key is None else (lambda address: key.record(address.local_id))
        return save_change(customers, USER, step, idempotency=record)[1]

    return run_once(key, customers, USER, run, find_address)


def addresses(customers: InMemoryCustomerRepository) -> list[str]:
    customer = customers.load(USER)
    assert customer is not None
    return [address.address_id for address in customer.addresses]


def test_a_repeat_answers_the_recorded_result_and_writes_nothing(customers: InMemoryCustomerRepository) -> None:
    key = keyed_request("address", "k-1", FIELDS.model_dump(mode="json"))
    first = add(customers, key)
    saves = customers.saves
    assert add(customers, key) == first
    assert customers.saves == saves
    assert addresses(customers) == [first.address_id]


def test_a_twin_that_recorded_the_key_after_the_check_is_answered(
    customers: InMemoryCustomerRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a twin request that recorded the key while this one was past its check (the check sees nothing)
    key = keyed_request("address", "k-1", FIELDS.model_dump(mode="json"))
    twin = add(customers, key)
    monkeypatch.setattr(customers, "recorded", lambda *_: None)
    # When this one saves, its save finds the key recorded: it writes nothing and answers the twin's address
    assert add(customers, key) == twin
    assert addresses(customers) == [twin.address_id]


def test_the_key_with_another_request_is_a_conflict(customers: InMemoryCustomerRepository) -> None:
    add(customers, keyed_request("address", "k-1", FIELDS.model_dump(mode="json")))
    with pytest.raises(ConflictError, match="Idempotency-Key was already used with a different request"):
        add(customers, keyed_request("address", "k-1", {"name": "Other"}))
    assert len(addresses(customers)) == 1


def test_without_a_key_each_request_runs(customers: InMemoryCustomerRepository) -> None:
    assert keyed_request("address", None, {}) is None
    add(customers, None)
    add(customers, None)
    assert len(addresses(customers)) == 2


def test_the_processor_key_follows_the_request() -> None:
    key = RequestKey("refund", "k-1", {"amount": 500})
    assert key.processor_key("refund") == RequestKey("refund", "k-1", {"amount": 500}).processor_key("refund")
    assert key.processor_key("refund") != RequestKey("refund", "k-2", {"amount": 500}).processor_key("refund")
    assert key.processor_key("refund") != RequestKey("refund", "k-1", {"amount": 400}).processor_key("refund")
    assert len(RequestKey("refund", "€" * 255, {}).processor_key("refund")) < 255
