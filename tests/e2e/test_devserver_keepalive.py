"""The dev server over kept-alive connections (issue 16): they work, and never stall on Nagle + delayed ACK.

A response written in two pieces (headers, then body) on a socket with Nagle's algorithm waits for the client's delayed
ACK: ~40 ms more per request for a client that keeps its connection (browsers, SDKs, ``requests.Session``). The checks
are structural, never timed: one write per response on a ``TCP_NODELAY`` socket (in process, on the real
``DevServer``), and one TCP data segment per response from the real ``make run`` stack (Linux ``TCP_INFO``).
"""

from __future__ import annotations

import http.client
import io
import json
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from devtools.devserver.functions import HandlerRegistry
from devtools.devserver.paths import EVENTS_PATH
from devtools.devserver.server import DevServer

from tests.e2e.conftest import Api, Stack

pytestmark = pytest.mark.e2e

FREE_OFFER = "Free"
TCPI_DATA_SEGS_IN = 152  # offset of ``tcpi_data_segs_in`` in Linux's ``struct tcp_info`` (kernel 4.6+)


# ------------------------------------------------------------------------------------------------- the real stack
def exchange(
    conn: http.client.HTTPConnection, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, bytes]:
    """One request on ``conn``; the response must keep the connection and be framed by its Content-Length."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    assert response.getheader("Content-Length") == str(len(payload)) or method == "HEAD", (method, path)
    assert not response.will_close, f"{method} {path}: the server closed a kept-alive connection"
    return response.status, payload


def test_requests_over_one_persistent_connection(api: Api, user_token: str) -> None:
    # Given one HTTP/1.1 connection kept open for the whole conversation
    conn = http.client.HTTPConnection(api.host, api.port, timeout=30)
    try:
        status, offers = exchange(conn, "GET", "/offers", user_token)
        sock = conn.sock
        assert sock is not None and status == 200
        # When reads, a write, errors and a HEAD follow on the same connection
        status, before = exchange(conn, "GET", "/credits", user_token)
        assert status == 200
        status, order = exchange(conn, "POST", "/orders", user_token, {"offerId": FREE_OFFER})
        assert status == 201, order
        assert exchange(conn, "GET", "/credits")[0] == 401
        assert exchange(conn, "GET", "/no/such/route", user_token)[0] == 404
        assert exchange(conn, "HEAD", "/no/such/route", user_token) == (404, b"")
        status, after = exchange(conn, "GET", "/credits", user_token)
        # Then every answer is the one a fresh connection gets, and the connection was never reopened
        assert conn.sock is sock
    finally:
        conn.close()
    assert status == 200
    assert offers == api.get("/offers", token=user_token).body
    assert after == api.get("/credits", token=user_token).body
    assert json.loads(before)["groups"] == []
    balances = {group["offerGroup"]: group["balance"] for group in json.loads(after)["groups"]}
    assert balances == {"Free": 10, "AiTokens": 20}


def data_segments_received(sock: socket.socket) -> int:
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    if len(info) < TCPI_DATA_SEGS_IN + 4:
        pytest.skip("this kernel's TCP_INFO has no tcpi_data_segs_in")
    return int(struct.unpack_from("I", info, TCPI_DATA_SEGS_IN)[0])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's TCP_INFO")
def test_each_response_arrives_in_one_tcp_segment(stack: Stack, user_token: str) -> None:
    # Given a kept-alive connection to the real stack (small answers: each fits one loopback segment)
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=30)
    try:
        conn.connect()
        assert conn.sock is not None
        for method, path, token in [
            ("GET", "/credits", user_token),
            ("GET", "/credits", user_token),
            ("GET", "/credits", None),
            ("GET", "/no/such/route", user_token),
            ("HEAD", "/no/such/route", user_token),
            ("GET", "/credits", user_token),
        ]:
            # When one request is answered
            received = data_segments_received(conn.sock)
            exchange(conn, method, path, token)
            # Then the whole response (status line, headers, body) came in one segment: a second one is what
            # waits for the delayed ACK
            assert data_segments_received(conn.sock) - received == 1, f"{method} {path} came in several segments"
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------ in process, structural
class CountingSocket:
    """The accepted socket, counting the sends the request handler makes on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sends = 0

    def sendall(self, data: Any, *args: Any) -> None:
        self.sends += 1
        self.sock.sendall(data, *args)

    def send(self, data: Any, *args: Any) -> int:
        self.sends += 1
        return self.sock.send(data, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


class ReadFrom:
    """A socket for ``http.client.HTTPResponse`` that reads from ``file``: successive responses parse one by one."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        self.file = file

    def makefile(self, *args: Any, **kwargs: Any) -> KeptOpen:
        return KeptOpen(self.file)


class KeptOpen:
    """``file`` without ``close``: a response closes its file once read, the next one reads on from it."""

    def __init__(self, file: io.BufferedIOBase) -> None:
        self.file = file

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


@pytest.fixture
def local_server() -> Iterator[DevServer]:
    """The real ``DevServer`` class without routes or DynamoDB: its local tools and errors need neither."""
    server = DevServer(("127.0.0.1", 0), HandlerRegistry({}), [])
    yield server
    server.server_close()


def test_one_write_per_response_on_a_nodelay_socket(local_server: DevServer) -> None:
    # Given a client that pipelines four requests on one connection, the last one malformed (too many headers)
    requests = [
        ("GET", f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: local\r\n\r\n"),
        ("GET", "GET /no/such/route HTTP/1.1\r\nHost: local\r\n\r\n"),
        ("HEAD", "HEAD /no/such/route HTTP/1.1\r\nHost: local\r\n\r\n"),
        ("GET", "GET / HTTP/1.1\r\n" + "X-Padding: 1\r\n" * 101 + "\r\n"),
    ]
    client = socket.create_connection(("127.0.0.1", local_server.server_port), timeout=10)
    try:
        client.sendall("".join(text for _, text in requests).encode())
        client.shutdown(socket.SHUT_WR)
        # When the server accepts it and its request handler serves the connection
        conn, address = local_server.get_request()
        counting = CountingSocket(conn)
        try:
            local_server.finish_request(counting, address)  # type: ignore[arg-type]
            # Then Nagle's algorithm is off on the accepted socket
            assert conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            local_server.shutdown_request(conn)
        received = b"".join(iter(lambda: client.recv(65536), b""))
    finally:
        client.close()
    # And each response left in a single write: status line, headers and body together
    assert counting.sends == len(requests), f"{counting.sends} writes for {len(requests)} responses"
    # And each one is framed by its Content-Length, so the next one parses right after it
    replay = ReadFrom(io.BufferedReader(io.BytesIO(received)))
    answers = []
    for method, _ in requests:
        response = http.client.HTTPResponse(replay, method=method)  # type: ignore[arg-type]
        response.begin()
        body = response.read()
        assert response.getheader("Content-Length") is not None
        answers.append((response.status, json.loads(body) if body else None))
    assert answers == [
        (200, {"events": []}),
        (404, {"error": "not_found", "message": "no route for GET /no/such/route"}),
        (404, None),
        (431, {"error": "bad_request", "message": "Too many headers"}),
    ]
    assert replay.file.read() == b""


def test_expect_100_continue_is_answered_before_the_body(local_server: DevServer) -> None:
    # Given a running server and a client that waits for "100 Continue" before sending its body
    thread = threading.Thread(target=local_server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    body = json.dumps({"Entries": []}).encode()
    try:
        with socket.create_connection(("127.0.0.1", local_server.server_port), timeout=10) as client:
            client.sendall(
                f"POST {EVENTS_PATH} HTTP/1.1\r\nHost: local\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            reader = client.makefile("rb")
            # When it reads before sending the body, Then the interim answer is already there (not held back
            # with the final response)
            assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert reader.readline() == b"\r\n"
            client.sendall(body)
            response = http.client.HTTPResponse(ReadFrom(reader), method="POST")  # type: ignore[arg-type]
            response.begin()
            assert response.status == 200, response.read()
    finally:
        local_server.shutdown()
        thread.join(timeout=10)
