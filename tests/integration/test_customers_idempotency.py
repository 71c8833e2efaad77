"""``Idempotency-Key`` on every customers POST, end to end (lambda_handler -> use cases -> PynamoDB on moto, the real
``stripe`` SDK against the fake Billing API for the processor routes): a retry after a lost answer (the same key and
body) answers the first result and changes nothing, at the processor included; the same key with another body is 409;
without the header the routes behave as before."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.conftest import http_event
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.errors import UnavailableError
from usercredits.settings import get_customers_settings
from usercredits.subscriptions.ports import CustomerChanges

Call = Callable[..., tuple[int, Any]]
S = HTTPStatus
SECRET_KEY = "sk_test_51FakeBillingKey0123456789"
PRO = {
    "name": "Pro",
    "price": {"amount": 1490, "currency": "usd"},
    "billingFrequencyMonths": 1,
    "level": 2,
    "processorPlanId": "price_pro",
}
ADDRESS = {"name": "Pesho Peshev", "country": "BG", "postalCode": "1000"}


def keyed(key: str) -> dict[str, str]:
    return {"idempotency-key": key}


def customer_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb").scan(TableName=os.environ["CUSTOMERS_TABLE_NAME"])["Items"]


def define_plan(api: Call) -> None:
    status, _ = api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)
    assert status == S.OK


# --- the local routes (no processor) -------------------------------------------------------------------------------


def _subscription_path(api: Call) -> str:
    define_plan(api)
    status, subscription = api("subscribe", body={"planId": "pro"})
    assert status == S.CREATED, subscription
    return f"/customer/subscriptions/{subscription['subscriptionId']}/cancel"


#: (event, setup returning the path to call or None, body, another body)
LOCAL_ROUTES: dict[str, tuple[str, Callable[[Call], str | None], dict[str, Any], dict[str, Any]]] = {
    "address": ("add_address", lambda api: None, ADDRESS, {**ADDRESS, "postalCode": "1001"}),
    "payment method": (
        "add_payment_method",
        lambda api: None,
        {"token": "pm_card_visa"},
        {"token": "pm_card_visa", "makeDefault": False},
    ),
    "subscription": (
        "subscribe",
        define_plan,
        {"planId": "pro"},
        {"planId": "pro", "paymentMethodId": None, "couponCode": "TEN"},
    ),
    "cancel": ("cancel_subscription", _subscription_path, {"atPeriodEnd": True}, {"atPeriodEnd": False}),
}


@pytest.mark.parametrize("route", LOCAL_ROUTES)
def test_a_retried_local_post_answers_the_first_result_and_changes_nothing(customers_api: Call, route: str) -> None:
    event, setup, body, other = LOCAL_ROUTES[route]
    path = setup(customers_api)
    where = {"path": path} if path else {}
    # Given a keyed request that succeeded, whose answer the client lost
    status, first = customers_api(event, body=body, headers=keyed("k-1"), **where)
    assert status in (S.OK, S.CREATED), first
    _, customer = customers_api("get_customer")
    # When the client retries it with the same key and body
    again_status, again = customers_api(event, body=body, headers=keyed("k-1"), **where)
    # Then it gets the first answer, and the customer is as the first request left it (one address, one card...)
    assert (again_status, again) == (status, first)
    assert customers_api("get_customer")[1] == customer
    # And the same key with another body is a conflict that changes nothing either
    conflict_status, conflict = customers_api(event, body=other, headers=keyed("k-1"), **where)
    assert conflict_status == S.CONFLICT, conflict
    assert conflict["error"] == "conflict" and "Idempotency-Key" in conflict["message"]
    assert customers_api("get_customer")[1] == customer


def test_without_the_header_each_post_adds_again(customers_api: Call) -> None:
    for _ in range(2):
        assert customers_api("add_address", body=ADDRESS)[0] == S.CREATED
    assert len(customers_api("get_customer")[1]["addresses"]) == 2


def test_keys_are_per_user_and_per_kind_of_request(customers_api: Call) -> None:
    # Given alice's key k used for an address
    status, mine = customers_api("add_address", body=ADDRESS, headers=keyed("k"))
    assert status == S.CREATED
    # When bob uses k for the same request, and alice uses k for a payment method
    status, bobs = customers_api("add_address", body=ADDRESS, headers=keyed("k"), user="bob")
    method_status, _ = customers_api("add_payment_method", body={"token": "pm_card_visa"}, headers=keyed("k"))
    # Then each is a request of its own
    assert status == S.CREATED and bobs["addressId"] != mine["addressId"]
    assert method_status == S.CREATED


def test_the_key_is_stored_apart_from_the_customer_for_30_days(customers_api: Call) -> None:
    before = datetime.now(UTC)
    _, address = customers_api("add_address", body=ADDRESS, headers=keyed("k-1"))
    [record] = [item for item in customer_items() if item["itemType"]["S"] == "idempotency"]
    assert record["pk"]["S"] == "IDEMPOTENCY#alice" and record["sk"]["S"] == "address#k-1"
    assert record["resultId"]["S"] == address["addressId"]
    expires = datetime.fromtimestamp(int(record["ttl"]["N"]), UTC)
    assert before + timedelta(days=30) - timedelta(minutes=1) <= expires <= datetime.now(UTC) + timedelta(days=30)


# --- the processor routes (Stripe) -----------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeStripeBilling]:
    with FakeStripeBilling(api_key=SECRET_KEY) as server:
        server.add_price("price_pro", 1490)
        yield server


@pytest.fixture
def api(
    moto_tables: None, lambda_context: LambdaContext, fake: FakeStripeBilling, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Call]:
    """The customers function in Stripe mode, its processor pointed at the fake."""
    from customers import handler

    monkeypatch.setenv("PAYMENT_PROVIDER", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_NAME", "user-credits/stripe")
    get_customers_settings.cache_clear()
    handler.dependencies.cache_clear()
    stripe = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0)
    monkeypatch.setattr(handler, "processor", lambda: stripe)

    def call(base: str, **overrides: Any) -> tuple[int, Any]:
        response = handler.lambda_handler(http_event(f"customers/{base}.json", **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None

    yield call
    handler.dependencies.cache_clear()
    get_customers_settings.cache_clear()


def synced(api: Call) -> dict[str, Any]:
    """Alice with a card and a Pro subscription, synced (Stripe charged the first invoice) and reloaded."""
    define_plan(api)
    _, method = api("add_payment_method", body={"token": "pm_card_visa"})
    assert api("subscribe", body={"planId": "pro", "paymentMethodId": method["paymentMethodId"]})[0] == S.CREATED
    assert api("sync")[0] == S.OK
    status, customer = api("reload")
    assert status == S.OK, customer
    return dict(customer)


def sale_path(customer: dict[str, Any], action: str) -> str:
    [sale] = [t for t in customer["transactions"] if t["kind"] == "sale"]
    return f"/admin/customers/alice/transactions/{sale['transactionId']}/{action}"


def refund(api: Call, path: str, amount: int, key: str) -> tuple[int, Any]:
    body = {"amount": {"amount": amount, "currency": "usd"}}
    return api("refund_admin", path=path, body=body, admin=True, headers=keyed(key))


def test_a_retried_refund_refunds_once(api: Call, fake: FakeStripeBilling) -> None:
    # Given a partial refund that went through, whose answer the admin lost
    path = sale_path(synced(api), "refund")
    status, first = refund(api, path, 490, "refund-1")
    assert status == S.OK, first
    # When it is retried with the same key
    again = refund(api, path, 490, "refund-1")
    # Then the answer is the first refund, and Stripe refunded once
    assert again == (S.OK, first)
    assert len(fake.charge_refunds) == 1
    # And the same key for another amount is a conflict, refunding nothing
    status, body = refund(api, path, 300, "refund-1")
    assert status == S.CONFLICT, body
    assert len(fake.charge_refunds) == 1
    # while another key is another refund
    assert refund(api, path, 300, "refund-2")[0] == S.OK
    assert len(fake.charge_refunds) == 2


def _fail_keyed_saves(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make every keyed customer save time out (Stripe acted, our save did not land); returns the real save."""
    real_save = DynamoCustomerRepository.save

    def failing_save(self: DynamoCustomerRepository, changes: CustomerChanges) -> Any:
        if changes.idempotency is not None:
            raise UnavailableError("DynamoDB timed out")
        return real_save(self, changes)

    monkeypatch.setattr(DynamoCustomerRepository, "save", failing_save)
    return real_save


def test_a_refund_retried_after_a_crash_before_its_save_refunds_once(
    api: Call, fake: FakeStripeBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a keyed refund that Stripe made but whose save failed (the function timed out in between)
    path = sale_path(synced(api), "refund")
    real_save = _fail_keyed_saves(monkeypatch)
    status, body = refund(api, path, 490, "refund-1")
    assert status == S.SERVICE_UNAVAILABLE, body
    monkeypatch.setattr(DynamoCustomerRepository, "save", real_save)
    assert len(fake.charge_refunds) == 1
    # and a reload meanwhile mirrored that refund locally
    assert api("reload")[0] == S.OK
    # When the admin retries it with the same key
    status, answer = refund(api, path, 490, "refund-1")
    # Then Stripe's refund is answered and recorded once, not made again
    assert status == S.OK, answer
    assert len(fake.charge_refunds) == 1
    _, customer = api("get_customer")
    assert [t["transactionId"] for t in customer["transactions"] if t["kind"] == "refund"] == [answer["transactionId"]]


def test_a_refund_retried_days_after_a_crash_when_stripe_forgot_its_key_refunds_once(
    api: Call, fake: FakeStripeBilling, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a keyed refund that Stripe made but whose save failed, and no reload since
    path = sale_path(synced(api), "refund")
    real_save = _fail_keyed_saves(monkeypatch)
    assert refund(api, path, 490, "refund-1")[0] == S.SERVICE_UNAVAILABLE
    monkeypatch.setattr(DynamoCustomerRepository, "save", real_save)
    # When the admin retries it after Stripe forgot the idempotency key (24 hours)
    fake.forget_idempotency_keys()
    status, answer = refund(api, path, 490, "refund-1")
    # Then the refund made then is found by its metadata and recorded, not made again
    assert status == S.OK, answer
    assert len(fake.charge_refunds) == 1
    _, customer = api("get_customer")
    assert [t["transactionId"] for t in customer["transactions"] if t["kind"] == "refund"] == [answer["transactionId"]]


def test_a_retried_void_answers_the_voided_transaction(api: Call, fake: FakeStripeBilling) -> None:
    customer = synced(api)
    fake.add_charge(customer["processor"]["id"], 700, captured=False, created=1)
    _, customer = api("reload")
    [authorized] = [t for t in customer["transactions"] if t["status"] == "authorized"]
    path = f"/admin/customers/alice/transactions/{authorized['transactionId']}/void"
    status, first = api("void_admin", path=path, admin=True, headers=keyed("void-1"))
    assert status == S.OK, first
    calls = len(fake.requests)
    # When the void is retried with its key
    again = api("void_admin", path=path, admin=True, headers=keyed("void-1"))
    # Then it answers the voided transaction without asking Stripe again (without the key: 409, voided already)
    assert again == (S.OK, first)
    assert len(fake.requests) == calls


def test_a_retried_sync_answers_the_customer_without_sending_anything(api: Call, fake: FakeStripeBilling) -> None:
    # Given a keyed sync that went through, and the profile changed locally since
    synced(api)
    status, first = api("sync", headers=keyed("sync-1"))
    assert status == S.OK, first
    assert api("update_customer", body={"name": "Pesho Peshev", "email": "pesho@example.com"})[0] == S.OK
    calls = len(fake.requests)
    # When the sync is retried with its key
    status, again = api("sync", headers=keyed("sync-1"))
    # Then it answers the customer as it stands, without calling Stripe: the change is not sent
    assert status == S.OK, again
    assert len(fake.requests) == calls
    assert (again["name"], again["processor"]["state"]) == ("Pesho Peshev", "changed")
    # while a sync with another key sends it
    status, synced_again = api("sync", headers=keyed("sync-2"))
    assert len(fake.requests) > calls
    assert synced_again["processor"]["state"] == "saved"


def test_a_retried_reload_answers_the_customer_without_calling_stripe(api: Call, fake: FakeStripeBilling) -> None:
    synced(api)
    status, first = api("reload", headers=keyed("reload-1"))
    assert status == S.OK, first
    calls = len(fake.requests)
    again = api("reload", headers=keyed("reload-1"))
    assert again == (S.OK, first)
    assert len(fake.requests) == calls
