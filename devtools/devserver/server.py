"""The dev server: what answers each request (:class:`DevServer`), and ``serve``, which starts everything around it
and stops it again (see the package's docstring)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from http.server import ThreadingHTTPServer
from typing import Any

from devtools.devserver.auth import UnauthorizedRequestError, token_scopes, verify_bearer
from devtools.devserver.cors import CorsConfig
from devtools.devserver.environment import (
    DEFAULT_PORT,
    configure_environment,
    dynamodb_endpoint,
    prepare_tables_and_catalog,
    quiet_warnings,
)
from devtools.devserver.event_sink import EventSink
from devtools.devserver.events import IncomingRequest, function_url_request_event, http_api_request_event
from devtools.devserver.functions import HandlerRegistry, function_configs
from devtools.devserver.http_handler import DevRequestHandler
from devtools.devserver.local_clock import clock_reply, local_clock_file, scheduled_scan_event
from devtools.devserver.local_provider import simulate_payment
from devtools.devserver.local_stripe import LocalStripe, put_demo_plans
from devtools.devserver.log import log
from devtools.devserver.openapi_ui import docs_reply, merged_openapi
from devtools.devserver.paths import CLOCK_PATH, EVENTS_PATH, EXPIRY_SCAN_PATH, LOCAL_PAYMENTS_PATH, WEBHOOK_PATH
from devtools.devserver.replies import Reply, error_reply, json_reply, lambda_result_reply
from devtools.devserver.routes import Route, match_route, template_routes
from devtools.jwt_tokens import jwt_secret
from devtools.stream_pump import StreamPump


class DevServer(ThreadingHTTPServer):
    """The HTTP server; routing state lives here, one :class:`DevRequestHandler` per request."""

    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog: the stdlib's 5 made bursts of concurrent clients see refused or reset connections (API
    # Gateway never refuses a connection). Each connection gets its own thread; each function still runs one
    # request at a time, as one Lambda container does (``HandlerRegistry.invoke``).
    request_queue_size = 256
    stripe: LocalStripe | None = None  # the Stripe simulation (set by ``serve``)

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
        if self.stripe is not None:  # what the request changed at Stripe reaches the webhook before the answer
            self.stripe.deliver_pending(request, self._invoke)
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
            if route.scopes and not set(route.scopes) & token_scopes(claims):
                # API Gateway's JWT authorizer: a token without one of the route's AuthorizationScopes is a 403.
                return error_reply(403, "forbidden", f"this route needs the {' or '.join(route.scopes)} scope"), "-"
        return self._invoke(route.function, http_api_request_event(request, route, params, claims)), route.function

    def _local_tools(self, request: IncomingRequest) -> tuple[Reply, str] | None:
        """What API Gateway does not serve: the webhook's Function URL, payments, events, the expiry scan, the test
        clock, OpenAPI and Swagger UI."""
        path, method = request.raw_path, request.method
        reply: Reply | None = None
        if path == WEBHOOK_PATH and method == "POST":
            return self._invoke("stripe_webhook", function_url_request_event(request)), "stripe_webhook"
        if path == EVENTS_PATH or path.startswith(EVENTS_PATH + "/"):
            return (self.events.put_events(request.body) if method == "POST" else self.events.list()), "events"
        if method == "POST" and (simulated := LOCAL_PAYMENTS_PATH.match(path)):
            return simulate_payment(simulated["intent"], simulated["action"], request, self._invoke), "local-payments"
        if method == "POST" and path == EXPIRY_SCAN_PATH:
            return self._scan_now(), "expiry_scan"
        if simulated_time := self._clock_and_stripe(request):
            return simulated_time
        if method in ("GET", "HEAD"):
            reply = docs_reply(path, request.raw_query, self.openapi_json)
        return (reply, "docs") if reply else None

    def _clock_and_stripe(self, request: IncomingRequest) -> tuple[Reply, str] | None:
        """The test clock (moving it renews the Stripe simulation's subscriptions whose period ended, as Stripe's
        test clocks do) and the simulation's ``/_local/stripe/...`` controls."""
        if request.raw_path == CLOCK_PATH:
            reply = clock_reply(self.clock_file, request.method, request.body)
            if request.method == "POST" and reply.status == 200 and self.stripe is not None:
                self.stripe.renew_due(request, self._invoke)
            return reply, "clock"
        if self.stripe is not None and (reply := self.stripe.reply(request, self._invoke)):
            return reply, "local-stripe"
        return None

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

    def _invoke(self, folder: str, event: dict[str, Any]) -> Reply:
        try:
            return lambda_result_reply(self.registry.invoke(folder, event))
        except Exception as exc:  # noqa: BLE001 - a broken handler must not take the server down
            log(f"{folder} raised {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return error_reply(500, "internal_error", f"{folder} raised {type(exc).__name__} (see the server log)")


# -------------------------------------------------------------------------------------------------------------- main
def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    # Shutting down takes about a second; a second Ctrl-C must not cut the DynamoDB Local clean-up short.
    for other in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def _banner(server: DevServer, endpoint: str, started_engine: bool, offers: int, plans: int) -> str:
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
  Stripe       {os.environ.get("LOCAL_STRIPE_API_BASE", "-")}   (the simulated Stripe API the functions call)
               POST {url}/_local/stripe/subscriptions/<sub_id>/renew|fail-next-invoice
               POST {url}/_local/stripe/charges/<ch_id>/refund|dispute
               POST {url}/_local/stripe/disputes/<dp_id>/win|lose
               GET  {url}/_local/stripe/v1/...   GET {url}/_local/stripe/deliveries   (objects; webhook deliveries)
  Clock        GET|POST {url}{CLOCK_PATH}   (test clock: {{"advanceSeconds": n}} or {{"set": "<ISO time>"}})
               LOCAL_CLOCK_FILE={server.clock_file}   (every function reads it; make invoke too, if exported)
  DynamoDB     {endpoint}   {engine}
  Tables       {os.environ["CREDITS_TABLE_NAME"]}, {os.environ["CUSTOMERS_TABLE_NAME"]}
  Demo data    {offers} offers (devtools/demo/wonderai.yaml), {plans} plans (devtools/demo/plans.yaml)
  JWT secret   LOCAL_JWT_SECRET={jwt_secret()}   (HS256)
  Token        make token USER=alice   (ADMIN=1 for the admin scope)
               curl -H "Authorization: Bearer $(make -s token USER=alice)" {url}/offers
  Routes
{routes}
Ctrl-C stops the server and DynamoDB Local.
"""


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
            server.stripe = LocalStripe(clock_file)
            stripe_api_base = server.stripe.start()
            configure_environment(endpoint, f"{server.base_url}{EVENTS_PATH}", clock_file, stripe_api_base)
            server.clock_file = clock_file
            offers = prepare_tables_and_catalog()
            plans = put_demo_plans()
            for folder in sorted({route.function for route in server.routes} | {"stripe_webhook", "event_publisher"}):
                registry.load(folder)
            pumps = [  # both tables' outbox streams, as the publisher's two mappings (README "Events")
                StreamPump(endpoint, lambda batch: registry.invoke("event_publisher", batch), table=table).start()
                for table in (os.environ["CREDITS_TABLE_NAME"], os.environ["CUSTOMERS_TABLE_NAME"])
            ]
            try:
                server.openapi_json()  # fail early in the log, not on the first /docs
            except Exception as exc:  # noqa: BLE001 - the API still works without its document
                log(f"cannot build /openapi.json: {type(exc).__name__}: {exc}")
            print(_banner(server, endpoint, started_engine, offers, plans), flush=True)
            try:
                server.serve_forever(poll_interval=0.2)
            finally:
                for pump in pumps:
                    pump.stop()
                server.stripe.stop()
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
