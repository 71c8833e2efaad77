"""The `sam build` output (``.aws-sam/build``) is what Lambda will run: check it imports and is built for arm64.

- Every function's Handler imports from ``.aws-sam/build/<Function>/`` with the layers' ``python/`` folders on the path,
  in a fresh interpreter with no site-packages at all (``python -I -S``), as Lambda would: ``/var/task`` first, then
  ``/opt/python``. Its settings model validates against the env of template.yaml.
- The deployed dependencies layer is arm64 (pydantic-core etc. are aarch64 ELF files) and cannot load on this x86_64
  machine, so the import check uses a host-native build of the same requirements, made by the same Makefile with
  ``LAYER_PLATFORM=native`` into ``.aws-sam/build-native/DependenciesLayer`` (reused while it matches requirements.txt;
  ``LAYER_PLATFORM=native sam build --build-dir .aws-sam/build-native`` makes the same thing). The domain layer and the
  function code are pure Python and come from the real build.
- Both layers ship unchecked-hash ``.pyc`` files for every module (``/opt`` is read-only in Lambda).

Skipped only when ``.aws-sam/build`` is missing (`make infra` runs `make build` first); a stale build fails.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from devtools.build_inspection import (
    EM_AARCH64,
    elf_machines,
    layer_missing_pins,
    layer_python,
    stale_files,
)

from tests.infrastructure.conftest import ROOT, FunctionConfig, fake_environment

LAMBDA_LAYER_LIMIT_BYTES = 250 * 1024 * 1024  # function + all layers, unzipped

# Runs in `python -I -S -B`: no site-packages, no PYTHON* env, no .pyc written into the build output.
IMPORT_CHECK = r"""
import importlib, json, os, sys
task_root, domain, dependencies, handler, folder = sys.argv[1:6]
stdlib = list(sys.path)
sys.path[:0] = [task_root, domain, dependencies]
module_name, _, attribute = handler.rpartition(".")
module = importlib.import_module(module_name)
entry = getattr(module, attribute)
from usercredits.settings import SETTINGS_BY_FUNCTION
SETTINGS_BY_FUNCTION[folder].model_validate(dict(os.environ))
files = {name: getattr(mod, "__file__", None) for name, mod in list(sys.modules.items())}
print(json.dumps({"callable": callable(entry), "stdlib": stdlib, "files": files}))
"""


def test_build_is_current(build: Path, functions: dict[str, FunctionConfig]) -> None:
    # Given the sources and the build output
    # Then the build holds today's code (else: run `make build`)
    for config in functions.values():
        stale = stale_files(ROOT / "functions", build / config.logical_id)
        assert stale == [], f"{config.logical_id} build is stale ({stale[:5]}): run `make build`"
    stale = stale_files(ROOT / "shared" / "usercredits", layer_python("DomainLayer", build) / "usercredits")
    assert stale == [], f"DomainLayer build is stale ({stale[:5]}): run `make build`"
    missing = layer_missing_pins(layer_python("DependenciesLayer", build))
    assert missing == {}, f"DependenciesLayer is stale ({missing}): run `make build`"


@pytest.mark.parametrize(
    "folder", ["ordering", "consumption", "stripe_webhook", "expiry_scan", "event_publisher", "customers"]
)
def test_handler_imports_from_the_build_with_only_the_layers(
    folder: str,
    build: Path,
    native_dependencies: Path,
    functions: dict[str, FunctionConfig],
    template: dict[str, Any],
) -> None:
    # Given the built function, the built domain layer and a host-native dependencies layer
    config = functions[folder]
    task_root = build / config.logical_id
    domain = layer_python("DomainLayer", build)
    env = {
        **fake_environment(config, template),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_LAMBDA_FUNCTION_NAME": config.logical_id,
        "LAMBDA_TASK_ROOT": str(task_root),
        "PATH": os.environ.get("PATH", ""),
    }
    # When a bare interpreter imports the Handler (nothing else on sys.path but the standard library)
    result = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            "-B",
            "-c",
            IMPORT_CHECK,
            str(task_root),
            str(domain),
            str(native_dependencies),
            config.handler,
            folder,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    # Then it imports, its entry point is callable and its settings validate against the template's env
    assert result.returncode == 0, f"{config.handler} does not import from the build:\n{result.stderr[-3000:]}"
    report = json.loads(result.stdout)
    assert report["callable"]
    # and every module came from the function, the two layers or the standard library
    allowed = [str(task_root), str(domain), str(native_dependencies), *report["stdlib"]]
    foreign = {
        name: path
        for name, path in report["files"].items()
        if path and not any(path.startswith(root.rstrip("/") + "/") for root in allowed if root)
    }
    assert foreign == {}
    assert report["files"]["usercredits"].startswith(str(domain))
    assert report["files"][config.handler.rsplit(".", 1)[0]].startswith(str(task_root))
    # Stripe is imported only where payments happen (about 100 ms of cold start otherwise)
    if folder in {"consumption", "expiry_scan"}:
        assert "stripe" not in report["files"], f"{folder} imports stripe at start-up"


def test_layers_do_not_overlap(build: Path) -> None:
    # Lambda merges every layer into /opt: a name in both layers would be silently overwritten by one of them
    dependencies = {path.name for path in layer_python("DependenciesLayer", build).iterdir()}
    domain = {path.name for path in layer_python("DomainLayer", build).iterdir()}
    assert dependencies & domain == set()


def test_dependencies_layer_ships_arm64_binaries_only(build: Path) -> None:
    # Given every native extension of the deployed dependencies layer
    machines = elf_machines(layer_python("DependenciesLayer", build))
    # Then there is at least one (pydantic-core) and all of them are aarch64 (x86_64 ones would fail at import)
    assert any("pydantic_core" in name for name in machines)
    assert {name: machine for name, machine in machines.items() if machine != EM_AARCH64} == {}


def _pyc_problems(python_dir: Path) -> list[str]:
    tag = sys.implementation.cache_tag
    problems = []
    for source in python_dir.rglob("*.py"):
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not compiled.is_file():
            problems.append(f"{source.relative_to(python_dir)}: no {tag} .pyc")
            continue
        with compiled.open("rb") as handle:
            header = handle.read(8)
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != importlib.util.MAGIC_NUMBER or flags != 0b01:  # hash-based, check_source off
            problems.append(f"{compiled.relative_to(python_dir)}: not an unchecked-hash {tag} .pyc")
    return problems


@pytest.mark.parametrize("layer", ["DependenciesLayer", "DomainLayer"])
def test_layer_is_precompiled_with_unchecked_hash_pyc(layer: str, build: Path) -> None:
    # Given the built layer (Lambda mounts it read-only, so Python could not cache what it compiles)
    problems = _pyc_problems(layer_python(layer, build))
    # Then every module has a .pyc for this Python that Python uses without checking the source
    assert problems[:10] == [], f"{len(problems)} modules without a usable .pyc"


def test_functions_fit_the_lambda_size_limit(build: Path, functions: dict[str, FunctionConfig]) -> None:
    def size(folder: Path) -> int:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())

    layers = size(build / "DependenciesLayer") + size(build / "DomainLayer")
    for config in functions.values():
        assert size(build / config.logical_id) + layers < LAMBDA_LAYER_LIMIT_BYTES, config.logical_id
