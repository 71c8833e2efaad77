"""The Stripe adapter with the real ``stripe`` SDK against the fake Stripe API server (devtools/stripe_sim)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import boto3
import pytest
import stripe
from aws_lambda_powertools.utilities import parameters
from devtools.stripe_sim.payment_intents import FakeStripe
from devtools.stripe_sim.wire import parse_form
from moto import mock_aws

from usercredits.adapters.stripe import payments as payments_module
from usercredits.adapters.stripe.client import (
    FAILURE_MEMORY_SECONDS,
    SECRET_MAX_AGE_SECONDS,
    StripeKeys,
    load_stripe_keys,
)
from usercredits.adapters.stripe.payments import StripeGateway
from usercredits.domain.models import IntentState, Order, OrderStatus
from usercredits.errors import PaymentGatewayError, UnavailableError
from usercredits.kernel.models import Cycle, Money

SECRET_KEY = "sk_test_51FakeKeyForTheFakeServer0123456789"
NOW = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def an_order(order_id: str = "01ORDER", amount: int = 1999, currency: str = "usd", user_id: str = "alice") -> Order:
    return Order(
        order_id=order_id,
        user_id=user_id,
        offer_id="StartupM",
        offer_group="Startup",
        offer_name="Startup monthly",
        status=OrderStatus.PENDING,
        quantity=1,
        total=Money(amount=amount, currency=currency),
        unit_tokens=49,
        total_tokens=49,
        cycle=Cycle.MONTHLY,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe(api_key=SECRET_KEY) as server:
        yield server


@pytest.fixture
def gateway(fake: FakeStripe) -> StripeGateway:
    return StripeGateway(SECRET_KEY, api_base=fake.url, max_network_retries=0)


# ---- create_intent ---------------------------------------------------------------------------------------------------


def test_create_intent_sends_amount_currency_metadata_and_idempotency_key(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    intent = gateway.create_intent(an_order("01ORDER", 1999, "usd"), attempt=1)

    [request] = fake.posts()
    assert request.form == {
        "amount": "1999",
        "currency": "usd",
        "metadata": {"orderId": "01ORDER", "userId": "alice"},
        "automatic_payment_methods": {"enabled": "true"},
        "description": "Payment for order 01ORDER",
    }
    assert request.idempotency_key == "order-01ORDER-attempt-1"
    assert request.headers["stripe-version"] == stripe.api_version
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert request.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert intent.provider == "stripe"
    assert intent.payment_intent_id.startswith("pi_")
    assert intent.client_secret.startswith(f"{intent.payment_intent_id}_secret_")
    stored = fake.intents[intent.payment_intent_id]
    assert (stored["amount"], stored["currency"], stored["status"]) == (1999, "usd", "requires_payment_method")
    assert stored["automatic_payment_methods"]["enabled"] is True


def test_zero_decimal_currency_is_sent_in_whole_units(fake: FakeStripe, gateway: StripeGateway) -> None:
    gateway.create_intent(an_order("01YEN", 500, "jpy"), attempt=3)

    [request] = fake.posts()
    assert (request.form["amount"], request.form["currency"]) == ("500", "jpy")
    assert request.idempotency_key == "order-01YEN-attempt-3"


def test_same_order_and_attempt_twice_gives_one_intent(fake: FakeStripe, gateway: StripeGateway) -> None:
    order = an_order()
    first = gateway.create_intent(order, attempt=1)
    again = gateway.create_intent(order, attempt=1)
    other = gateway.create_intent(order, attempt=2)

    assert again == first
    assert other.payment_intent_id != first.payment_intent_id
    assert len(fake.intents) == 2
    assert [request.idempotency_key for request in fake.posts()] == [
        "order-01ORDER-attempt-1",
        "order-01ORDER-attempt-1",
        "order-01ORDER-attempt-2",
    ]


def test_sdk_retry_after_a_500_reuses_the_idempotency_key(fake: FakeStripe) -> None:
    gateway = StripeGateway(SECRET_KEY, api_base=fake.url, max_network_retries=1)
    fake.fail_next(500)

    intent = gateway.create_intent(an_order(), attempt=1)

    keys = [request.idempotency_key for request in fake.posts()]
    assert keys == ["order-01ORDER-attempt-1", "order-01ORDER-attempt-1"]
    assert list(fake.intents) == [intent.payment_intent_id]


def test_card_error_becomes_payment_gateway_error_without_card_details(
    fake: FakeStripe, gateway: StripeGateway
) -> None:
    fake.fail_next_with_card_error()

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert isinstance(caught.value.__cause__, stripe.CardError)
    message = caught.value.message
    assert "card_error" in message
    assert "card_declined" in message
    assert "generic_decline" in message
    assert "0002" not in message
    assert "visa" not in message
    assert SECRET_KEY not in message


@pytest.mark.parametrize(
    ("status", "code"), [(400, "parameter_invalid_integer"), (401, None), (403, None), (404, "resource_missing")]
)
def test_other_client_errors_become_payment_gateway_errors(
    fake: FakeStripe, gateway: StripeGateway, status: int, code: str | None
) -> None:
    fake.fail_next(status, code=code, message=f"Invalid API Key provided: {SECRET_KEY}")

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert isinstance(caught.value.__cause__, stripe.StripeError)
    assert SECRET_KEY not in caught.value.message


def test_wrong_api_key_is_a_payment_gateway_error(fake: FakeStripe) -> None:
    gateway = StripeGateway("sk_test_wrong", api_base=fake.url, max_network_retries=0)

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert isinstance(caught.value.__cause__, stripe.AuthenticationError)
    assert "sk_test_wrong" not in caught.value.message


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(500, {}, 1), (502, {}, 1), (503, {}, 1), (429, {"Retry-After": "7"}, 7), (429, {}, 1), (409, {}, 1)],
)
def test_server_errors_and_throttling_are_retryable(
    fake: FakeStripe, gateway: StripeGateway, status: int, headers: dict[str, str], retry_after: int
) -> None:
    fake.fail_next(status, code="rate_limit" if status == 429 else None, headers=headers)

    with pytest.raises(UnavailableError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert caught.value.retry_after == retry_after
    assert len(fake.posts()) == 1  # max_network_retries=0: the SDK did not retry by itself


def test_timeout_is_retryable(fake: FakeStripe) -> None:
    gateway = StripeGateway(SECRET_KEY, api_base=fake.url, max_network_retries=0, timeout_seconds=0.2)
    fake.delay_next(1.0)

    with pytest.raises(UnavailableError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert isinstance(caught.value.__cause__, stripe.APIConnectionError)


def test_connection_refused_is_retryable() -> None:
    with FakeStripe() as server:
        url = server.url
    gateway = StripeGateway(SECRET_KEY, api_base=url, max_network_retries=0)

    with pytest.raises(UnavailableError):
        gateway.create_intent(an_order(), attempt=1)


def test_empty_secret_key_is_refused() -> None:
    with pytest.raises(PaymentGatewayError):
        StripeGateway("")


def test_repr_does_not_show_the_key(gateway: StripeGateway) -> None:
    assert SECRET_KEY not in repr(gateway)
    assert SECRET_KEY not in repr(StripeKeys(secret_key=SECRET_KEY, webhook_secret="whsec_1"))
    assert "whsec_1" not in repr(StripeKeys(secret_key=SECRET_KEY, webhook_secret="whsec_1"))


# ---- retrieve_intent -------------------------------------------------------------------------------------------------


def test_retrieve_succeeded_intent(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order("01PAID", 4900, "eur", user_id="bob"), attempt=1)
    fake.set_intent(created.payment_intent_id, status="succeeded", amount_received=4900, latest_charge="ch_1")

    state = gateway.retrieve_intent(created.payment_intent_id)

    assert state == IntentState(
        payment_intent_id=created.payment_intent_id,
        status="succeeded",
        amount=4900,
        amount_received=4900,
        currency="eur",
        metadata={"orderId": "01PAID", "userId": "bob"},
        last_error=None,
        next_action=None,
    )
    [read] = [request for request in fake.requests if request.method == "GET"]
    assert read.path == f"/v1/payment_intents/{created.payment_intent_id}"
    assert read.idempotency_key is None


def test_retrieve_refused_intent_formats_the_last_error_like_the_seed(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.set_intent(
        created.payment_intent_id,
        status="requires_payment_method",
        last_payment_error={
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "insufficient_funds",
            "message": "Your card has insufficient funds.",
            "payment_method": {"id": "pm_1", "card": {"last4": "9995", "brand": "visa"}},
        },
    )

    state = gateway.retrieve_intent(created.payment_intent_id)

    assert state.status == "requires_payment_method"
    assert state.last_error == "Your card has insufficient funds. - card_error: card_declined"
    assert state.amount_received == 0


def test_retrieve_intent_needing_an_action(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.set_intent(
        created.payment_intent_id,
        status="requires_action",
        next_action={"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3ds"}},
    )

    state = gateway.retrieve_intent(created.payment_intent_id)

    assert (state.status, state.next_action, state.last_error) == ("requires_action", "redirect_to_url", None)


@pytest.mark.parametrize("status", ["processing", "canceled", "requires_confirmation", "requires_capture"])
def test_retrieve_passes_other_statuses_through(fake: FakeStripe, gateway: StripeGateway, status: str) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.set_intent(created.payment_intent_id, status=status)

    assert gateway.retrieve_intent(created.payment_intent_id).status == status


def test_retrieve_unknown_intent_is_a_payment_gateway_error(gateway: StripeGateway) -> None:
    with pytest.raises(PaymentGatewayError) as caught:
        gateway.retrieve_intent("pi_doesnotexist")

    assert "resource_missing" in caught.value.message


def test_retrieve_throttled_is_retryable(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.fail_next(429, code="rate_limit")

    with pytest.raises(UnavailableError):
        gateway.retrieve_intent(created.payment_intent_id)


# ---- cancel_intent ---------------------------------------------------------------------------------------------------


def test_cancel_intent(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)

    gateway.cancel_intent(created.payment_intent_id)

    assert fake.intents[created.payment_intent_id]["status"] == "canceled"
    [cancel] = fake.posts(f"/v1/payment_intents/{created.payment_intent_id}/cancel")
    assert cancel.idempotency_key  # the SDK adds one to every POST


@pytest.mark.parametrize("status", ["canceled", "succeeded"])
def test_cancel_of_a_finished_intent_is_a_no_op(fake: FakeStripe, gateway: StripeGateway, status: str) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.set_intent(created.payment_intent_id, status=status)

    gateway.cancel_intent(created.payment_intent_id)

    assert fake.intents[created.payment_intent_id]["status"] == status
    assert len(fake.posts(f"/v1/payment_intents/{created.payment_intent_id}/cancel")) == 1


def test_cancel_twice_is_a_no_op(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)

    gateway.cancel_intent(created.payment_intent_id)
    gateway.cancel_intent(created.payment_intent_id)

    assert fake.intents[created.payment_intent_id]["status"] == "canceled"


def test_cancel_of_a_processing_intent_is_refused(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.set_intent(created.payment_intent_id, status="processing")

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.cancel_intent(created.payment_intent_id)

    assert "payment_intent_unexpected_state" in caught.value.message


def test_cancel_of_an_unknown_intent_is_refused(gateway: StripeGateway) -> None:
    with pytest.raises(PaymentGatewayError):
        gateway.cancel_intent("pi_doesnotexist")


def test_cancel_when_stripe_is_down_is_retryable(fake: FakeStripe, gateway: StripeGateway) -> None:
    created = gateway.create_intent(an_order(), attempt=1)
    fake.fail_next(503)

    with pytest.raises(UnavailableError):
        gateway.cancel_intent(created.payment_intent_id)


# ---- the fake itself -------------------------------------------------------------------------------------------------


def test_fake_form_parser_handles_nested_keys_and_lists() -> None:
    assert parse_form("a[0][b]=c&a[1][b]=d&metadata[orderId]=o1&x=1&flag=true") == {
        "a": [{"b": "c"}, {"b": "d"}],
        "metadata": {"orderId": "o1"},
        "x": "1",
        "flag": "true",
    }


def test_fake_rejects_an_idempotency_key_reused_with_other_parameters(fake: FakeStripe, gateway: StripeGateway) -> None:
    gateway.create_intent(an_order(amount=1999), attempt=1)

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.create_intent(an_order(amount=2999), attempt=1)

    assert isinstance(caught.value.__cause__, stripe.IdempotencyError)
    assert len(fake.intents) == 1


# ---- keys from Secrets Manager ---------------------------------------------------------------------------------------


@pytest.fixture
def secrets_manager() -> Iterator[object]:
    parameters.clear_caches()
    with mock_aws():
        yield boto3.client("secretsmanager")
    parameters.clear_caches()


def test_from_secret_reads_the_key_from_secrets_manager(secrets_manager: object, fake: FakeStripe) -> None:
    client = boto3.client("secretsmanager")
    client.create_secret(
        Name="user-credits/stripe", SecretString=json.dumps({"secretKey": SECRET_KEY, "webhookSecret": "whsec_1"})
    )

    gateway = StripeGateway.from_secret("user-credits/stripe", api_base=fake.url, max_network_retries=0)
    intent = gateway.create_intent(an_order(), attempt=1)

    assert fake.intents[intent.payment_intent_id]["amount"] == 1999  # the fake checked the Bearer key
    keys = load_stripe_keys("user-credits/stripe")
    assert (keys.require_secret_key(), keys.require_webhook_secret()) == (SECRET_KEY, "whsec_1")


def test_secret_is_cached_per_container(secrets_manager: object) -> None:
    client = boto3.client("secretsmanager")
    client.create_secret(Name="stripe", SecretString=json.dumps({"secretKey": "sk_test_old"}))
    assert load_stripe_keys("stripe").secret_key == "sk_test_old"

    client.put_secret_value(SecretId="stripe", SecretString=json.dumps({"secretKey": "sk_test_new"}))

    assert load_stripe_keys("stripe").secret_key == "sk_test_old"  # within max_age: no second read
    parameters.clear_caches()  # a new container
    assert load_stripe_keys("stripe").secret_key == "sk_test_new"


def test_secret_without_webhook_secret_still_gives_the_api_key(secrets_manager: object) -> None:
    boto3.client("secretsmanager").create_secret(Name="stripe", SecretString=json.dumps({"secretKey": SECRET_KEY}))

    keys = load_stripe_keys("stripe")

    assert keys.require_secret_key() == SECRET_KEY
    with pytest.raises(PaymentGatewayError, match="webhookSecret"):
        keys.require_webhook_secret()


@pytest.mark.parametrize(
    "secret_string", [json.dumps({"webhookSecret": "whsec_1"}), json.dumps({"secretKey": ""}), json.dumps(["sk"])]
)
def test_secret_without_a_usable_key_is_refused(secrets_manager: object, secret_string: str) -> None:
    boto3.client("secretsmanager").create_secret(Name="stripe", SecretString=secret_string)

    gateway = StripeGateway.from_secret("stripe")  # the secret is read on the first call to Stripe

    with pytest.raises(PaymentGatewayError) as caught:
        gateway.create_intent(an_order(), attempt=1)

    assert "not configured" in caught.value.message


def test_secret_that_is_not_json_is_refused(secrets_manager: object) -> None:
    boto3.client("secretsmanager").create_secret(Name="stripe", SecretString="sk_test_plain")

    with pytest.raises(PaymentGatewayError) as caught:
        StripeGateway.from_secret("stripe").retrieve_intent("pi_1")

    assert "sk_test_plain" not in caught.value.message


def test_missing_secret_is_refused(secrets_manager: object) -> None:
    with pytest.raises(PaymentGatewayError):
        StripeGateway.from_secret("does-not-exist").cancel_intent("pi_1")


def test_empty_secret_name_is_refused() -> None:
    with pytest.raises(PaymentGatewayError, match="STRIPE_SECRET_NAME"):
        StripeGateway.from_secret("").create_intent(an_order(), attempt=1)


def test_a_rotated_key_is_used_once_the_cached_secret_expires(secrets_manager: object, fake: FakeStripe) -> None:
    client = boto3.client("secretsmanager")
    client.create_secret(Name="stripe", SecretString=json.dumps({"secretKey": "sk_test_old"}))
    clock = [0.0]
    gateway = StripeGateway.from_secret("stripe", api_base=fake.url, max_network_retries=0, monotonic=lambda: clock[0])
    fake.api_key = "sk_test_old"
    gateway.create_intent(an_order("01A"), attempt=1)

    client.put_secret_value(SecretId="stripe", SecretString=json.dumps({"secretKey": "sk_test_new"}))
    fake.api_key = "sk_test_new"  # Stripe now refuses the old key
    with pytest.raises(PaymentGatewayError):
        gateway.create_intent(an_order("01B"), attempt=1)  # within 5 minutes: the container still has the old key

    clock[0] += SECRET_MAX_AGE_SECONDS
    parameters.clear_caches()  # Powertools' cache of the secret expires at the same age
    assert gateway.create_intent(an_order("01C"), attempt=1).payment_intent_id in fake.intents


def test_a_missing_secret_is_read_again_only_after_a_pause(
    secrets_manager: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []

    def counting(name: str, **kwargs: object) -> StripeKeys:
        reads.append(name)
        return load_stripe_keys(name, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(payments_module, "load_stripe_keys", counting)
    clock = [0.0]
    gateway = StripeGateway.from_secret("does-not-exist", monotonic=lambda: clock[0])
    for _ in range(3):
        with pytest.raises(PaymentGatewayError):
            gateway.create_intent(an_order(), attempt=1)
    assert reads == ["does-not-exist"]  # not once a request
    clock[0] += FAILURE_MEMORY_SECONDS
    with pytest.raises(PaymentGatewayError):
        gateway.create_intent(an_order(), attempt=1)
    assert len(reads) == 2


@pytest.mark.parametrize(
    ("code", "expected"),
    [("ThrottlingException", UnavailableError), ("InternalServiceError", UnavailableError)]
    + [("ReadTimeout", UnavailableError), ("SecretBinary", PaymentGatewayError)]
    + [("AccessDeniedException", PaymentGatewayError), ("ResourceNotFoundException", PaymentGatewayError)],
)
def test_secrets_manager_failures_are_retryable_only_when_transient(
    monkeypatch: pytest.MonkeyPatch, code: str, expected: type[Exception]
) -> None:
    from botocore.exceptions import ClientError, ReadTimeoutError

    def failing_get_secret(name: str, **kwargs: object) -> object:
        try:
            if code == "ReadTimeout":
                raise ReadTimeoutError(endpoint_url="https://secretsmanager.us-east-1.amazonaws.com")
            if code == "SecretBinary":
                raise KeyError("SecretString")  # a binary secret: Powertools finds no SecretString
            raise ClientError({"Error": {"Code": code, "Message": "no"}}, "GetSecretValue")
        except (ClientError, ReadTimeoutError, KeyError) as exc:
            raise parameters.exceptions.GetParameterError(str(exc))  # noqa: B904 (as Powertools does)

    monkeypatch.setattr(parameters, "get_secret", failing_get_secret)

    with pytest.raises(expected):
        load_stripe_keys("stripe")
