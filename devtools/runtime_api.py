"""A small AWS Lambda Runtime API, for running a built function under the real runtime interface client.

Lambda's Python runtime is ``awslambdaric`` (PyPI) polling the Runtime API of its sandbox: ``GET
/2018-06-01/runtime/invocation/next`` hands it an event, ``POST .../invocation/<id>/response`` (or ``/error``) takes
the result, ``POST .../init/error`` reports a handler that failed to load. With
``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` the client runs the SnapStart before-snapshot hooks, calls ``GET
.../restore/next`` (the snapshot is taken there: the answer is the restore) and runs the after-restore hooks (``POST
.../restore/error`` if one fails). ``RuntimeApi`` serves those routes from queues; ``run_function`` starts ``python -m
awslambdaric <handler>`` against it and hands it events: the handler is loaded, initialised and called exactly as
Lambda does (the tests of the build and the bench's SnapStart rows use it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_PREFIX = "/2018-06-01/runtime"


class _QuietServer(ThreadingHTTPServer):
    """A runtime killed while it long-polls resets its connection: expected when a run ends, not worth a trace."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Outcome:
    """What the runtime reported for one invocation: its response, or an error (an invocation or init error)."""

    kind: str  # "response", "error", "init_error" or "restore_error"
    body: Any
    #: From handing the event to the runtime to its answer (what the caller waits once the runtime is ready).
    duration_ms: float | None = None


class RuntimeApi:
    """The Runtime API on ``127.0.0.1:<port>``; ``address`` is what ``AWS_LAMBDA_RUNTIME_API`` is set to."""

    def __init__(self, function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:local") -> None:
        self.function_arn = function_arn
        self._events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._outcomes: dict[str, queue.Queue[Outcome]] = {}
        self._handed_at: dict[str, float] = {}
        self._init_errors: queue.Queue[Outcome] = queue.Queue()
        #: ``time.monotonic()`` when the runtime asked to be restored (its init and before-snapshot hooks done).
        self.snapshot_at: float | None = None
        #: ``time.monotonic()`` of the runtime's first poll for an event (its init done).
        self.first_poll_at: float | None = None
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
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
        if path in (f"{_PREFIX}/init/error", f"{_PREFIX}/restore/error"):
            self._init_errors.put(Outcome(path.rsplit("/", 2)[-2] + "_error", payload))
            return
        request_id, kind = path.removeprefix(f"{_PREFIX}/invocation/").split("/", 1)
        duration = (time.monotonic() - self._handed_at[request_id]) * 1000
        self._outcomes[request_id].put(Outcome(kind, payload, duration))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == f"{_PREFIX}/restore/next":  # the snapshot point: restored at once
                    api.snapshot_at = time.monotonic()
                    self._answer(200, b"{}")
                    return
                if self.path != f"{_PREFIX}/invocation/next":
                    self._answer(404, b"{}")
                    return
                if api.first_poll_at is None:
                    api.first_poll_at = time.monotonic()
                request_id, body = api._events.get()  # long poll, as Lambda's API does
                api._handed_at[request_id] = time.monotonic()
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


#: What Lambda's ``/var/runtime`` holds for a Python function: the runtime client and its two dependencies.
RUNTIME_MODULES = ("awslambdaric", "simplejson", "snapshot_restore_py")


def runtime_folder(folder: Path) -> Path:
    """Fill ``folder`` with links to the runtime client and its dependencies (from this interpreter's packages),
    and nothing else, to stand for ``/var/runtime`` on the function's ``sys.path``."""
    found = {name: importlib.util.find_spec(name) for name in RUNTIME_MODULES}
    paths = {name: Path(spec.origin) for name, spec in found.items() if spec is not None and spec.origin}
    missing = set(RUNTIME_MODULES) - set(paths)
    if missing:
        raise RuntimeError(f"not installed: {sorted(missing)} (awslambdaric is a dev dependency: make dev)")
    sources = [paths["awslambdaric"].parent, paths["simplejson"].parent, paths["snapshot_restore_py"]]
    sources += list(paths["awslambdaric"].parent.parent.glob("runtime_client*.so"))
    for source in sources:
        if not (folder / source.name).exists():
            (folder / source.name).symlink_to(source)
    return folder


@dataclass
class RuntimeRun:
    """One runtime process: what each event got (with how long it took) and how long its init took."""

    outcomes: list[Outcome] = field(default_factory=list)
    init_ms: float | None = None  # process start -> first poll (or -> the snapshot, with SnapStart)
    output: str = ""


def run_function(
    handler: str,
    *,
    task_root: Path,
    python_path: Sequence[Path],
    env: dict[str, str],
    events: Sequence[dict[str, Any]],
    timeout: float = 90.0,
) -> RuntimeRun:
    """Start ``python -m awslambdaric <handler>`` in ``task_root`` with only ``python_path`` (``python -S``: no
    site-packages) and ``env``, hand it ``events`` one after the other, and stop it."""
    run = RuntimeRun()
    with RuntimeApi() as api:
        started = time.monotonic()
        path = os.pathsep.join(str(entry) for entry in python_path)
        process = subprocess.Popen(
            [sys.executable, "-S", "-B", "-m", "awslambdaric", handler],
            cwd=task_root,
            env={**env, "AWS_LAMBDA_RUNTIME_API": api.address, "PYTHONPATH": path},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            for event in events:
                run.outcomes.append(api.invoke(event, timeout=timeout))
                if run.init_ms is None:
                    ended = api.snapshot_at or api.first_poll_at
                    run.init_ms = None if ended is None else (ended - started) * 1000
        finally:
            process.kill()
            run.output = process.communicate(timeout=30)[0]
    return run
