"""Print the pinned requirements of pyproject.toml: ``runtime`` (the layer's) or ``dev`` (runtime plus the dev group);
``locked``: the layer's lock file's pins (layers/dependencies/requirements.txt) without hashes, the dev venv's
constraints, so the tests run the versions the layer ships; ``check``: the lock holds pyproject's runtime pins.

The lock is written by ``make deps`` (``uv pip compile --generate-hashes`` of the runtime list for Lambda's arm64
Python): every transitive dependency pinned with the hashes of its files, so the layer is rebuilt byte for byte and
pip refuses a file that changed (``--require-hashes``). The venv targets install from here, so pyproject.toml stays
the single source of the direct pins.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "layers" / "dependencies" / "requirements.txt"


def requirements(which: str) -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    runtime: list[str] = project["project"]["dependencies"]
    if which == "runtime":
        return runtime
    return runtime + project["dependency-groups"]["dev"]


def lock_mismatches(lock_text: str) -> list[str]:
    """Runtime pins of pyproject.toml the lock does not hold at the same version (empty when in sync)."""
    from devtools.build_inspection import normalise_name, parse_pins

    locked = parse_pins(lock_text)
    wanted = parse_pins("\n".join(requirements("runtime")))
    return [f"{name}=={version}" for name, version in wanted.items() if locked.get(normalise_name(name)) != version]


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "runtime"
    if which == "locked":  # the lock's pins without their hashes: constraints for the dev venv (pip -c)
        from devtools.build_inspection import parse_pins

        print("\n".join(f"{name}=={version}" for name, version in parse_pins(LOCK.read_text(encoding="utf-8")).items()))
        return
    if which == "check":
        stale = lock_mismatches(LOCK.read_text(encoding="utf-8"))
        if stale:
            print(f"{LOCK.relative_to(ROOT)} is stale ({', '.join(stale)}): run make deps")
            sys.exit(1)
        return
    print("\n".join(requirements(which)))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
