"""Local API: the real ``lambda_handler``s behind a small HTTP server that plays API Gateway (``make run``).

What it starts, in order:

1. DynamoDB Local (in memory, port ``DYNAMODB_PORT``, default 8000), unless ``AWS_ENDPOINT_URL_DYNAMODB`` is set;
2. the environment the functions read (table names, fake AWS credentials, ``PAYMENT_PROVIDER=local``...), set
   **before** any handler or PynamoDB model is imported, because PynamoDB reads table names at class definition;
3. the template's tables (``devtools.local_tables``) and the demo catalog (``devtools/demo/wonderai.yaml``);
4. a threading HTTP server on ``127.0.0.1:PORT`` (default 3000), HTTP/1.1 with keep-alive: every response goes out in
   one write on a ``TCP_NODELAY`` socket, so a client that keeps its connection open does not wait for Nagle and
   delayed ACKs (~40 ms a request) between the headers and the body.

How requests reach the handlers (the same events AWS would send):

- every ``HttpApi`` route of ``template.yaml`` becomes an API Gateway **HTTP API payload 2.0** event for its function;
  the most specific route wins (``/credits/ledger`` before ``/credits/{offerGroup}``), as in API Gateway;
- the server plays the **JWT authorizer**: ``Authorization: Bearer <HS256 JWT>`` signed with ``LOCAL_JWT_SECRET``
  (default ``local-dev-secret``; ``exp``/``nbf`` checked, ``aud``/``iss`` checked when present). Without a valid token
  it answers ``401 {"error": "unauthorized"}`` and never calls the handler. The claims go to
  ``requestContext.authorizer.jwt.claims`` as strings, like API Gateway passes them;
- a path no route matches **and** a known path with another method both answer ``404 not_found``: API Gateway HTTP
  APIs have no 405, they answer 404 for any method/path pair without a route;
- ``POST /webhooks/stripe`` goes to the Stripe webhook function as a **Lambda Function URL** event (no authorizer, raw
  body byte-exact, base64 when it is not UTF-8);
- ``/openapi.json`` is the merged OpenAPI document of every HTTP function (Powertools ``OpenAPIMerge``) with a bearer
  JWT security scheme, and ``/docs`` is Swagger UI served from the assets bundled with Powertools (no CDN);
- ``POST /_local/payments/{paymentIntentId}/succeed|fail|require-action|refund`` plays the payment provider of
  ``PAYMENT_PROVIDER=local`` (api-contract.md "Local payment simulation"): it finds the order of the intent (GSI
  ``ByPaymentIntent``), builds the Stripe event Stripe would send (``payment_intent.succeeded``,
  ``payment_intent.payment_failed``, ``payment_intent.requires_action``, ``charge.refunded``), signs it with
  ``LOCAL_WEBHOOK_SECRET`` and delivers it to the webhook function, so the same code path runs as with Stripe;
- CORS preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered from the HttpApi's
  ``CorsConfiguration``, without the authorizer, as API Gateway does;
- ``/_local/events`` is a tiny EventBridge ``PutEvents`` endpoint (``AWS_ENDPOINT_URL_EVENTBRIDGE`` points there), so
  the events the functions publish are logged instead of going to AWS; ``GET /_local/events`` lists the last ones;
- ``POST /_local/expiry-scan`` runs the expiry scan now, as its schedule would (the scheduled event of
  ``events/expiry_scan/scheduled.json`` stamped with the local clock's time), and answers what the run did;
- ``GET /_local/clock`` answers the **test clock** every function reads (``{"now"}``), and ``POST /_local/clock``
  with ``{"advanceSeconds": n}`` (n >= 0) or ``{"set": "<ISO-8601 time with a timezone>"}`` moves it (``set``: that
  time now, then flowing with the real time). The clock is a small state file (``usercredits.adapters.clock``) named
  by ``LOCAL_CLOCK_FILE``: yours if you set it (``make invoke`` then reads the same clock), else a temporary file
  made at start-up and removed at exit. A deployed stack never has it (the settings refuse it in AWS Lambda).

One Lambda container runs one request at a time, and Powertools' resolvers keep the current event on the module-level
``app``, so calls are serialised per function. A handler that raises answers 500 and the server keeps running.
"""

from __future__ import annotations

import base64
import contextlib
import http
import importlib
import io
import json
import os
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.lambda_context import ACCOUNT_ID, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_SECONDS, REGION, LambdaContext
from devtools.stream_pump import StreamPump

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS_DIR = ROOT / "functions"
SHARED_DIR = ROOT / "shared"
DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"
DEFAULT_PORT = 3000
DEFAULT_DYNAMODB_PORT = 8000
DEFAULT_JWT_SECRET = "local-dev-secret"
JWT_AUDIENCE = "user-credits"
JWT_ISSUER = "user-credits-local"
WEBHOOK_PATH = "/webhooks/stripe"
EVENTS_PATH = "/_local/events"
EXPIRY_SCAN_PATH = "/_local/expiry-scan"
CLOCK_PATH = "/_local/clock"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


def local_environment(events_endpoint: str | None = None, clock_file: str | None = None) -> dict[str, str]:
    """The variables the functions need locally; ``configure_environment`` applies them without overriding yours.

    ``clock_file``: the test clock's state file (``LOCAL_CLOCK_FILE``), when the caller serves one (the dev server).
    """
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "CREDITS_TABLE_NAME": "user-credits-credits-local",
        "CUSTOMERS_TABLE_NAME": "user-credits-customers-local",
        "EVENT_BUS_NAME": "user-credits-local",
        "PAYMENT_PROVIDER": "local",
        "DEFAULT_CURRENCY": "usd",
        "LOCAL_WEBHOOK_SECRET": "whsec_local",
        "LOCAL_JWT_SECRET": DEFAULT_JWT_SECRET,
        "POWERTOOLS_SERVICE_NAME": "user-credits",
        "POWERTOOLS_METRICS_NAMESPACE": "UserCredits",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # EMF blobs after every request drown the request log; set it to false to see them.
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    if events_endpoint:
        env["AWS_ENDPOINT_URL_EVENTBRIDGE"] = events_endpoint  # botocore: AWS_ENDPOINT_URL_<service id "EventBridge">
    if clock_file:
        env["LOCAL_CLOCK_FILE"] = clock_file
    return env


def configure_environment(
    dynamodb_endpoint: str, events_endpoint: str | None = None, clock_file: str | None = None
) -> None:
    """Point boto3/PynamoDB at ``dynamodb_endpoint`` and set every other variable that is not set yet.

    Must run before ``usercredits`` or any handler is imported. Real AWS credentials in the environment are replaced
    by fake ones: nothing local should ever reach an AWS account.
    """
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    env = local_environment(events_endpoint, clock_file)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = env.pop(name)
    for name, value in env.items():
        os.environ.setdefault(name, value)
    for path in (str(SHARED_DIR), str(FUNCTIONS_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)


def prepare_tables_and_catalog(catalog: Path = DEMO_CATALOG) -> int:
    """Create the template's tables (if missing) and load ``catalog``; return the number of offers loaded."""
    import boto3

    from devtools.catalog import load_catalog
    from devtools.local_tables import create_tables

    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    create_tables(client)
    return load_catalog(str(catalog))


# --------------------------------------------------------------------------------------------------------- Lambda side
@dataclass(frozen=True)
class FunctionConfig:
    """What the server needs to know about one function of the template."""

    logical_id: str
    handler: str  # "ordering.handler.lambda_handler"
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS

    @property
    def folder(self) -> str:
        return self.handler.split(".", 1)[0]

    def context(self) -> LambdaContext:
        return LambdaContext(f"user-credits-{self.folder}-local", self.memory_mb, self.timeout_seconds)


def function_configs(template: dict[str, Any] | None = None) -> dict[str, FunctionConfig]:
    """Function folder -> config, from the template's functions (memory and timeout fall back to Globals)."""
    from devtools.cfn import load_template, resources_of_type

    template = template or load_template()
    defaults = (template.get("Globals") or {}).get("Function") or {}
    configs = {}
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items():
        props = resource.get("Properties") or {}
        memory = props.get("MemorySize", defaults.get("MemorySize", DEFAULT_MEMORY_MB))
        timeout = props.get("Timeout", defaults.get("Timeout", DEFAULT_TIMEOUT_SECONDS))
        config = FunctionConfig(
            logical_id,
            props["Handler"],
            memory if isinstance(memory, int) else DEFAULT_MEMORY_MB,
            timeout if isinstance(timeout, int) else DEFAULT_TIMEOUT_SECONDS,
        )
        configs[config.folder] = config
    return configs


class HandlerRegistry:
    """Imports each function's entry point once and calls it one request at a time per function."""

    def __init__(self, configs: dict[str, FunctionConfig]) -> None:
        self.configs = configs
        self._handlers: dict[str, Callable[[dict[str, Any], Any], Any]] = {}
        self._errors: dict[str, str] = {}
        self._locks = {name: threading.Lock() for name in configs}
        self._import_lock = threading.Lock()

    def load(self, folder: str) -> Callable[[dict[str, Any], Any], Any] | None:
        """The function's ``lambda_handler`` (imported on first use); ``None`` and a stored error if it fails."""
        with self._import_lock:
            if folder in self._handlers or folder in self._errors:
                return self._handlers.get(folder)
            config = self.configs.get(folder) or FunctionConfig(folder, f"{folder}.handler.lambda_handler")
            module_name, _, attribute = config.handler.rpartition(".")
            try:
                self._handlers[folder] = getattr(importlib.import_module(module_name), attribute)
            except Exception as exc:  # noqa: BLE001 - the server must keep serving the other functions
                self._errors[folder] = f"{type(exc).__name__}: {exc}"
                log(f"cannot import {config.handler}: {self._errors[folder]}; its routes answer 500")
                if not (isinstance(exc, ModuleNotFoundError) and exc.name == module_name):
                    traceback.print_exc()
            return self._handlers.get(folder)

    def error(self, folder: str) -> str | None:
        return self._errors.get(folder)

    def invoke(self, folder: str, event: dict[str, Any]) -> Any:
        """Run the function on ``event`` (raises what the handler raises)."""
        handler = self.load(folder)
        if handler is None:
            raise HandlerUnavailableError(f"{folder} could not be imported: {self._errors[folder]}")
        config = self.configs.get(folder) or FunctionConfig(folder, f"{folder}.handler.lambda_handler")
        with self._locks.setdefault(folder, threading.Lock()):
            return handler(event, config.context())


class HandlerUnavailableError(RuntimeError):
    """The function's module could not be imported (its route answers 500 with the reason)."""


# ---------------------------------------------------------------------------------------------------------- routing
@dataclass(frozen=True)
class Route:
    """An HttpApi route compiled for matching; ``specificity`` sorts literal segments before parameters."""

    method: str
    path: str
    function: str
    authorized: bool
    pattern: re.Pattern[str]
    specificity: tuple[int, ...]

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def compile_route(method: str, path: str, function: str, authorized: bool = True) -> Route:
    """``/orders/{orderId}`` -> a regex with named groups; ``{proxy+}`` matches the rest of the path."""
    parts, rank = [], []
    for segment in path.strip("/").split("/"):
        if greedy := re.fullmatch(r"\{(\w+)\+\}", segment):
            parts.append(f"(?P<{greedy.group(1)}>.+)")
            rank.append(2)
        elif param := re.fullmatch(r"\{(\w+)\}", segment):
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
            rank.append(1)
        else:
            parts.append(re.escape(segment))
            rank.append(0)
    regex = "^/" + "/".join(parts) + "$" if path.strip("/") else "^/$"
    return Route(method.upper(), path, function, authorized, re.compile(regex), tuple(rank))


def _route_is_authorized(event_properties: dict[str, Any]) -> bool:
    authorizer = ((event_properties.get("Auth") or {}).get("Authorizer")) or ""
    return authorizer != "NONE"


def template_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi route of the template (``devtools.cfn.http_routes``), compiled and most specific first."""
    from devtools.cfn import http_routes, load_template, resources_of_type

    template = template or load_template()
    unauthorized = set()
    for resource in resources_of_type("AWS::Serverless::Function", template).values():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            props = event.get("Properties") or {}
            if event.get("Type") == "HttpApi" and not _route_is_authorized(props):
                unauthorized.add((str(props.get("Method", "")).upper(), props.get("Path")))
    routes = [
        compile_route(r.method, r.path, r.function, (r.method, r.path) not in unauthorized)
        for r in http_routes(template)
    ]
    return sorted(routes, key=lambda route: (route.specificity, route.path, route.method))


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The most specific route for ``method path`` (``ANY`` matches every method), with decoded path parameters."""
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        if found := route.pattern.match(path):
            return route, {name: urllib.parse.unquote(value) for name, value in found.groupdict().items()}
    return None


# ------------------------------------------------------------------------------------------------------ authorizer
class UnauthorizedRequestError(Exception):
    """No valid bearer token: the server answers 401 like API Gateway's JWT authorizer."""


def jwt_secret() -> str:
    return os.environ.get("LOCAL_JWT_SECRET") or DEFAULT_JWT_SECRET


def verify_bearer(authorization: str | None, secret: str | None = None) -> dict[str, Any]:
    """Verify ``Bearer <HS256 JWT>`` and return its claims, or raise :class:`UnauthorizedRequestError`."""
    import jwt

    if not authorization:
        raise UnauthorizedRequestError("missing Authorization header (Bearer <JWT>; make token USER=alice)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedRequestError("the Authorization header must be 'Bearer <JWT>'")
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            secret or jwt_secret(),
            algorithms=["HS256"],
            options={"require": ["sub"], "verify_aud": False, "verify_iss": False},
        )
    except jwt.PyJWTError as exc:
        raise UnauthorizedRequestError(f"invalid token: {exc}") from exc
    audience = claims.get("aud")
    if audience is not None and JWT_AUDIENCE not in ([audience] if isinstance(audience, str) else audience):
        raise UnauthorizedRequestError(f"invalid token: audience must be {JWT_AUDIENCE}")
    if claims.get("iss") not in (None, JWT_ISSUER):
        raise UnauthorizedRequestError(f"invalid token: issuer must be {JWT_ISSUER}")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise UnauthorizedRequestError("invalid token: sub must be a non-empty string")
    return claims


def _claim_as_string(value: Any) -> str:
    """API Gateway hands every claim to the function as a string (arrays as ``[a b]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(_claim_as_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def authorizer_context(claims: dict[str, Any]) -> dict[str, Any]:
    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else None
    return {"jwt": {"claims": {k: _claim_as_string(v) for k, v in claims.items()}, "scopes": scopes}}


# ----------------------------------------------------------------------------------------------------------- events
@dataclass
class IncomingRequest:
    """One HTTP request as the server read it (headers keep their order and repeats)."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    host: str = "127.0.0.1"

    @classmethod
    def from_target(cls, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> IncomingRequest:
        split = urllib.parse.urlsplit(target)
        host = next((value for name, value in headers if name.lower() == "host"), "127.0.0.1")
        return cls(method.upper(), split.path or "/", split.query, headers, body, host=host)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


def _event_headers(request: IncomingRequest) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers, repeats comma-joined, plus the cookies API Gateway moves to their own field."""
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in request.headers:
        key = name.lower()
        if key == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    headers.setdefault("x-forwarded-for", request.source_ip)
    headers.setdefault("x-forwarded-proto", "http")
    headers.setdefault("x-forwarded-port", request.host.rpartition(":")[2] if ":" in request.host else "80")
    headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}")
    return headers, cookies


def _query_parameters(raw_query: str) -> dict[str, str]:
    """API Gateway's ``queryStringParameters``: decoded, repeated names comma-joined."""
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def _encode_body(body: bytes) -> tuple[str | None, bool]:
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def _request_context(request: IncomingRequest, route_key: str, path: str, domain: str) -> dict[str, Any]:
    now = time.time()
    return {
        "accountId": ACCOUNT_ID,
        "apiId": "local",
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0],
        "http": {
            "method": request.method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": request.source_ip,
            "userAgent": request.header("user-agent") or "",
        },
        "requestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii").rstrip("="),
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }


def _base_event(request: IncomingRequest, route_key: str, raw_path: str, domain: str) -> dict[str, Any]:
    headers, cookies = _event_headers(request)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": request.raw_query,
        "headers": headers,
    }
    if cookies:
        event["cookies"] = cookies
    if query := _query_parameters(request.raw_query):
        event["queryStringParameters"] = query
    event["requestContext"] = _request_context(request, route_key, raw_path, domain)
    body, is_base64 = _encode_body(request.body)
    if body is not None:
        event["body"] = body
    event["isBase64Encoded"] = is_base64
    return event


def http_api_event(
    request: IncomingRequest, route: Route, path_parameters: dict[str, str], claims: dict[str, Any] | None
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for ``route``, with the authorizer's claims."""
    event = _base_event(request, route.route_key, request.raw_path, request.host)
    if path_parameters:
        event["pathParameters"] = path_parameters
    if claims is not None:
        event["requestContext"]["authorizer"] = authorizer_context(claims)
    return event


def function_url_event(request: IncomingRequest) -> dict[str, Any]:
    """The Lambda Function URL (payload 2.0) event Stripe's POST would produce: called at the URL's root."""
    event = _base_event(request, "$default", "/", "local.lambda-url.us-east-1.on.aws")
    event["requestContext"]["accountId"] = "anonymous"
    return event


# -------------------------------------------------------------------------------------------------------- responses
@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_reply(status: int, payload: Any, extra_headers: list[tuple[str, str]] | None = None) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Reply(status, [("Content-Type", "application/json"), *(extra_headers or [])], body)


def error_reply(status: int, code: str, message: str) -> Reply:
    return json_reply(status, {"error": code, "message": message})


def _header_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)


def lambda_result_reply(result: Any) -> Reply:
    """Turn what a handler returned into HTTP, as API Gateway does for payload 2.0 (a bare value means 200 JSON)."""
    if not (isinstance(result, dict) and "statusCode" in result):
        return json_reply(200, result)
    headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items()]
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(name), _header_value(v)) for v in values)
    headers.extend(("Set-Cookie", str(cookie)) for cookie in result.get("cookies") or [])
    raw = result.get("body")
    if raw is None:
        body = b""
    elif result.get("isBase64Encoded"):
        body = base64.b64decode(raw)
    else:
        body = (raw if isinstance(raw, str) else json.dumps(raw)).encode("utf-8")
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("Content-Type", "application/json"))
    hop_by_hop = {"content-length", "transfer-encoding", "connection"}
    return Reply(int(result["statusCode"]), [(k, v) for k, v in headers if k.lower() not in hop_by_hop], body)


# --------------------------------------------------------------------------------------------------- fake EventBridge
class EventSink:
    """Answers EventBridge ``PutEvents`` calls (``AWS_ENDPOINT_URL_EVENTBRIDGE``) and keeps the last events
    published."""

    def __init__(self, keep: int = 500) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)
        self._lock = threading.Lock()

    def put_events(self, body: bytes) -> Reply:
        try:
            entries = json.loads(body or b"{}").get("Entries") or []
        except (ValueError, AttributeError):
            return json_reply(400, {"__type": "SerializationException", "message": "bad PutEvents body"})
        results = []
        with self._lock:
            for entry in entries:
                event_id = str(uuid.uuid4())
                self.events.append({"id": event_id, "time": _iso_now(), **entry})
                results.append({"EventId": event_id})
                log(
                    f"event {entry.get('Source')}/{entry.get('DetailType')} on {entry.get('EventBusName')}: "
                    f"{entry.get('Detail')}"
                )
        return Reply(
            200,
            [("Content-Type", "application/x-amz-json-1.1")],
            json.dumps({"FailedEntryCount": 0, "Entries": results}).encode(),
        )

    def list(self) -> Reply:
        with self._lock:
            return json_reply(200, {"events": list(self.events)})


def _iso_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----------------------------------------------------------------------------------------- local payment provider
LOCAL_PAYMENTS_PATH = re.compile(r"^/_local/payments/(?P<intent>[^/]+)/(?P<action>succeed|fail|require-action|refund)$")
STRIPE_EVENT_TYPES = {
    "succeed": "payment_intent.succeeded",
    "fail": "payment_intent.payment_failed",
    "require-action": "payment_intent.requires_action",
    "refund": "charge.refunded",
}


def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe would send for ``payload`` (the adapter's own ``sign_payload``)."""
    from usercredits.adapters.stripe.webhooks import sign_payload  # after the environment is set up

    return sign_payload(payload, secret, timestamp)


def find_order_by_intent(payment_intent_id: str) -> dict[str, Any] | None:
    """The order item (plain attribute values) an intent was made for, via the ``ByPaymentIntent`` GSI: the order
    itself while it is the order's intent, or the ``INTENT#<orderId>#<intentId>`` link of an abandoned one."""
    import boto3
    from boto3.dynamodb.conditions import Key

    table = boto3.resource("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"]).Table(
        os.environ["CREDITS_TABLE_NAME"]
    )
    keys = table.query(
        IndexName="ByPaymentIntent", KeyConditionExpression=Key("paymentIntentId").eq(payment_intent_id)
    )["Items"]
    for key in keys:
        sk = str(key["sk"])
        order_sk = sk if sk.startswith("ORDER#") else f"ORDER#{sk.split('#')[1]}" if sk.startswith("INTENT#") else None
        if order_sk is not None:
            item: dict[str, Any] | None = table.get_item(Key={"pk": key["pk"], "sk": order_sk}).get("Item")
            return item
    return None


def stripe_event(
    action: str, payment_intent_id: str, order: dict[str, Any], refund_amount: int | None = None
) -> dict[str, Any]:
    """The Stripe ``Event`` (API shape) the provider would send for ``action`` on the order's payment intent."""
    total = order.get("total") or {}
    amount, currency = int(total.get("amount", 0)), str(total.get("currency", "usd"))
    metadata = {"orderId": str(order.get("orderId", "")), "userId": str(order.get("userId", ""))}
    now = int(time.time())
    intent: dict[str, Any] = {
        "id": payment_intent_id,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0,
        "currency": currency,
        "status": "requires_payment_method",
        "metadata": metadata,
        "livemode": False,
        "created": now,
        "client_secret": f"{payment_intent_id}_secret_local",
        "last_payment_error": None,
        "next_action": None,
        "latest_charge": None,
    }
    if action == "succeed":
        intent |= {"status": "succeeded", "amount_received": amount, "latest_charge": f"ch_{payment_intent_id}"}
    elif action == "fail":
        intent["last_payment_error"] = {
            "type": "card_error",
            "code": "card_declined",
            "decline_code": "generic_decline",
            "message": "Your card was declined.",
        }
    elif action == "require-action":
        intent |= {"status": "requires_action", "next_action": {"type": "use_stripe_sdk"}}
    data = intent
    if action == "refund":
        # Stripe's amount_refunded is cumulative: this refund comes on top of the earlier ones.
        before = int(order.get("refundedAmount") or 0)
        if order.get("paymentIntentId") != payment_intent_id:  # an abandoned or duplicate intent of the order
            others = json.loads(str(order.get("otherIntents") or "{}"))
            before = int((others.get(payment_intent_id) or {}).get("refundedAmount") or 0)
        refunded = amount if refund_amount is None else min(amount, before + refund_amount)
        data = {
            "id": f"ch_{payment_intent_id}",
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": refunded,
            "refunded": refunded >= amount,
            "currency": currency,
            "payment_intent": payment_intent_id,
            "metadata": metadata,
            "status": "succeeded",
            "paid": True,
            "captured": True,
            "livemode": False,
            "created": now,
        }
    return {
        "id": f"evt_local_{secrets.token_hex(12)}",
        "object": "event",
        "api_version": _stripe_api_version(),
        "created": now,
        "livemode": False,
        "pending_webhooks": 1,
        "type": STRIPE_EVENT_TYPES[action],
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": data},
    }


def _stripe_api_version() -> str:
    with contextlib.suppress(Exception):
        import stripe

        return str(stripe.api_version)
    return "2025-01-01"


def _refund_amount(body: bytes) -> int | None:
    if not body.strip():
        return None
    payload = json.loads(body)
    amount = payload.get("amount") if isinstance(payload, dict) else None
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0):
        raise ValueError("amount must be a positive integer (minor units)")
    return amount


# ---------------------------------------------------------------------------------------------------- local test clock
CLOCK_USAGE = 'expected {"advanceSeconds": <number >= 0>} or {"set": "<ISO-8601 time with a timezone>"}'


@contextlib.contextmanager
def local_clock_file() -> Iterator[str]:
    """The test clock's state file: ``LOCAL_CLOCK_FILE`` if set (kept at exit: ``make invoke`` may share it), else a
    new empty file (an empty file reads as the real time) removed at exit."""
    if existing := os.environ.get("LOCAL_CLOCK_FILE"):
        yield existing
        return
    fd, path = tempfile.mkstemp(prefix="user-credits-clock-", suffix=".json")
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def clock_reply(clock_file: str | None, method: str, body: bytes) -> Reply:
    """``GET /_local/clock`` -> ``{"now"}``; ``POST`` ``{"advanceSeconds": n}`` (n >= 0: time only moves forward) or
    ``{"set": "<ISO-8601 time with a timezone>"}`` moves the clock and answers ``{"now"}``; any other body is 422."""
    if clock_file is None:
        return error_reply(404, "not_found", "this server has no local clock (LOCAL_CLOCK_FILE)")
    from usercredits.adapters import clock  # after the environment is set up (sys.path)

    if method in ("GET", "HEAD"):
        return json_reply(200, {"now": clock.format_time(clock.read_clock(clock_file))})
    if method != "POST":
        return error_reply(404, "not_found", f"no route for {method} {CLOCK_PATH}")
    try:
        now = _move_clock(clock_file, body)
    except clock.LocalClockError as exc:
        return error_reply(422, "validation_error", str(exc))
    return json_reply(200, {"now": clock.format_time(now)})


def _move_clock(clock_file: str, body: bytes) -> datetime:
    """Apply the change ``body`` asks for; what the clock shows after it (``LocalClockError`` for a bad body)."""
    from usercredits.adapters import clock

    try:
        change = json.loads(body) if body.strip() else None
    except ValueError as exc:
        raise clock.LocalClockError(f"the body is not JSON: {CLOCK_USAGE}") from exc
    if not isinstance(change, dict) or len(change) != 1 or not set(change) <= {"advanceSeconds", "set"}:
        raise clock.LocalClockError(CLOCK_USAGE)
    if "set" in change:
        if not isinstance(change["set"], str):
            raise clock.LocalClockError("set must be an ISO-8601 time with a timezone, as a string")
        now = clock.set_clock(clock_file, clock.parse_time(change["set"]))
    else:
        now = clock.advance_clock(clock_file, change["advanceSeconds"])
    log(f"local clock: {json.dumps(change)} -> {clock.format_time(now)}")
    return now


def scheduled_scan_event(clock_file: str | None = None) -> dict[str, Any]:
    """The expiry scan's scheduled event (``events/expiry_scan/scheduled.json``) stamped with the local clock's time
    (the real time without a clock file)."""
    from usercredits.adapters.clock import read_clock

    event: dict[str, Any] = json.loads((ROOT / "events" / "expiry_scan" / "scheduled.json").read_text(encoding="utf-8"))
    stamp = read_clock(clock_file).strftime("%Y-%m-%dT%H:%M:%SZ") if clock_file else _iso_now()
    event.update({"id": str(uuid.uuid4()), "time": stamp})
    return event


# ----------------------------------------------------------------------------------------------------------- CORS
@dataclass(frozen=True)
class CorsConfig:
    """The HttpApi's ``CorsConfiguration`` (parameters resolved to their defaults)."""

    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age: int | None = None

    @classmethod
    def from_template(cls, template: dict[str, Any] | None = None) -> CorsConfig | None:
        from devtools.cfn import load_template, resources_of_type

        template = template or load_template()
        parameters = template.get("Parameters") or {}

        def values(raw: Any) -> tuple[str, ...]:
            if isinstance(raw, dict) and "Ref" in raw:
                raw = str((parameters.get(raw["Ref"]) or {}).get("Default", "")).split(",")
            return tuple(str(v).strip() for v in (raw or []) if str(v).strip())

        for api in resources_of_type("AWS::Serverless::HttpApi", template).values():
            if config := (api.get("Properties") or {}).get("CorsConfiguration"):
                return cls(
                    values(config.get("AllowOrigins")),
                    values(config.get("AllowMethods")),
                    values(config.get("AllowHeaders")),
                    values(config.get("ExposeHeaders")),
                    config.get("MaxAge") if isinstance(config.get("MaxAge"), int) else None,
                )
        return None

    def origin_header(self, origin: str | None) -> list[tuple[str, str]]:
        if not origin or not ("*" in self.allow_origins or origin in self.allow_origins):
            return []
        headers = [("Access-Control-Allow-Origin", "*" if "*" in self.allow_origins else origin)]
        if self.expose_headers:
            headers.append(("Access-Control-Expose-Headers", ",".join(self.expose_headers)))
        return headers

    def preflight(self, origin: str | None) -> Reply:
        headers = self.origin_header(origin)
        if headers:
            headers = headers[:1] + [
                ("Access-Control-Allow-Methods", ",".join(self.allow_methods)),
                ("Access-Control-Allow-Headers", ",".join(self.allow_headers)),
            ]
            if self.max_age is not None:
                headers.append(("Access-Control-Max-Age", str(self.max_age)))
        return Reply(204, headers, b"")


# -------------------------------------------------------------------------------------------------------- OpenAPI UI
SECURITY_SCHEME = "bearerAuth"


def merged_openapi(base_url: str, folders: list[str]) -> str:
    """One OpenAPI document for the HTTP functions in ``folders`` (their ``app`` resolvers), with bearer JWT auth.

    The handlers are already imported as ``<folder>.handler``, and ``project_root=functions/`` makes Powertools reuse
    those modules instead of executing the files a second time.
    """
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge

    from devtools.cfn import load_template

    description = (load_template().get("Description") or "user-credits").strip()
    merge = OpenAPIMerge(
        title="user-credits (local)",
        version=_project_version(),
        description=f"{description}\n\nLocal dev server: `make token USER=alice` prints a bearer token.",
        servers=[{"url": base_url}],  # type: ignore[list-item]
        security_schemes={SECURITY_SCHEME: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},  # type: ignore[dict-item]
        security=[{SECURITY_SCHEME: []}],
        on_conflict="first",
    )
    others = sorted(p.parent.name for p in FUNCTIONS_DIR.glob("*/handler.py") if p.parent.name not in folders)
    merge.discover(
        path=FUNCTIONS_DIR,
        pattern="*/handler.py",
        exclude=[f"{name}/*" for name in others] + ["**/__pycache__/**"],
        resolver_name="app",
        project_root=FUNCTIONS_DIR,
    )
    return merge.get_openapi_json_schema()  # serialised through Powertools' OpenAPI model (enums as values)


def _project_version() -> str:
    import tomllib

    with contextlib.suppress(OSError, KeyError, tomllib.TOMLDecodeError):
        return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])
    return "0"


def swagger_page(spec_json: str) -> str:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    return generate_swagger_html(
        spec_json.replace("</", "<\\/"),
        "/docs/swagger-ui-bundle.min.js",
        "/docs/swagger-ui.min.css",
        "/docs",
        None,
        persist_authorization=True,
    )


def swagger_asset(name: str) -> bytes | None:
    import aws_lambda_powertools.event_handler.openapi.swagger_ui as ui

    if name not in ("swagger-ui-bundle.min.js", "swagger-ui.min.css"):
        return None
    return (Path(ui.__file__).parent / name).read_bytes()


# ------------------------------------------------------------------------------------------------------------ server
def log(message: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()


class DevServer(ThreadingHTTPServer):
    """The HTTP server; routing state lives here, one :class:`DevRequestHandler` per request."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], registry: HandlerRegistry, routes: list[Route], cors: CorsConfig | None = None
    ) -> None:
        super().__init__(address, DevRequestHandler)
        self.registry = registry
        self.routes = routes
        self.cors = cors
        self.events = EventSink()
        self.clock_file: str | None = None  # the test clock's state file (set by ``serve``)
        self._openapi: str | None = None
        self._openapi_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def openapi_json(self) -> str:
        with self._openapi_lock:
            if self._openapi is None:
                folders = sorted({route.function for route in self.routes})
                for folder in folders:
                    self.registry.load(folder)
                self._openapi = merged_openapi(self.base_url, folders)
            return self._openapi

    def dispatch(self, request: IncomingRequest) -> tuple[Reply, str]:
        """Answer ``request``; also return what served it (for the request log)."""
        reply, served_by = self._dispatch(request)
        if self.cors and served_by not in ("docs", "events", "cors"):
            reply.headers.extend(self.cors.origin_header(request.header("origin")))
        return reply, served_by

    def _dispatch(self, request: IncomingRequest) -> tuple[Reply, str]:
        if local := self._local_tools(request):
            return local
        if self.cors and request.method == "OPTIONS" and request.header("access-control-request-method"):
            return self.cors.preflight(request.header("origin")), "cors"
        found = match_route(self.routes, request.method, request.raw_path)
        if found is None:
            return error_reply(404, "not_found", f"no route for {request.method} {request.raw_path}"), "-"
        route, params = found
        claims = None
        if route.authorized:
            try:
                claims = verify_bearer(request.header("authorization"))
            except UnauthorizedRequestError as exc:
                return error_reply(401, "unauthorized", str(exc)), route.function
        return self._invoke(route.function, http_api_event(request, route, params, claims)), route.function

    def _local_tools(self, request: IncomingRequest) -> tuple[Reply, str] | None:
        """What API Gateway does not serve: the webhook's Function URL, payments, events, the expiry scan, the test
        clock, OpenAPI and Swagger UI."""
        path, method = request.raw_path, request.method
        reply: Reply | None = None
        if path == WEBHOOK_PATH and method == "POST":
            return self._invoke("stripe_webhook", function_url_event(request)), "stripe_webhook"
        if path == EVENTS_PATH or path.startswith(EVENTS_PATH + "/"):
            return (self.events.put_events(request.body) if method == "POST" else self.events.list()), "events"
        if method == "POST" and (simulated := LOCAL_PAYMENTS_PATH.match(path)):
            return self._simulate_payment(simulated["intent"], simulated["action"], request), "local-payments"
        if method == "POST" and path == EXPIRY_SCAN_PATH:
            return self._scan_now(), "expiry_scan"
        if path == CLOCK_PATH:
            return clock_reply(self.clock_file, method, request.body), "clock"
        if method in ("GET", "HEAD"):
            reply = self._docs(path, request.raw_query)
        return (reply, "docs") if reply else None

    def _scan_now(self) -> Reply:
        """Run the expiry scan as its schedule would; answer its report (what it expired, released and sent)."""
        event = scheduled_scan_event(self.clock_file)
        try:
            report = self.registry.invoke("expiry_scan", event)
        except Exception as exc:  # noqa: BLE001 - a broken scan must not take the server down
            log(f"expiry_scan raised {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return error_reply(500, "internal_error", f"expiry_scan raised {type(exc).__name__} (see the server log)")
        log(f"expiry scan: {report}")
        return json_reply(200, report)

    def _docs(self, path: str, raw_query: str) -> Reply | None:
        query = dict(urllib.parse.parse_qsl(raw_query))
        if path == "/openapi.json" or (path == "/docs" and query.get("format") == "json"):
            return Reply(200, [("Content-Type", "application/json")], self.openapi_json().encode())
        if path == "/docs" and query.get("format") == "oauth2-redirect":
            from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_oauth2_redirect_html

            return Reply(200, [("Content-Type", "text/html")], generate_oauth2_redirect_html().encode())
        if path in ("/docs", "/docs/"):
            return Reply(
                200, [("Content-Type", "text/html; charset=utf-8")], swagger_page(self.openapi_json()).encode()
            )
        if path.startswith("/docs/") and (asset := swagger_asset(path.removeprefix("/docs/"))) is not None:
            kind = "text/css" if path.endswith(".css") else "application/javascript"
            return Reply(200, [("Content-Type", kind), ("Cache-Control", "max-age=3600")], asset)
        return None

    def _simulate_payment(self, payment_intent_id: str, action: str, request: IncomingRequest) -> Reply:
        """Deliver the Stripe event of ``action`` for the intent to the webhook function, signed like Stripe."""
        try:
            refund_amount = _refund_amount(request.body) if action == "refund" else None
        except ValueError as exc:
            return error_reply(422, "validation_error", f"invalid body: {exc}")
        order = find_order_by_intent(payment_intent_id)
        if order is None:
            return error_reply(404, "not_found", f"no order has the payment intent {payment_intent_id}")
        event = stripe_event(action, payment_intent_id, order, refund_amount)
        payload = json.dumps(event, separators=(",", ":")).encode()
        signature = stripe_signature(payload, os.environ.get("LOCAL_WEBHOOK_SECRET") or "whsec_local")
        delivery = IncomingRequest(
            "POST",
            WEBHOOK_PATH,
            "",
            [
                ("Host", request.host),
                ("Content-Type", "application/json; charset=utf-8"),
                ("User-Agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)"),
                ("Stripe-Signature", signature),
            ],
            payload,
            request.source_ip,
            request.host,
        )
        reply = self._invoke("stripe_webhook", function_url_event(delivery))
        log(f"local payment: {event['type']} {event['id']} for order {order.get('orderId')} -> webhook {reply.status}")
        try:
            webhook_body: Any = json.loads(reply.body) if reply.body else None
        except ValueError:
            webhook_body = reply.body.decode("utf-8", "replace")
        status = 200 if 200 <= reply.status < 300 else 502
        return json_reply(
            status,
            {
                "paymentIntentId": payment_intent_id,
                "orderId": order.get("orderId"),
                "event": {"id": event["id"], "type": event["type"]},
                "webhook": {"status": reply.status, "body": webhook_body},
            },
        )

    def _invoke(self, folder: str, event: dict[str, Any]) -> Reply:
        try:
            return lambda_result_reply(self.registry.invoke(folder, event))
        except Exception as exc:  # noqa: BLE001 - a broken handler must not take the server down
            log(f"{folder} raised {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return error_reply(500, "internal_error", f"{folder} raised {type(exc).__name__} (see the server log)")


class ResponseWriter(io.BufferedIOBase):
    """The handler's ``wfile``: keeps what is written (status line, headers, body) and sends it in one ``sendall`` on
    :meth:`flush`.

    ``BaseHTTPRequestHandler`` writes the headers and the body separately; two small writes on a kept-alive connection
    meet Nagle's algorithm and the client's delayed ACK, and every request waited ~40 ms for the body.
    """

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self._sock = sock
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._pending += view
        return view.nbytes

    def flush(self) -> None:
        if self._pending:
            data, self._pending = self._pending, bytearray()  # cleared first: a failed send is not sent again
            self._sock.sendall(data)


class DevRequestHandler(BaseHTTPRequestHandler):
    """Reads the request, lets :class:`DevServer` answer it, writes the reply and one log line.

    Each response goes out in one write (:class:`ResponseWriter`) on a ``TCP_NODELAY`` socket, and always with a
    ``Content-Length``, so HTTP/1.1 clients keep their connection without stalling.
    """

    server: DevServer
    protocol_version = "HTTP/1.1"
    server_version = "user-credits-devserver"
    disable_nagle_algorithm = True  # StreamRequestHandler.setup sets TCP_NODELAY on the accepted socket

    def version_string(self) -> str:
        return self.server_version

    def setup(self) -> None:
        super().setup()
        self.wfile = ResponseWriter(self.connection)

    def handle_one_request(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle_one_request()
            self.wfile.flush()  # the stdlib's own error replies (send_error) return before its flush

    def handle_expect_100(self) -> bool:
        """``Expect: 100-continue``: the interim ``100`` must leave now, before the body is read."""
        proceed = super().handle_expect_100()
        self.wfile.flush()
        return proceed

    def __getattr__(self, name: str) -> Any:
        # Every method (GET, POST, PATCH, HEAD, OPTIONS, ...) goes through the same path, as in API Gateway.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _serve(self) -> None:
        started = time.perf_counter()
        try:
            body = self._read_body()
        except ValueError as exc:
            self._send(error_reply(400, "bad_request", str(exc)), started, "-", close=True)
            return
        if body is None:
            self._send(
                error_reply(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes"),
                started,
                "-",
                close=True,
            )
            return
        request = IncomingRequest.from_target(self.command, self.path, list(self.headers.items()), body)
        request.source_ip = self.client_address[0]
        reply, served_by = self.server.dispatch(request)
        self._send(reply, started, served_by)

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError as exc:
            raise ValueError("invalid Content-Length") from exc
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _read_chunked(self) -> bytes | None:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024).split(b";", 1)[0].strip()
            try:
                size = int(line, 16)
            except ValueError as exc:
                raise ValueError("invalid chunked body") from exc
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            chunks.append(self.rfile.read(size))
            self.rfile.readline(1024)

    def _send(self, reply: Reply, started: float, served_by: str, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("apigw-requestid", uuid.uuid4().hex[:16])
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.wfile.flush()  # status line, headers and body in one write
        elapsed = (time.perf_counter() - started) * 1000
        log(
            f'{self.client_address[0]} "{self.command} {self.path}" {reply.status} {len(reply.body)}B '
            f"{elapsed:.0f}ms [{served_by}]"
        )

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """The stdlib's own lines are replaced by the one :meth:`_send` writes; keep its error lines."""
        if not format.startswith('"%s" %s'):
            log(f"{self.client_address[0]} {format % args}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests (the stdlib's parser rejects them) get the contract's JSON error shape too."""
        reply = error_reply(
            code, "bad_request" if code < 500 else "internal_error", message or http.HTTPStatus(code).phrase
        )
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.send_response(code, message)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)


# -------------------------------------------------------------------------------------------------------------- main
@contextlib.contextmanager
def dynamodb_endpoint() -> Iterator[tuple[str, bool]]:
    """``AWS_ENDPOINT_URL_DYNAMODB`` if set, else a DynamoDB Local started on ``DYNAMODB_PORT`` for the duration."""
    if endpoint := os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        yield endpoint, False
        return
    from devtools.dynamodb_local import running_dynamodb_local

    with running_dynamodb_local(int(os.environ.get("DYNAMODB_PORT") or DEFAULT_DYNAMODB_PORT)) as endpoint:
        yield endpoint, True


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    # Shutting down takes about a second; a second Ctrl-C must not cut the DynamoDB Local clean-up short.
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def _banner(server: DevServer, endpoint: str, started_engine: bool, offers: int) -> str:
    url = server.base_url
    engine = "DynamoDB Local (in memory, stopped on exit)" if started_engine else "existing endpoint"
    routes = "\n".join(
        f"    {r.method:6} {r.path:52} -> {r.function}" for r in sorted(server.routes, key=lambda r: (r.path, r.method))
    )
    return f"""
user-credits dev server
  API          {url}   (routes below; Bearer JWT required)
  Swagger UI   {url}/docs
  OpenAPI      {url}/openapi.json
  Webhook      POST {url}{WEBHOOK_PATH}   (signed with LOCAL_WEBHOOK_SECRET={os.environ["LOCAL_WEBHOOK_SECRET"]})
  Payments     POST {url}/_local/payments/<paymentIntentId>/succeed|fail|require-action|refund
  Events       {url}{EVENTS_PATH}   (EventBridge PutEvents are logged here; GET lists them)
  Expiry scan  POST {url}{EXPIRY_SCAN_PATH}   (runs the scheduled expiry scan now)
  Clock        GET|POST {url}{CLOCK_PATH}   (test clock: {{"advanceSeconds": n}} or {{"set": "<ISO time>"}})
               LOCAL_CLOCK_FILE={server.clock_file}   (every function reads it; make invoke too, if exported)
  DynamoDB     {endpoint}   {engine}
  Tables       {os.environ["CREDITS_TABLE_NAME"]}, {os.environ["CUSTOMERS_TABLE_NAME"]}; demo catalog: {offers} offers
  JWT secret   LOCAL_JWT_SECRET={jwt_secret()}   (HS256)
  Token        make token USER=alice   (ADMIN=1 for the admin scope)
               curl -H "Authorization: Bearer $(make -s token USER=alice)" {url}/offers
  Routes
{routes}
Ctrl-C stops the server and DynamoDB Local.
"""


def quiet_warnings() -> None:
    """Silence two warnings that would follow every request: the short default HS256 secret, and Powertools
    reminding that a request published no metric (metrics are off locally, see ``local_environment``)."""
    from jwt.warnings import InsecureKeyLengthWarning

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    warnings.filterwarnings("ignore", message="No application metrics to publish")


def serve(port: int, host: str = "127.0.0.1") -> int:
    """Start everything, serve until Ctrl-C/SIGTERM/SIGHUP, stop everything; the process exit code."""
    # SIGINT explicitly too: a shell starting us in the background would have it ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_keyboard_interrupt)
    quiet_warnings()
    registry = HandlerRegistry(function_configs())
    # Bind first: a busy port should fail before DynamoDB Local is started for nothing.
    try:
        server = DevServer((host, port), registry, template_routes(), CorsConfig.from_template())
    except OSError as exc:
        print(f"error: cannot serve on {host}:{port}: {exc} (choose another with PORT=...)", file=sys.stderr)
        return 1
    try:
        with dynamodb_endpoint() as (endpoint, started_engine), local_clock_file() as clock_file:
            configure_environment(endpoint, f"{server.base_url}{EVENTS_PATH}", clock_file)
            server.clock_file = clock_file
            offers = prepare_tables_and_catalog()
            for folder in sorted({route.function for route in server.routes} | {"stripe_webhook", "event_publisher"}):
                registry.load(folder)
            pump = StreamPump(endpoint, lambda batch: registry.invoke("event_publisher", batch)).start()
            try:
                server.openapi_json()  # fail early in the log, not on the first /docs
            except Exception as exc:  # noqa: BLE001 - the API still works without its document
                log(f"cannot build /openapi.json: {type(exc).__name__}: {exc}")
            print(_banner(server, endpoint, started_engine, offers), flush=True)
            try:
                server.serve_forever(poll_interval=0.2)
            finally:
                pump.stop()
                log("dev server stopped" + ("; stopping DynamoDB Local" if started_engine else ""))
    except KeyboardInterrupt:
        return 0
    finally:
        server.server_close()
    return 0


def main() -> int:
    from devtools.dynamodb_local import DynamoDBLocalError

    try:
        return serve(int(os.environ.get("PORT") or DEFAULT_PORT))
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
