"""What every table's PynamoDB models share: the region, the money attribute, and one connection (one botocore
client) per table."""

from __future__ import annotations

import os
from typing import Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


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
