"""Run one handler on one event file against the local tables (``make invoke FUNCTION=ordering EVENT=...``).

``python -m devtools.invoke --function ordering --event events/ordering/list_offers.json [--user alice [--admin]]``

- DynamoDB: ``AWS_ENDPOINT_URL_DYNAMODB`` if set; else the engine on ``127.0.0.1:DYNAMODB_PORT`` (default 8000, e.g. the
  one ``make run`` started) when it answers; else a DynamoDB Local started for this call only, with the tables and the
  demo catalog. Tables missing on an existing engine are created (and the demo catalog loaded into them).
- EventBridge: what the function publishes goes to an in-process fake and is printed to stderr.
- ``stripe_webhook`` events are re-signed with ``LOCAL_WEBHOOK_SECRET`` (``Stripe-Signature: t=<now>,v1=<hmac>``), so
  the canned body passes the signature check today.
- ``--user``/``--admin`` replace the JWT claims of an HTTP API event (as the dev server's authorizer would set them).

The handler's logs go to stderr; stdout gets only the handler's result, as JSON. Exit code 1 if the handler raised.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devtools.devserver.environment import (
    DEFAULT_DYNAMODB_PORT,
    FUNCTIONS_DIR,
    configure_environment,
    prepare_tables_and_catalog,
    quiet_warnings,
)
from devtools.devserver.event_sink import EventSink
from devtools.devserver.functions import HandlerRegistry, HandlerUnavailableError, function_configs
from devtools.devserver.log import log
from devtools.devserver.paths import EVENTS_PATH
from devtools.dynamodb_local import DynamoDBLocalError, is_answering, running_dynamodb_local
from devtools.jwt_tokens import AUDIENCE, ISSUER
from devtools.lambda_events import caller_claims, http_api_event, sign_webhook_event

DEFAULT_WEBHOOK_SECRET = "whsec_local"


def with_caller(event: dict[str, Any], user: str, admin: bool) -> dict[str, Any]:
    """A copy of an HTTP API event whose authorizer claims are those of ``user`` (with the admin scope if asked)."""
    now = int(time.time())
    claims = caller_claims(user, admin=admin) | {"iat": now, "exp": now + 3600, "iss": ISSUER, "aud": AUDIENCE}
    return http_api_event(event, claims=claims)


@contextlib.contextmanager
def event_sink() -> Iterator[str]:
    """Serve a fake EventBridge on a free local port for the ``with`` block; yield its endpoint URL."""
    sink = EventSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            reply = sink.put_events(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(reply.status)
            for name, value in reply.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{EVENTS_PATH}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def local_dynamodb() -> Iterator[tuple[str, bool]]:
    """(endpoint, fresh): the configured or running engine, or one started for this call (``fresh``)."""
    if endpoint := os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        yield endpoint, False
        return
    port = int(os.environ.get("DYNAMODB_PORT") or DEFAULT_DYNAMODB_PORT)
    running = f"http://127.0.0.1:{port}"
    if is_answering(running):
        yield running, False
        return
    with running_dynamodb_local() as endpoint:
        yield endpoint, True


def _tables_missing() -> bool:
    import boto3

    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    existing = set(client.list_tables()["TableNames"])
    return not {os.environ["CREDITS_TABLE_NAME"], os.environ["CUSTOMERS_TABLE_NAME"]} <= existing


def invoke(function: str, event: dict[str, Any]) -> Any:
    """Run ``function``'s handler on ``event`` (environment already configured); return what it returned."""
    if function == "stripe_webhook":
        event = sign_webhook_event(event, os.environ.get("LOCAL_WEBHOOK_SECRET") or DEFAULT_WEBHOOK_SECRET)
    registry = HandlerRegistry(function_configs())
    if registry.load(function) is None:
        raise HandlerUnavailableError(f"{function}: {registry.error(function)}")
    return registry.invoke(function, event)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.invoke", description=__doc__.splitlines()[0])
    parser.add_argument("--function", required=True, help="function folder under functions/ (ordering, ...)")
    parser.add_argument("--event", required=True, type=Path, help="event JSON file (events/<function>/*.json)")
    parser.add_argument("--user", help="replace the JWT claims of an HTTP API event with this user's")
    parser.add_argument("--admin", action="store_true", help="with --user: add the credits/admin scope")
    args = parser.parse_args(argv)
    if not (FUNCTIONS_DIR / args.function / "handler.py").is_file():
        parser.error(f"no functions/{args.function}/handler.py")
    try:
        event = json.loads(args.event.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        parser.error(f"cannot read {args.event}: {exc}")
    if args.user:
        event = with_caller(event, args.user, args.admin)

    stdout = sys.stdout
    quiet_warnings()
    try:
        # Handlers log (and print metrics) to stdout: send all of it to stderr, keep stdout for the result.
        with contextlib.redirect_stdout(sys.stderr), local_dynamodb() as (endpoint, fresh), event_sink() as events:
            configure_environment(endpoint, events)
            if fresh or _tables_missing():
                offers = prepare_tables_and_catalog()
                log(f"tables created on {endpoint}, demo catalog loaded ({offers} offers)")
            result = invoke(args.function, event)
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception:  # noqa: BLE001 - show the handler's traceback, then fail
        traceback.print_exc()
        return 1
    print(json.dumps(result, indent=2, default=str), file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
