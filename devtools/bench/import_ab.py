"""Did a change make the handlers' imports slower? ``python -m devtools.bench.import_ab REV [FUNCTION ...]``

Checks ``REV`` out in a temporary git worktree and times ``import handler`` of each function there and in the working
tree, alternating fresh interpreters (same Python, same installed dependencies, bytecode compiled first), so both sides
see the same machine load. The ratios of ``make bench`` move by ±0.08 between runs on a busy 2-core machine; this
comparison tells a real change of a few milliseconds from noise. It also splits each side's time into our modules and
third-party ones (``-X importtime``: self times, medians).
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ("ordering", "consumption", "stripe_webhook", "customers", "expiry_scan", "event_publisher")
_TIMED = "import time; t = time.perf_counter(); import handler; print((time.perf_counter() - t) * 1000)"


def _environment(root: Path, function: str) -> dict[str, str]:
    path = f"{root}/shared:{root}/functions/{function}:{root}/functions"
    return dict(os.environ, AWS_DEFAULT_REGION="us-east-1", PYTHONPATH=path)


def _import_ms(root: Path, function: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _TIMED], env=_environment(root, function), capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def _self_times(root: Path, function: str) -> dict[str, int]:
    """Microseconds each module's own top-level code took (``-X importtime``'s self column)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import handler"],
        env=_environment(root, function),
        capture_output=True,
        text=True,
        check=True,
    )
    times = {}
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            own, _, module = line.removeprefix("import time:").split("|")
            times[module.strip()] = int(own)
    return times


def _ours(module: str) -> bool:
    return module.startswith(("usercredits", "handler", "schemas", "responses"))


def compare(base: Path, head: Path, function: str, rounds: int) -> str:
    timed: dict[str, list[float]] = {"base": [], "head": []}
    split: dict[str, dict[str, list[int]]] = {"base": defaultdict(list), "head": defaultdict(list)}
    for _ in range(rounds):
        for side, root in (("base", base), ("head", head)):
            timed[side].append(_import_ms(root, function))
            for module, own in _self_times(root, function).items():
                split[side][module].append(own)
    lines = []
    for side in ("base", "head"):
        medians = {module: statistics.median(values) for module, values in split[side].items()}
        ours = sum(value for module, value in medians.items() if _ours(module)) / 1000
        theirs = sum(value for module, value in medians.items() if not _ours(module)) / 1000
        lines.append(
            f"{function:16} {side}  import {statistics.median(timed[side]):6.1f} ms (min {min(timed[side]):6.1f})"
            f"   ours {ours:5.1f} ms in {sum(1 for module in medians if _ours(module)):3} modules"
            f"   third-party {theirs:6.1f} ms"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the git revision to compare the working tree with")
    parser.add_argument("functions", nargs="*", default=list(FUNCTIONS))
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        base = Path(scratch) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base), args.rev], check=True)
        try:
            for tree in (base, ROOT):
                for part in ("shared", "functions"):
                    compileall.compile_dir(tree / part, quiet=1)
            for function in args.functions:
                print(compare(base, ROOT, function, args.rounds), flush=True)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
