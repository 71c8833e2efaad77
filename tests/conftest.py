"""Shared fixtures: the WonderAI catalog, in-memory fakes, Lambda context, sample events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devtools.catalog import read_catalog
from devtools.lambda_context import LambdaContext
from devtools.lambda_events import caller_claims, http_api_event

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository
from tests.fakes.payments import RecordingPaymentGateway
from usercredits.domain.models import Offer
from usercredits.kernel.models import Caller

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/ (the same files `make invoke` uses)."""
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def wonderai_offers() -> list[Offer]:
    return [Offer.model_validate(raw) for raw in read_catalog(DEMO_CATALOG)]


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def catalog(wonderai_offers: list[Offer]) -> InMemoryCatalogRepository:
    return InMemoryCatalogRepository(wonderai_offers)


@pytest.fixture
def orders() -> InMemoryOrderRepository:
    return InMemoryOrderRepository()


@pytest.fixture
def payments() -> RecordingPaymentGateway:
    return RecordingPaymentGateway()


@pytest.fixture
def alice() -> Caller:
    return Caller(user_id="alice")


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext("user-credits-test", memory_limit_in_mb=512)


def http_event(
    base: str,
    *,
    method: str | None = None,
    path: str | None = None,
    route: str | None = None,
    body: Any = None,
    raw_body: str | None = None,
    user: str | None = "alice",
    admin: bool = False,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API event built from a sample in events/, with the caller and request replaced
    (``devtools.lambda_events``, the builder the dev server and the bench use); ``user=None``: no authorizer."""
    return http_api_event(
        load_event(base),
        method=method,
        path=path,
        route_key=route,
        query=query,
        headers=headers,
        body=raw_body if raw_body is not None else json.dumps(body) if body is not None else None,
        claims=caller_claims(user, admin=admin) if user is not None else None,
        anonymous=user is None,
    )


@pytest.fixture
def moto_tables() -> Iterator[None]:
    """Fresh moto-backed tables created from template.yaml's own definitions."""
    import boto3
    from devtools.local_tables import create_tables
    from moto import mock_aws

    with mock_aws():
        create_tables(boto3.client("dynamodb"))
        _reset_pynamodb_connections()
        yield
    _reset_pynamodb_connections()


def _reset_pynamodb_connections() -> None:
    # PynamoDB caches one botocore client per table; rebuild it so each test talks to its own backend.
    from usercredits.adapters.dynamodb.tables import share_connections

    share_connections()
