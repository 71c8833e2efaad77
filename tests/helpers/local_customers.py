"""The customers function with the local payment provider at a fixed clock, on moto, for integration tests; and the
plan, coupon and stored-customer helpers they share.

A test module takes the fixtures by naming them at module level (``api`` needs ``clock``):
``clock = local_customers.clock``, ``api = local_customers.api`` (see ``tests/helpers/stripe_customers.py`` for why
not ``from ... import api``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import pytest
from devtools.lambda_context import LambdaContext

from tests.fakes.clock import FixedClock
from tests.helpers.customers_api import Call, customers_caller
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.settings import get_customers_settings
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.models import Customer

NOW = datetime(2017, 1, 10, 12, 0, tzinfo=UTC)
PRO = {"name": "Pro", "price": {"amount": 1490, "currency": "usd"}, "billingFrequencyMonths": 1, "level": 2}


@pytest.fixture
def clock() -> FixedClock:
    """The customers function's clock: ``NOW`` (2017-01-10 12:00 UTC) until the test moves it."""
    return FixedClock(NOW)


@pytest.fixture
def api(
    moto_tables: None, lambda_context: LambdaContext, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Call]:
    """``call(event_file, **overrides) -> (status, body)`` through customers' lambda_handler, at the fixed clock."""
    from customers import handler

    handler.dependencies.cache_clear()
    get_customers_settings.cache_clear()
    real = handler.dependencies()
    fixed = dataclasses.replace(real, ports=dataclasses.replace(real.ports, clock=clock))
    monkeypatch.setattr(handler, "dependencies", lambda: fixed)
    yield customers_caller(lambda_context)


def stored(user: str = "alice") -> Customer:
    customer = DynamoCustomerRepository().load(user)
    assert customer is not None
    return customer


def store(customer: Customer) -> Customer:
    return DynamoCustomerRepository().save(customer_changes(None, customer))


def define_pro_plan(api: Call, plan_id: str = "pro", **changes: Any) -> None:
    status, _ = api("put_plan_admin", path=f"/admin/plans/{plan_id}", body={**PRO, **changes}, admin=True)
    assert status == HTTPStatus.OK


def define_coupon(api: Call, code: str = "TEN", **terms: Any) -> dict[str, Any]:
    body = {"kind": "percent", "percent": "10", "numberOfBillingCycles": 2, "maxUses": 2} | terms
    status, coupon = api("put_coupon_admin", path=f"/admin/coupons/{code}", body=body, admin=True)
    assert status == HTTPStatus.OK, coupon
    return dict(coupon)


def subscribe(api: Call, **body: Any) -> tuple[int, Any]:
    return api("subscribe", body={"planId": "pro"} | body)
