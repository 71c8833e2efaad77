"""Performance budgets: DynamoDB requests per route, and cold-start import cost per function (``make bench``).

``python -m devtools.bench [--only dynamodb|imports|scan] [--runs 7] [--output bench-results.json]`` prints a table and
writes ``bench-results.json`` at the repo root (git-ignored): a list of
``{"name": ..., "metric": ..., "value": <number>, "budget": <number or null>}``. Exit code 1 when a row is over its
budget or a measured response had the wrong status code (a broken route must not look cheap), 2 when the bench could
not run (no build, no DynamoDB Local, an unhooked DynamoDB client...).

DynamoDB requests (metric ``dynamodb_requests``; ``transactions`` for the grant)
    The real ``ordering.handler.lambda_handler``, ``consumption.handler.lambda_handler`` and
    ``customers.handler.lambda_handler`` on API Gateway HTTP API (payload 2.0) events (admin routes with the
    ``credits/admin`` scope), against an in-memory DynamoDB Local started for the run, with the template's tables and
    the demo catalog (devtools/demo/wonderai.yaml).
    Requests are counted by a botocore ``before-send.dynamodb`` hook registered on the client of every PynamoDB model
    (the models do not necessarily share one connection: a subclass that connects first gets its own). Every request
    is also counted on the wire (``botocore.endpoint.Endpoint._send`` to the DynamoDB Local endpoint); the two counts
    must agree, and a calibration step checks one known call per model, so a request from a client the hook does not
    see fails the bench instead of looking free. "Cold catalog" means the handler's composition root was reset
    (``ordering.handler.dependencies.cache_clear()``), i.e. the offer cache is empty; "warm" means it is filled. The
    ordering catalog cache lifetime is set to an hour here so "warm" cannot expire in the middle of a slow run (the
    consumption handler's is its default, 60 s, longer than its part of the run). Any other AWS
    endpoint points at a closed local port: nothing reaches an AWS account. The consume rows run on a journal below
    its compaction limit, except the one labelled "compacts the journal". The customers rows use a plan and a
    non-restricted coupon defined through the admin routes (not counted); each subscribing user's customer exists
    already (read once, not counted), with no subscription yet.
    The webhook rows post Stripe-format events signed with the local webhook secret to
    ``stripe_webhook.handler.lambda_handler`` (a Function URL request), with ``PAYMENT_PROVIDER=local`` (a duplicate
    payment's refund makes no network call). The refund and dispute rows run on paid EnterpriseM orders of users
    holding nothing else, with the webhook's catalog cache warm, and check each user's balances through
    ``GET /credits`` afterwards (not counted); the abandoned-intent rows check the order as stored.

Reads after settled holds (metrics ``items_read``, ``read_units``)
    ``GET /credits`` of a user with one open hold, after 0 and after 1,000 hold/release pairs (made through the domain
    with the real repository, not the handler): one Query (``dynamodb_requests`` budget 1) whose items read
    (``ScannedCount``, budget: the count after 0 settled holds) and read units (``ConsumedCapacity``, reported) must
    not grow with the holds settled (``ReadTally``: hooks on every model's client while it measures).

Consume throughput (metric ``ops_per_s``, no budget)
    500 consumes of 1 token by one user through ``consumption.handler.lambda_handler`` against the same DynamoDB Local,
    in 1 then 8 worker processes started together (a process per Lambda instance: the Powertools resolver holds the
    current event, so one handler module serves one request at a time); ``ops_per_s`` = successful consumes / (last
    end - first start). Each is measured twice in the same run: the real spend (one conditional UpdateItem) and a naive
    read-then-write spend swapped into the same handler (GetItem, then UpdateItem conditional on the balance read,
    re-read and retried on a conflict). The final balance is checked: a lost update fails the row.

Cold-start import cost (metrics ``import_ratio``, ``import_ms``, ``boto3_import_ms``, ``bare_ms``)
    Each function's Handler module imported from the ``sam build`` output as Lambda would: a fresh ``python -I -S -B``
    (CPython 3.13, the venv's interpreter, no site-packages, no .pyc written: /var/task and /opt are read-only in
    Lambda) with ``sys.path`` = [.aws-sam/build/<Function>, DomainLayer python/, DependenciesLayer python/] and the
    function's environment from template.yaml. The child times the import statement itself with
    ``time.perf_counter`` (interpreter start-up and shutdown excluded); ``bare`` is the same timer around ``pass``.
    ``import_ratio = (handler - bare) / (boto3 - bare)`` on the medians of ``--runs`` runs (default 7, after one
    discarded warm-up round), runs interleaved bare/boto3/handler so drift hits all three alike. Layers are measured
    as shipped (the layer Makefiles precompile unchecked-hash .pyc files; the function code ships without .pyc).

    Which DependenciesLayer: the deployed build is arm64 (``make build``); its native extensions (pydantic-core) cannot
    load on an x86_64 machine. When the built layer's binaries are not for this machine, the bench uses the host-native
    build of the same requirements by the same layer Makefile (``LAYER_PLATFORM=native``):
    ``.aws-sam/build-native/DependenciesLayer``, which ``make build-native`` makes (``make bench`` runs it) and
    tests/infrastructure shares. It is reused while its versions match layers/dependencies/requirements.txt; run on its
    own, the bench rebuilds just that layer with ``make -C layers/dependencies`` when it is missing or stale. The
    function code and the DomainLayer (pure Python) always come from ``.aws-sam/build``. The printed output says which
    layer was used. A build older than the sources is refused: run ``make build`` (``make bench`` does).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devtools.build_inspection import (
    BUILD_DIR,
    NATIVE_BUILD_DIR,
    build_native_dependencies,
    foreign_binaries,
    function_variables,
    layer_missing_pins,
    layer_python,
    resolve_variables,
    stale_files,
)
from devtools.lambda_context import LambdaContext

if TYPE_CHECKING:
    from pynamodb.models import Model

ROOT = Path(__file__).resolve().parent.parent
EVENTS_DIR = ROOT / "events"
DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"
RESULTS_PATH = ROOT / "bench-results.json"
DEFAULT_RUNS = 7

#: import_ratio budget per function folder (handler import cost in units of ``import boto3``).
IMPORT_RATIO_BUDGETS: dict[str, float] = {
    "ordering": 2.0,
    "consumption": 1.5,
    "stripe_webhook": 2.0,
    "expiry_scan": 1.5,
}

USER_SCOPE = "credits/user"
ADMIN_SCOPE = "credits/admin"
REGION = "us-east-1"
#: Where every AWS service but DynamoDB points during the bench: a closed port (nothing may reach AWS).
NOWHERE = "http://127.0.0.1:9"

#: Process environment of the DynamoDB part (set before anything imports ``usercredits``, overriding the caller's).
BENCH_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ENDPOINT_URL": NOWHERE,
    "CREDITS_TABLE_NAME": "user-credits-credits-bench",
    "CUSTOMERS_TABLE_NAME": "user-credits-customers-bench",
    "EVENT_BUS_NAME": "user-credits-bench",
    "PAYMENT_PROVIDER": "local",
    "DEFAULT_CURRENCY": "usd",
    "LOCAL_WEBHOOK_SECRET": "whsec_local",
    "CATALOG_CACHE_SECONDS": "3600",
    "POWERTOOLS_SERVICE_NAME": "ordering",
    "POWERTOOLS_METRICS_NAMESPACE": "UserCredits",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


class BenchError(RuntimeError):
    """The bench could not measure (missing build, engine, unhooked client...): exit code 2."""


# ------------------------------------------------------------------------------------------------------------- rows
@dataclass(frozen=True)
class Row:
    """One measured value; ``budget`` None means reported only."""

    name: str
    metric: str
    value: float
    budget: float | None = None
    detail: str = ""  # printed, not written to the JSON file

    @property
    def over(self) -> bool:
        return self.budget is not None and self.value > self.budget

    @property
    def status(self) -> str:
        if self.budget is None:
            return "-"
        return "OVER" if self.over else "OK"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "metric": self.metric, "value": self.value, "budget": self.budget}


def format_number(value: float | None) -> str:
    if value is None:
        return "-"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}"


def format_table(rows: Sequence[Row]) -> str:
    """A plain-text table: name, metric, value, budget, OK/OVER (``-`` when there is no budget), detail."""
    header = ("name", "metric", "value", "budget", "status", "detail")
    cells = [(r.name, r.metric, format_number(r.value), format_number(r.budget), r.status, r.detail) for r in rows]
    widths = [max(len(str(line[i])) for line in [header, *cells]) for i in range(len(header) - 1)]
    numeric = {2, 3}

    def render(line: Sequence[str]) -> str:
        parts = [
            str(cell).rjust(widths[i]) if i in numeric else str(cell).ljust(widths[i])
            for i, cell in enumerate(line[:-1])
        ]
        return ("  ".join(parts) + ("  " + line[-1] if line[-1] else "")).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in cells)])


def over_budget(rows: Sequence[Row]) -> list[Row]:
    return [row for row in rows if row.over]


def write_results(rows: Sequence[Row], path: Path) -> None:
    path.write_text(json.dumps([row.as_json() for row in rows], indent=2) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------------------------- import helpers
def import_ratio(handler_ms: float, boto3_ms: float, bare_ms: float) -> float:
    """How many ``import boto3`` the handler's import costs, both above a bare interpreter."""
    baseline = boto3_ms - bare_ms
    if baseline <= 0:
        raise BenchError(f"import boto3 measured {boto3_ms:.1f} ms, not above bare ({bare_ms:.1f} ms)")
    return (handler_ms - bare_ms) / baseline


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, str]:
    """Globals + the function's own ``Environment.Variables``, resolved, plus what the Lambda runtime sets."""
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    props = template["Resources"][logical_id].get("Properties") or {}
    variables = function_variables(template, logical_id)
    env = resolve_variables(variables, template, stand_in="bench", placeholder="bench-placeholder")
    memory = props.get("MemorySize", globals_fn.get("MemorySize", 128))
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "_HANDLER": str(props.get("Handler", "")),
        }
    )
    return env


# ---------------------------------------------------------------------------------------------- cold-start imports
TIMER_CHILD = """import sys, time
sys.path[:0] = sys.argv[1:]
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
print(repr((t1 - t0) * 1000.0))
"""


@dataclass(frozen=True)
class FunctionBuild:
    """One function of the template and the directories its import runs with."""

    folder: str
    logical_id: str
    module: str
    path: tuple[Path, ...]
    env: dict[str, str]


@dataclass
class ImportLayout:
    functions: list[FunctionBuild]
    notes: list[str] = field(default_factory=list)


def _native_dependencies(python: str, notes: list[str]) -> Path:
    """``python/`` of a host-native DependenciesLayer (same Makefile, ``LAYER_PLATFORM=native``), built if stale."""
    target = NATIVE_BUILD_DIR / "DependenciesLayer"
    python_dir = target / "python"
    if missing := layer_missing_pins(python_dir):
        notes.append(f"building a host-native DependenciesLayer in {target.relative_to(ROOT)} (missing: {missing})")
        print(f"bench: {notes[-1]} ...", file=sys.stderr, flush=True)
        result = build_native_dependencies(python, target)
        if result.returncode != 0:
            raise BenchError(
                f"native DependenciesLayer build failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        if missing := layer_missing_pins(python_dir):
            raise BenchError(f"native DependenciesLayer still lacks {missing}")
    else:
        notes.append(f"reusing the host-native DependenciesLayer in {target.relative_to(ROOT)} (matches the pins)")
    return python_dir


def import_layout(python: str, template: dict[str, Any] | None = None) -> ImportLayout:
    """Where each function's import runs from; refuses a missing or stale build."""
    from devtools.cfn import load_template, resources_of_type

    template = template or load_template()
    if not (BUILD_DIR / "template.yaml").is_file():
        raise BenchError(".aws-sam/build is missing: run `make build` (`make bench` does)")
    functions = resources_of_type("AWS::Serverless::Function", template)
    domain = layer_python("DomainLayer")
    trees = [(ROOT / "functions", BUILD_DIR / logical_id) for logical_id in functions]
    trees.append((ROOT / "shared" / "usercredits", domain / "usercredits"))
    stale = {f"{source.relative_to(ROOT)}/{path}" for source, built in trees for path in stale_files(source, built)}
    if stale:
        raise BenchError(f"the build differs from the sources ({sorted(stale)[:5]}): run `make build`")

    built_deps = layer_python("DependenciesLayer")
    if missing := layer_missing_pins(built_deps):
        raise BenchError(f"the built DependenciesLayer does not match requirements.txt ({missing}): run `make build`")
    notes: list[str] = []
    foreign = foreign_binaries(built_deps)
    if foreign:
        notes.append(
            f"the built DependenciesLayer has {len(foreign)} native extension(s) for another architecture "
            f"(e.g. {foreign[0]}): it cannot load on this {platform.machine()} machine"
        )
        dependencies = _native_dependencies(python, notes)
    else:
        notes.append("using the built DependenciesLayer as is (its binaries load on this machine)")
        dependencies = built_deps

    builds = []
    for logical_id, resource in functions.items():
        handler = resource["Properties"]["Handler"]
        module = handler.rpartition(".")[0]
        builds.append(
            FunctionBuild(
                folder=module.split(".")[0],
                logical_id=logical_id,
                module=module,
                path=(BUILD_DIR / logical_id, domain, dependencies),
                env=function_environment(template, logical_id),
            )
        )
    notes.append(
        "sys.path = [.aws-sam/build/<Function>, .aws-sam/build/DomainLayer/python, "
        f"{dependencies.relative_to(ROOT)}]; python -I -S -B; {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    return ImportLayout(functions=builds, notes=notes)


def time_import(python: str, statement: str, build: FunctionBuild) -> float:
    """Milliseconds ``statement`` takes in a fresh interpreter set up like ``build``'s Lambda runtime."""
    env = {**build.env, "PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(build.path[0])}
    command = [python, "-I", "-S", "-B", "-c", TIMER_CHILD.format(statement=statement), *map(str, build.path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BenchError(f"{statement!r} failed for {build.logical_id}:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


LIBRARIES_CHILD = """import json, sys
sys.path[:0] = sys.argv[1:]
import {module}
dependencies = sys.argv[-1]
print(json.dumps([name for name, module in list(sys.modules.items())
                  if (getattr(module, '__file__', None) or '').startswith(dependencies)]))
"""


def library_statement(python: str, build: FunctionBuild) -> str:
    """An import of exactly the third-party modules (from the dependencies layer) that the handler's import loads,
    in the order it loads them: what the handler would cost with none of our code (its library floor)."""
    env = {**build.env, "PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(build.path[0])}
    command = [python, "-I", "-S", "-B", "-c", LIBRARIES_CHILD.format(module=build.module), *map(str, build.path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BenchError(f"listing the libraries of {build.module} failed:\n{result.stderr[-3000:]}")
    names = json.loads(result.stdout.strip().splitlines()[-1])
    return "import " + ", ".join(names) if names else "pass"


def measure_imports(runs: int = DEFAULT_RUNS) -> tuple[list[Row], list[str]]:
    """import_ratio / import_ms rows of every function of the template, and each one's library floor (the same
    ratio for the third-party modules its import loads, without our code)."""
    python = sys.executable
    if sys.version_info[:2] != (3, 13):
        raise BenchError(f"{python} is Python {platform.python_version()}: the layers' .pyc files are for 3.13")
    layout = import_layout(python)
    statements = {"bare": "pass", "boto3": "import boto3"}
    libraries = {build.folder: library_statement(python, build) for build in layout.functions}
    samples: dict[str, dict[str, list[float]]] = {
        b.folder: {"bare": [], "boto3": [], "handler": [], "libraries": []} for b in layout.functions
    }
    for round_ in range(runs + 1):  # round 0 warms the page cache and is discarded
        for build in layout.functions:
            for kind in ("bare", "boto3", "handler", "libraries"):
                statement = (
                    libraries[build.folder] if kind == "libraries" else statements.get(kind, f"import {build.module}")
                )
                elapsed = time_import(python, statement, build)
                if round_ > 0:
                    samples[build.folder][kind].append(elapsed)

    rows = []
    for build in layout.functions:
        medians = {kind: statistics.median(values) for kind, values in samples[build.folder].items()}
        ratio = import_ratio(medians["handler"], medians["boto3"], medians["bare"])
        spread = samples[build.folder]["handler"]
        detail = f"import {build.module}: median of {runs}, min {min(spread):.0f} / max {max(spread):.0f} ms"
        rows += [
            Row(build.folder, "import_ratio", round(ratio, 3), IMPORT_RATIO_BUDGETS.get(build.folder), detail),
            Row(
                build.folder,
                "library_floor_ratio",
                round(import_ratio(medians["libraries"], medians["boto3"], medians["bare"]), 3),
                None,
                "the same ratio for the third-party modules the handler's import loads, none of our code",
            ),
            Row(build.folder, "import_ms", round(medians["handler"], 1), None, f"import {build.module}"),
            Row(build.folder, "boto3_import_ms", round(medians["boto3"], 1), None, "import boto3, same sys.path"),
            Row(build.folder, "bare_ms", round(medians["bare"], 3), None, "the same timer around `pass`"),
        ]
    return rows, layout.notes


# -------------------------------------------------------------------------------------------- DynamoDB request counts
def configure_environment(endpoint_url: str) -> None:
    """Env of the DynamoDB part (before ``usercredits`` is imported); the caller's AWS settings never apply."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(BENCH_ENV)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint_url
    for path in (ROOT / "functions", ROOT / "shared"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def _all_models() -> list[type[Model]]:
    """Every PynamoDB model class of the tables (bases and their subclasses, recursively)."""
    from usercredits.adapters.dynamodb.tables import TABLE_MODELS

    found: list[type[Model]] = []
    pending = list(TABLE_MODELS.values())
    while pending:
        model = pending.pop(0)
        if model not in found:
            found.append(model)
            pending += model.__subclasses__()
    return found


@dataclass
class Measurement:
    hooked: list[str] = field(default_factory=list)  # operation names seen by the before-send hooks
    wire: list[str] = field(default_factory=list)  # operation names of the HTTP requests sent to DynamoDB Local

    @property
    def count(self) -> int:
        return len(self.hooked)


class DynamoDBRequestCounter:
    """Counts DynamoDB requests two ways: a botocore hook on each model's client, and on the wire (to cross-check)."""

    HOOK_ID = "devtools.bench.count-dynamodb"

    def __init__(self, endpoint_url: str) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self._current: Measurement | None = None

    def attach(self) -> int:
        """Register the hook on the client of every model (idempotent); returns the number of distinct clients."""
        clients: dict[int, Any] = {}
        for model in _all_models():
            client = model._get_connection().connection.client
            client.meta.events.register("before-send.dynamodb", self._on_send, unique_id=self.HOOK_ID)
            clients[id(client)] = client
        return len(clients)

    def _on_send(self, event_name: str, **_: Any) -> None:  # must return None: a value would replace the request
        if self._current is not None:
            self._current.hooked.append(event_name.rsplit(".", 1)[-1])

    def _on_wire(self, request: Any) -> None:
        if self._current is not None and str(request.url).startswith(self.endpoint_url):
            target = request.headers.get("X-Amz-Target", b"")
            target = target.decode() if isinstance(target, bytes) else str(target)
            self._current.wire.append(target.rsplit(".", 1)[-1] or "?")

    @contextlib.contextmanager
    def wire_tap(self) -> Iterator[None]:
        """Patch ``botocore.endpoint.Endpoint._send`` (one call per HTTP attempt) for the ``with`` block."""
        from botocore.endpoint import Endpoint

        original = Endpoint._send
        counter = self

        def counting_send(endpoint: Any, request: Any) -> Any:
            counter._on_wire(request)
            return original(endpoint, request)

        Endpoint._send = counting_send
        try:
            yield
        finally:
            Endpoint._send = original

    @contextlib.contextmanager
    def measure(self) -> Iterator[Measurement]:
        self.attach()
        measurement = Measurement()
        self._current = measurement
        try:
            yield measurement
        finally:
            self._current = None
        if measurement.hooked != measurement.wire:
            raise BenchError(
                f"the hook saw {measurement.hooked} but the wire saw {measurement.wire}: a DynamoDB client is not "
                "hooked (or a request was answered without being sent)"
            )


class ReadTally:
    """Items and read units of the DynamoDB requests made inside ``tally()``: ``ScannedCount`` of each Query (what
    DynamoDB read and bills, filtered or not), the items of each GetItem, and the ``ConsumedCapacity`` asked of every
    request (hooks on every model's client, removed again when the block ends)."""

    HOOKS = (("before-parameter-build.dynamodb", "_on_params"), ("after-call.dynamodb", "_on_result"))

    def __init__(self) -> None:
        self.items = 0
        self.units = 0.0

    def _on_params(self, params: dict[str, Any], **_: Any) -> None:
        params.setdefault("ReturnConsumedCapacity", "TOTAL")

    def _on_result(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if "Error" in parsed:
            return
        if model.name == "Query":
            self.items += int(parsed.get("ScannedCount", 0))
        elif model.name == "GetItem":
            self.items += 1 if parsed.get("Item") else 0
        consumed = parsed.get("ConsumedCapacity") or []
        for part in consumed if isinstance(consumed, list) else [consumed]:
            self.units += float(part.get("CapacityUnits", 0))

    @contextlib.contextmanager
    def tally(self) -> Iterator[ReadTally]:
        self.items, self.units = 0, 0.0
        clients = {id(client): client for client in (m._get_connection().connection.client for m in _all_models())}
        for client in clients.values():
            for event, method in self.HOOKS:
                client.meta.events.register(event, getattr(self, method), unique_id=f"devtools.bench.{method}")
        try:
            yield self
        finally:
            for client in clients.values():
                for event, method in self.HOOKS:
                    client.meta.events.unregister(event, unique_id=f"devtools.bench.{method}")


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
    """An HTTP API payload-2.0 event for ``method route`` (``/orders/{orderId}``) from ``user``, built on ``base``;
    ``admin`` adds the ``credits/admin`` scope to the caller's claims."""
    params = dict(path_parameters or {})
    path = route.format(**params)
    event = copy.deepcopy(dict(base))
    event_headers = {k: v for k, v in (event.get("headers") or {}).items() if k not in {"content-length"}}
    event_headers.update({k.lower(): v for k, v in (headers or {}).items()})
    event.update(
        {
            "routeKey": f"{method} {route}",
            "rawPath": path,
            "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
            "headers": event_headers,
            "isBase64Encoded": False,
        }
    )
    for key, value in (("queryStringParameters", query), ("pathParameters", params)):
        if value:
            event[key] = dict(value)
        else:
            event.pop(key, None)
    if body is not None:
        event["body"] = json.dumps(body)
        event_headers["content-type"] = "application/json"
    else:
        event.pop("body", None)
    context = event["requestContext"]
    context["routeKey"] = event["routeKey"]
    context["http"] = {**context.get("http", {}), "method": method, "path": path}
    scopes = [USER_SCOPE, ADMIN_SCOPE] if admin else [USER_SCOPE]
    context["authorizer"] = {"jwt": {"claims": {"sub": user, "scope": " ".join(scopes)}, "scopes": scopes}}
    return event


def stripe_event_payload(event_id: str, kind: str, obj: Mapping[str, Any]) -> bytes:
    """The raw body Stripe signs and posts: an ``event`` of type ``kind`` about ``obj``."""
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": dict(obj)}}).encode()


def function_url_event(payload: bytes, signature: str, request_id: str = "bench-webhook") -> dict[str, Any]:
    """A Lambda Function URL (payload 2.0) ``POST /`` carrying ``payload`` and its ``Stripe-Signature`` header."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "stripe-signature": signature},
        "requestContext": {
            "http": {"method": "POST", "path": "/", "sourceIp": "127.0.0.1"},
            "requestId": request_id,
            "stage": "$default",
        },
        "body": payload.decode(),
        "isBase64Encoded": False,
    }


def intent_object(
    intent_id: str, total: Mapping[str, Any], metadata: Mapping[str, str], status: str = "succeeded"
) -> dict[str, Any]:
    """A PaymentIntent as ``payment_intent.*`` events carry it; ``total`` is an order's ``{"amount", "currency"}``,
    received in full when ``status`` is succeeded."""
    return {
        "id": intent_id,
        "object": "payment_intent",
        "status": status,
        "amount": total["amount"],
        "amount_received": total["amount"] if status == "succeeded" else 0,
        "currency": total["currency"],
        "metadata": dict(metadata),
    }


def refunded_charge(
    intent_id: str, total: Mapping[str, Any], amount_refunded: int, metadata: Mapping[str, str]
) -> dict[str, Any]:
    """The Charge of a ``charge.refunded`` event: ``amount_refunded`` is cumulative, and Stripe copies the intent's
    metadata onto its charge."""
    return {
        "id": f"ch_{intent_id.removeprefix('pi_')}",
        "object": "charge",
        "amount": total["amount"],
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= total["amount"],
        "currency": total["currency"],
        "payment_intent": intent_id,
        "metadata": dict(metadata),
    }


def dispute_object(intent_id: str, amount: int, currency: str, status: str) -> dict[str, Any]:
    """The Dispute of a ``charge.dispute.*`` event: no metadata of ours (its order is found through the intent id)."""
    return {
        "id": f"dp_{intent_id.removeprefix('pi_')}",
        "object": "dispute",
        "amount": amount,
        "currency": currency,
        "status": status,
        "charge": f"ch_{intent_id.removeprefix('pi_')}",
        "payment_intent": intent_id,
        "metadata": {},
    }


def balances_after_return(granted: Mapping[str, int], returned: int, total: int) -> dict[str, int]:
    """Each group's balance once ``returned`` of ``total`` went back, for a user whose only lots are one order's, one
    per group, nothing spent: each lot gives ``ceil(tokens × returned / total)`` (README "Money going back"),
    computed here independently of the domain's code."""
    return {group: tokens - -(-tokens * returned // total) for group, tokens in granted.items()}


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
        from usercredits.adapters.dynamodb.repositories import DynamoOrderRepository
        from usercredits.domain.ordering import apply_order_paid
        from usercredits.domain.ports import SystemClock

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


class OrderingBench(HandlerBench):
    """The ordering routes, and the grant a paid order makes."""

    MODULE = "ordering.handler"
    FUNCTION = "OrderingFunction"
    BASE_EVENT = "ordering/list_offers.json"
    #: The user whose EnterpriseM order is paid (3 groups with lots): the consumption bench reads their credits.
    GRANT_USER = "bench-grant"

    def run(self) -> None:
        self._offers()
        order_id = self._priced_orders()
        self._free_and_locked()
        self._reads(order_id)
        self._grant()
        self._webhook()
        self._money_back()
        self._abandoned_intent()

    def _offers(self) -> None:
        browser = "bench-browser"
        self.reset_catalog_cache()
        self.measure("GET /offers", "cold catalog", budget=2, user=browser)
        self.measure("GET /offers", "warm", budget=1, user=browser)
        self.measure("GET /offers/{offerId}", "warm", user=browser, path_parameters={"offerId": "StartupM"})

    def _priced_orders(self) -> str:
        buyer, body = "bench-buyer", {"offerId": "_100tokens", "quantity": 2}
        key = {"Idempotency-Key": "bench-priced-order-1"}
        first = self.measure(
            "POST /orders", "priced, warm catalog", budget=3, status=201, user=buyer, body=body, headers=key
        )
        order_id = str((first.body or {}).get("order", {}).get("orderId", ""))

        def same_order(replayed: Any) -> str | None:
            replayed_id = (replayed or {}).get("order", {}).get("orderId")
            return None if replayed_id == order_id else f"replay returned order {replayed_id}, not {order_id}"

        self.measure(
            "POST /orders", "idempotent replay", status=201, user=buyer, body=body, headers=key, check=same_order
        )
        self.reset_catalog_cache()
        body, key = {"offerId": "_20tokens", "quantity": 1}, {"Idempotency-Key": "bench-priced-order-2"}
        self.measure("POST /orders", "priced, cold catalog", budget=3, status=201, user=buyer, body=body, headers=key)
        return order_id

    def _free_and_locked(self) -> None:
        free = {"offerId": "Free", "quantity": 1}
        self.measure("POST /orders", "free bundle, new user", budget=3, status=201, user="bench-free", body=free)
        # The locked offer 1-article-month is unlocked by a paid ScaleUp window: pay a ScaleUpM order first.
        placed = self.setup_call("POST /orders", status=201, user="bench-scaleup", body={"offerId": "ScaleUpM"})
        if (paid := self.pay("bench-scaleup", placed.body["order"]["orderId"])) != "paid":
            raise BenchError(f"setup: the ScaleUpM order is {paid}, not paid")
        locked = {"offerId": "1-article-month", "quantity": 1}
        label = "locked offer, unlocked by a paid group"
        self.measure("POST /orders", label, budget=3, status=201, user="bench-scaleup", body=locked)

    def _reads(self, order_id: str) -> None:
        buyer, order = "bench-buyer", {"orderId": order_id}
        self.measure("GET /orders", user=buyer)
        self.measure("GET /orders/{orderId}", user=buyer, path_parameters=order)
        self.measure("POST /orders/{orderId}/payment", user=buyer, path_parameters=order)

        def subscribed(body: Any) -> str | None:
            return None if (body or {}).get("subscribed") is True else f"expected subscribed=true, got {body}"

        scaleup = {"offerId": "ScaleUpM"}
        self.measure("GET /subscriptions/{offerId}", user="bench-scaleup", path_parameters=scaleup, check=subscribed)

    def _grant(self) -> None:
        user = self.GRANT_USER
        placed = self.setup_call("POST /orders", status=201, user=user, body={"offerId": "EnterpriseM"})
        name = "grant on paid order (apply_order_paid, EnterpriseM)"
        with self.counter.measure() as measurement:
            paid = self.pay(user, placed.body["order"]["orderId"])
        problem = None if paid == "paid" else f"order is {paid} after apply_order_paid"
        self.scenarios.append(Scenario(name, 3, measurement, problem))
        transactions = measurement.hooked.count("TransactWriteItems")
        self.extra_rows.append(Row(name, "transactions", transactions, 1, "TransactWriteItems requests"))

    def _webhook(self) -> None:
        """A signed ``payment_intent.succeeded`` through the webhook handler: dedupe record, order and grant."""
        user = "bench-webhook"
        order = self._place(user, "EnterpriseM")
        self.measure_webhook(
            "webhook payment_intent.succeeded (dedupe included)",
            "payment_intent.succeeded",
            intent_object(order["paymentIntentId"], order["total"], self._metadata(user, order)),
            budget=3,
            check=lambda: self._order_check(user, order["orderId"], "paid"),
        )

    # ------------------------------------------------------------------------------------ webhooks: helpers
    #: Stripe event ids sent so far (each event a new id: the webhook records it, and a repeated id is a redelivery).
    _events_sent = 0

    def send_webhook(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Post a ``kind`` event about ``obj``, signed with the local webhook secret, to the webhook handler."""
        from stripe_webhook import handler as webhook
        from usercredits.adapters.stripe.webhooks import sign_payload

        self._events_sent += 1
        payload = stripe_event_payload(f"evt_bench_{self._events_sent}", kind, obj)
        secret = os.environ.get("LOCAL_WEBHOOK_SECRET") or "whsec_local"
        request = function_url_event(payload, sign_payload(payload, secret))
        return dict(webhook.lambda_handler(request, LambdaContext("StripeWebhookFunction", 512, 15)))

    def measure_webhook(
        self,
        name: str,
        kind: str,
        obj: Mapping[str, Any],
        *,
        budget: float | None,
        check: Callable[[], str | None],
    ) -> None:
        """One measured webhook event; its row fails unless it is answered 200 and ``check`` (run after the
        measurement: what the event changed) finds nothing wrong."""
        with self.counter.measure() as measurement:
            response = self.send_webhook(kind, obj)
        status = int(response.get("statusCode") or 0)
        problem = f"webhook answered {status}: {str(response.get('body'))[:300]}" if status != 200 else check()
        self.scenarios.append(Scenario(name, budget, measurement, problem))

    def setup_webhook(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A webhook event that prepares a scenario (not measured); anything but 200 stops the bench."""
        response = self.send_webhook(kind, obj)
        if response.get("statusCode") != 200:
            raise BenchError(f"setup {kind} answered {response.get('statusCode')}: {str(response.get('body'))[:500]}")

    def _place(self, user: str, offer_id: str) -> dict[str, Any]:
        """A priced order placed through the handler (not measured): the order as answered, with its intent."""
        order = self.setup_call("POST /orders", status=201, user=user, body={"offerId": offer_id}).body["order"]
        if not order.get("paymentIntentId"):
            raise BenchError(f"setup: the {offer_id} order has no payment intent: {json.dumps(order)[:300]}")
        return dict(order)

    @staticmethod
    def _metadata(user: str, order: Mapping[str, Any]) -> dict[str, str]:
        """What we set on an order's intents (and Stripe copies onto their charges)."""
        return {"orderId": str(order["orderId"]), "userId": user}

    def _paid(self, user: str, offer_id: str) -> dict[str, Any]:
        """An order placed and paid by its intent's signed ``payment_intent.succeeded`` (not measured)."""
        order = self._place(user, offer_id)
        intent = intent_object(order["paymentIntentId"], order["total"], self._metadata(user, order))
        self.setup_webhook("payment_intent.succeeded", intent)
        if problem := self._order_check(user, order["orderId"], "paid"):
            raise BenchError(f"setup: {problem}")
        return order

    @staticmethod
    def _stored_order(user: str, order_id: str) -> Any:
        from usercredits.adapters.dynamodb.repositories import DynamoOrderRepository

        return DynamoOrderRepository().get_order(user, order_id)

    def _order_check(self, user: str, order_id: str, status: str) -> str | None:
        order = self._stored_order(user, order_id)
        found = order.status.value if order is not None else None
        return None if found == status else f"order {order_id} is {found}, expected {status}"

    def credit_balances(self, user: str) -> dict[str, int]:
        """``GET /credits`` through the consumption handler (not measured): each group's balance."""
        from consumption import handler as consumption

        base = json.loads((EVENTS_DIR / ConsumptionBench.BASE_EVENT).read_text(encoding="utf-8"))
        result = call_handler(consumption, ConsumptionBench.FUNCTION, base, "GET /credits", user=user)
        if result.status != 200:
            raise BenchError(f"GET /credits of {user} answered {result.status}: {json.dumps(result.body)[:300]}")
        return {group["offerGroup"]: int(group["balance"]) for group in (result.body or {}).get("groups", [])}

    def _balances_check(self, user: str, expected: Mapping[str, int]) -> str | None:
        found = self.credit_balances(user)
        return None if found == dict(expected) else f"GET /credits balances {found}, expected {dict(expected)}"

    # ------------------------------------------------------------------------- webhooks: money going back
    #: The partial refund measured: 1000 of EnterpriseM's 9900 (README "Money going back": 31 of its 300 AiTokens).
    REFUNDED = 1000

    def _money_back(self) -> None:
        """A partial refund (``charge.refunded``, metadata on the charge) and a dispute opened then won
        (``charge.dispute.*``, no metadata: one Query of the ByPaymentIntent index more) on paid EnterpriseM orders
        of users holding nothing else; the balances are checked through ``GET /credits`` after each."""
        from stripe_webhook import handler as webhook

        webhook.dependencies().ports.catalog.list_offers()  # the webhook's catalog cache warm (group policies)
        user = "bench-refund"
        order = self._paid(user, "EnterpriseM")
        granted, total = self.credit_balances(user), order["total"]
        charge = refunded_charge(order["paymentIntentId"], total, self.REFUNDED, self._metadata(user, order))
        expected = balances_after_return(granted, self.REFUNDED, int(total["amount"]))

        def revoked() -> str | None:
            stored = self._stored_order(user, order["orderId"])
            if stored is None or stored.status.value != "paid" or stored.revoked_for_amount != self.REFUNDED:
                found = stored and (stored.status.value, stored.revoked_for_amount)
                return f"order (status, revoked for) {found}, expected ('paid', {self.REFUNDED})"
            return self._balances_check(user, expected)

        name = f"webhook charge.refunded (partial, {self.REFUNDED} of {total['amount']}, warm catalog)"
        self.measure_webhook(name, "charge.refunded", charge, budget=3, check=revoked)

        user = "bench-dispute"
        order = self._paid(user, "EnterpriseM")
        granted, total = self.credit_balances(user), order["total"]
        amount, currency = int(total["amount"]), str(total["currency"])
        opened = dispute_object(order["paymentIntentId"], amount, currency, "needs_response")
        name = "webhook charge.dispute.created (full amount, found by intent id)"
        taken = balances_after_return(granted, amount, amount)
        self.measure_webhook(
            name, "charge.dispute.created", opened, budget=4, check=lambda: self._balances_check(user, taken)
        )
        won = dispute_object(order["paymentIntentId"], amount, currency, "won")
        name = "webhook charge.dispute.closed (won: restores)"
        self.measure_webhook(
            name, "charge.dispute.closed", won, budget=4, check=lambda: self._balances_check(user, granted)
        )

    # ------------------------------------------------------------------------------ webhooks: abandoned intent
    def _abandoned_intent(self) -> None:
        """Events about an intent the order abandoned (``POST /orders/{id}/payment`` made a new one): its cancel
        changes nothing (the order is read, nothing written); its success after the new intent paid the order is a
        duplicate payment, refunded (the local gateway: no network call) and recorded on the order."""
        user = "bench-abandoned"
        order = self._place(user, "_100tokens")
        order_id, abandoned = order["orderId"], order["paymentIntentId"]
        again = self.setup_call(
            "POST /orders/{orderId}/payment", status=200, user=user, path_parameters={"orderId": order_id}
        )
        current = str(((again.body or {}).get("payment") or {}).get("paymentIntentId") or "")
        if not current or current == abandoned:
            raise BenchError(f"setup: POST /orders/{order_id}/payment gave intent {current!r} (first: {abandoned})")
        metadata = self._metadata(user, order)
        before = self._stored_order(user, order_id)

        def unchanged() -> str | None:
            after = self._stored_order(user, order_id)
            if after is None or after.status.value != "pending" or after.updated_at != before.updated_at:
                return f"the order changed: {after and after.status.value}, updated {after and after.updated_at}"
            return None

        canceled = intent_object(abandoned, order["total"], metadata, status="canceled")
        name = "webhook payment_intent.canceled (abandoned intent: changes nothing)"
        self.measure_webhook(name, "payment_intent.canceled", canceled, budget=1, check=unchanged)

        self.setup_webhook("payment_intent.succeeded", intent_object(current, order["total"], metadata))
        if problem := self._order_check(user, order_id, "paid"):
            raise BenchError(f"setup: {problem}")

        def refunded() -> str | None:
            after = self._stored_order(user, order_id)
            figures = after.other_intents.get(abandoned) if after is not None else None
            mentioned = after is not None and any(
                abandoned in entry.message and "refunded" in entry.message for entry in after.history
            )
            if after is None or after.status.value != "paid" or after.payment_intent_id != current:
                return f"the order is {after and after.status.value} with intent {after and after.payment_intent_id}"
            if figures is None or not figures.duplicate_refund_id or not mentioned:
                return f"no refund of {abandoned} recorded: {figures}, history {[e.message for e in after.history]}"
            return None

        succeeded = intent_object(abandoned, order["total"], metadata)
        name = "webhook payment_intent.succeeded (abandoned intent, order paid by the new one: refunded)"
        self.measure_webhook(name, "payment_intent.succeeded", succeeded, budget=2, check=refunded)


class ConsumptionBench(HandlerBench):
    """The credits routes: reading credits and the ledger, spending, admin grants."""

    MODULE = "consumption.handler"
    FUNCTION = "ConsumptionFunction"
    BASE_EVENT = "consumption/consume.json"
    GROUP = "AiTokens"
    CONSUME = "POST /credits/{offerGroup}/consume"

    def run(self, paid_user: str | None = None) -> None:
        user, group = "bench-consumer", {"offerGroup": self.GROUP}
        self._admin_grant(user, 1000)
        self._keyed_admin_grant("bench-granted", 500)
        self.reset_catalog_cache()
        self.measure(self.CONSUME, "cold catalog", user=user, path_parameters=group, body={"count": 1})
        first = self.measure(
            self.CONSUME,
            "warm catalog",
            budget=1,
            user=user,
            path_parameters=group,
            body={"count": 1},
            check=_consumed(998),
        )
        key = {"Idempotency-Key": "bench-consume-1"}
        keyed = self.measure(
            self.CONSUME,
            "Idempotency-Key, warm catalog",
            user=user,
            path_parameters=group,
            body={"count": 1},
            headers=key,
            check=_consumed(997),
        )
        entry_id = (keyed.body or {}).get("entryId")
        self.measure(
            self.CONSUME,
            "idempotent replay",
            user=user,
            path_parameters=group,
            body={"count": 1},
            headers=key,
            check=lambda body: _consumed(997)(body) or _same_entry(entry_id)(body),
        )
        self.measure(
            self.CONSUME, "not covered: 402", status=402, user=user, path_parameters=group, body={"count": 10**6}
        )
        self.measure("GET /credits", budget=1, user=user, check=_balances({self.GROUP: 997}))
        if paid_user is not None:
            self.measure(
                "GET /credits", "3 groups with lots of a paid bundle", budget=1, user=paid_user, check=_groups(3)
            )
        self.measure("GET /credits/{offerGroup}", user=user, path_parameters=group, check=_balance_of(997))
        self.measure("GET /credits/ledger", user=user, check=_entries(4, (first.body or {}).get("entryId")))
        self._compaction(user)
        self._settled_holds()

    def _admin_grant(self, user: str, tokens: int) -> None:
        body = {"offerGroup": self.GROUP, "tokens": tokens, "reason": "bench"}
        self.measure(
            "POST /admin/users/{userId}/grants",
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters={"userId": user},
            body=body,
        )

    def _keyed_admin_grant(self, user: str, tokens: int) -> None:
        """An admin grant with an Idempotency-Key, and its retry with the same key: the retry answers the first
        grant's entry, and the user holds the tokens once (checked after the retry, not measured)."""
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository

        route, target = "POST /admin/users/{userId}/grants", {"userId": user}
        body, key = (
            {"offerGroup": self.GROUP, "tokens": tokens, "reason": "bench"},
            {"Idempotency-Key": "bench-grant-1"},
        )
        first = self.measure(
            route,
            "Idempotency-Key",
            budget=3,
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters=target,
            body=body,
            headers=key,
            check=_granted(tokens),
        )
        entry_id = (first.body or {}).get("entryId")
        replay = self.measure(
            route,
            "Idempotency-Key, idempotent replay",
            status=201,
            user="bench-admin",
            admin=True,
            path_parameters=target,
            body=body,
            headers=key,
            check=lambda answer: _granted(tokens)(answer) or _same_entry(entry_id)(answer),
        )
        state = DynamoCreditsRepository().group_state(user, self.GROUP)
        if replay.status == 201 and (state is None or state.balance != tokens):
            self.scenarios[-1] = dataclasses.replace(
                self.scenarios[-1],
                problem=f"balance {state and state.balance} after the replay, expected {tokens} (granted once)",
            )

    def _compaction(self, user: str) -> None:
        """The consume that takes the journal past its limit also moves its oldest movements to ledger items."""
        from usercredits.adapters.dynamodb.credits import JOURNAL_MAX
        from usercredits.adapters.dynamodb.keys import group_sk, user_pk
        from usercredits.adapters.dynamodb.tables import CreditGroupItem

        item = CreditGroupItem.get(user_pk(user), group_sk(self.GROUP), consistent_read=True)
        for _ in range(JOURNAL_MAX - len(item.journal or [])):
            self.setup_call(
                self.CONSUME, status=200, user=user, path_parameters={"offerGroup": self.GROUP}, body={"count": 1}
            )
        self.measure(
            self.CONSUME,
            "compacts the journal",
            user=user,
            path_parameters={"offerGroup": self.GROUP},
            body={"count": 1},
        )

    #: Hold/release pairs settled before the "GET /credits (after 1,000 settled holds)" row.
    SETTLED_HOLDS = 1_000

    def _settled_holds(self) -> None:
        """``GET /credits`` of a user with one open hold, measured after 0 and after ``SETTLED_HOLDS`` hold/release
        pairs: still one Query, reading the same items (a settled hold leaves the ``CREDIT#`` range). The pairs are
        made through the domain with the real repository (the handler's writes, without its per-request overhead)."""
        from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
        from usercredits.adapters.dynamodb.repositories import DynamoCatalogRepository
        from usercredits.domain import consumption
        from usercredits.domain.ports import SystemClock

        user, label = "bench-holder", f"after {self.SETTLED_HOLDS:,} settled holds"
        credits, catalog, clock = DynamoCreditsRepository(), DynamoCatalogRepository(), SystemClock()
        grant = {"offerGroup": self.GROUP, "tokens": 100, "reason": "bench"}
        route, target = "POST /admin/users/{userId}/grants", {"userId": user}
        self.setup_call(route, status=201, user="bench-admin", admin=True, path_parameters=target, body=grant)

        def hold(count: int) -> str:
            return consumption.create_reservation(
                user,
                self.GROUP,
                count,
                expires_in_seconds=3600,
                idempotency_key=None,
                catalog=catalog,
                credits=credits,
                clock=clock,
            ).reservation_id

        hold(5)  # the open hold, read both times
        with self.counter.measure() as before, ReadTally().tally() as empty:
            result = self.call("GET /credits", user=user)
        if result.status != 200 or before.count != 1:
            raise BenchError(f"setup GET /credits answered {result.status} in {before.hooked}")
        for pair in range(self.SETTLED_HOLDS):
            consumption.release_reservation(user, hold(1), credits=credits, clock=clock)
            state = credits.group_state(user, self.GROUP) if pair % 25 == 24 else None
            if state is not None:  # holds and releases do not compact the journal; reads do (as GET /credits would)
                credits.compact_if_long(user, state)
        self.setup_call("GET /credits", status=200, user=user)  # leaves the journal below its compaction limit
        with ReadTally().tally() as full:
            self.measure("GET /credits", label, budget=1, user=user, check=_held(5))
        name = f"GET /credits ({label})"
        detail = (
            f"Query items read: {empty.items} after 0 settled holds, {full.items} after {self.SETTLED_HOLDS:,}; "
            f"read units {empty.units:g} / {full.units:g}"
        )
        self.extra_rows += [
            Row(name, "items_read", full.items, empty.items, detail),
            Row(name, "read_units", full.units, None, "ConsumedCapacity of the Query (the journal's length varies)"),
        ]


class CustomersBench(HandlerBench):
    """The customers routes: reading the caller's customer (created on first use) and subscribing to a plan."""

    MODULE = "customers.handler"
    FUNCTION = "CustomersFunction"
    BASE_EVENT = "customers/get_customer.json"
    ADMIN = "bench-admin"
    PLAN = "bench-pro"
    #: A percent coupon for any plan (not restricted): 10% of 14.90 is 1.49, for 2 billing cycles; and a restricted
    #: one (once per customer: the subscribe also reads the customer's use of it).
    COUPON = "BENCH10"
    RESTRICTED_COUPON = "BENCHONCE"
    SUBSCRIBE = "POST /customer/subscriptions"

    def run(self) -> None:
        self._define_plan_and_coupon()
        self._customer()
        self._subscriptions()

    def _define_plan_and_coupon(self) -> None:
        plan = {"name": "Pro", "price": {"amount": 1490, "currency": "usd"}, "billingFrequencyMonths": 1, "level": 2}
        self.setup_call(
            "PUT /admin/plans/{planId}",
            status=200,
            user=self.ADMIN,
            admin=True,
            path_parameters={"planId": self.PLAN},
            body=plan,
        )
        for code, restricted in ((self.COUPON, False), (self.RESTRICTED_COUPON, True)):
            coupon = {"kind": "percent", "percent": "10", "numberOfBillingCycles": 2, "maxUses": 100}
            self.setup_call(
                "PUT /admin/coupons/{code}",
                status=200,
                user=self.ADMIN,
                admin=True,
                path_parameters={"code": code},
                body=coupon | {"restricted": restricted},
            )

    def _customer(self) -> None:
        user = "bench-customer"
        created = self.measure("GET /customer", "new user, creates it", user=user, check=_new_customer(user))
        customer_id = (created.body or {}).get("customerId")
        self.measure("GET /customer", "existing customer", budget=1, user=user, check=_same_customer(customer_id))

    def _subscriptions(self) -> None:
        for user, label, coupon in (
            ("bench-subscriber", "plan, no coupon", None),
            ("bench-subscriber-coupon", "plan and coupon", self.COUPON),
            ("bench-subscriber-restricted", "plan and customer-restricted coupon", self.RESTRICTED_COUPON),
        ):
            self.setup_call("GET /customer", status=200, user=user)  # an existing customer, as after the first read
            body = {"planId": self.PLAN} | ({"couponCode": coupon} if coupon else {})
            self.measure(
                self.SUBSCRIBE, label, budget=3, status=201, user=user, body=body, check=_subscribed(self.PLAN, coupon)
            )


def _new_customer(user: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body = body or {}
        ok = body.get("userId") == user and body.get("version") == 1 and body.get("customerId")
        return None if ok else f"expected a new customer of {user} (version 1): {json.dumps(body)[:300]}"

    return check


def _same_customer(customer_id: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("customerId")
        return None if customer_id and found == customer_id else f"read customer {found}, not {customer_id}"

    return check


def _subscribed(plan_id: str, coupon: str | None) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body, expected = body or {}, [coupon] if coupon else []
        codes = [discount.get("couponCode") for discount in body.get("discounts", [])]
        if (body.get("plan") or {}).get("planId") == plan_id and codes == expected:
            return None
        return f"expected a {plan_id} subscription with coupons {expected}: {json.dumps(body)[:300]}"

    return check


def _granted(tokens: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body = body or {}
        ok = body.get("kind") == "grant" and body.get("tokens") == tokens and body.get("entryId")
        return None if ok else f"expected a grant entry of {tokens} tokens: {json.dumps(body)[:300]}"

    return check


def _consumed(balance: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("balance")
        return None if found == balance and (body or {}).get("consumed") == 1 else f"expected balance {balance}: {body}"

    return check


def _same_entry(entry_id: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("entryId")
        return None if entry_id and found == entry_id else f"replay answered entry {found}, not {entry_id}"

    return check


def _balances(expected: Mapping[str, int]) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = {group.get("offerGroup"): group.get("balance") for group in (body or {}).get("groups", [])}
        return None if found == dict(expected) else f"expected balances {dict(expected)}, got {found}"

    return check


def _groups(count: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        groups = (body or {}).get("groups", [])
        lots = sum(len(group.get("lots", [])) for group in groups)
        return None if len(groups) == count and lots >= count else f"expected {count} groups with lots: {body}"

    return check


def _held(held: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = [(group.get("balance"), group.get("held")) for group in (body or {}).get("groups", [])]
        return None if found == [(100, held)] else f"expected one group, balance 100 and {held} held: {found}"

    return check


def _balance_of(balance: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        return None if (body or {}).get("balance") == balance else f"expected balance {balance}: {body}"

    return check


def _entries(count: int, newest_consume: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        entries = (body or {}).get("entries", [])
        if len(entries) != count or newest_consume not in {entry.get("entryId") for entry in entries}:
            return f"expected {count} entries with {newest_consume}: {json.dumps(body)[:300]}"
        return None

    return check


def calibrate(counter: DynamoDBRequestCounter) -> int:
    """One known call through every model's connection must count exactly one request of the expected operation."""
    from pynamodb.exceptions import DoesNotExist
    from pynamodb.transactions import TransactWrite

    from usercredits.adapters.dynamodb.tables import (
        CreditGroupItem,
        CreditsItem,
        CustomersItem,
        IdempotencyItem,
        OfferItem,
        OrderItem,
    )

    def get(model: type[Model]) -> None:
        with contextlib.suppress(DoesNotExist):
            model.get("BENCH#calibration", "NONE#0", consistent_read=True)

    def transaction() -> None:
        with TransactWrite(connection=CreditsItem._get_connection().connection) as tx:
            tx.condition_check(
                IdempotencyItem, "BENCH#calibration", "NONE#0", condition=IdempotencyItem.pk.does_not_exist()
            )

    calls: list[tuple[str, Callable[[], object], str]] = [
        ("OfferItem.query", lambda: list(OfferItem.query("CATALOG", OfferItem.sk.startswith("OFFER#"))), "Query"),
        ("CreditGroupItem.query", lambda: list(CreditGroupItem.query("BENCH#calibration")), "Query"),
        ("OrderItem.get", lambda: get(OrderItem), "GetItem"),
        ("IdempotencyItem.get", lambda: get(IdempotencyItem), "GetItem"),
        ("CreditsItem.get", lambda: get(CreditsItem), "GetItem"),
        ("CustomersItem.get", lambda: get(CustomersItem), "GetItem"),
        ("TransactWrite (repositories' connection)", transaction, "TransactWriteItems"),
    ]
    for label, call, operation in calls:
        with counter.measure() as measurement:
            call()
        if measurement.hooked != [operation]:
            raise BenchError(f"calibration: {label} counted {measurement.hooked}, expected [{operation!r}]")
    return counter.attach()


# ------------------------------------------------------------------------------------------------ consume throughput
#: Consumes of 1 token per throughput row (split over its workers), and the worker counts measured.
THROUGHPUT_OPS = 500
THROUGHPUT_WORKERS = (1, 8)
THROUGHPUT_GRANT = 1_000_000
#: Conflicts the naive spend retries before it gives up (a 503).
NAIVE_RETRIES = 100
THROUGHPUT_MODES = {
    "handler": "consume throughput (handler)",
    "naive": "consume throughput (naive read-then-write)",
}


def naive_credits_repository() -> Any:
    """The credits repository with the naive spend: read the group (consistent GetItem), check the balance in Python,
    then an UpdateItem that sets the new balance conditional on the balance read, from the start again on a conflict.

    Everything else (the handler, validation, catalog, journal and its compaction, the response) is the real code, so
    the two throughput rows differ only in the spend's DynamoDB pattern.
    """
    from pynamodb.exceptions import DoesNotExist, UpdateError
    from pynamodb.expressions.update import Action

    from usercredits.adapters.dynamodb.credits import JOURNAL_MAX, DynamoCreditsRepository
    from usercredits.adapters.dynamodb.keys import group_sk, user_pk
    from usercredits.adapters.dynamodb.repositories import item_to_group_state, movement_to_attribute
    from usercredits.adapters.dynamodb.tables import CreditGroupItem
    from usercredits.domain.ports import SpendRefusedError
    from usercredits.errors import UnavailableError

    class NaiveCreditsRepository(DynamoCreditsRepository):
        conflicts = 0

        def spend(self, user_id: str, offer_group: str, movement: Any, **kwargs: Any) -> Any:
            floor, now = kwargs["floor"], kwargs["now"]
            if kwargs.get("idempotency") is not None:
                raise BenchError("the naive spend is measured without an Idempotency-Key")
            count = -movement.tokens
            for _ in range(NAIVE_RETRIES):
                try:
                    item = CreditGroupItem.get(user_pk(user_id), group_sk(offer_group), consistent_read=True)
                except DoesNotExist:
                    raise SpendRefusedError(None) from None
                if floor is not None and item.available < floor + count:
                    raise SpendRefusedError(item_to_group_state(item))
                actions: list[Action] = [
                    CreditGroupItem.balance.set(item.balance - count),
                    CreditGroupItem.available.set(item.available - count),
                    CreditGroupItem.drawn.set(item.drawn + count),
                    CreditGroupItem.journal.set(CreditGroupItem.journal.append([movement_to_attribute(movement)])),
                    CreditGroupItem.updated_at.set(now),
                ]
                try:
                    item.update(actions=actions, condition=CreditGroupItem.balance == item.balance)
                except UpdateError as exc:
                    if exc.cause_response_code != "ConditionalCheckFailedException":
                        raise
                    type(self).conflicts += 1
                    continue
                state = item_to_group_state(item)
                if len(state.journal) > JOURNAL_MAX:
                    self.compact(user_id, state)
                return state
            raise UnavailableError("the group kept changing", retry_after=1)

    return NaiveCreditsRepository()


def throughput_worker(mode: str, user: str, ops: int, endpoint_url: str, barrier: Any, results: Any) -> None:
    """One Lambda instance (a process: the Powertools resolver keeps the current event on the app, so one handler
    module serves one request at a time): ``ops`` consumes of 1 through ``consumption.handler.lambda_handler``."""
    try:
        warnings.filterwarnings("ignore", message="No application metrics to publish")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        configure_environment(endpoint_url)
        from consumption import handler

        # With POWERTOOLS_METRICS_DISABLED, Powertools keeps the metric values and prints them every 100: not here.
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the worker
        conflicts: Callable[[], int] = lambda: 0  # noqa: E731
        if mode == "naive":
            repository = naive_credits_repository()
            deps = dataclasses.replace(handler.dependencies(), credits=repository)
            handler.dependencies = lambda: deps  # type: ignore[assignment]
            conflicts = lambda: type(repository).conflicts  # noqa: E731
        base = json.loads((EVENTS_DIR / ConsumptionBench.BASE_EVENT).read_text(encoding="utf-8"))
        method, _, route = ConsumptionBench.CONSUME.partition(" ")
        event = http_event(
            base, method, route, user=user, path_parameters={"offerGroup": ConsumptionBench.GROUP}, body={"count": 1}
        )
        warm = handler.lambda_handler(copy.deepcopy(event), LambdaContext("ConsumptionFunction", 512, 15))
        statuses: dict[int, int] = {}
        latencies: list[float] = []
        barrier.wait(timeout=120)
        start = time.monotonic()
        for _ in range(ops):
            began = time.perf_counter()
            response = handler.lambda_handler(copy.deepcopy(event), LambdaContext("ConsumptionFunction", 512, 15))
            latencies.append((time.perf_counter() - began) * 1000.0)
            status = int(response["statusCode"])
            statuses[status] = statuses.get(status, 0) + 1
        end = time.monotonic()
        results.put(
            {
                "start": start,
                "end": end,
                "statuses": statuses,
                "latencies": latencies,
                "conflicts": conflicts(),
                "warm": int(warm["statusCode"]),
            }
        )
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which fails the row
        with contextlib.suppress(Exception):
            barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def split_work(total: int, workers: int) -> list[int]:
    """``total`` operations over ``workers``, as evenly as possible."""
    return [total // workers + (1 if index < total % workers else 0) for index in range(workers)]


def run_workers(mode: str, workers: int, user: str, endpoint_url: str, ops: int) -> tuple[list[int], list[dict]]:  # type: ignore[type-arg]
    """Start ``workers`` processes of :func:`throughput_worker` sharing ``ops``; what each reported."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(workers), context.Queue()
    shares = split_work(ops, workers)
    processes = [
        context.Process(target=throughput_worker, args=(mode, user, share, endpoint_url, barrier, results), daemon=True)
        for share in shares
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=300) for _ in processes]
    except Exception as exc:
        raise BenchError(f"throughput {mode} x{workers}: a worker did not report ({type(exc).__name__})") from exc
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():  # pragma: no cover - a stuck worker
                process.kill()
    if errors := [outcome["error"] for outcome in outcomes if "error" in outcome]:
        raise BenchError(f"throughput {mode} x{workers}: {errors[0]}")
    return shares, outcomes


def throughput_row(mode: str, workers: int, endpoint_url: str, ops: int = THROUGHPUT_OPS) -> tuple[Row, str | None]:
    """``ops`` consumes of 1 by one user through the consumption handler in ``workers`` processes started together;
    ``ops_per_s`` = successful consumes / (last end - first start). The balance is checked afterwards: a lost update
    (two spends read the same balance and both wrote) fails the row."""
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.domain.consumption import grant_credits
    from usercredits.domain.ports import SystemClock

    user, group = f"bench-throughput-{mode}-{workers}", ConsumptionBench.GROUP
    credits = DynamoCreditsRepository()
    grant_credits(user, group, THROUGHPUT_GRANT, expires=None, reason="bench", credits=credits, clock=SystemClock())
    shares, outcomes = run_workers(mode, workers, user, endpoint_url, ops)
    statuses: Counter[int] = Counter()
    for outcome in outcomes:
        statuses.update(outcome["statuses"])
    ok = statuses[200]
    wall = max(o["end"] for o in outcomes) - min(o["start"] for o in outcomes)
    latencies = [latency for outcome in outcomes for latency in outcome["latencies"]]
    state = credits.group_state(user, group)
    spent = ok + sum(1 for outcome in outcomes if outcome["warm"] == 200)
    problem = None
    if state is None or state.balance != THROUGHPUT_GRANT - spent:
        found = state.balance if state else None
        problem = f"balance {found} after {spent} successful consumes of 1 from {THROUGHPUT_GRANT}: lost updates"
    elif mode == "handler" and ok != ops:
        problem = f"statuses {dict(statuses)}, expected {ops} x 200"
    share = f"{shares[0]}" if len(set(shares)) == 1 else f"{min(shares)}-{max(shares)}"
    detail = (
        f"{ops} consumes of 1 by one user, {workers} process{'es' if workers > 1 else ''} x {share}; {wall:.2f} s; p50 "
        f"{percentile(latencies, 0.5):.1f} / p95 {percentile(latencies, 0.95):.1f} ms"
    )
    if mode == "naive":
        detail += f"; {sum(outcome['conflicts'] for outcome in outcomes)} conflicts retried"
    if set(statuses) != {200}:
        detail += f"; statuses {dict(statuses)}"
    if problem:
        detail = f"FAILED: {problem} | {detail}"
    name = f"{THROUGHPUT_MODES[mode]}, {workers} worker{'s' if workers > 1 else ''}"
    row = Row(name, "ops_per_s", round(ok / wall, 1) if wall > 0 else 0.0, None, detail)
    return row, (f"{name}: {problem}" if problem else None)


def measure_throughput(endpoint_url: str) -> tuple[list[Row], list[str], list[str]]:
    """The consume throughput rows: the real handler and the naive spend, one worker then several, same engine."""
    rows, problems = [], []
    for workers in THROUGHPUT_WORKERS:
        for mode in THROUGHPUT_MODES:
            row, problem = throughput_row(mode, workers, endpoint_url)
            rows.append(row)
            if problem:
                problems.append(problem)
    notes = [
        f"throughput: {THROUGHPUT_OPS} consumes of 1 per row through consumption.handler.lambda_handler, in worker "
        "processes (one per Lambda instance: the Powertools resolver keeps the current event on the app, so threads "
        f"cannot share one handler module), against the same DynamoDB Local on this {os.cpu_count()}-CPU machine "
        "(the workers and the engine share the CPUs): compare the rows with each other, not with AWS",
        "throughput: handler = the real spend (one UpdateItem conditional on the available balance); naive = the same "
        "handler with a spend that reads the group (GetItem), checks the balance in Python and writes the new balance "
        "conditional on the balance read, re-reading on a conflict",
    ]
    return rows, notes, problems


def measure_dynamodb() -> tuple[list[Row], list[str], list[str]]:
    """dynamodb_requests rows of the ordering, consumption and customers routes, and the consume throughput rows;
    (rows, notes, problems)."""
    from devtools.dynamodb_local import running_dynamodb_local

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    with running_dynamodb_local() as endpoint_url:
        configure_environment(endpoint_url)
        import boto3

        from devtools.catalog import load_catalog
        from devtools.local_tables import create_tables

        create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url))
        offers = load_catalog(DEMO_CATALOG)
        counter = DynamoDBRequestCounter(endpoint_url)
        with counter.wire_tap():
            ordering = OrderingBench(counter)  # imports the handlers (after the env is set)
            consumption = ConsumptionBench(counter)
            customers = CustomersBench(counter)
            clients = calibrate(counter)
            ordering.run()
            consumption.run(paid_user=OrderingBench.GRANT_USER)
            customers.run()
        throughput_rows, throughput_notes, throughput_problems = measure_throughput(endpoint_url)
    notes = [
        f"DynamoDB Local (in memory), {offers} demo offers; requests counted by a before-send hook on "
        f"{clients} PynamoDB botocore client(s), cross-checked on the wire; calibration passed",
        *throughput_notes,
    ]
    benches = (ordering, consumption, customers)
    rows = [row for bench in benches for row in bench.rows()] + throughput_rows
    return rows, notes, [problem for bench in benches for problem in bench.problems()] + throughput_problems


# ------------------------------------------------------------------------------------------------------------ main
Part = Callable[[], tuple[list[Row], list[str], list[str]]]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self, label: str, part: Part) -> None:
        """Run one part; a part that cannot measure is an error, the other part still runs."""
        try:
            rows, notes, problems = part()
        except BenchError as exc:
            self.errors.append(f"{label}: {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - e.g. DynamoDB Local missing: report it, keep the other part
            self.errors.append(f"{label}: {type(exc).__name__}: {exc}")
            return
        self.rows += rows
        self.notes += [f"{label}: {note}" for note in notes]
        self.problems += problems

    def print(self, output: Path, seconds: float) -> None:
        print(format_table(self.rows))
        print()
        for note in self.notes:
            print(f"note  {note}")
        print(f"wrote {len(self.rows)} rows to {output} in {seconds:.1f} s")
        for row in over_budget(self.rows):
            print(f"OVER  {row.name} {row.metric} = {format_number(row.value)} > budget {format_number(row.budget)}")
        for problem in self.problems:
            print(f"FAIL  {problem}")
        for error in self.errors:
            print(f"ERROR {error}", file=sys.stderr)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if over_budget(self.rows) or self.problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=["dynamodb", "imports", "scan", "hot-item", "growth"], help="run one part only"
    )
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="import runs per measurement (median)")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH, help="results file (JSON)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    started = time.monotonic()
    report = Report()
    # Imports first: DynamoDB Local's JVM would compete for the CPU while the imports are timed.
    if args.only in (None, "imports"):
        report.run("imports", lambda: (*measure_imports(args.runs), []))
    if args.only in (None, "dynamodb"):
        report.run("dynamodb", measure_dynamodb)
    if args.only in (None, "scan"):
        from devtools.bench_scan import measure_scan

        report.run("expiry scan", measure_scan)
    if args.only in (None, "hot-item"):
        from devtools.bench_hot_item import measure_hot_item

        report.run("hot item", measure_hot_item)
    if args.only in (None, "growth"):
        from devtools.bench_growth import measure_growth

        report.run("growth", measure_growth)
    write_results(report.rows, args.output)
    report.print(args.output, time.monotonic() - started)
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
