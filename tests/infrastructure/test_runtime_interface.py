"""Every built function serves a request under the AWS Lambda runtime interface client, as in Lambda.

``python -m awslambdaric handler.lambda_handler`` (the runtime of Lambda's Python images, from PyPI) runs in the
function's build folder with only the built layers and the runtime client on ``sys.path`` (``python -S``: no
site-packages), the template's environment, DynamoDB Local as the endpoint, and polls ``devtools.runtime_api`` for one
event: the handler is loaded, initialised and invoked exactly as Lambda does, and its answer is checked.
Skipped only when ``.aws-sam/build`` is missing (`make infra` builds it first).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from devtools.build_inspection import layer_python
from devtools.dynamodb_local import running_dynamodb_local
from devtools.lambda_events import sign_webhook_event
from devtools.local_tables import create_tables
from devtools.runtime_api import Outcome, run_function, runtime_folder

from tests.conftest import http_event, load_event
from tests.infrastructure.conftest import FunctionConfig, fake_environment

WEBHOOK_SECRET = "whsec_runtime_test"


def _http(base: str) -> dict[str, Any]:
    return http_event(base, user="runtime-user")


def _webhook() -> dict[str, Any]:
    return sign_webhook_event(load_event("stripe_webhook/payment_intent_succeeded.json"), WEBHOOK_SECRET)


class EventBusStandIn:
    """EventBridge's PutEvents on a local port (``AWS_ENDPOINT_URL_EVENTBRIDGE``): accepts every entry, keeps them."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                stand_in.entries.extend(request.get("Entries", []))
                ids = [{"EventId": f"event-{n}"} for n, _ in enumerate(request.get("Entries", []))]
                body = json.dumps({"FailedEntryCount": 0, "Entries": ids}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


#: One request per function, and what its answer must say.
REQUESTS: dict[str, tuple[Callable[[], dict[str, Any]], Callable[[Any], bool]]] = {
    "ordering": (lambda: _http("ordering/list_offers.json"), lambda answer: answer["statusCode"] == 200),
    "consumption": (lambda: _http("consumption/get_credits.json"), lambda answer: answer["statusCode"] == 200),
    "customers": (lambda: _http("customers/get_customer.json"), lambda answer: answer["statusCode"] == 200),
    "stripe_webhook": (
        _webhook,
        lambda answer: (answer["statusCode"], json.loads(answer["body"])) == (200, {"received": True}),
    ),
    "expiry_scan": (lambda: load_event("expiry_scan/scheduled.json"), lambda answer: isinstance(answer, dict)),
    "event_publisher": (
        lambda: load_event("event_publisher/outbox_insert.json"),
        lambda answer: answer == {"batchItemFailures": []},
    ),
}


@pytest.fixture(scope="module")
def dynamodb_endpoint() -> Iterator[str]:
    with running_dynamodb_local() as endpoint_url:
        create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url))
        yield endpoint_url


@pytest.fixture(scope="module")
def event_bus() -> Iterator[EventBusStandIn]:
    stand_in = EventBusStandIn()
    yield stand_in
    stand_in.close()


@pytest.fixture(scope="module")
def runtime_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What Lambda's ``/var/runtime`` holds for us: the runtime client and its two dependencies, nothing else."""
    return runtime_folder(tmp_path_factory.mktemp("var-runtime"))


def _serve_one(
    config: FunctionConfig, env: dict[str, str], python_path: list[Path], cwd: Path, event: dict[str, Any]
) -> tuple[Outcome, str]:
    run = run_function(config.handler, task_root=cwd, python_path=python_path, env=env, events=[event])
    return run.outcomes[0], run.output


def _environment(
    config: FunctionConfig,
    template: dict[str, Any],
    task_root: Path,
    dynamodb_endpoint: str,
    event_bus: EventBusStandIn,
) -> dict[str, str]:
    """The template's environment of ``config``, on DynamoDB Local and the bus stand-in, as Lambda sets it."""
    return {
        **fake_environment(config, template),
        "CREDITS_TABLE_NAME": os.environ["CREDITS_TABLE_NAME"],
        "CUSTOMERS_TABLE_NAME": os.environ["CUSTOMERS_TABLE_NAME"],
        "PAYMENT_PROVIDER": "local",
        "LOCAL_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_EVENTBRIDGE": event_bus.url,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_LAMBDA_FUNCTION_NAME": config.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "LAMBDA_TASK_ROOT": str(task_root),
        "PATH": os.environ.get("PATH", ""),
    }


#: Every function with a standard init, and the API functions with a SnapStart one (the runtime runs the hooks the
#: handler registered around the snapshot, then restores it).
CASES = [(folder, False) for folder in sorted(REQUESTS)] + [
    (folder, True) for folder in ("consumption", "customers", "ordering", "stripe_webhook")
]


@pytest.mark.parametrize(("folder", "snap_start"), CASES)
def test_the_built_function_answers_under_the_runtime_interface_client(
    folder: str,
    snap_start: bool,
    build: Path,
    native_dependencies: Path,
    functions: dict[str, FunctionConfig],
    template: dict[str, Any],
    dynamodb_endpoint: str,
    event_bus: EventBusStandIn,
    runtime_path: Path,
) -> None:
    # Given the built function, its layers, the runtime client and the template's environment on DynamoDB Local
    config = functions[folder]
    task_root = build / config.logical_id
    env = _environment(config, template, task_root, dynamodb_endpoint, event_bus)
    if snap_start:
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = "snap-start"
    python_path = [task_root, layer_python("DomainLayer", build), native_dependencies, runtime_path]
    build_event, accepted = REQUESTS[folder]
    published = len(event_bus.entries)
    # When the runtime client loads the handler (snapshotted and restored with SnapStart) and polls for one event
    outcome, output = _serve_one(config, env, python_path, task_root, build_event())
    # Then the function answered it
    assert outcome.kind == "response", f"{folder}: {outcome}\n{output[-3000:]}"
    assert accepted(outcome.body), f"{folder} answered {outcome.body}\n{output[-3000:]}"
    if snap_start:  # having primed before the snapshot
        assert "primed before the snapshot" in output
    if folder == "event_publisher":  # and what it published reached the bus
        assert [entry["DetailType"] for entry in event_bus.entries[published:]] == ["OrderPaid", "CreditsGranted"]
