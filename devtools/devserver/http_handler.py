"""The HTTP/1.1 side: reading a request (a ``Content-Length`` or chunked body), writing its reply in one write on a
``TCP_NODELAY`` socket, and the request log."""

from __future__ import annotations

import contextlib
import http
import io
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol, cast

from devtools.devserver.events import IncomingRequest
from devtools.devserver.log import log
from devtools.devserver.replies import Reply, error_reply

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


class Dispatcher(Protocol):
    """What the handler needs of its server (``devtools.devserver.server.DevServer``): an answer to a request."""

    def dispatch(self, request: IncomingRequest) -> tuple[Reply, str]: ...


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
    """Reads the request, lets its server (a :class:`Dispatcher`) answer it, writes the reply and one log line.

    Each response goes out in one write (:class:`ResponseWriter`) on a ``TCP_NODELAY`` socket, and always with a
    ``Content-Length``, so HTTP/1.1 clients keep their connection without stalling.
    """

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
        reply, served_by = cast(Dispatcher, self.server).dispatch(request)
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
