"""Read ``template.yaml`` (with its CloudFormation short-form tags) and derive local resources from it.

The dev server, the tests and the benchmark all take routes and table definitions from here, so the local stack is
built from the same definitions as the deployed one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns ``!Ref X`` into ``{"Ref": X}`` and ``!Sub``/``!GetAtt``/... into ``{"Fn::...": ...}``."""


def _construct_tag(loader: _CfnLoader, tag_suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


@lru_cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """Return the parsed template (cached per path)."""
    with path.open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    return data


def resources_of_type(resource_type: str, template: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> resource for every resource of ``resource_type``."""
    template = template or load_template()
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == resource_type}


@dataclass(frozen=True)
class HttpRoute:
    """One HttpApi route of a function: ``function`` is the folder name under ``functions/``."""

    method: str
    path: str
    function_logical_id: str
    function: str
    handler: str


def http_routes(template: dict[str, Any] | None = None) -> list[HttpRoute]:
    """Every ``HttpApi`` event of every function in the template."""
    routes = []
    for logical_id, resource in resources_of_type("AWS::Serverless::Function", template).items():
        props = resource.get("Properties", {})
        handler = props["Handler"]
        for event in (props.get("Events") or {}).values():
            if event.get("Type") != "HttpApi":
                continue
            ev = event["Properties"]
            routes.append(HttpRoute(ev["Method"].upper(), ev["Path"], logical_id, handler.split(".")[0], handler))
    return routes
