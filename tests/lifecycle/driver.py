"""The system under test for the lifecycle harness: the real Lambda handlers, called with the events API Gateway and
the Function URL produce, on fresh moto tables made from template.yaml, with one controllable clock and payments
through the real Stripe SDK against the fake Stripe server.

Each handler keeps its real composition root (``dependencies()``); the driver only swaps the clock for the test clock
and the payment gateway for one pointed at the fake server, field by field, wherever a root holds them.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
from devtools.lambda_context import LambdaContext
from devtools.stripe_sim.payment_intents import FakeStripe

from tests.conftest import load_event
from tests.fakes.clock import FixedClock
from tests.helpers.handler_calls import Answer, call_api, deliver_stripe_event
from usercredits.adapters.stripe.payments import StripeGateway

WEBHOOK_SECRET = os.environ.get("LOCAL_WEBHOOK_SECRET", "whsec_local")
START = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
API_KEY = "sk_test_lifecycle"

#: The sample event each function's requests are built from (route, path and body are replaced).
_BASE = {"ordering": "ordering/create_order.json", "consumption": "consumption/consume.json"}


class System:
    """The handlers of one example, on their own moto backend."""

    def __init__(self, stripe: FakeStripe) -> None:
        from devtools.local_tables import create_tables
        from moto import mock_aws

        from usercredits.adapters.dynamodb.tables import share_connections

        self.stripe = stripe
        stripe.reset()
        self.clock = FixedClock(START)
        self.gateway = StripeGateway(API_KEY, api_base=stripe.url, max_network_retries=0)
        self._stack = ExitStack()
        self._stack.enter_context(mock_aws())
        self.dynamodb = boto3.client("dynamodb")
        create_tables(self.dynamodb)
        share_connections()
        self.context = LambdaContext("user-credits-lifecycle", memory_limit_in_mb=512)
        self.modules = {name: self._wire(name) for name in ("ordering", "consumption", "stripe_webhook", "expiry_scan")}

    def close(self) -> None:
        for module in self.modules.values():
            module.dependencies = module.dependencies.__wrapped__  # type: ignore[attr-defined]
            module.dependencies.cache_clear()
        self._stack.close()
        from usercredits.adapters.dynamodb.tables import share_connections

        share_connections()

    # --- wiring ----------------------------------------------------------------------------------------------------

    def _wire(self, name: str) -> ModuleType:
        import importlib

        from usercredits import settings

        module = importlib.import_module(f"{name}.handler")
        for getter in ("get_ordering_settings", "get_consumption_settings", "get_stripe_webhook_settings"):
            getattr(settings, getter).cache_clear()
        real = module.dependencies
        real.cache_clear()
        for cached in ("refund_ports", "billing_ports"):
            if hasattr(module, cached):
                getattr(module, cached).cache_clear()
        wired = self._swap(real())

        def dependencies() -> Any:
            return wired

        dependencies.__wrapped__ = real  # type: ignore[attr-defined]
        dependencies.cache_clear = real.cache_clear  # type: ignore[attr-defined]
        module.dependencies = dependencies  # type: ignore[attr-defined]  # a ModuleType has no declared attributes
        return module

    def _swap(self, root: Any) -> Any:
        """The composition root with every ``clock`` replaced by the test clock and every ``payments`` gateway by
        the one talking to the fake Stripe server (in nested dataclasses too)."""
        if not dataclasses.is_dataclass(root) or isinstance(root, type):
            return root
        changes: dict[str, Any] = {}
        for item in dataclasses.fields(root):
            value = getattr(root, item.name)
            if item.name == "clock":
                changes[item.name] = self.clock
            elif item.name in ("payments", "gateway") and hasattr(value, "create_intent"):
                changes[item.name] = self.gateway
            elif dataclasses.is_dataclass(value):
                changes[item.name] = self._swap(value)
        return dataclasses.replace(root, **changes)

    # --- calls -----------------------------------------------------------------------------------------------------

    def api(
        self,
        function: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        user: str | None = None,
        admin: bool = False,
        query: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Answer:
        return call_api(
            self.modules[function],
            self.context,
            _BASE[function],
            method,
            path,
            body=body,
            user=user or "admin",
            admin=admin,
            query=query,
            idempotency_key=idempotency_key,
        )

    def webhook(self, event: dict[str, Any]) -> Answer:
        return deliver_stripe_event(self.modules["stripe_webhook"], self.context, event, WEBHOOK_SECRET)

    def scan(self) -> dict[str, Any]:
        event = copy.deepcopy(load_event("expiry_scan/scheduled.json"))
        event["time"] = self.clock.now().isoformat()
        result: dict[str, Any] = self.modules["expiry_scan"].lambda_handler(event, self.context)
        return result

    # --- reading the table (for the event checks) ------------------------------------------------------------------

    def outbox(self, user_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(detail-type, detail) of every event a user's facts wrote to the outbox, in commit order (with its id)."""
        found = []
        paginator = self.dynamodb.get_paginator("query")
        pages = paginator.paginate(
            TableName=os.environ["CREDITS_TABLE_NAME"],
            KeyConditionExpression="pk = :pk AND begins_with(sk, :outbox)",
            ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}, ":outbox": {"S": "OUTBOX#"}},
        )
        for page in pages:
            for item in page["Items"]:
                for position, event in enumerate(item["events"]["L"]):
                    detail = json.loads(event["M"]["detail"]["S"])
                    detail.setdefault("eventId", f"{item['sk']['S']}#{position}")
                    found.append((event["M"]["kind"]["S"], detail))
        return found


def stripe_event(event_id: str, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "object": "event", "type": kind, "data": {"object": payload}}


def with_env(values: dict[str, str]) -> Callable[[], None]:
    """Set environment variables; returns the function that puts the old values back."""
    old = {name: os.environ.get(name) for name in values}
    os.environ.update(values)

    def restore() -> None:
        for name, value in old.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

    return restore
