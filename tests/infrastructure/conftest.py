"""Fixtures of the template <-> code tests: the parsed template.yaml and each function's effective configuration.

SAM merges ``Globals.Function`` into every function: maps (``Environment.Variables``) are merged with the function's
values winning, lists (``Layers``) are appended, scalars are overridden. ``effective`` reproduces that.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from devtools.build_inspection import (
    BUILD_DIR,
    NATIVE_BUILD_DIR,
    build_native_dependencies,
    function_variables,
    layer_missing_pins,
    layer_python,
    resolve_variables,
)
from devtools.cfn import load_template, resources_of_type

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FunctionConfig:
    """One ``AWS::Serverless::Function`` with Globals applied; ``folder`` is its directory under ``functions/``."""

    logical_id: str
    folder: str
    handler: str
    properties: dict[str, Any]
    env: dict[str, Any]
    layers: list[Any]
    events: dict[str, dict[str, Any]]

    def prop(self, name: str) -> Any:
        return self.properties.get(name)


def effective(logical_id: str, resource: dict[str, Any], template: dict[str, Any]) -> FunctionConfig:
    globals_fn: dict[str, Any] = template.get("Globals", {}).get("Function", {})
    own: dict[str, Any] = resource.get("Properties", {})
    merged = {**globals_fn, **own}
    layers = list(globals_fn.get("Layers") or []) + list(own.get("Layers") or [])
    handler = merged["Handler"]
    return FunctionConfig(
        logical_id=logical_id,
        folder=handler.split(".")[0],
        handler=handler,
        properties=merged,
        env=function_variables(template, logical_id),
        layers=layers,
        events=own.get("Events") or {},
    )


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def functions(template: dict[str, Any]) -> dict[str, FunctionConfig]:
    """Function folder (``ordering``, ...) -> its effective configuration."""
    configs = [
        effective(logical_id, resource, template)
        for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items()
    ]
    return {config.folder: config for config in configs}


def fake_environment(config: FunctionConfig, template: dict[str, Any]) -> dict[str, str]:
    """The function's environment as Lambda would set it: parameters resolve to their defaults, resources to a
    stand-in physical name (``user-credits-<logical id>-fake``); any other intrinsic is an error."""
    return resolve_variables(config.env, template, stand_in="fake")


@pytest.fixture(scope="session")
def build() -> Path:
    if not (BUILD_DIR / "template.yaml").is_file():
        pytest.skip(".aws-sam/build is missing: run `make build` first (`make infra` does)")
    return BUILD_DIR


@pytest.fixture(scope="session")
def native_dependencies(build: Path) -> Path:
    """``python/`` of a host-native DependenciesLayer built by layers/dependencies/Makefile (reused while current)."""
    target = NATIVE_BUILD_DIR / "DependenciesLayer"
    python_dir = layer_python("DependenciesLayer", NATIVE_BUILD_DIR)
    if layer_missing_pins(python_dir):
        result = build_native_dependencies(sys.executable, target)
        assert result.returncode == 0, f"native DependenciesLayer build failed:\n{result.stdout}\n{result.stderr}"
    assert layer_missing_pins(python_dir) == {}
    return python_dir


def policy_statements(config: FunctionConfig) -> list[dict[str, Any]]:
    """The inline statements of the function's Policies (those under a condition's ``Fn::If`` included)."""
    statements: list[dict[str, Any]] = []
    for entry in config.prop("Policies") or []:
        policy = entry["Fn::If"][1] if isinstance(entry, dict) and "Fn::If" in entry else entry
        if isinstance(policy, dict):
            statements.extend(policy.get("Statement") or [])
    return statements


def _resource_table(resource: Any) -> tuple[str, str] | None:
    """(table logical id, "table" | "index") of a ``!GetAtt T.Arn`` or ``!Sub "${T.Arn}/index/*"`` resource."""
    if isinstance(resource, dict) and "Fn::GetAtt" in resource and resource["Fn::GetAtt"][1] == "Arn":
        return resource["Fn::GetAtt"][0], "table"
    if isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str):
        text = resource["Fn::Sub"]
        if text.startswith("${") and text.endswith(".Arn}/index/*"):
            return text[2 : -len(".Arn}/index/*")], "index"
    return None


def dynamodb_grants(config: FunctionConfig) -> dict[str, dict[str, set[str]]]:
    """Table logical id -> {"table" | "index": the DynamoDB actions the function's inline statements allow there}."""
    grants: dict[str, dict[str, set[str]]] = {}
    for statement in policy_statements(config):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        dynamodb = {action for action in actions if action.startswith("dynamodb:")}
        if not dynamodb:
            continue
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for resource in resources:
            target = _resource_table(resource)
            assert target is not None, f"{config.logical_id}: DynamoDB access to {resource} (not a table of the stack)"
            table, kind = target
            grants.setdefault(table, {}).setdefault(kind, set()).update(dynamodb)
    return grants
