"""Stripe's wire format for the simulated API: form-encoded requests in (``a[b]=c``), JSON answers and Stripe error
bodies out, and the small threaded HTTP server every simulated API runs on."""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

_KEY = re.compile(r"^(?P<head>[^\[\]]+)(?P<rest>(\[[^\[\]]*\])*)$")


def parse_form(body: str) -> dict[str, Any]:
    """Stripe's form encoding back to nested values: ``metadata[orderId]=o1`` → ``{"metadata": {"orderId": "o1"}}``,
    ``a[0][b]=c`` → ``{"a": [{"b": "c"}]}``. Leaves stay strings, as on the wire (``"true"``, ``"1999"``)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"bad form key {key!r}")
        path = [match["head"], *re.findall(r"\[([^\[\]]*)\]", match["rest"])]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    parsed: dict[str, Any] = _lists(root)
    return parsed


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    values = {key: _lists(value) for key, value in node.items()}
    if values and all(key.isdigit() for key in values):
        return [values[key] for key in sorted(values, key=int)]
    return values


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    form: dict[str, Any]
    headers: dict[str, str]

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class Failure:
    """An armed failure: the status and Stripe error body a request will be answered with."""

    status: int
    error: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def stripe_error(status: int, kind: str, message: str, code: str | None, param: str | None = None) -> Answer:
    """A Stripe error answer: ``{"error": {"type", "message", "code"?, "param"?}}``."""
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    if param:
        error["param"] = param
    return Answer(status, {"error": error})


class Api(Protocol):
    """What the HTTP side needs of a simulated API: an answer to one parsed request."""

    def handle(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> Answer: ...


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True
    api: Api


class ApiRequestHandler(BaseHTTPRequestHandler):
    """Parses a request (query string or form body), lets the server's ``api`` answer, writes it as Stripe does."""

    server: ApiServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        form = parse_form(raw if method == "POST" else url.query)
        headers = {name.lower(): value for name, value in self.headers.items()}
        answer = self.server.api.handle(method, url.path, form, headers)
        payload = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(7)}")
            if version := headers.get("stripe-version"):
                self.send_header("Stripe-Version", version)
            if key := headers.get("idempotency-key"):
                self.send_header("Idempotency-Key", key)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            pass

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass
