"""The system under test for the subscriptions harness: the customers and webhook functions' real handlers and
composition roots, configured as ``make run`` configures them (``PAYMENT_PROVIDER=local`` with the Stripe
simulation's URL, one frozen test clock file), on fresh moto tables made from template.yaml.

Nothing in the functions is swapped: the processor is the real Stripe adapter speaking to the simulation over HTTP,
the clock is the local test clock every function and the simulation read, webhooks are signed with the local secret.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.simulator import StripeSimulator

from tests.helpers.handler_calls import Answer, call_api, deliver_stripe_event
from usercredits.adapters.clock import advance_clock, freeze_clock, read_clock

WEBHOOK_SECRET = "whsec_harness"
START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)

#: The sample event each request is built from (route, path and body are replaced).
_BASE = "customers/get_customer.json"


class SubscriptionsSystem:
    """The customers and webhook functions of one example, on their own moto backend and simulation."""

    def __init__(self) -> None:
        from devtools.local_tables import create_tables
        from moto import mock_aws

        from usercredits.adapters.dynamodb.tables import share_connections

        self._stack = ExitStack()
        handle, self.clock_file = tempfile.mkstemp(prefix="harness-clock-", suffix=".json")
        os.close(handle)
        self._stack.callback(os.unlink, self.clock_file)
        freeze_clock(self.clock_file, START)
        self.sim = StripeSimulator(clock=lambda: read_clock(self.clock_file).timestamp())
        self._stack.enter_context(self.sim)
        self._environment(
            PAYMENT_PROVIDER="local",
            LOCAL_STRIPE_API_BASE=self.sim.url,
            LOCAL_CLOCK_FILE=self.clock_file,
            LOCAL_WEBHOOK_SECRET=WEBHOOK_SECRET,
            POWERTOOLS_METRICS_DISABLED="true",
        )
        self._stack.enter_context(mock_aws())
        self.dynamodb = boto3.client("dynamodb")
        create_tables(self.dynamodb)
        share_connections()
        self._stack.callback(share_connections)
        self.context = LambdaContext("user-credits-subscriptions-harness", memory_limit_in_mb=512)
        self.customers = self._fresh("customers")
        self.webhook_module = self._fresh("stripe_webhook")

    def close(self) -> None:
        self._stack.close()
        self._fresh("customers")
        self._fresh("stripe_webhook")

    def _environment(self, **values: str) -> None:
        old = {name: os.environ.get(name) for name in values}
        os.environ.update(values)

        def restore() -> None:
            for name, value in old.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value

        self._stack.callback(restore)

    @staticmethod
    def _fresh(name: str) -> ModuleType:
        """The function's module with every cached composition root and settings cleared (built again from the
        environment on the next request)."""
        import importlib

        from usercredits import settings

        settings.get_customers_settings.cache_clear()
        settings.get_stripe_webhook_settings.cache_clear()
        module = importlib.import_module(f"{name}.handler")
        for cached in ("dependencies", "processor", "billing_ports"):
            if hasattr(module, cached):
                getattr(module, cached).cache_clear()
        return module

    # --- time ------------------------------------------------------------------------------------------------------

    def now(self) -> datetime:
        return read_clock(self.clock_file)

    def advance(self, seconds: int) -> datetime:
        """Move the test clock forward (still frozen at the new time)."""
        moved = advance_clock(self.clock_file, seconds)
        return freeze_clock(self.clock_file, moved)

    def later(self, **delta: float) -> datetime:
        return self.advance(int(timedelta(**delta).total_seconds()))

    # --- calls -----------------------------------------------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        user: str = "admin",
        admin: bool = False,
        query: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        """One request to the customers function, as API Gateway sends it."""
        return call_api(
            self.customers,
            self.context,
            _BASE,
            method,
            path,
            body=body,
            user=user,
            admin=admin,
            query=query,
            idempotency_key=idempotency_key,
        )

    def webhook(self, event: dict[str, Any]) -> Answer:
        """One Stripe event delivered to the webhook function's Function URL, signed with the local secret."""
        return deliver_stripe_event(self.webhook_module, self.context, event, WEBHOOK_SECRET)

    # --- reading the tables (for the checks) -----------------------------------------------------------------------

    def customer_items(self, prefix: str) -> list[dict[str, Any]]:
        """Every item of the customers table whose partition key starts with ``prefix`` (plain values)."""
        from boto3.dynamodb.types import TypeDeserializer

        plain = TypeDeserializer()
        found: list[dict[str, Any]] = []
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=os.environ["CUSTOMERS_TABLE_NAME"]):
            for item in page["Items"]:
                if str(item["pk"]["S"]).startswith(prefix):
                    found.append({key: plain.deserialize(value) for key, value in item.items()})
        return found
