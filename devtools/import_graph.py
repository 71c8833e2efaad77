"""Import circles and module sizes of the project (the README's architecture measures).

``python -m devtools.import_graph`` prints every import circle among the project's modules (``shared/usercredits``,
``functions/*``, ``devtools``; imports inside functions count too: a lazy import still ties two modules together) and
the modules above ``--max-lines`` lines. Exit code 1 when there is a circle. No module is imported: the files are
parsed.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Where module names resolve from (the Lambda layout: functions/ and shared/ are on sys.path), in that order.
SOURCES = (ROOT / "shared", ROOT / "functions", ROOT)
PACKAGES = (ROOT / "shared" / "usercredits", ROOT / "functions", ROOT / "devtools")


def project_modules() -> dict[str, Path]:
    """Every project module by its dotted name."""
    modules: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted(package.rglob("*.py")):
            if "node_modules" in path.parts:
                continue
            base = next(source for source in SOURCES if path.is_relative_to(source))
            parts = path.relative_to(base).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def imported_names(path: Path, module: str) -> Iterator[str]:
    """The dotted names ``path`` imports (``from a import b`` yields ``a`` and ``a.b``; relative imports resolved)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {imported for imported in imported_names(path, name) if imported in modules}
        graph[name] = targets - {name}
    return graph


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of two or more modules that all reach one another through imports, each sorted (a few hundred
    modules: reachability from each one is fast enough)."""
    reach = {node: _reachable(graph, node) for node in graph}
    found: set[tuple[str, ...]] = set()
    for node, reached in reach.items():
        group = sorted(other for other in reached if node in reach.get(other, ()))
        if len(group) > 1:
            found.add(tuple(group))
    return sorted(list(group) for group in found)


def large_modules(max_lines: int, package: Path = ROOT / "shared" / "usercredits") -> list[tuple[int, str]]:
    """Modules of ``package`` longer than ``max_lines`` lines, longest first."""
    sizes = [(len(path.read_text().splitlines()), str(path.relative_to(ROOT))) for path in package.rglob("*.py")]
    return sorted((size for size in sizes if size[0] > max_lines), reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-lines", type=int, default=400)
    args = parser.parse_args(argv)
    found = circles(import_graph())
    for circle in found:
        print("import circle:", " <-> ".join(circle))
    print(f"{len(found)} import circle(s) among {len(project_modules())} modules")
    for lines, path in large_modules(args.max_lines):
        print(f"{lines:5d} lines  {path}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
