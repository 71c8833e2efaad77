"""What every table's PynamoDB models share: the region, the client's timeouts and retries, the money attribute, and
one connection (one botocore client) per table."""

from __future__ import annotations

import os
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

# The DynamoDB client's limits, so that a stuck call ends as the contract's 503 (a timeout is an UnavailableError,
# see errors.py) well inside the functions' 15 s timeout (template.yaml) instead of as a Lambda timeout. PynamoDB's
# defaults (15 s connect, 30 s read, 3 retries) could wait minutes. In-region DynamoDB answers in milliseconds; the
# worst case is ``call_budget_seconds()``: 3 attempts x (1 s + 2 s) + the standard retry mode's backoff (<= 1 s, 2 s).
CONNECT_TIMEOUT_SECONDS = 1
READ_TIMEOUT_SECONDS = 2
MAX_RETRY_ATTEMPTS = 2


class TableMeta:
    """What every table model's ``Meta`` sets besides its table name: region, billing and the client's limits."""

    region = REGION
    billing_mode = "PAY_PER_REQUEST"
    connect_timeout_seconds = CONNECT_TIMEOUT_SECONDS
    read_timeout_seconds = READ_TIMEOUT_SECONDS
    max_retry_attempts = MAX_RETRY_ATTEMPTS


def call_budget_seconds() -> float:
    """The longest one DynamoDB call can take before it fails: every attempt timing out, with the longest backoffs
    of botocore's standard retry mode (a random wait of at most 2^n seconds before retry n + 1)."""
    attempts = MAX_RETRY_ATTEMPTS + 1
    backoffs = sum(1 << retry for retry in range(MAX_RETRY_ATTEMPTS))
    return attempts * (CONNECT_TIMEOUT_SECONDS + READ_TIMEOUT_SECONDS) + backoffs


def share_connection(base: type[Model]) -> None:
    """Give every model of ``base``'s table the one connection (one botocore client) of ``base``.

    PynamoDB caches a connection per model class; a subclass that connects first would otherwise build its own
    botocore client (~50 ms each on a cold container). Creating the connection is cheap (the client is lazy).
    Tests call ``tables.share_connections`` again after pointing the models at another endpoint.
    """
    pending = list(base.__subclasses__())
    while pending:
        model = pending.pop()
        if "_connection" in model.__dict__:
            delattr(model, "_connection")
        pending.extend(model.__subclasses__())
    base._connection = None
    base._get_connection()


class MoneyAttribute(MapAttribute[str, Any]):
    amount = NumberAttribute()
    currency = UnicodeAttribute()


def open_client(base: type[Model]) -> None:
    """Create the botocore client of ``base``'s table now (no request is sent): what a first request would do."""
    _ = base._get_connection().connection.client
