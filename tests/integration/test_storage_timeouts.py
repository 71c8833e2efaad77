"""A DynamoDB call that never answers ends as the contract's 503 with ``Retry-After`` inside the function's timeout.

The tables' models are pointed at a local socket that accepts connections and never answers; the real handlers run
with the real client limits of ``model_base`` (PynamoDB's defaults would wait 4 x 30 s and end as a Lambda timeout).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus as S
from typing import Any

import pytest
from devtools.cfn import load_template
from devtools.lambda_context import LambdaContext

from tests.conftest import http_event
from usercredits.adapters.dynamodb.model_base import call_budget_seconds
from usercredits.adapters.dynamodb.tables import TABLE_MODELS, share_connections

FUNCTION_TIMEOUT_SECONDS = load_template()["Globals"]["Function"]["Timeout"]


@pytest.fixture
def stuck_dynamodb() -> Iterator[None]:
    """Both tables' models talk to a socket that accepts and never answers."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # kept open, never read or answered
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    hosts = {name: model.Meta.host for name, model in TABLE_MODELS.items()}
    for model in TABLE_MODELS.values():
        model.Meta.host = f"http://127.0.0.1:{server.getsockname()[1]}"
    share_connections()
    yield
    for name, model in TABLE_MODELS.items():
        model.Meta.host = hosts[name]
    share_connections()
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def _call_within_timeout(handler: Any, event: dict[str, Any], context: LambdaContext) -> tuple[dict[str, Any], float]:
    """Run the handler in a thread and give up at the function's timeout (as Lambda would) instead of hanging."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        outcome["response"] = handler.lambda_handler(event, context)

    started = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(FUNCTION_TIMEOUT_SECONDS)
    elapsed = time.monotonic() - started
    assert "response" in outcome, f"no answer within the function's {FUNCTION_TIMEOUT_SECONDS} s timeout"
    return outcome["response"], elapsed


def test_the_client_budget_fits_the_function_timeout() -> None:
    # Given the client limits every table model uses
    for model in TABLE_MODELS.values():
        assert (model.Meta.connect_timeout_seconds, model.Meta.read_timeout_seconds) == (1, 2)
        assert model.Meta.max_retry_attempts == 2
    # Then a call that times out on every attempt fails with time left to answer
    assert call_budget_seconds() <= FUNCTION_TIMEOUT_SECONDS - 3


@pytest.mark.parametrize(
    ("function", "event"),
    [("consumption", "consumption/get_credits.json"), ("customers", "customers/get_customer.json")],
)
def test_a_stuck_dynamodb_call_is_503_with_retry_after(
    stuck_dynamodb: None, lambda_context: LambdaContext, function: str, event: str
) -> None:
    # Given a function whose table never answers
    handler = __import__(f"{function}.handler", fromlist=["handler"])
    handler.dependencies.cache_clear()
    try:
        # When a request reads it
        response, elapsed = _call_within_timeout(handler, http_event(event), lambda_context)
    finally:
        handler.dependencies.cache_clear()
    # Then the answer is the contract's 503 with Retry-After, before the function's timeout
    body = json.loads(response["body"])
    assert (response["statusCode"], body["error"]) == (S.SERVICE_UNAVAILABLE, "unavailable")
    assert response["headers"]["Retry-After"] == "1"
    assert elapsed < call_budget_seconds() + 1
