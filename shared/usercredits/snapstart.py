"""Lambda SnapStart: what an API function does before its snapshot, and what it resets after a restore.

With SnapStart (the template's ``SnapStart`` parameter), Lambda runs a function's init once, when a version is
published, snapshots its memory, and resumes every new execution environment from that snapshot. The runtime calls
the hooks registered with ``snapshot_restore_py`` (part of Lambda's Python runtime) around the snapshot; outside it
(the dev server, the tests) no snapshot is taken and ``prime_before_snapshot`` registers nothing.

Before the snapshot, ``prime`` builds what a first request would otherwise build: the composition root, each table's
botocore client (no request is sent: no connection is captured; with SnapStart the SDK gets refreshable container
credentials, not keys frozen in the snapshot), the modules a route imports on first use (``stripe``), and the
routes' validation models. Nothing secret (the Stripe key is read on the first call to Stripe) and nothing time-bound
(caches fill on requests) is captured. After a restore, environments that share the snapshot's memory must not
continue one sequence: the id generator forgets its last id.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

from pynamodb.models import Model

from usercredits.adapters.dynamodb.model_base import open_client
from usercredits.kernel import ids
from usercredits.observability import logger


def _hooks() -> Any | None:
    """``snapshot_restore_py`` when the runtime provides it."""
    try:
        return importlib.import_module("snapshot_restore_py")
    except ImportError:
        return None


def prime_before_snapshot(
    build: Callable[[], object],
    *,
    tables: Sequence[type[Model]],
    modules: Sequence[str] = (),
    openapi: Callable[[], object] | None = None,
) -> bool:
    """Register, for the snapshot, a priming that calls ``build`` (the composition root), opens the clients of
    ``tables``, imports ``modules`` and builds the routes' models (``openapi``); and the resets after a restore.
    Returns whether the runtime takes snapshots here (False outside Lambda's runtime)."""
    hooks = _hooks()
    if hooks is None:
        return False

    def prime() -> None:
        started = time.perf_counter()
        build()
        for table in tables:
            open_client(table)
        for module in modules:
            importlib.import_module(module)
        if openapi is not None:
            openapi()
        logger.info("primed before the snapshot", extra={"primed_ms": round((time.perf_counter() - started) * 1000)})

    hooks.register_before_snapshot(prime)
    hooks.register_after_restore(after_restore)
    return True


def after_restore() -> None:
    """What must not be shared by environments restored from one snapshot."""
    ids.forget_last()
