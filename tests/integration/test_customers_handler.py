"""The customers function end to end: lambda_handler -> use cases -> PynamoDB on moto (no processor involved).

Route-level parts of the original library's acceptance scenarios (Mxx labels; rules in docs/rules.md#subscriptions-half)
that need no Stripe, and the bad input the contract refuses. Customers that already went through a sync are stored with
the repository.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from http import HTTPStatus
from typing import Any

import boto3
import pytest

from tests.helpers import local_customers
from tests.helpers.customers_api import Call
from tests.helpers.local_customers import PRO, define_coupon, define_pro_plan, store, stored, subscribe
from tests.helpers.subscription_builders import at, base_customer, card, subscription
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.subscriptions.models import ProcessorState, SubscriptionStatus

S = HTTPStatus
clock = local_customers.clock  # NOW, 2017-01-10 12:00 UTC
api = local_customers.api  # the customers function (local provider) at that clock


@pytest.fixture
def requests(moto_tables: None) -> Iterator[list[str]]:
    """DynamoDB operations sent during the test (after the setup that cleared it)."""
    from usercredits.adapters.dynamodb.customers_table import CustomersItem

    seen: list[str] = []
    client = CustomersItem._get_connection().connection.client

    def record(model: Any, params: Any, **_: Any) -> None:
        seen.append(model.name)

    client.meta.events.register("before-call.dynamodb", record)
    yield seen
    client.meta.events.unregister("before-call.dynamodb", record)


@pytest.fixture
def items(moto_tables: None) -> Callable[[], list[dict[str, Any]]]:
    def scan() -> list[dict[str, Any]]:
        return boto3.client("dynamodb").scan(TableName=os.environ["CUSTOMERS_TABLE_NAME"])["Items"]

    return scan


# --- the customer --------------------------------------------------------------------------------------------------


def test_get_customer_creates_it_on_first_use_once(api: Call, requests: list[str]) -> None:
    # When alice reads her customer twice
    status, first = api("get_customer")
    requests.clear()
    second_status, second = api("get_customer")
    # Then the first read created it (same id both times) and the second was one Query
    assert (status, second_status) == (S.OK, S.OK)
    assert first["customerId"] == second["customerId"] and first["userId"] == "alice"
    assert first["processor"] == {"id": None, "state": "initial"}
    assert first["addresses"] == first["paymentMethods"] == first["subscriptions"] == first["transactions"] == []
    assert requests == ["Query"]
    assert stored().version == 1


def test_get_customer_without_a_token_is_401(api: Call) -> None:
    status, body = api("get_customer", user=None)
    assert status == S.UNAUTHORIZED and body["error"] == "unauthorized"


def test_update_customer_trims_and_lowercases_and_validates_email(api: Call) -> None:
    # When alice sets her profile with a padded, mixed-case email
    body = {"name": "  Pesho Peshev ", "email": " Seer@Example.COM ", "phone": "+359888", "metadata": {"a": "b"}}
    status, customer = api("update_customer", body=body)
    # Then it is stored trimmed and lowercased
    assert status == S.OK
    assert (customer["name"], customer["email"], customer["phone"]) == ("Pesho Peshev", "seer@example.com", "+359888")
    assert stored().metadata == {"a": "b"}


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "a@b.c", "a b@c.com", ""])
def test_update_customer_with_a_bad_email_is_422_and_writes_nothing(
    api: Call, items: Callable[[], list[dict[str, Any]]], email: str
) -> None:
    status, body = api("update_customer", body={"name": "Pesho", "email": email})
    assert status == S.UNPROCESSABLE_ENTITY and body["error"] == "validation_error"
    assert items() == []


def test_update_customer_to_the_same_values_changes_nothing(api: Call) -> None:
    """M01: setting a field to its current value is not a change (a synced customer stays saved)."""
    # Given a synced customer
    store(base_customer(user_id="alice"))
    # When the same name and email are sent
    status, customer = api("update_customer", body={"name": "Pesho Peshev", "email": "seer@example.com"})
    # Then it stays saved, and nothing was written (same version)
    assert status == S.OK and customer["processor"]["state"] == "saved" and stored().version == 1
    # while a real change marks it changed
    status, customer = api("update_customer", body={"name": "Pesho Changed", "email": "seer@example.com"})
    assert customer["processor"]["state"] == "changed" and stored().version == 2


def test_add_address_appends_it_last(api: Call) -> None:
    """M08: addAddress returns the address with a string id, appended last."""
    store(base_customer(user_id="alice"))
    body = {"name": "Office", "country": "bg", "postalCode": "1700", "company": "Enhancv"}
    status, address = api("add_address", body=body)
    assert status == S.CREATED
    assert address["country"] == "BG" and address["company"] == "Enhancv" and address["processor"]["state"] == "initial"
    assert [a.address_id for a in stored().addresses] == ["one", address["addressId"]]


@pytest.mark.parametrize(
    "body", [{"name": "x", "country": "BG"}, {"name": "x", "country": "Bulgaria", "postalCode": "1"}, {}]
)
def test_add_address_with_missing_or_bad_fields_is_422(api: Call, body: dict[str, Any]) -> None:
    status, error = api("add_address", body=body)
    assert status == S.UNPROCESSABLE_ENTITY and error["error"] == "validation_error"


# --- payment methods -----------------------------------------------------------------------------------------------


def test_add_payment_method_makes_it_the_default_by_default(api: Call) -> None:
    """M08: addPaymentMethodNonce appends the method and makes it the default."""
    # Given a customer with an address
    _, address = api("add_address", body={"name": "Home", "country": "BG", "postalCode": "1000"})
    # When a card token is added with that billing address
    status, method = api("add_payment_method", body={"token": "pm_card_visa", "billingAddressId": address["addressId"]})
    # Then it is a card with its display fields, initial, linked, and the default
    assert status == S.CREATED
    assert method["kind"] == "card" and method["details"]["brand"] == "visa" and method["token"] == "pm_card_visa"
    assert method["billingAddressId"] == address["addressId"] and method["processor"]["state"] == "initial"
    assert stored().default_payment_method_id == method["paymentMethodId"]


def test_add_payment_method_without_make_default_keeps_the_default(api: Call) -> None:
    _, first = api("add_payment_method", body={"token": "pm_card_visa"})
    status, second = api("add_payment_method", body={"token": "pm_paypal_pesho", "makeDefault": False})
    assert status == S.CREATED and second["kind"] == "paypal"
    assert stored().default_payment_method_id == first["paymentMethodId"]


@pytest.mark.parametrize(
    ("token", "message"),
    [("tok_visa", "unknown payment method"), ("pm_foreign_card", "foreign payment method")],
)
def test_add_payment_method_refuses_unknown_and_foreign_tokens(
    api: Call, items: Callable[[], list[dict[str, Any]]], token: str, message: str
) -> None:
    status, body = api("add_payment_method", body={"token": token})
    assert status == S.UNPROCESSABLE_ENTITY and message in body["message"]
    assert items() == []


def test_add_payment_method_twice_is_409(api: Call) -> None:
    api("add_payment_method", body={"token": "pm_card_visa"})
    status, body = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == S.CONFLICT and body["error"] == "conflict"


def test_add_payment_method_with_an_unknown_billing_address_is_404(api: Call) -> None:
    status, _ = api("add_payment_method", body={"token": "pm_card_visa", "billingAddressId": "nope"})
    assert status == S.NOT_FOUND


def test_set_default_payment_method(api: Call) -> None:
    # Given the seed's customer (PayPal `three` is the default, synced) and a second card
    store(base_customer(user_id="alice", payment_methods=[card("three"), card("five")]))
    # When alice chooses `five`
    status, customer = api("set_default_payment_method", body={"paymentMethodId": "five"})
    # Then it is the default and the synced customer is changed (a sync will send it)
    assert status == S.OK
    assert customer["defaultPaymentMethodId"] == "five" and customer["processor"]["state"] == "changed"
    # and an unknown id is 404
    assert api("set_default_payment_method", body={"paymentMethodId": "nope"})[0] == S.NOT_FOUND


# --- subscribing ---------------------------------------------------------------------------------------------------


def test_first_subscription_starts_now_and_stays_local_until_synced(api: Call, requests: list[str]) -> None:
    """M22: no subscriptions -> no queued start, no discount; nothing is sent before a sync (state initial)."""
    define_pro_plan(api)
    requests.clear()
    status, sub = subscribe(api)
    assert status == S.CREATED
    assert sub["firstBillingDate"] is None and sub["discounts"] == [] and sub["processor"]["state"] == "initial"
    assert sub["price"] == {"amount": 1490, "currency": "usd"} and sub["plan"]["planId"] == "pro"
    # in three requests: Query the customer, GetItem the plan, one transaction (here: the new customer too)
    assert requests == ["Query", "GetItem", "TransactWriteItems"]
    assert [s.subscription_id for s in stored().subscriptions] == [sub["subscriptionId"]]


def test_subscribe_with_a_coupon_is_three_requests_and_takes_its_discount(api: Call, requests: list[str]) -> None:
    """M46 (local part): 10% of 14.90 is 1.49, for the coupon's 2 cycles; the use is counted here, in the save's
    own transaction (docs/rules.md#coupon-redemption), still three requests."""
    define_pro_plan(api)
    define_coupon(api)
    api("get_customer")
    requests.clear()
    status, sub = subscribe(api, couponCode="TEN")
    assert status == S.CREATED
    assert requests == ["Query", "BatchGetItem", "TransactWriteItems"]
    [discount] = sub["discounts"]
    assert discount["kind"] == "coupon" and discount["couponCode"] == "TEN"
    assert discount["amount"] == {"amount": 149, "currency": "usd"} and discount["numberOfBillingCycles"] == 2
    coupon = DynamoCouponRepository().get("TEN")
    assert coupon is not None and coupon.used_count == 1


def test_subscribe_to_an_unknown_plan_is_404(api: Call, items: Callable[[], list[dict[str, Any]]]) -> None:
    status, body = subscribe(api, planId="nope")
    assert status == S.NOT_FOUND and body["error"] == "not_found"
    assert items() == []


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        (None, "Invalid promocode"),
        ({"expireAt": "2017-01-01T00:00:00Z"}, "Promocode expired"),
        ({"startAt": "2017-02-01T00:00:00Z"}, "Promocode not yet active"),
        ({"kind": "amount", "percent": None, "amount": {"amount": 500, "currency": "eur"}}, "Invalid promocode"),
    ],
)
def test_subscribe_with_a_coupon_that_cannot_be_used_is_422_with_the_seeds_message(
    api: Call, terms: dict[str, Any] | None, message: str
) -> None:
    define_pro_plan(api)
    if terms is not None:
        define_coupon(api, **terms)
    status, body = subscribe(api, couponCode="TEN")
    assert (status, body["error"], body["message"]) == (S.UNPROCESSABLE_ENTITY, "validation_error", message)
    assert DynamoCustomerRepository().load("alice") is None


def test_subscribe_with_a_used_up_coupon_is_limit_reached(api: Call) -> None:
    """M33 (docs/rules.md#coupons): the limit is reached at usedCount == maxUses (the seed's `>` allowed one more)."""
    define_pro_plan(api)
    define_coupon(api, maxUses=2)
    coupons = DynamoCouponRepository()
    coupons.redeem("TEN", "c1", "s1", 2)
    coupons.redeem("TEN", "c2", "s2", 2)
    status, body = subscribe(api, couponCode="TEN")
    assert (status, body["message"]) == (S.UNPROCESSABLE_ENTITY, "Promocode limit reached")


def test_subscribe_with_a_restricted_coupon_the_customer_used_is_limit_reached(
    api: Call, requests: list[str], items: Callable[[], list[dict[str, Any]]]
) -> None:
    define_pro_plan(api)
    define_coupon(api, restricted=True, maxUses=None)
    customer = stored() if api("get_customer")[0] == S.OK else None
    assert customer is not None
    # A restricted coupon is three requests too (its use by the customer is read with the plan and the coupon)
    requests.clear()
    status, _ = subscribe(api, couponCode="TEN")
    assert status == S.CREATED and requests == ["Query", "BatchGetItem", "TransactWriteItems"]
    DynamoCouponRepository().redeem("TEN", customer.customer_id, "an-earlier-subscription", None, restricted=True)
    before = items()
    requests.clear()
    status, body = subscribe(api, couponCode="TEN")
    assert (status, body["message"]) == (S.UNPROCESSABLE_ENTITY, "Promocode limit reached")
    assert requests == ["Query", "BatchGetItem"] and items() == before  # refused before anything is written
    assert api("check_coupon", path="/coupons/TEN", query={"planId": "pro"})[1]["error"] == "Promocode limit reached"


def test_same_level_subscription_is_queued_until_the_current_period_ends(api: Call) -> None:
    """M23: an Active same-level subscription (created 01-02) -> the new one starts 2017-02-02, no discount."""
    store(base_customer(user_id="alice", subscriptions=[subscription("one", level=2, created="2017-01-02")]))
    define_pro_plan(api)
    status, sub = subscribe(api)
    assert status == S.CREATED
    assert sub["firstBillingDate"] == "2017-02-02T00:00:00Z" and sub["discounts"] == []


def test_upgrade_starts_now_with_a_prorated_credit_for_the_lower_subscription(api: Call) -> None:
    """M24 corrected (docs/rules.md#upgrade-credit): the credit is the unused part of the lower subscription."""
    # Given a level-1 monthly subscription at 10.00, created 2017-01-02 (paid through 02-02), at 01-10 12:00
    store(base_customer(user_id="alice", subscriptions=[subscription("one", level=1, created="2017-01-02")]))
    define_pro_plan(api, price={"amount": 3000, "currency": "usd"})
    # When alice subscribes to the level-2 plan
    status, sub = subscribe(api)
    # Then it starts now, with a credit for the unused part of "one", less than its full 10.00
    assert status == S.CREATED and sub["firstBillingDate"] is None
    [credit] = sub["discounts"]
    assert credit["kind"] == "previous_subscription" and credit["subscriptionId"] == "one" and credit["preserve"]
    assert 0 < credit["amount"]["amount"] < 1000


def test_queued_beats_refund(api: Call) -> None:
    """M26: [L1 Canceled, L3 Active] created the same day; a new L2 waits for the L3 and gets no credit."""
    subs = [
        subscription("l1", level=1, created="2017-01-05", status=SubscriptionStatus.CANCELED),
        subscription("l3", level=3, created="2017-01-05"),
    ]
    store(base_customer(user_id="alice", subscriptions=subs))
    define_pro_plan(api)
    status, sub = subscribe(api)
    assert status == S.CREATED and sub["firstBillingDate"] == "2017-02-05T00:00:00Z" and sub["discounts"] == []


def test_subscribe_with_a_payment_method_of_someone_else_is_404(api: Call) -> None:
    define_pro_plan(api)
    status, _ = subscribe(api, paymentMethodId="not-mine")
    assert status == S.NOT_FOUND


# --- entitlement ---------------------------------------------------------------------------------------------------


def test_valid_active_and_current_subscriptions(api: Call) -> None:
    """M18: `one` Canceled (07-14 to 08-14) and `two` Active created 08-15 -> valid [two, one], active [two]."""
    subs = [
        subscription("one", level=2, created="2017-07-14", status=SubscriptionStatus.CANCELED),
        subscription("two", level=2, created="2017-08-15"),
    ]
    store(base_customer(user_id="alice", subscriptions=subs))
    for when in ("2017-08-14T22:08:00Z", "2017-08-15T22:08:00Z"):
        valid = api("list_subscriptions", query={"at": when, "valid": "true"})[1]["subscriptions"]
        active = api("list_subscriptions", query={"at": when, "active": "true"})[1]["subscriptions"]
        current = api("current_subscription", query={"at": when})[1]["subscription"]
        assert [s["subscriptionId"] for s in valid] == ["two", "one"]
        assert [s["subscriptionId"] for s in active] == ["two"]
        assert current["subscriptionId"] == "two"


def test_canceled_subscription_stays_valid_until_its_period_ends(api: Call) -> None:
    """M15: a Canceled sub created 2017-07-14 (midnight UTC), at 2017-07-13T22:08Z: valid [one], active []."""
    subs = [subscription("one", created="2017-07-14", status=SubscriptionStatus.CANCELED)]
    store(base_customer(user_id="alice", subscriptions=subs))
    when = "2017-07-13T22:08:00Z"
    assert [
        s["subscriptionId"] for s in api("list_subscriptions", query={"at": when, "valid": "true"})[1]["subscriptions"]
    ] == ["one"]
    assert api("list_subscriptions", query={"at": when, "active": "true"})[1]["subscriptions"] == []


def test_subscriptions_of_a_user_without_customer_are_empty_and_nothing_is_written(
    api: Call, items: Callable[[], list[dict[str, Any]]]
) -> None:
    assert api("list_subscriptions", query={})[1] == {"subscriptions": []}
    assert api("current_subscription", query={})[1] == {"subscription": None}
    assert items() == []


def test_list_subscriptions_with_a_bad_date_is_422(api: Call) -> None:
    assert api("list_subscriptions", query={"at": "yesterday"})[0] == S.UNPROCESSABLE_ENTITY


def test_an_initial_subscription_does_not_entitle(api: Call) -> None:
    """M20: an `initial` subscription (not synced yet) is never valid."""
    define_pro_plan(api)
    subscribe(api)
    assert api("current_subscription", query={})[1] == {"subscription": None}


# --- cancelling ----------------------------------------------------------------------------------------------------


def test_cancel_an_unsynced_subscription_withdraws_it(api: Call) -> None:
    define_pro_plan(api)
    _, sub = subscribe(api)
    status, canceled = api(
        "cancel_subscription", path=f"/customer/subscriptions/{sub['subscriptionId']}/cancel", body={}
    )
    assert status == S.OK and canceled["status"] == "canceled" and canceled["deleted"] is True


def test_cancel_at_period_end_marks_a_synced_subscription_changed(api: Call) -> None:
    """The cancel is saved before the processor is called: without a processor (the local provider) it answers 409
    and the subscription shows the cancel pending at the processor (state changed) for a sync to complete."""
    store(base_customer(user_id="alice"))
    status, body = api("cancel_subscription", path="/customer/subscriptions/four/cancel", body={"atPeriodEnd": True})
    assert status == S.CONFLICT and "local payment provider" in body["message"]
    [sub] = api("get_customer")[1]["subscriptions"]
    assert sub["cancelAtPeriodEnd"] is True and sub["status"] == "active" and sub["processor"]["state"] == "changed"


def test_cancel_now_without_a_body(api: Call) -> None:
    """M11 for one subscription: Active -> Canceled locally first (state changed, pending at the processor)."""
    store(base_customer(user_id="alice"))
    status, _ = api("cancel_subscription", path="/customer/subscriptions/four/cancel", raw_body="")
    assert status == S.CONFLICT  # the local provider has no subscription processor (yet)
    [sub] = api("get_customer")[1]["subscriptions"]
    assert sub["status"] == "canceled" and sub["processor"]["state"] == "changed"
    assert stored().subscriptions[0].status is SubscriptionStatus.CANCELED


def test_cancel_an_unknown_subscription_is_404(api: Call) -> None:
    status, _ = api("cancel_subscription", path="/customer/subscriptions/nope/cancel", body={})
    assert status == S.NOT_FOUND


# --- coupons -------------------------------------------------------------------------------------------------------


def test_check_coupon_for_a_plan_gives_its_amount(api: Call) -> None:
    define_pro_plan(api)
    define_coupon(api)
    status, body = api("check_coupon", path="/coupons/TEN", query={"planId": "pro"})
    assert status == S.OK and body == {"valid": True, "error": None, "amount": {"amount": 149, "currency": "usd"}}


def test_check_coupon_without_a_plan_checks_its_state(api: Call) -> None:
    define_coupon(api, expireAt="2017-01-01T00:00:00Z")
    assert api("check_coupon", path="/coupons/TEN", query={})[1] == {
        "valid": False,
        "error": "Promocode expired",
        "amount": None,
    }
    assert api("check_coupon", path="/coupons/NOPE", query={})[1]["error"] == "Invalid promocode"


def test_check_coupon_for_an_unknown_plan_is_404(api: Call) -> None:
    define_coupon(api)
    assert api("check_coupon", path="/coupons/TEN", query={"planId": "nope"})[0] == S.NOT_FOUND


# --- admin ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "path", "body"),
    [
        ("put_plan_admin", "/admin/plans/pro", PRO),
        ("put_coupon_admin", "/admin/coupons/TEN", {"kind": "percent", "percent": "10"}),
        ("get_customer_admin", "/admin/customers/alice", None),
    ],
)
def test_admin_routes_need_the_admin_scope(
    api: Call, items: Callable[[], list[dict[str, Any]]], event: str, path: str, body: Any
) -> None:
    status, error = api(event, path=path, body=body, admin=False, user="mallory")
    assert status == S.FORBIDDEN and error["error"] == "forbidden"
    assert items() == []


def test_admin_reads_any_customer_but_creates_none(api: Call) -> None:
    api("get_customer")
    status, customer = api("get_customer_admin", path="/admin/customers/alice", admin=True, user="ops")
    assert status == S.OK and customer["userId"] == "alice"
    assert api("get_customer_admin", path="/admin/customers/bob", admin=True, user="ops")[0] == S.NOT_FOUND
    assert DynamoCustomerRepository().load("bob") is None


def test_admin_put_plan_round_trips_and_checks_the_id(api: Call) -> None:
    status, plan = api(
        "put_plan_admin", path="/admin/plans/pro", body={**PRO, "processorPlanId": "price_1"}, admin=True
    )
    no_terms = {"gracePeriodDays": None, "trialDuration": None, "trialDurationUnit": None}
    assert status == S.OK and plan == {**PRO, "planId": "pro", "processorPlanId": "price_1", **no_terms}
    mismatch = api("put_plan_admin", path="/admin/plans/pro", body={**PRO, "planId": "other"}, admin=True)
    assert mismatch[0] == S.UNPROCESSABLE_ENTITY
    bad_price = api("put_plan_admin", path="/admin/plans/pro", body={**PRO, "price": {"amount": 9.99}}, admin=True)
    assert bad_price[0] == S.UNPROCESSABLE_ENTITY


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "percent"},
        {"kind": "percent", "percent": "120"},
        {"kind": "amount", "percent": "10"},
        {"kind": "amount", "amount": {"amount": 100, "currency": "usd"}, "maxUses": 0},
        {"kind": "percent", "percent": "5", "startAt": "2017-02-01T00:00:00Z", "expireAt": "2017-01-01T00:00:00Z"},
    ],
)
def test_admin_put_coupon_with_invalid_terms_is_422(
    api: Call, items: Callable[[], list[dict[str, Any]]], body: dict[str, Any]
) -> None:
    status, error = api("put_coupon_admin", path="/admin/coupons/BAD", body=body, admin=True)
    assert status == S.UNPROCESSABLE_ENTITY and error["error"] == "validation_error"
    assert items() == []


def test_admin_put_coupon_keeps_its_use_count(api: Call) -> None:
    define_coupon(api, maxUses=5)
    DynamoCouponRepository().redeem("TEN", "c1", "s1", 5)
    coupon = define_coupon(api, maxUses=10, name="Ten, again")
    assert (coupon["usedCount"], coupon["maxUses"], coupon["name"]) == (1, 10, "Ten, again")


def test_sample_events_answer(api: Call) -> None:
    """Every sample event of the function runs against an empty table with a 2xx, 404 or 422 (never a 500); the
    processor routes answer 409 with the local provider (it has no subscriptions)."""
    define_pro_plan(api, plan_id="pro-monthly")
    processor_routes = {"sync", "reload", "refund_admin", "void_admin"}
    for path in _events():
        status, body = api(path.stem, admin=path.stem.endswith("_admin"))
        if path.stem in processor_routes:
            assert status == S.CONFLICT and "local payment provider" in body["message"], (path.name, body)
        else:
            assert status in {S.OK, S.CREATED, S.NOT_FOUND, S.UNPROCESSABLE_ENTITY}, (path.name, body)


def _events() -> list[Any]:
    from tests.conftest import EVENTS

    return sorted((EVENTS / "customers").glob("*.json"))


def test_customer_saved_by_a_sync_is_read_back_with_processor_state(api: Call) -> None:
    # Given the seed's base customer as a sync left it (everything saved)
    store(base_customer(user_id="alice"))
    # When alice reads it
    status, customer = api("get_customer")
    # Then processor ids and states are there (the synced fields stay in the stored item), and the subscription is
    # entitled at its period
    assert status == S.OK
    assert customer["paymentMethods"][0]["processor"] == {"id": "id-pm-three", "state": "saved"}
    assert stored().payment_methods[0].processor.synced_fields == {"billing_address_id": "one", "token": None}
    assert customer["subscriptions"][0]["processor"]["state"] == ProcessorState.SAVED.value
    when = (at("2017-03-01") + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert api("current_subscription", query={"at": when})[1]["subscription"]["subscriptionId"] == "four"
