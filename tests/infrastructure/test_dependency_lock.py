"""The dependencies layer's lock (layers/dependencies/requirements.txt, written by `make deps`): every package the layer
ships is pinned with the hashes of its files, the lock is closed (no dependency left to resolve at build time), it
holds pyproject.toml's pins, and the tests run on exactly the versions it ships."""

from __future__ import annotations

import importlib.metadata
import re
from typing import Any

from devtools.build_inspection import normalise_name, parse_pins
from devtools.requirements import LOCK, lock_mismatches
from packaging.requirements import Requirement

from tests.infrastructure.conftest import ROOT

LAMBDA_MARKERS = {"sys_platform": "linux", "platform_system": "Linux", "python_version": "3.13", "extra": ""}


def _blocks() -> dict[str, list[str]]:
    """Normalised name -> the hashes of its requirement (one line once its ``\\`` continuations are joined)."""
    text = LOCK.read_text(encoding="utf-8").replace("\\\n", " ")
    blocks: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name = line.split("==", 1)[0].strip()
        blocks[normalise_name(name)] = re.findall(r"--hash=sha256:[0-9a-f]{64}", line)
    return blocks


def test_every_locked_package_is_pinned_with_hashes() -> None:
    pins = parse_pins(LOCK.read_text(encoding="utf-8"))
    blocks = _blocks()
    assert set(blocks) == set(pins)
    assert {name for name, hashes in blocks.items() if not hashes} == set()
    assert "botocore" in pins  # the dependency that floated under boto3's pin


def test_the_lock_is_closed() -> None:
    # Given the locked versions (the dev venv has the same ones: see the next test) and their declared requirements
    pins = parse_pins(LOCK.read_text(encoding="utf-8"))
    missing: dict[str, list[str]] = {}
    for name in pins:
        requires: list[Any] = importlib.metadata.requires(name) or []
        for text in requires:
            requirement = Requirement(text)
            if requirement.marker is not None and not requirement.marker.evaluate(LAMBDA_MARKERS):
                continue  # an optional extra, or another platform's
            if normalise_name(requirement.name) not in pins:
                missing.setdefault(name, []).append(requirement.name)
    # Then every one of them is locked too (pip installs with --no-deps: nothing is resolved at build time)
    assert missing == {}


def test_the_tests_run_the_locked_versions() -> None:
    pins = parse_pins(LOCK.read_text(encoding="utf-8"))
    installed = {name: importlib.metadata.version(name) for name in pins}
    assert {name: version for name, version in installed.items() if version != pins[name]} == {}


def test_the_lock_holds_pyprojects_pins() -> None:
    assert lock_mismatches(LOCK.read_text(encoding="utf-8")) == []


def test_the_layer_installs_only_what_is_locked_and_hashed() -> None:
    makefile = (ROOT / "layers" / "dependencies" / "Makefile").read_text(encoding="utf-8")
    install = next(line for line in makefile.splitlines() if "pip install" in line)
    assert "--require-hashes" in install and "--no-deps" in install
