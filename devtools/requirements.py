"""Print the pinned requirements of pyproject.toml: ``runtime`` (the layer's) or ``dev`` (runtime plus the dev group).

``make deps`` writes the runtime list to layers/dependencies/requirements.txt; the venv targets install from here, so
pyproject.toml stays the single source of dependency truth.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADER = "# Generated from pyproject.toml by `make deps`; do not edit by hand.\n"


def requirements(which: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime: list[str] = project["project"]["dependencies"]
    if which == "runtime":
        return runtime
    return runtime + project["dependency-groups"]["dev"]


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "runtime"
    if which == "--write":
        target = ROOT / "layers" / "dependencies" / "requirements.txt"
        target.write_text(HEADER + "\n".join(requirements("runtime")) + "\n", encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")
        return
    print("\n".join(requirements(which)))


if __name__ == "__main__":
    main()
