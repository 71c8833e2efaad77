"""Follow one request through the project's files (the README's architecture measures).

``RequestPath`` records, while a request runs, which project files it calls into (in the order first called) and which
file calls which. ``chain`` is the longest run of files each calling the next, from the handler down: what a reader
follows, one direction; ``followed`` is every file the request touched, the chain and the rules and formats consulted
beside it; ``back_and_forth`` lists the pairs of files that import each other (a path that is not one direction).
Files of the kit (``KIT``: value types, entities, ports and events, key and item formats (the mappers of both
adapters), the error and HTTP tables, settings, logging, the transaction helper) are left out of all three: a reader
need not open them to follow what a request does, and every path uses them.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCES = (ROOT / "shared", ROOT / "functions")

#: Kit files (relative to the repository): used by every path, opened by none to follow it.
KIT = frozenset(
    {
        "shared/usercredits/errors.py",
        "shared/usercredits/http.py",
        "shared/usercredits/http_input.py",
        "shared/usercredits/settings.py",
        "shared/usercredits/observability.py",
        "shared/usercredits/adapters/clock.py",
        "shared/usercredits/adapters/dynamodb/tables.py",
        "shared/usercredits/adapters/dynamodb/model_base.py",
        "shared/usercredits/adapters/dynamodb/credits_table.py",
        "shared/usercredits/adapters/dynamodb/customers_table.py",
        "shared/usercredits/adapters/dynamodb/keys.py",
        "shared/usercredits/adapters/dynamodb/mappers.py",
        "shared/usercredits/adapters/dynamodb/errors.py",
        "shared/usercredits/adapters/dynamodb/cursors.py",
        "shared/usercredits/adapters/dynamodb/transactions.py",
        "shared/usercredits/adapters/dynamodb/customer_transactions.py",
        "shared/usercredits/adapters/dynamodb/customer_records.py",
        "shared/usercredits/adapters/dynamodb/customer_mapping.py",
        "shared/usercredits/adapters/stripe/client.py",
        "shared/usercredits/adapters/stripe/json_fields.py",
        "shared/usercredits/domain/models.py",
        "shared/usercredits/domain/ports.py",
        "shared/usercredits/domain/events.py",
        "shared/usercredits/subscriptions/models.py",
        "shared/usercredits/subscriptions/ports.py",
        "shared/usercredits/subscriptions/events.py",
    }
)


def _kit(relative: str) -> bool:
    name = Path(relative).name
    formats = name in {"schemas.py", "responses.py", "__init__.py"} or name.endswith("_mapping.py")
    return relative in KIT or "/kernel/" in relative or formats


def _imports(relative: str) -> set[str]:
    """The project files ``relative`` imports (at the top or inside functions)."""
    tree = ast.parse((ROOT / relative).read_text())
    modules = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    modules |= {
        f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    files = set()
    for module in modules:
        for source in SOURCES:
            path = source / Path(*module.split("."))
            for candidate in (path.with_suffix(".py"), path / "__init__.py"):
                if candidate.is_file():
                    files.add(str(candidate.relative_to(ROOT)))
    return files


class RequestPath:
    """A profiler hook for the duration of a ``with`` block (one thread: the handler's)."""

    def __init__(self) -> None:
        self.followed: list[str] = []
        self.calls: set[tuple[str, str]] = set()
        self._known: dict[str, str | None] = {}
        self._previous: Any = None

    def __enter__(self) -> RequestPath:
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        sys.setprofile(self._previous)

    @property
    def back_and_forth(self) -> list[tuple[str, str]]:
        """Pairs of followed files that import each other, directly or through other followed files: a path that
        goes back. (A call back through a function passed in, like the save loop calling a use case's decision, is
        not one: the loop does not know the use case.)"""
        reach = self._reach()
        return sorted((a, b) for a in reach for b in reach[a] if a < b and a in reach[b])

    def _reach(self) -> dict[str, set[str]]:
        """For each followed file, the followed files it imports, directly or through other followed files."""
        reach = {file: _imports(file) & set(self.followed) for file in self.followed}
        for _ in self.followed:  # transitive closure: paths are a handful of files
            reach = {file: targets.union(*(reach[target] for target in targets)) for file, targets in reach.items()}
        return reach

    @property
    def chain(self) -> list[str]:
        """The longest run of followed files in which each one calls the next: what a reader follows from the entry
        point down to the last file the request reaches, one direction (a call through a port counts: the reader
        opens the adapter). The rules and formats a file consults on the way are beside that run, not on it
        (``followed`` counts them all). A call back up (to a file that imports its caller, like the save loop
        calling a use case's decision) is not a step."""
        reach = self._reach()
        steps = sorted((a, b) for a, b in self.calls if a not in reach[b])
        longest: dict[str, list[str]] = {}

        def run(file: str) -> list[str]:
            if file not in longest:
                longest[file] = [file]  # a guard against a circle of calls through ports
                longest[file] = [file, *max((run(b) for a, b in steps if a == file), key=len, default=[])]
            return longest[file]

        return max((run(file) for file in self.followed), key=len, default=[])

    def _file(self, filename: str) -> str | None:
        if filename not in self._known:
            path = Path(filename)
            inside = any(path.is_relative_to(source) for source in SOURCES)
            relative = str(path.relative_to(ROOT)) if inside else None
            self._known[filename] = relative if relative is not None and not _kit(relative) else None
        return self._known[filename]

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        callee = self._file(frame.f_code.co_filename)
        if callee is None:
            return
        if callee not in self.followed:
            self.followed.append(callee)
        caller_frame = frame.f_back
        while caller_frame is not None and self._file(caller_frame.f_code.co_filename) is None:
            caller_frame = caller_frame.f_back
        if caller_frame is not None and (caller := self._file(caller_frame.f_code.co_filename)) != callee:
            assert caller is not None
            self.calls.add((caller, callee))

    def report(self, title: str) -> str:
        lines = [f"{title}: {len(self.followed)} files", *(f"  {n}. {f}" for n, f in enumerate(self.followed, 1))]
        lines.append(f"  chain ({len(self.chain)} files): {' -> '.join(self.chain)}")
        lines.append(f"  back and forth: {self.back_and_forth or 'none'}")
        return "\n".join(lines)
