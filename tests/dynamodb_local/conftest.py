"""DynamoDB Local for the tests whose point is atomicity, transactions or concurrency (moto is not atomic)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import boto3
import pytest
from devtools.dynamodb_local import running_dynamodb_local
from devtools.local_tables import create_tables

from tests.conftest import _reset_pynamodb_connections
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository
from usercredits.domain.ports import RefundPorts
from usercredits.kernel.clock import SystemClock


@pytest.fixture(scope="session")
def dynamodb_local() -> Iterator[str]:
    """One in-memory engine per test session, with the template's tables; yields its endpoint URL."""
    previous = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
    with running_dynamodb_local() as endpoint_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint_url
        _reset_pynamodb_connections()
        create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url))
        yield endpoint_url
    if previous is None:
        os.environ.pop("AWS_ENDPOINT_URL_DYNAMODB", None)
    else:  # pragma: no cover
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = previous
    _reset_pynamodb_connections()


@pytest.fixture
def user_id(dynamodb_local: str) -> str:
    """A user of its own for each test (the tables are shared by the session)."""
    return f"user-{uuid.uuid4().hex[:12]}"


def refund_ports() -> RefundPorts:
    """The refund use cases' ports on the real engine."""
    return RefundPorts(
        orders=DynamoOrderRepository(),
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(cache_seconds=0),
        reversals=DynamoReversalRepository(),
        clock=SystemClock(),
    )
