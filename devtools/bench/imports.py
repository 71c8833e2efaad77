"""Cold-start import cost (metrics ``import_ratio``, ``library_floor_ratio``, ``import_ms``, ``boto3_import_ms``,
``bare_ms``): each function's Handler module imported from the ``sam build`` output as Lambda would (see the package's
docstring)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devtools.bench.environment import ROOT
from devtools.bench.rows import BenchError, Row
from devtools.build_inspection import (
    BUILD_DIR,
    NATIVE_BUILD_DIR,
    build_native_dependencies,
    foreign_binaries,
    function_variables,
    layer_missing_pins,
    layer_python,
    resolve_variables,
    stale_files,
)
from devtools.lambda_context import REGION

DEFAULT_RUNS = 7

#: import_ratio budget per function folder (handler import cost in units of ``import boto3``).
IMPORT_RATIO_BUDGETS: dict[str, float] = {
    "ordering": 2.0,
    "consumption": 1.5,
    "stripe_webhook": 2.0,
    "expiry_scan": 1.5,
}


def import_ratio(handler_ms: float, boto3_ms: float, bare_ms: float) -> float:
    """How many ``import boto3`` the handler's import costs, both above a bare interpreter."""
    baseline = boto3_ms - bare_ms
    if baseline <= 0:
        raise BenchError(f"import boto3 measured {boto3_ms:.1f} ms, not above bare ({bare_ms:.1f} ms)")
    return (handler_ms - bare_ms) / baseline


def function_environment(template: Mapping[str, Any], logical_id: str) -> dict[str, str]:
    """Globals + the function's own ``Environment.Variables``, resolved, plus what the Lambda runtime sets."""
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    props = template["Resources"][logical_id].get("Properties") or {}
    variables = function_variables(template, logical_id)
    env = resolve_variables(variables, template, stand_in="bench", placeholder="bench-placeholder")
    memory = props.get("MemorySize", globals_fn.get("MemorySize", 128))
    env.update(
        {
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "_HANDLER": str(props.get("Handler", "")),
        }
    )
    return env


# ---------------------------------------------------------------------------------------------- cold-start imports
TIMER_CHILD = """import sys, time
sys.path[:0] = sys.argv[1:]
t0 = time.perf_counter()
{statement}
t1 = time.perf_counter()
print(repr((t1 - t0) * 1000.0))
"""


@dataclass(frozen=True)
class FunctionBuild:
    """One function of the template and the directories its import runs with."""

    folder: str
    logical_id: str
    module: str
    path: tuple[Path, ...]
    env: dict[str, str]


@dataclass
class ImportLayout:
    functions: list[FunctionBuild]
    notes: list[str] = field(default_factory=list)


def _native_dependencies(python: str, notes: list[str]) -> Path:
    """``python/`` of a host-native DependenciesLayer (same Makefile, ``LAYER_PLATFORM=native``), built if stale."""
    target = NATIVE_BUILD_DIR / "DependenciesLayer"
    python_dir = target / "python"
    if missing := layer_missing_pins(python_dir):
        notes.append(f"building a host-native DependenciesLayer in {target.relative_to(ROOT)} (missing: {missing})")
        print(f"bench: {notes[-1]} ...", file=sys.stderr, flush=True)
        result = build_native_dependencies(python, target)
        if result.returncode != 0:
            raise BenchError(
                f"native DependenciesLayer build failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )
        if missing := layer_missing_pins(python_dir):
            raise BenchError(f"native DependenciesLayer still lacks {missing}")
    else:
        notes.append(f"reusing the host-native DependenciesLayer in {target.relative_to(ROOT)} (matches the pins)")
    return python_dir


def import_layout(python: str, template: dict[str, Any] | None = None) -> ImportLayout:
    """Where each function's import runs from; refuses a missing or stale build."""
    from devtools.cfn import load_template, resources_of_type

    template = template or load_template()
    if not (BUILD_DIR / "template.yaml").is_file():
        raise BenchError(".aws-sam/build is missing: run `make build` (`make bench` does)")
    functions = resources_of_type("AWS::Serverless::Function", template)
    domain = layer_python("DomainLayer")
    trees = [(ROOT / "functions", BUILD_DIR / logical_id) for logical_id in functions]
    trees.append((ROOT / "shared" / "usercredits", domain / "usercredits"))
    stale = {f"{source.relative_to(ROOT)}/{path}" for source, built in trees for path in stale_files(source, built)}
    if stale:
        raise BenchError(f"the build differs from the sources ({sorted(stale)[:5]}): run `make build`")

    built_deps = layer_python("DependenciesLayer")
    if missing := layer_missing_pins(built_deps):
        raise BenchError(f"the built DependenciesLayer does not match requirements.txt ({missing}): run `make build`")
    notes: list[str] = []
    foreign = foreign_binaries(built_deps)
    if foreign:
        notes.append(
            f"the built DependenciesLayer has {len(foreign)} native extension(s) for another architecture "
            f"(e.g. {foreign[0]}): it cannot load on this {platform.machine()} machine"
        )
        dependencies = _native_dependencies(python, notes)
    else:
        notes.append("using the built DependenciesLayer as is (its binaries load on this machine)")
        dependencies = built_deps

    builds = []
    for logical_id, resource in functions.items():
        handler = resource["Properties"]["Handler"]
        module = handler.rpartition(".")[0]
        builds.append(
            FunctionBuild(
                folder=module.split(".")[0],
                logical_id=logical_id,
                module=module,
                path=(BUILD_DIR / logical_id, domain, dependencies),
                env=function_environment(template, logical_id),
            )
        )
    notes.append(
        "sys.path = [.aws-sam/build/<Function>, .aws-sam/build/DomainLayer/python, "
        f"{dependencies.relative_to(ROOT)}]; python -I -S -B; {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    return ImportLayout(functions=builds, notes=notes)


def time_import(python: str, statement: str, build: FunctionBuild) -> float:
    """Milliseconds ``statement`` takes in a fresh interpreter set up like ``build``'s Lambda runtime."""
    env = {**build.env, "PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(build.path[0])}
    command = [python, "-I", "-S", "-B", "-c", TIMER_CHILD.format(statement=statement), *map(str, build.path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BenchError(f"{statement!r} failed for {build.logical_id}:\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


LIBRARIES_CHILD = """import json, sys
sys.path[:0] = sys.argv[1:]
import {module}
dependencies = sys.argv[-1]
print(json.dumps([name for name, module in list(sys.modules.items())
                  if (getattr(module, '__file__', None) or '').startswith(dependencies)]))
"""


def library_statement(python: str, build: FunctionBuild) -> str:
    """An import of exactly the third-party modules (from the dependencies layer) that the handler's import loads,
    in the order it loads them: what the handler would cost with none of our code (its library floor)."""
    env = {**build.env, "PATH": os.environ.get("PATH", ""), "LAMBDA_TASK_ROOT": str(build.path[0])}
    command = [python, "-I", "-S", "-B", "-c", LIBRARIES_CHILD.format(module=build.module), *map(str, build.path)]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=False)  # noqa: S603
    if result.returncode != 0:
        raise BenchError(f"listing the libraries of {build.module} failed:\n{result.stderr[-3000:]}")
    names = json.loads(result.stdout.strip().splitlines()[-1])
    return "import " + ", ".join(names) if names else "pass"


def measure_imports(runs: int = DEFAULT_RUNS) -> tuple[list[Row], list[str]]:
    """import_ratio / import_ms rows of every function of the template, and each one's library floor (the same
    ratio for the third-party modules its import loads, without our code)."""
    python = sys.executable
    if sys.version_info[:2] != (3, 13):
        raise BenchError(f"{python} is Python {platform.python_version()}: the layers' .pyc files are for 3.13")
    layout = import_layout(python)
    statements = {"bare": "pass", "boto3": "import boto3"}
    libraries = {build.folder: library_statement(python, build) for build in layout.functions}
    samples: dict[str, dict[str, list[float]]] = {
        b.folder: {"bare": [], "boto3": [], "handler": [], "libraries": []} for b in layout.functions
    }
    for round_ in range(runs + 1):  # round 0 warms the page cache and is discarded
        for build in layout.functions:
            for kind in ("bare", "boto3", "handler", "libraries"):
                statement = (
                    libraries[build.folder] if kind == "libraries" else statements.get(kind, f"import {build.module}")
                )
                elapsed = time_import(python, statement, build)
                if round_ > 0:
                    samples[build.folder][kind].append(elapsed)

    rows = []
    for build in layout.functions:
        medians = {kind: statistics.median(values) for kind, values in samples[build.folder].items()}
        ratio = import_ratio(medians["handler"], medians["boto3"], medians["bare"])
        spread = samples[build.folder]["handler"]
        detail = f"import {build.module}: median of {runs}, min {min(spread):.0f} / max {max(spread):.0f} ms"
        rows += [
            Row(build.folder, "import_ratio", round(ratio, 3), IMPORT_RATIO_BUDGETS.get(build.folder), detail),
            Row(
                build.folder,
                "library_floor_ratio",
                round(import_ratio(medians["libraries"], medians["boto3"], medians["bare"]), 3),
                None,
                "the same ratio for the third-party modules the handler's import loads, none of our code",
            ),
            Row(build.folder, "import_ms", round(medians["handler"], 1), None, f"import {build.module}"),
            Row(build.folder, "boto3_import_ms", round(medians["boto3"], 1), None, "import boto3, same sys.path"),
            Row(build.folder, "bare_ms", round(medians["bare"], 3), None, "the same timer around `pass`"),
        ]
    return rows, layout.notes
