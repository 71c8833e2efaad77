"""The real local stack for the end-to-end tests: ``make run`` on free ports, driven over HTTP, stopped with SIGINT.

One stack per test module (starting it costs a few seconds, more when ``make run`` first has to create the venv): the
API tests and the fuzzer, which changes the catalog as an admin, never share data. Inside a module each test uses its
own user ids, so tests never see each other's orders.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest
from devtools.dynamodb_local import free_port
from devtools.jwt_tokens import make_token

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 30.0
JWT_SECRET = "e2e-local-secret-0123456789abcdef"
# Set by pytest-env for the in-process tests; the stack must use what `make run` sets itself.
STRIPPED_ENV = (
    "CREDITS_TABLE_NAME",
    "CUSTOMERS_TABLE_NAME",
    "EVENT_BUS_NAME",
    "AWS_ENDPOINT_URL_DYNAMODB",
    "AWS_ENDPOINT_URL_EVENTBRIDGE",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "POWERTOOLS_LOG_LEVEL",
    "POWERTOOLS_DEV",
    # Each stack has its own test clock (a temporary file the dev server makes), never one shared between modules.
    "LOCAL_CLOCK_FILE",
    # A parent `make e2e` must not hand its jobserver to the child make.
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
)


@dataclass
class HttpResult:
    """One exchange; ``str()`` shows the request and the response, for assertion messages."""

    method: str
    path: str
    request_body: bytes | None
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def __str__(self) -> str:
        sent = self.request_body.decode("utf-8", "replace") if self.request_body else ""
        return (
            f"\n  request:  {self.method} {self.path} {sent}"
            f"\n  response: {self.status} {self.body.decode('utf-8', 'replace')[:2000]}"
        )


@dataclass
class Api:
    """A tiny HTTP client for the stack (stdlib only)."""

    base_url: str
    host: str = field(init=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        host, _, port = self.base_url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> HttpResult:
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=sent_headers)
            response = conn.getresponse()
            data = response.read()
            received = {name.lower(): value for name, value in response.getheaders()}
            return HttpResult(method, path, body, response.status, received, data)
        finally:
            conn.close()

    def get(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> HttpResult:
        return self.request("DELETE", path, **kwargs)


def dynamodb_local_pids(port: int) -> list[int]:
    """Pids of java processes running DynamoDB Local on ``port`` (Linux /proc)."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.endswith(b"DynamoDBLocal.jar") for arg in args) and b"-port" in args:
            index = args.index(b"-port")
            if index + 1 < len(args) and args[index + 1] == str(port).encode():
                pids.append(int(proc.name))
    return pids


class Stack:
    """``make run`` in its own process group, with PORT and DYNAMODB_PORT on free ports."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dynamodb_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api = Api(self.base_url)
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] = tempfile.NamedTemporaryFile(prefix="e2e-make-run-", suffix=".log", delete=False)  # noqa: SIM115
        self.java_pids: list[int] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
        env.update(
            PORT=str(self.port),
            DYNAMODB_PORT=str(self.dynamodb_port),
            LOCAL_JWT_SECRET=JWT_SECRET,
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self) -> None:
        make = shutil.which("make")
        if make is None:
            pytest.skip("make is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - fixed command
            [make, "--no-print-directory", "run"],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"`make run` exited with {self.process.returncode}:\n{self.output()}")
            try:
                self.api.get("/", timeout=2)
            except OSError:
                time.sleep(0.25)
                continue
            self.java_pids = dynamodb_local_pids(self.dynamodb_port)
            return
        self.stop()
        raise RuntimeError(
            f"`make run` did not answer on {self.base_url} in {START_TIMEOUT_SECONDS:.0f} s:\n{self.output()}"
        )

    def stop(self) -> int | None:
        """SIGINT to the process group (Ctrl-C), SIGKILL if it lingers; the exit code of make."""
        process, self.process = self.process, None
        if process is None:
            return None
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                return process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                continue
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def output(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")[-20000:]

    def close(self) -> None:
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The running stack; at teardown it must stop on SIGINT and take DynamoDB Local with it."""
    running = Stack()
    try:
        running.start()
        assert running.java_pids, f"no DynamoDB Local on port {running.dynamodb_port}:\n{running.output()}"
    except BaseException:
        running.stop()
        _kill_leftovers(running.dynamodb_port)
        running.close()
        raise
    yield running
    running.stop()
    deadline = time.monotonic() + 10
    while dynamodb_local_pids(running.dynamodb_port) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftover = _kill_leftovers(running.dynamodb_port)
    log = running.output()
    running.close()
    assert not leftover, f"DynamoDB Local still running after SIGINT (pids {leftover}):\n{log}"
    assert "dev server stopped" in log, f"the dev server did not shut down cleanly:\n{log}"


def _kill_leftovers(port: int) -> list[int]:
    """Never leave a java behind, even when failing; returns the pids that had to be killed."""
    leftover = dynamodb_local_pids(port)
    for pid in leftover:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return leftover


@pytest.fixture(scope="module")
def api(stack: Stack) -> Api:
    return stack.api


def token_for(user: str, *, admin: bool = False, **kwargs: Any) -> str:
    """A JWT the stack accepts (signed with the stack's LOCAL_JWT_SECRET)."""
    kwargs.setdefault("secret", JWT_SECRET)
    return make_token(user, admin=admin, **kwargs)


@pytest.fixture
def user() -> str:
    """A fresh user id per test, so tests never see each other's orders."""
    return f"e2e-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def user_token(user: str) -> str:
    return token_for(user)


@pytest.fixture(scope="session")
def admin_token() -> str:
    return token_for(f"e2e-admin-{uuid.uuid4().hex[:8]}", admin=True)
