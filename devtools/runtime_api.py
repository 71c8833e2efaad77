"""A small AWS Lambda Runtime API, for running a built function under the real runtime interface client.

Lambda's Python runtime is ``awslambdaric`` (PyPI) polling the Runtime API of its sandbox: ``GET
/2018-06-01/runtime/invocation/next`` hands it an event, ``POST .../invocation/<id>/response`` (or ``/error``) takes the
result, ``POST .../init/error`` reports a handler that failed to load. ``RuntimeApi`` serves those four routes from
queues, so a test starts ``python -m awslambdaric <handler>`` with ``AWS_LAMBDA_RUNTIME_API`` pointing here and
``invoke`` returns what the function answered: the handler is loaded, initialised and called exactly as Lambda does.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PREFIX = "/2018-06-01/runtime"


@dataclass(frozen=True)
class Outcome:
    """What the runtime reported for one invocation: its response, or an error (an invocation or init error)."""

    kind: str  # "response", "error" or "init_error"
    body: Any


class RuntimeApi:
    """The Runtime API on ``127.0.0.1:<port>``; ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` is set to."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local") -> None:
        self.function_arn = function_arn
        self._events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._outcomes: dict[str, queue.Queue[Outcome]] = {}
        self._init_errors: queue.Queue[Outcome] = queue.Queue()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self) -> RuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: dict[str, Any], timeout: float = 60.0) -> Outcome:
        """Queue ``event`` for the runtime and wait for its outcome (or the runtime's init error)."""
        request_id = str(uuid.uuid4())
        self._outcomes[request_id] = queue.Queue()
        self._events.put((request_id, json.dumps(event).encode()))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                return self._outcomes[request_id].get(timeout=0.2)
            except queue.Empty:
                if not self._init_errors.empty():
                    return self._init_errors.get()
        raise TimeoutError(f"no answer from the runtime within {timeout} s")

    def _record(self, path: str, body: bytes) -> None:
        payload = json.loads(body) if body else None
        if path == f"{_PREFIX}/init/error":
            self._init_errors.put(Outcome("init_error", payload))
            return
        request_id, kind = path.removeprefix(f"{_PREFIX}/invocation/").split("/", 1)
        self._outcomes[request_id].put(Outcome(kind, payload))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path != f"{_PREFIX}/invocation/next":
                    self._answer(404, b"{}")
                    return
                request_id, body = api._events.get()  # long poll, as Lambda's API does
                self._answer(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 15_000),
                        "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                api._record(self.path, body)
                self._answer(202, b'{"status": "OK"}')

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return  # quiet: the tests print what matters

        return Handler
