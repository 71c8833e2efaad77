"""The customers function in Stripe mode for integration tests: its processor, the real ``stripe`` SDK, pointed at the
fake Stripe Billing API (``devtools.stripe_sim.billing.FakeStripeBilling``) with the Pro price, on moto.

A test module takes the fixtures by naming them at module level (``api`` needs the other two):
``fake = stripe_customers.fake``, ``stripe = stripe_customers.stripe``, ``api = stripe_customers.api``. (Not by
``from ... import api``: ruff reports each test's ``api`` argument as redefining the unused import, F811.)
"""

from __future__ import annotations

from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.billing import FakeStripeBilling

from tests.helpers.customers_api import Call, customers_caller
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.settings import get_customers_settings

SECRET_KEY = "sk_test_51FakeBillingKey0123456789"
PRO = {
    "name": "Pro",
    "price": {"amount": 1490, "currency": "usd"},
    "billingFrequencyMonths": 1,
    "level": 2,
    "processorPlanId": "price_pro",
}


@pytest.fixture
def fake() -> Iterator[FakeStripeBilling]:
    """The fake Billing API, with the Pro price."""
    with FakeStripeBilling(api_key=SECRET_KEY) as server:
        server.add_price("price_pro", 1490)
        yield server


@pytest.fixture
def stripe(fake: FakeStripeBilling) -> StripeSubscriptionProcessor:
    """The Stripe processor the customers function uses, pointed at the fake, without retries."""
    return StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0)


@pytest.fixture
def api(
    moto_tables: None,
    lambda_context: LambdaContext,
    stripe: StripeSubscriptionProcessor,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Call]:
    """The customers function in Stripe mode, its processor pointed at the fake."""
    from customers import handler

    monkeypatch.setenv("PAYMENT_PROVIDER", "stripe")
    monkeypatch.setenv("STRIPE_SECRET_NAME", "user-credits/stripe")
    get_customers_settings.cache_clear()
    handler.dependencies.cache_clear()
    handler.processor.cache_clear()
    monkeypatch.setattr(handler, "processor", lambda: stripe)
    yield customers_caller(lambda_context)
    handler.dependencies.cache_clear()
    get_customers_settings.cache_clear()


def subscribed(api: Call) -> dict[str, Any]:
    """Alice with a Stripe card and a Pro subscription, nothing sent yet."""
    status, _ = api("put_plan_admin", path="/admin/plans/pro", body=PRO, admin=True)
    assert status == HTTPStatus.OK
    status, method = api("add_payment_method", body={"token": "pm_card_visa"})
    assert status == HTTPStatus.CREATED, method
    status, subscription = api("subscribe", body={"planId": "pro", "paymentMethodId": method["paymentMethodId"]})
    assert status == HTTPStatus.CREATED, subscription
    return dict(subscription)
