"""Reading a ``sam build`` output: layer pins, native binaries, stale files, and a function's environment.

Shared by ``devtools.bench`` (imports each Handler from the build, as Lambda would) and tests/infrastructure (the build
is what Lambda runs). The deployed DependenciesLayer is arm64; :func:`build_native_dependencies` makes the host-native
build of the same requirements by the same layer Makefile (``LAYER_PLATFORM=native``), in ``.aws-sam/build-native``.
"""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
NATIVE_BUILD_DIR = ROOT / ".aws-sam" / "build-native"
DEPENDENCIES_DIR = ROOT / "layers" / "dependencies"
REQUIREMENTS = DEPENDENCIES_DIR / "requirements.txt"

#: ELF ``e_machine`` values, and those of the machines Lambda runs on by ``platform.machine()`` name.
EM_X86_64 = 62
EM_AARCH64 = 183
ELF_MACHINES = {"x86_64": EM_X86_64, "amd64": EM_X86_64, "aarch64": EM_AARCH64, "arm64": EM_AARCH64}


def layer_python(layer: str, build_dir: Path = BUILD_DIR) -> Path:
    """The ``python/`` folder of a built layer (what Lambda puts on ``sys.path`` as ``/opt/python``)."""
    return build_dir / layer / "python"


# ------------------------------------------------------------------------------------------------------------ pins
def normalise_name(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name.strip()).lower()


def parse_pins(text: str) -> dict[str, str]:
    """``name==version`` lines of a requirements file -> {normalised name: version} (comments, extras, markers and
    the continuation of a hashed lock's lines dropped)."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip().removesuffix("\\").strip()
        if not line or "==" not in line:
            continue
        name, _, version = line.partition("==")
        pins[normalise_name(name.split("[", 1)[0])] = version.split(";", 1)[0].strip()
    return pins


def installed_versions(python_dir: Path) -> dict[str, str]:
    """{normalised name: version} of the ``*.dist-info`` folders in a layer's ``python/`` directory."""
    found = {}
    for dist_info in python_dir.glob("*.dist-info"):
        name, _, version = dist_info.name.removesuffix(".dist-info").rpartition("-")
        found[normalise_name(name)] = version
    return found


def missing_pins(pins: Mapping[str, str], installed: Mapping[str, str]) -> dict[str, str]:
    return {name: version for name, version in pins.items() if installed.get(name) != version}


def layer_missing_pins(python_dir: Path, requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """The pins of ``requirements`` that the layer lacks or has at another version (all of them if it is absent)."""
    return missing_pins(parse_pins(requirements.read_text(encoding="utf-8")), installed_versions(python_dir))


def build_native_dependencies(
    python: str, target: Path = NATIVE_BUILD_DIR / "DependenciesLayer"
) -> subprocess.CompletedProcess[str]:
    """Build the DependenciesLayer for this machine into ``target`` with layers/dependencies/Makefile."""
    command = [
        "make",
        "--no-print-directory",
        "-C",
        str(DEPENDENCIES_DIR),
        "build-DependenciesLayer",
        f"ARTIFACTS_DIR={target}",
        "LAYER_PLATFORM=native",
        f"PYTHON={python}",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603


# ------------------------------------------------------------------------------------------------ binaries, sources
def elf_machine(path: Path) -> int | None:
    """The ELF ``e_machine`` of a shared library (62 x86_64, 183 aarch64), None if it is not an ELF file."""
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def elf_machines(python_dir: Path) -> dict[str, int | None]:
    """{relative path: ELF ``e_machine`` or None} of every ``*.so*`` file of a layer's ``python/``, sorted."""
    return {
        path.relative_to(python_dir).as_posix(): elf_machine(path)
        for path in sorted(python_dir.rglob("*.so*"))
        if path.is_file()
    }


def foreign_binaries(python_dir: Path, machine: str | None = None) -> list[str]:
    """Native extensions of a layer that ``machine`` (default: this one) cannot load (built for another one)."""
    expected = ELF_MACHINES.get((machine or platform.machine()).lower())
    return [name for name, found in elf_machines(python_dir).items() if found is not None and found != expected]


def stale_files(source: Path, built: Path) -> list[str]:
    """``.py`` files of ``source`` (relative paths, sorted) that are missing or different under ``built``."""
    stale = []
    for path in sorted(source.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        copy = built / path.relative_to(source)
        if not copy.is_file() or copy.read_bytes() != path.read_bytes():
            stale.append(path.relative_to(source).as_posix())
    return stale


# ----------------------------------------------------------------------------------------------------- environment
def function_variables(template: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    """``Environment.Variables`` of a function with those of ``Globals.Function`` merged in (the function's win)."""
    globals_fn = (template.get("Globals") or {}).get("Function") or {}
    props = template["Resources"][logical_id].get("Properties") or {}
    return {
        **((globals_fn.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }


def resolve_value(value: Any, template: Mapping[str, Any], *, stand_in: str, placeholder: str | None = None) -> str:
    """A template value as Lambda would see it: a parameter's ``Ref`` -> its Default, a resource's -> the stand-in
    name ``user-credits-<name>-<stand_in>``; any other intrinsic -> ``placeholder`` (ValueError when None)."""
    if isinstance(value, dict) and "Ref" in value:
        name = value["Ref"]
        parameter = (template.get("Parameters") or {}).get(name)
        if parameter is not None:
            return str(parameter.get("Default", f"{name.lower()}-value"))
        return f"user-credits-{name.lower()}-{stand_in}"
    if isinstance(value, dict | list):
        if placeholder is None:
            raise ValueError(f"cannot resolve {value} without a placeholder")
        return placeholder
    return str(value)


def resolve_variables(
    variables: Mapping[str, Any], template: Mapping[str, Any], *, stand_in: str, placeholder: str | None = None
) -> dict[str, str]:
    """:func:`resolve_value` of every variable."""
    return {
        name: resolve_value(value, template, stand_in=stand_in, placeholder=placeholder)
        for name, value in variables.items()
    }
