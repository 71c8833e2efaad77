"""What SnapStart changes for each API function: what its init does, and what a restored request still has to do.

Each API function of the build runs under the Lambda runtime interface client (``devtools.runtime_api``), against
DynamoDB Local, twice: a standard init (import, then the first request builds the composition root, the botocore
client, the routes' models, imports ``stripe``...), and a SnapStart init (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``:
the same import plus the before-snapshot priming, then the restore). Rows per function: ``init_ms`` (standard),
``snapstart_init_ms`` (paid when a version is published, not by a caller), ``first_request_ms`` after a standard init,
``restored_first_request_ms`` after the restore, ``warm_request_ms``. The restore itself (Lambda resuming the microVM)
is not measurable here.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devtools.bench.environment import BENCH_ENV, fresh_dynamodb_local
from devtools.bench.handlers import http_event
from devtools.bench.imports import FunctionBuild, import_layout
from devtools.bench.rows import Row
from devtools.lambda_events import sign_webhook_event
from devtools.runtime_api import RuntimeRun, run_function, runtime_folder

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
#: Requests each function is timed on (its most common read, or a signed webhook of an order nobody placed).
WARM_REQUESTS = 3


def _sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def _requests() -> dict[str, Callable[[], dict[str, Any]]]:
    return {
        "ordering": lambda: http_event(_sample("ordering/list_offers.json"), "GET", "/offers", user="bench-snap"),
        "consumption": lambda: http_event(
            _sample("consumption/get_credits.json"), "GET", "/credits", user="bench-snap"
        ),
        "customers": lambda: http_event(_sample("customers/get_customer.json"), "GET", "/customer", user="bench-snap"),
        "stripe_webhook": lambda: sign_webhook_event(
            _sample("stripe_webhook/payment_intent_succeeded.json"), BENCH_ENV["LOCAL_WEBHOOK_SECRET"]
        ),
    }


def _run(build: FunctionBuild, env: dict[str, str], runtime: Path, event: Callable[[], dict[str, Any]]) -> RuntimeRun:
    handler = f"{build.module}.lambda_handler"
    path = [*build.path, runtime]
    events = [event() for _ in range(1 + WARM_REQUESTS)]
    run = run_function(handler, task_root=build.path[0], python_path=path, env=env, events=events)
    failed = [outcome for outcome in run.outcomes if outcome.kind != "response"]
    if failed:
        raise RuntimeError(f"{build.folder}: {failed[0]}\n{run.output[-2000:]}")
    return run


def measure_snapstart() -> tuple[list[Row], list[str], list[str]]:
    """The SnapStart rows of every API function; (rows, notes, problems)."""
    layout = import_layout(sys.executable)
    requests = _requests()
    rows: list[Row] = []
    with fresh_dynamodb_local() as endpoint_url, tempfile.TemporaryDirectory() as scratch:
        runtime = runtime_folder(Path(scratch))
        for build in (build for build in layout.functions if build.folder in requests):
            env = {**build.env, **BENCH_ENV, "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url, "PATH": "/usr/bin:/bin"}
            env["LAMBDA_TASK_ROOT"] = str(build.path[0])
            standard = _run(build, env, runtime, requests[build.folder])
            snapshot = _run(
                build, {**env, "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}, runtime, requests[build.folder]
            )
            rows += _rows(build.folder, standard, snapshot)
    notes = ["SnapStart rows: each API function under awslambdaric, standard and snap-start init, DynamoDB Local"]
    return rows, notes, []


def _ms(value: float | None) -> float:
    return round(value or 0.0, 1)


def _rows(folder: str, standard: RuntimeRun, snapshot: RuntimeRun) -> list[Row]:
    warm = statistics.median(outcome.duration_ms or 0.0 for outcome in standard.outcomes[1:])
    return [
        Row(folder, "init_ms", _ms(standard.init_ms), None, "standard init: process start to the first poll"),
        Row(folder, "snapstart_init_ms", _ms(snapshot.init_ms), None, "import + priming, paid when publishing"),
        Row(folder, "first_request_ms", _ms(standard.outcomes[0].duration_ms), None, "after a standard init"),
        Row(
            folder,
            "restored_first_request_ms",
            _ms(snapshot.outcomes[0].duration_ms),
            None,
            "after the restore: what a restored environment's first caller still waits (credentials, connection)",
        ),
        Row(folder, "warm_request_ms", _ms(warm), None, f"median of {WARM_REQUESTS} later requests"),
    ]
