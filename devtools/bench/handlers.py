"""Driving a function's real ``lambda_handler`` on HTTP API events and counting what each request costs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from devtools.bench.counting import DynamoDBRequestCounter, Measurement
from devtools.bench.environment import EVENTS_DIR
from devtools.bench.rows import BenchError, Row
from devtools.lambda_context import LambdaContext
from devtools.lambda_events import caller_claims, http_api_event


def http_event(
    base: Mapping[str, Any],
    method: str,
    route: str,
    *,
    user: str,
    path_parameters: Mapping[str, str] | None = None,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str] | None = None,
    admin: bool = False,
) -> dict[str, Any]:
    """An HTTP API payload-2.0 event for ``method route`` (``/orders/{orderId}``) from ``user``, built on ``base``
    (``devtools.lambda_events``); ``admin`` adds the ``credits/admin`` scope to the caller's claims."""
    params = dict(path_parameters or {})
    event_headers = {name.lower(): value for name, value in (headers or {}).items()}
    if body is not None:
        event_headers["content-type"] = "application/json"
    return http_api_event(
        base,
        method=method,
        path=route.format(**params),
        route_key=f"{method} {route}",
        path_parameters=params,
        query=dict(query or {}),
        headers=event_headers,
        body=json.dumps(body) if body is not None else b"",  # b"": no body
        claims=caller_claims(user, admin=admin),
    )


@dataclass(frozen=True)
class RouteResult:
    status: int
    body: Any


@dataclass
class Scenario:
    """What one row measured, and whether the answer was the expected one."""

    name: str
    budget: float | None
    measurement: Measurement
    problem: str | None = None

    def rows(self) -> list[Row]:
        ops = self.measurement.hooked
        detail = ", ".join(ops) if ops else "(no request)"
        if self.problem:
            detail = f"FAILED: {self.problem} | {detail}"
        return [Row(self.name, "dynamodb_requests", len(ops), self.budget, detail)]


def call_handler(
    handler: Any, function_name: str, base_event: Mapping[str, Any], route_key: str, *, user: str, **kwargs: Any
) -> RouteResult:
    """Send ``route_key`` (``"GET /orders/{orderId}"``) from ``user`` through ``handler.lambda_handler``; ``kwargs``
    go to :func:`http_event`."""
    method, _, route = route_key.partition(" ")
    event = http_event(base_event, method, route, user=user, **kwargs)
    # The template's Globals: 512 MB, 15 s.
    response = handler.lambda_handler(event, LambdaContext(function_name, 512, 15))
    raw = response.get("body") or ""
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    return RouteResult(int(response["statusCode"]), body)


class HandlerBench:
    """Drives one function's real handler and counts what each request costs in DynamoDB requests."""

    #: (handler module, logical id of the function, sample event the requests are built on)
    MODULE = ""
    FUNCTION = ""
    BASE_EVENT = ""

    def __init__(self, counter: DynamoDBRequestCounter) -> None:
        import importlib

        self.handler: Any = importlib.import_module(self.MODULE)
        self.counter = counter
        self.base_event = json.loads((EVENTS_DIR / self.BASE_EVENT).read_text(encoding="utf-8"))
        self.scenarios: list[Scenario] = []
        self.extra_rows: list[Row] = []

    def call(self, route_key: str, *, user: str, **kwargs: Any) -> RouteResult:
        """Send ``route_key`` from ``user`` through the handler (see :func:`call_handler`)."""
        return call_handler(self.handler, self.FUNCTION, self.base_event, route_key, user=user, **kwargs)

    def measure(
        self,
        route_key: str,
        label: str = "",
        *,
        budget: float | None = None,
        status: int = 200,
        user: str,
        check: Callable[[Any], str | None] | None = None,
        **kwargs: Any,
    ) -> RouteResult:
        """One measured request; its row is named ``route_key (label)``, and fails unless it answers ``status``."""
        with self.counter.measure() as measurement:
            result = self.call(route_key, user=user, **kwargs)
        problem = None
        if result.status != status:
            problem = f"status {result.status}, expected {status}: {json.dumps(result.body)[:300]}"
        elif check is not None:
            problem = check(result.body)
        name = f"{route_key} ({label})" if label else route_key
        self.scenarios.append(Scenario(name, budget, measurement, problem))
        return result

    def setup_call(self, route_key: str, *, status: int, user: str, **kwargs: Any) -> RouteResult:
        """A request that prepares a scenario (not measured); a wrong status stops the bench."""
        result = self.call(route_key, user=user, **kwargs)
        if result.status != status:
            raise BenchError(f"setup {route_key} answered {result.status}: {json.dumps(result.body)[:500]}")
        return result

    @staticmethod
    def pay(user: str, order_id: str) -> str:
        """Mark the order paid as the payment webhook would (``apply_order_paid``); the order's status after it."""
        from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
        from usercredits.domain.payments import apply_order_paid
        from usercredits.kernel.clock import SystemClock

        order = apply_order_paid(user, order_id, orders=DynamoOrderRepository(), clock=SystemClock(), message="bench")
        return str(order.status.value)

    def reset_catalog_cache(self) -> None:
        self.handler.dependencies.cache_clear()

    def rows(self) -> list[Row]:
        rows = []
        for scenario in self.scenarios:
            rows += scenario.rows()
            rows += [row for row in self.extra_rows if row.name == scenario.name]
        return rows

    def problems(self) -> list[str]:
        return [f"{s.name}: {s.problem}" for s in self.scenarios if s.problem]
